from services.lighting.app import create_app
from services.lighting.settings import LightingSettings
from shared.http import serve

settings = LightingSettings()
serve(create_app(settings), settings, service="lighting")
