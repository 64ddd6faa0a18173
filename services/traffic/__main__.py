from services.traffic.app import create_app
from services.traffic.settings import TrafficSettings
from shared.http import serve

settings = TrafficSettings()
serve(create_app(settings), settings, service="traffic")
