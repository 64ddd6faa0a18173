"""`python -m townpulse.service prepare|wait NAME`: the units' own steps, without the main CLI's
start-up (which reads the run directory's stack.env, root's file, as the unit's user)."""

from townpulse.service.commands import app

app(prog_name="townpulse service")
