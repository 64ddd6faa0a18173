"""What the operator API's routes use of its running app, as typed dependencies
(shared.http.AppResource); its app (and its start-up) puts them."""

from __future__ import annotations

from typing import Annotated

import httpx
from fastapi import Depends

from services.api.settings import ApiSettings
from shared.http import AppResource, settings_of
from shared.mqtt_admin import DynSecClient

SETTINGS = settings_of(ApiSettings)
# The broker's dynamic-security admin connection (devices' MQTT identities).
DYNSEC: AppResource[DynSecClient] = AppResource("dynsec")
# The client of the upstream services the API forwards to (services/api/proxy.py).
UPSTREAM: AppResource[httpx.AsyncClient] = AppResource("http")

Settings = Annotated[ApiSettings, Depends(SETTINGS)]
AppDynSec = Annotated[DynSecClient, Depends(DYNSEC)]
Upstream = Annotated[httpx.AsyncClient, Depends(UPSTREAM)]
