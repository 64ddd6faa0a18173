"""What the alerts service's routes use of its running app, as typed dependencies
(shared.http.AppResource); its app's start-up puts them."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from services.alerts.adapters.secrets import WebhookSecrets
from services.alerts.dispatcher import Dispatcher
from services.alerts.settings import AlertsSettings
from shared.http import AppResource, settings_of

DISPATCHER: AppResource[Dispatcher] = AppResource("dispatcher")
WEBHOOK_SECRETS: AppResource[WebhookSecrets] = AppResource("webhook_secrets")

Settings = Annotated[AlertsSettings, Depends(settings_of(AlertsSettings))]
AppDispatcher = Annotated[Dispatcher, Depends(DISPATCHER)]
Secrets = Annotated[WebhookSecrets, Depends(WEBHOOK_SECRETS)]
