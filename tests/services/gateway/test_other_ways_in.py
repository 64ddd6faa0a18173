"""The other ways in, against the real stack: HTTP push with a device's token, devices that
publish their own JSON (Tasmota on TownPulse's broker with its own credentials, Shelly on a broker
of the town's), and the profiles an admin saves and tries."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest

from tests.broker_support import Broker
from tests.lorawan_support import example_bytes, install_codec
from tests.support import Publisher, RegisteredDevice, since_longest_range, wait_for

pytestmark = pytest.mark.integration


def _readings(api: httpx.Client, device_id: str, metric: str) -> list[dict[str, Any]]:
    r = api.get(
        f"/v1/devices/{device_id}/readings",
        params={"start": since_longest_range(), "metric": metric},
    )
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return sorted(items, key=lambda i: i["ts"])


def _iso(seconds_ago: float) -> str:
    at = datetime.now(UTC) - timedelta(seconds=seconds_ago)
    return at.replace(microsecond=0).isoformat().replace("+00:00", "Z")


@pytest.fixture
def registered(api: httpx.Client) -> Iterator[Callable[..., dict[str, Any]]]:
    made: list[str] = []

    def make(**fields: Any) -> dict[str, Any]:
        r = api.post("/v1/devices", json=fields)
        assert r.status_code == 201, r.text
        body: dict[str, Any] = r.json()
        made.append(body["device"]["id"])
        return body

    yield make
    for device_id in made:
        api.delete(f"/v1/devices/{device_id}", params={"erase": "true"})


def test_http_push_with_a_device_token(
    api: httpx.Client, stack_env: dict[str, str], registered: Callable[..., dict[str, Any]]
) -> None:
    device = registered(id=f"nb-{uuid.uuid4().hex[:8]}", domain="waste")["device"]
    url = f"{stack_env['API_URL']}/v1/ingest/devices/{device['id']}"
    body = json.dumps({"ts": _iso(60), "fill_pct": 42.5}).encode()
    assert httpx.post(url, content=body).status_code == 401
    token_r = api.post(f"/v1/devices/{device['id']}/ingest-token")
    assert token_r.status_code == 201, token_r.text
    token = token_r.json()["token"]
    wrong = httpx.post(url, content=body, headers={"Authorization": "Bearer tpi_x_nope"})
    assert wrong.status_code == 401
    good = {"Authorization": f"Bearer {token}"}
    accepted = httpx.post(url, content=body, headers=good)
    assert accepted.status_code == 202, accepted.text
    bad = httpx.post(url, content=b'{"fill_pct": "full"}', headers=good)
    assert bad.status_code == 422 and "non_numeric_value" in bad.text
    senml = json.dumps([{"bn": "bin/", "n": "fill_pct", "v": 50, "t": -30}]).encode()
    assert httpx.post(url, content=senml, headers=good).status_code == 202
    wait_for(
        lambda: len(_readings(api, device["id"], "fill_pct")) == 2,
        timeout=30,
        what="both pushed readings",
    )
    # The token of one device is no key to another's door.
    other = registered(id=f"nb-{uuid.uuid4().hex[:8]}", domain="waste")["device"]
    across = httpx.post(
        f"{stack_env['API_URL']}/v1/ingest/devices/{other['id']}", content=body, headers=good
    )
    assert across.status_code == 401


def _hammer(url: str, *, source: str, body: bytes, tries: int = 25) -> httpx.Response:
    """Wrong secrets from one source until refused with 429 (or `tries` run out)."""
    last = None
    for i in range(tries):
        last = httpx.post(
            url,
            content=body,
            headers={"X-Forwarded-For": source, "Authorization": f"Bearer tpi_x_wrong{i}"},
        )
        if last.status_code == 429:
            break
        assert last.status_code == 401, last.text
    assert last is not None
    return last


def test_wrong_push_secrets_are_slowed_while_the_right_one_still_works(
    api: httpx.Client, stack_env: dict[str, str], registered: Callable[..., dict[str, Any]]
) -> None:
    device = registered(id=f"nb-{uuid.uuid4().hex[:8]}", domain="waste")["device"]
    token = api.post(f"/v1/devices/{device['id']}/ingest-token").json()["token"]
    url = f"{stack_env['API_URL']}/v1/ingest/devices/{device['id']}"
    body = json.dumps({"ts": _iso(60), "fill_pct": 12.5}).encode()
    # A documentation network (RFC 5737): a source no other test uses.
    attacker = f"198.51.100.{uuid.uuid4().int % 250 + 1}"
    refused = _hammer(url, source=attacker, body=body)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    # The device itself, elsewhere, with its token: still taken.
    good = {"X-Forwarded-For": "203.0.113.7", "Authorization": f"Bearer {token}"}
    assert httpx.post(url, content=body, headers=good).status_code == 202
    # A network server's secret the same way (an id no integration has).
    server_url = f"{stack_env['API_URL']}/v1/ingest/chirpstack/{uuid.uuid4().hex[:12]}"
    other = f"198.51.100.{(uuid.uuid4().int % 250) + 1}"
    refused = _hammer(server_url, source=other, body=b"{}")
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0


def test_tasmota_on_townpulse_broker_with_its_own_credentials(
    api: httpx.Client, registered: Callable[..., dict[str, Any]]
) -> None:
    body = registered(id=f"plug-{uuid.uuid4().hex[:8]}", profile="tasmota-energy")
    device, creds = body["device"], body["mqtt"]
    assert device["domain"] == "energy" and creds is not None
    pub = Publisher(
        RegisteredDevice(
            id=device["id"],
            domain="energy",
            username=creds["username"],
            password=creds["password"],
            topic=creds["topic"],
            host=creds["host"],
            port=creds["port"],
        )
    )
    try:
        topic = f"{creds['topic']}/tele/SENSOR"
        for seconds_ago, total in ((1800, 12.5), (900, 12.75)):
            message = {
                "Time": _iso(seconds_ago),
                "ENERGY": {"Total": total, "Power": 120, "Voltage": 231, "Current": 0.52},
            }
            pub.publish(json.dumps(message), topic=topic).wait_for_publish(timeout=10)
        # Shelly's other status components on the same prefix are no readings, and no error.
        pub.publish(json.dumps({"uptime": 5}), topic=f"{creds['topic']}/status/sys")
    finally:
        pub.close()
    wait_for(
        lambda: len(_readings(api, device["id"], "energy_kwh")) == 1,
        timeout=30,
        what="the interval's energy from the two totals",
    )
    assert _readings(api, device["id"], "energy_kwh")[0]["value"] == pytest.approx(0.25)
    assert [r["value"] for r in _readings(api, device["id"], "power_w")] == [120.0, 120.0]


def test_shelly_on_a_broker_of_the_towns(
    api: httpx.Client, broker: Broker, registered: Callable[..., dict[str, Any]]
) -> None:
    shelly = f"shellyplus1pm-{uuid.uuid4().hex[:12]}"
    device = registered(external_id=shelly, profile="shelly-gen2-switch")["device"]
    r = api.post(
        "/v1/integrations",
        json={
            "id": f"sh-{uuid.uuid4().hex[:8]}",
            "kind": "mqtt_json",
            "transport": "mqtt",
            "mqtt_host": "127.0.0.1",
            "mqtt_port": broker.port,
            "profile": "shelly-gen2-switch",
        },
    )
    assert r.status_code == 201, r.text
    integration_id = r.json()["id"]
    try:
        wait_for(
            lambda: any(
                i["id"] == integration_id and i["status"]["connected"]
                for i in api.get("/v1/integrations").json()
            ),
            timeout=20,
            what="the broker connected",
        )
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=shelly)
        client.connect("127.0.0.1", broker.port)
        client.loop_start()
        now = int(datetime.now(UTC).timestamp())
        for minute, total in ((now - 600, 1000.0), (now - 300, 1150.0)):
            status = {
                "id": 0,
                "source": "timer",
                "output": True,
                "apower": 42.0,
                "voltage": 230.4,
                "current": 0.2,
                "aenergy": {"total": total, "by_minute": [0, 0, 0], "minute_ts": minute},
            }
            client.publish(f"{shelly}/status/switch:0", json.dumps(status), qos=1).wait_for_publish(
                timeout=10
            )
        client.loop_stop()
        client.disconnect()
        wait_for(
            lambda: len(_readings(api, device["id"], "energy_kwh")) == 1,
            timeout=30,
            what="the Shelly's interval energy",
        )
        assert _readings(api, device["id"], "energy_kwh")[0]["value"] == pytest.approx(0.15)
        assert _readings(api, device["id"], "circuit_1_on")[-1]["value"] == 1.0
    finally:
        api.delete(f"/v1/integrations/{integration_id}")


def test_profiles_are_validated_when_saved_and_can_be_tried(api: httpx.Client) -> None:
    install_codec(api, "milesight-iot/em310-udl")
    name = f"bin-{uuid.uuid4().hex[:8]}"
    base = {"domain": "waste", "codec": "milesight-iot-em310-udl"}
    unknown_metric = api.put(
        f"/v1/profiles/{name}",
        json={"definition": {**base, "readings": [{"metric": "fullness", "field": "distance"}]}},
    )
    assert unknown_metric.status_code == 422 and "fullness" in unknown_metric.text
    never_output = api.put(
        f"/v1/profiles/{name}",
        json={"definition": {**base, "readings": [{"metric": "distance_mm", "field": "height"}]}},
    )
    assert never_output.status_code == 422 and "height" in never_output.text
    no_codec = api.put(
        f"/v1/profiles/{name}",
        json={
            "definition": {
                **base,
                "codec": "no-such-codec",
                "readings": [{"metric": "distance_mm", "field": "distance"}],
            }
        },
    )
    assert no_codec.status_code == 422
    saved = api.put(
        f"/v1/profiles/{name}",
        json={
            "definition": {
                **base,
                "readings": [
                    {
                        "metric": "fill_pct",
                        "field": "distance",
                        "op": "fill_from_distance",
                        "depth_mm": {"device": "bin_depth_mm", "default": 3000},
                    },
                    {"metric": "battery_pct", "field": "battery"},
                ],
            }
        },
    )
    assert saved.status_code == 201, saved.text
    f_port, data = example_bytes("milesight-iot/em310-udl")
    tried = api.post(f"/v1/profiles/{name}/try", json={"payload": data.hex(), "f_port": f_port})
    assert tried.status_code == 200, tried.text
    out = tried.json()
    assert out["error"] is None and out["decoded"]["distance"] == 2116
    by_metric = {r["metric"]: r["value"] for r in out["readings"]}
    assert by_metric["fill_pct"] == pytest.approx((3000 - 2116) / 3000 * 100)
    # Base64 too, and a frame the codec refuses comes back with its reason.
    import base64

    b64 = api.post(
        f"/v1/profiles/{name}/try",
        json={"payload": base64.b64encode(data).decode(), "f_port": f_port},
    )
    assert b64.json()["readings"] == out["readings"]
    refused = api.post(f"/v1/profiles/{name}/try", json={"payload": "zz", "f_port": 85})
    assert refused.status_code == 422
    # A codec a profile names stays; the profile goes, then nothing holds the codec.
    assert api.delete("/v1/codecs/milesight-iot-em310-udl").status_code == 409
    assert api.delete(f"/v1/profiles/{name}").status_code == 204
    assert api.get(f"/v1/profiles/{name}").status_code == 404
