"""Device registration through the operator API, and the local store of MQTT credentials.

Devices behind the simulated LoRaWAN network server are registered by DevEUI and profile instead
(no MQTT credentials); the server's ChirpStack HTTP integration and its codecs are set up here
too, and the integration's secret is kept in the same store.

Passwords and secrets live only in the credentials file (mode 0600) and in memory; they never
reach a log line, an exception message or a repr.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from townpulse.simulator.lorawan import APPLICATION_ID, Cursor
from townpulse.simulator.town import U32, Device, LoRaModel

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
    """JSON file of device credentials and integration secrets, written atomically with
    owner-only permissions."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _read(self) -> dict[str, Any]:
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
        return doc

    def load(self) -> dict[str, MqttCredentials]:
        """Stored credentials by device id; an absent or unreadable file counts as empty."""
        creds = {}
        for device_id, item in dict(self._read().get("devices", {})).items():
            try:
                creds[device_id] = MqttCredentials.from_json(item)
            except ValueError:
                log.warning("ignoring malformed stored credentials of %s", device_id)
        return creds

    def save(self, creds: Mapping[str, MqttCredentials]) -> None:
        """Replace the devices' credentials with `creds` (integration secrets are kept)."""
        doc = self._read()
        doc["devices"] = {k: v.to_json() for k, v in sorted(creds.items())}
        self._write(doc)

    def secret(self, integration_id: str) -> str | None:
        """The HTTP secret the API gave when it created this integration, if it was kept."""
        item = dict(self._read().get("integrations", {})).get(integration_id)
        secret = item.get("http_secret") if isinstance(item, dict) else None
        return secret if isinstance(secret, str) and secret else None

    def save_secret(self, integration_id: str, secret: str | None) -> None:
        """Keep (or, with None, forget) an integration's HTTP secret."""
        doc = self._read()
        secrets = dict(doc.get("integrations", {}))
        if secret is None:
            secrets.pop(integration_id, None)
        else:
            secrets[integration_id] = {"http_secret": secret}
        doc["integrations"] = secrets
        self._write(doc)

    def _write(self, doc: dict[str, Any]) -> None:
        """Replace the file (never world- or group-readable, even briefly)."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        doc = {"version": STORE_VERSION, "devices": {}, **doc}
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
            try:
                return self.rotate(device.id)
            except ApiError as exc:
                if exc.status != httpx.codes.CONFLICT:
                    raise
            # Registered by its DevEUI by an earlier run (it went through the network server
            # then): registered again, its history kept, as the MQTT device it is now.
            self._replace(device)
            response = self._http.post("/v1/devices", json=device.registration())
        _expect(response, httpx.codes.CREATED, f"registering {device.id}")
        log.debug("registered device %s", device.id)
        return _credentials(response, device.id)

    def register_lorawan(self, device: Device) -> Cursor | None:
        """Make sure the device is registered by its DevEUI and profile; where its newest stored
        uplink left it (None if it was never heard)."""
        assert device.lorawan is not None
        response = self._http.get(f"/v1/devices/{device.id}")
        if response.status_code == httpx.codes.OK:
            current = response.json()
            if _registered_as(current, device):
                return self._cursor(device, current.get("link"))
            # An MQTT device of an earlier run, or other settings: registered again, as the
            # network server's device it is now; its history stays.
            log.info("re-registering %s as a LoRaWAN %s", device.id, device.lorawan.model.value)
            self._replace(device)
        elif response.status_code != httpx.codes.NOT_FOUND:
            _expect(response, httpx.codes.OK, f"looking up {device.id}")
        created = self._http.post("/v1/devices", json=device.registration())
        _expect(created, httpx.codes.CREATED, f"registering {device.id}")
        log.debug("registered LoRaWAN device %s (%s)", device.id, device.lorawan.dev_eui)
        return None

    def _replace(self, device: Device) -> None:
        # A plain delete: the readings stay, and registering the id again revives it.
        gone = self._http.delete(f"/v1/devices/{device.id}")
        if gone.status_code != httpx.codes.NOT_FOUND:
            _expect(gone, httpx.codes.NO_CONTENT, f"removing {device.id} to register it again")

    def _cursor(self, device: Device, link: Any) -> Cursor | None:
        if not isinstance(link, dict) or not link.get("last_uplink_at"):
            return None
        last = datetime.fromisoformat(str(link["last_uplink_at"]))
        f_cnt = link.get("f_cnt")
        pulses = None
        assert device.lorawan is not None
        if device.lorawan.model is LoRaModel.EM300_DI:
            # The counter goes on from the count stored last, so its next interval is one
            # interval's energy, not a jump.
            response = self._http.get(
                f"/v1/devices/{device.id}/readings",
                params={
                    "metric": "pulse_count",
                    "start": last.isoformat(),
                    "end": (last + timedelta(seconds=1)).isoformat(),
                },
            )
            _expect(response, httpx.codes.OK, f"reading the pulse count of {device.id}")
            items = response.json().get("items") or []
            if items:
                pulses = int(items[-1]["value"]) % U32
        return Cursor(last_ts=last, f_cnt=int(f_cnt) if f_cnt is not None else None, pulses=pulses)

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
            # 409: registered by its DevEUI meanwhile; register() makes it an MQTT device again.
            if exc.status not in (httpx.codes.NOT_FOUND, httpx.codes.CONFLICT):
                raise
        return self.register(device)


def _registered_as(current: Mapping[str, Any], device: Device) -> bool:
    """Whether the API's record of a device is this LoRaWAN device as laid out today."""
    assert device.lorawan is not None
    metadata = current.get("metadata") or {}
    return (
        current.get("dev_eui") == device.lorawan.dev_eui
        and current.get("profile") == device.lorawan.model.profile
        and all(metadata.get(k) == v for k, v in device.lorawan.settings.items())
    )


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


