from services.api.app import create_app
from services.api.settings import ApiSettings
from shared.http import serve

settings = ApiSettings()
serve(create_app(settings), settings, service="api")
