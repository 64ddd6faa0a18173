from services.storage.app import create_app
from services.storage.settings import StorageSettings
from shared.http import serve

settings = StorageSettings()
serve(create_app(settings), settings, service="storage")
