from services.alerts.app import create_app
from services.alerts.settings import AlertsSettings
from shared.http import serve

settings = AlertsSettings()
serve(create_app(settings), settings, service="alerts")
