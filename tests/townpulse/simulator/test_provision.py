"""Setting up the simulated LoRaWAN network server through the operator API: codecs, the HTTP
integration and its secret, devices registered by DevEUI (MQTT registration is tested in
test_runner.py)."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest

from townpulse.simulator.lorawan import APPLICATION_ID, Cursor
from townpulse.simulator.provision import (
    ApiError,
    CredentialStore,
    DeviceRegistry,
    MqttCredentials,
    NetworkServer,
    import_codecs,
    provision_lorawan,
)
from townpulse.simulator.town import LoRaModel, build_town

pytestmark = pytest.mark.unit

API_KEY = "admin-key-should-never-show"
REPOSITORY = ["milesight-iot/em300-di", "milesight-iot/em310-udl", "nwave/nps405"]


class FakeApi:
    """The operator API's devices, codecs and integrations, in memory."""

    def __init__(self) -> None:
        self.devices: dict[str, dict[str, Any]] = {}
        self.readings: dict[str, list[dict[str, Any]]] = {}
        self.codecs: list[str] = []
        self.repository = list(REPOSITORY)
        self.integrations: dict[str, dict[str, Any]] = {}
        self.calls: list[str] = []
        self.made = 0

    def handler(self, request: httpx.Request) -> httpx.Response:
        assert request.headers["Authorization"] == f"Bearer {API_KEY}"
        path, method = request.url.path, request.method
        self.calls.append(f"{method} {path}")
        body: Any = json.loads(request.content) if request.content else {}
        parts = path.split("/")[2:]
        if parts == ["codecs"]:
            return httpx.Response(200, json=[{"name": n, "version": 1} for n in self.codecs])
        if parts == ["codecs", "repository"]:
            return httpx.Response(200, json=self.repository)
        if parts == ["codecs", "import"]:
            self.codecs.append(body["path"].replace("/", "-"))
            return httpx.Response(201, json={"name": self.codecs[-1], "version": 1})
        if parts[0] == "integrations":
            return self._integrations(method, parts, body)
        return self._devices(method, parts, body, request)

    def _integrations(self, method: str, parts: list[str], body: Any) -> httpx.Response:
        if method == "GET":
            return httpx.Response(200, json=list(self.integrations.values()))
        if method == "DELETE":
            found = self.integrations.pop(parts[1], None)
            return httpx.Response(204 if found else 404)
        if body["id"] in self.integrations:
            return httpx.Response(409, json={"detail": "exists"})
        self.made += 1
        row = {
            **body,
            "enabled": True,
            "ingest_path": f"/v1/ingest/chirpstack/{body['id']}?event=up",
        }
        self.integrations[body["id"]] = row
        return httpx.Response(201, json={**row, "http_secret": f"secret-{self.made}"})

    def _devices(
        self, method: str, parts: list[str], body: Any, request: httpx.Request
    ) -> httpx.Response:
        if method == "POST" and parts == ["devices"]:
            if body["id"] in self.devices:
                return httpx.Response(409, json={"detail": "exists"})
            self.devices[body["id"]] = {**body, "link": None}
            return httpx.Response(201, json={"device": body, "mqtt": None})
        device = self.devices.get(parts[1])
        if device is None:
            return httpx.Response(404, json={"detail": "no such device"})
        if method == "DELETE":
            del self.devices[parts[1]]
            return httpx.Response(204)
        if parts[2:] == ["readings"]:
            assert request.url.params["metric"] == "pulse_count"
            return httpx.Response(200, json={"items": self.readings.get(parts[1], [])})
        return httpx.Response(200, json={"dev_eui": None, "profile": None, **device})

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url="http://api.test",
            transport=httpx.MockTransport(self.handler),
            headers={"Authorization": f"Bearer {API_KEY}"},
        )


def test_the_integration_is_made_once_and_its_secret_kept_owner_only(tmp_path: Path) -> None:
    api = FakeApi()
    store = CredentialStore(tmp_path / "simulator" / "credentials.json")
    with api.client() as http:
        access = NetworkServer(http, store, integration_id="sim-cs").ensure()
        again = NetworkServer(http, store, integration_id="sim-cs").ensure()
    assert access == again and access.path == "/v1/ingest/chirpstack/sim-cs?event=up"
    assert api.made == 1 and access.secret == "secret-1"
    assert api.integrations["sim-cs"]["kind"] == "chirpstack"
    assert api.integrations["sim-cs"]["transport"] == "http"
    assert api.integrations["sim-cs"]["application"] == APPLICATION_ID
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert "secret-1" not in repr(access)


def test_an_integration_whose_secret_was_lost_is_made_again(tmp_path: Path) -> None:
    api = FakeApi()
    with api.client() as http:
        NetworkServer(http, CredentialStore(tmp_path / "a.json"), integration_id="sim").ensure()
        access = NetworkServer(
            http, CredentialStore(tmp_path / "b.json"), integration_id="sim"
        ).ensure()
    assert api.made == 2 and access.secret == "secret-2"
    assert CredentialStore(tmp_path / "b.json").secret("sim") == "secret-2"


def test_an_integration_of_another_kind_is_left_alone(tmp_path: Path) -> None:
    api = FakeApi()
    api.integrations["sim"] = {"id": "sim", "kind": "tts", "transport": "mqtt"}
    with api.client() as http, pytest.raises(ApiError, match="not a ChirpStack HTTP"):
        NetworkServer(http, CredentialStore(tmp_path / "c.json"), integration_id="sim").ensure()
    assert api.integrations["sim"]["kind"] == "tts"


