from services.energy.app import create_app
from services.energy.settings import EnergySettings
from shared.http import serve

settings = EnergySettings()
serve(create_app(settings), settings, service="energy")
