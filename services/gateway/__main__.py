from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings
from shared.http import serve

settings = GatewaySettings()
serve(create_app(settings), settings, service="gateway")