def test_devices_and_secrets_share_the_store_without_overwriting_each_other(
    tmp_path: Path,
) -> None:
    store = CredentialStore(tmp_path / "credentials.json")
    creds = MqttCredentials("mosquitto", 1883, "bin-001", "pw", "sensors/waste/bin-001")
    store.save({"bin-001": creds})
    store.save_secret("sim", "s3cret")
    store.save({"bin-001": creds, "bin-002": creds})
    assert store.secret("sim") == "s3cret" and set(store.load()) == {"bin-001", "bin-002"}
    store.save_secret("sim", None)
    assert store.secret("sim") is None and set(store.load()) == {"bin-001", "bin-002"}


def test_codecs_are_imported_once_and_only_from_the_repository() -> None:
    api = FakeApi()
    models = set(LoRaModel)
    with api.client() as http:
        assert import_codecs(http, models) == models
        assert import_codecs(http, models) == models
    assert api.calls.count("POST /v1/codecs/import") == 2
    assert sorted(api.codecs) == ["milesight-iot-em300-di", "milesight-iot-em310-udl"]


def test_without_a_repository_no_codec_is_imported(caplog: pytest.LogCaptureFixture) -> None:
    api = FakeApi()
    api.repository = []
    with api.client() as http:
        assert import_codecs(http, set(LoRaModel)) == set()
    assert "POST /v1/codecs/import" not in api.calls
    assert "cannot decode its bytes itself" in caplog.text


def test_lorawan_devices_are_registered_by_dev_eui_with_profile_and_settings() -> None:
    town = build_town(energy=2, waste=2, traffic=0, lorawan_bins=1.0, lorawan_meters=1.0)
    api = FakeApi()
    with api.client() as http:
        cursors = provision_lorawan(DeviceRegistry(http), town)
    assert cursors == {d.id: None for d in town}
    bin_ = api.devices["bin-001"]
    assert bin_["dev_eui"] == town.get("bin-001").lorawan.dev_eui  # type: ignore[union-attr]
    assert bin_["profile"] == "milesight-iot-em310-udl"
    assert bin_["metadata"]["bin_depth_mm"] >= 1000
    assert api.devices["meter-002"]["profile"] == "milesight-iot-em300-di"
    assert api.devices["meter-002"]["metadata"]["kwh_per_pulse"] == 0.0005


def test_a_device_registered_for_mqtt_before_is_registered_again_by_dev_eui() -> None:
    town = build_town(energy=0, waste=1, traffic=0, lorawan_bins=1.0)
    api = FakeApi()
    api.devices["bin-001"] = {"id": "bin-001", "domain": "waste", "link": None}
    with api.client() as http:
        provision_lorawan(DeviceRegistry(http), town)
    assert api.calls == [
        "GET /v1/devices/bin-001",
        "DELETE /v1/devices/bin-001",
        "POST /v1/devices",
    ]
    assert api.devices["bin-001"]["dev_eui"] == town.get("bin-001").lorawan.dev_eui  # type: ignore[union-attr]


def test_a_counter_heard_before_carries_on_from_its_stored_count() -> None:
    town = build_town(energy=1, waste=1, traffic=0, lorawan_bins=1.0, lorawan_meters=1.0)
    api = FakeApi()
    for device in town:
        api.devices[device.id] = {
            **device.registration(),
            "link": {"last_uplink_at": "2026-12-07T09:15:00Z", "f_cnt": 77},
        }
    api.readings["meter-001"] = [{"ts": "2026-12-07T09:15:00Z", "value": 12345.0}]
    with api.client() as http:
        cursors = provision_lorawan(DeviceRegistry(http), town)
    assert "POST /v1/devices" not in api.calls  # registered as they should be: left alone
    last = cursors["meter-001"]
    assert isinstance(last, Cursor) and (last.f_cnt, last.pulses) == (77, 12345)
    assert last.last_ts.isoformat() == "2026-12-07T09:15:00+00:00"
    bin_cursor = cursors["bin-001"]
    assert bin_cursor is not None and bin_cursor.pulses is None
    assert api.calls.count("GET /v1/devices/meter-001/readings") == 1


def test_a_device_registered_by_dev_eui_before_becomes_an_mqtt_device_again(
    tmp_path: Path,
) -> None:
    """The other way: a run with --lorawan-bins 0 after one with LoRaWAN bins."""
    device = build_town(energy=0, waste=1, traffic=0).get("bin-001")
    calls: list[str] = []
    devices: dict[str, dict[str, Any]] = {"bin-001": {"dev_eui": "24e1240000000001"}}

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(f"{request.method} {request.url.path}")
        if request.method == "POST" and request.url.path == "/v1/devices":
            if "bin-001" in devices:
                return httpx.Response(409, json={"detail": "exists"})
            devices["bin-001"] = {}
            mqtt = {
                "host": "m",
                "port": 1883,
                "username": "bin-001",
                "password": "pw",
                "topic": device.topic,
            }
            return httpx.Response(201, json={"mqtt": mqtt})
        if request.method == "DELETE":
            devices.pop("bin-001")
            return httpx.Response(204)
        return httpx.Response(
            409, json={"detail": "a device with a DevEUI has no MQTT credentials"}
        )

    with httpx.Client(base_url="http://api.test", transport=httpx.MockTransport(handler)) as http:
        creds = DeviceRegistry(http).register(device)
    assert creds.username == "bin-001"
    assert calls == [
        "POST /v1/devices",
        "POST /v1/devices/bin-001/credentials",
        "DELETE /v1/devices/bin-001",
        "POST /v1/devices",
    ]
