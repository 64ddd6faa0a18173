from services.waste.app import create_app
from services.waste.settings import WasteSettings
from shared.http import serve

settings = WasteSettings()
serve(create_app(settings), settings, service="waste")
