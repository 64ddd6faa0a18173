"""Device registration through the operator API, and the local store of MQTT credentials.

Passwords live only in the credentials file (mode 0600) and in memory; they never reach a log
line, an exception message or a repr.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from townpulse.simulator.town import Device

log = logging.getLogger(__name__)

STORE_VERSION = 1


@dataclass(frozen=True, slots=True)
class MqttCredentials:
    """What a device needs to connect and publish; the password is left out of repr."""

    host: str
    port: int
    username: str
    password: str = field(repr=False)
    topic: str

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> MqttCredentials:
        """Read the `mqtt` object of an API answer (or of the store)."""
        try:
            return cls(
                host=str(doc["host"]),
                port=int(doc["port"]),
                username=str(doc["username"]),
                password=str(doc["password"]),
                topic=str(doc["topic"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed MQTT credentials: missing or bad {exc}") from None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form, password included: only for the 0600 store."""
        return {
            "host": self.host,
            "port": self.port,
            "username": self.username,
            "password": self.password,
            "topic": self.topic,
        }

    def fits(self, device: Device) -> bool:
        """Whether these credentials belong to `device` as laid out today."""
        return self.username == device.id and self.topic == device.topic


class CredentialStore:
    """JSON file of device credentials, written atomically with owner-only permissions."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, MqttCredentials]:
        """Stored credentials by device id; an absent or unreadable file counts as empty."""
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning(
                "ignoring unreadable credentials file %s: %s", self.path, type(exc).__name__
            )
            return {}
        if not isinstance(doc, dict) or doc.get("version") != STORE_VERSION:
            log.warning("ignoring credentials file %s of unknown format", self.path)
            return {}
        creds = {}
        for device_id, item in dict(doc.get("devices", {})).items():
            try:
                creds[device_id] = MqttCredentials.from_json(item)
            except ValueError:
                log.warning("ignoring malformed stored credentials of %s", device_id)
        return creds

    def save(self, creds: Mapping[str, MqttCredentials]) -> None:
        """Replace the file with `creds` (never world- or group-readable, even briefly)."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        doc = {
            "version": STORE_VERSION,
            "devices": {k: v.to_json() for k, v in sorted(creds.items())},
        }
        # mkstemp creates the file 0600, so the secret is never exposed before the rename.
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".credentials-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(doc, fh, indent=1)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


class ApiError(RuntimeError):
    """The operator API refused a request."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def _expect(response: httpx.Response, status: int, action: str) -> None:
    if response.status_code == status:
        return
    detail = ""
    # FastAPI puts the reason in `detail`; never echo anything else of a body.
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("detail"):
        detail = f": {str(body['detail'])[:200]}"
    raise ApiError(
        f"{action} failed with HTTP {response.status_code}{detail}", status=response.status_code
    )


class DeviceRegistry:
    """Client of the device endpoints of the operator API."""

    def __init__(self, http: httpx.Client) -> None:
        self._http = http

    def register(self, device: Device) -> MqttCredentials:
        """Create the device; if it already exists, rotate its password instead."""
        response = self._http.post("/v1/devices", json=device.registration())
        if response.status_code == httpx.codes.CONFLICT:
            log.debug("device %s already registered; rotating its MQTT password", device.id)
            return self.rotate(device.id)
        _expect(response, httpx.codes.CREATED, f"registering {device.id}")
        log.debug("registered device %s", device.id)
        return _credentials(response, device.id)

    def rotate(self, device_id: str) -> MqttCredentials:
        """Issue a new MQTT password for an existing device."""
        response = self._http.post(f"/v1/devices/{device_id}/credentials")
        _expect(response, httpx.codes.OK, f"rotating credentials of {device_id}")
        return _credentials(response, device_id)

    def renew(self, device: Device) -> MqttCredentials:
        """Fresh credentials for a device the broker refused: rotate, or create if unknown."""
        try:
            return self.rotate(device.id)
        except ApiError as exc:
            if exc.status != httpx.codes.NOT_FOUND:
                raise
        return self.register(device)


def _credentials(response: httpx.Response, device_id: str) -> MqttCredentials:
    try:
        body = response.json()
        return MqttCredentials.from_json(body["mqtt"])
    except (ValueError, KeyError, TypeError):
        raise ApiError(f"the API answer for {device_id} holds no usable MQTT credentials") from None


def api_client(api_url: str, api_key: str, *, timeout: float = 10.0) -> httpx.Client:
    """HTTP client for the operator API, authenticated with the admin key."""
    return httpx.Client(
        base_url=api_url.rstrip("/"),
        timeout=timeout,
        headers={"Authorization": f"Bearer {api_key}"},
    )


def provision(
    registry: DeviceRegistry,
    devices: Iterable[Device],
    store: CredentialStore,
) -> dict[str, MqttCredentials]:
    """Credentials for every device: reuse stored ones, register the rest.

    The store is saved even when a registration fails half-way, so credentials shown once by
    the API are never lost.
    """
    creds = store.load()
    wanted = list(devices)
    todo = [d for d in wanted if d.id not in creds or not creds[d.id].fits(d)]
    log.info(
        "%d devices: %d with stored credentials, %d to register",
        len(wanted),
        len(wanted) - len(todo),
        len(todo),
    )
    try:
        for device in todo:
            creds[device.id] = registry.register(device)
    finally:
        if todo:
            store.save(creds)
    return {d.id: creds[d.id] for d in wanted}
