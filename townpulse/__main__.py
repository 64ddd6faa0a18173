from townpulse.cli import app

app()