# ---- the simulated LoRaWAN network server -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IngestAccess:
    """Where the simulated network server pushes its uplinks, and the secret it sends."""

    integration_id: str
    path: str
    secret: str = field(repr=False)


class NetworkServer:
    """The ChirpStack HTTP integration the simulated town's network server pushes to.

    Created once and reused across restarts: its secret is shown only when it is created, so it
    is kept in the credentials store. Without the secret (the store was lost) it is made again.
    """

    def __init__(self, http: httpx.Client, store: CredentialStore, *, integration_id: str) -> None:
        self._http = http
        self._store = store
        self.integration_id = integration_id

    def ensure(self) -> IngestAccess:
        """The integration's ingest path and secret, creating it if need be."""
        response = self._http.get("/v1/integrations")
        _expect(response, httpx.codes.OK, "listing integrations")
        found = next((i for i in response.json() if i.get("id") == self.integration_id), None)
        secret = self._store.secret(self.integration_id)
        if found is not None:
            if found.get("kind") != "chirpstack" or found.get("transport") != "http":
                raise ApiError(
                    f"integration {self.integration_id!r} exists but is not a ChirpStack HTTP "
                    "integration; choose another id (--lorawan-integration)"
                )
            if secret is not None:
                if not found.get("enabled", True):
                    log.warning(
                        "integration %s is disabled: its uplinks will be refused",
                        self.integration_id,
                    )
                return IngestAccess(self.integration_id, str(found["ingest_path"]), secret)
            log.info("no stored secret for integration %s: making it again", self.integration_id)
        return self.renew()

    def renew(self) -> IngestAccess:
        """Make the integration again (a fresh secret); used too when the secret is refused."""
        gone = self._http.delete(f"/v1/integrations/{self.integration_id}")
        if gone.status_code != httpx.codes.NOT_FOUND:
            _expect(gone, httpx.codes.NO_CONTENT, f"removing integration {self.integration_id}")
        self._store.save_secret(self.integration_id, None)
        response = self._http.post(
            "/v1/integrations",
            json={
                "id": self.integration_id,
                "kind": "chirpstack",
                "transport": "http",
                "name": "Simulated town's LoRaWAN network server (ChirpStack format)",
                "application": APPLICATION_ID,
            },
        )
        _expect(response, httpx.codes.CREATED, f"creating integration {self.integration_id}")
        body = response.json()
        secret, path = body.get("http_secret"), body.get("ingest_path")
        if not isinstance(secret, str) or not isinstance(path, str):
            raise ApiError(f"the API answer for integration {self.integration_id} has no secret")
        # Kept before anything else can fail: the API never shows it again.
        self._store.save_secret(self.integration_id, secret)
        log.info("created ChirpStack HTTP integration %s", self.integration_id)
        return IngestAccess(self.integration_id, path, secret)


def import_codecs(http: httpx.Client, models: Iterable[LoRaModel]) -> set[LoRaModel]:
    """Install the models' codecs from the gateway's Device Repository copy, once.

    Returns the models whose codec TownPulse has (installed now or earlier). Without one, the
    network server's decoded object is what TownPulse reads.
    """
    wanted = set(models)
    if not wanted:
        return set()
    listed = http.get("/v1/codecs")
    _expect(listed, httpx.codes.OK, "listing codecs")
    names = {str(c.get("name")) for c in listed.json()}
    have = {m for m in wanted if m.profile in names}
    todo = wanted - have
    if not todo:
        return have
    repository = http.get("/v1/codecs/repository")
    available = set(repository.json()) if repository.status_code == httpx.codes.OK else set()
    for model in sorted(todo):
        if model.value not in available:
            log.warning(
                "no codec for %s in the gateway's Device Repository copy "
                "(TOWNPULSE_DEVICE_REPOSITORY): TownPulse cannot decode its bytes itself",
                model.value,
            )
            continue
        response = http.post("/v1/codecs/import", json={"path": model.value})
        try:
            _expect(response, httpx.codes.CREATED, f"importing codec {model.value}")
        except ApiError as exc:
            log.warning("%s", exc)
            continue
        log.info("imported codec %s from the Device Repository", model.value)
        have.add(model)
    return have


def provision_lorawan(
    registry: DeviceRegistry, devices: Iterable[Device]
) -> dict[str, Cursor | None]:
    """Register every LoRaWAN device; where each one's stored uplinks left off."""
    wanted = [d for d in devices if d.lorawan is not None]
    cursors = {d.id: registry.register_lorawan(d) for d in wanted}
    heard = sum(c is not None for c in cursors.values())
    log.info("%d LoRaWAN devices registered (%d heard before)", len(wanted), heard)
    return cursors
