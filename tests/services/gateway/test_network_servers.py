"""Uplinks from network servers, against the real stack: ChirpStack v4 and The Things Stack v3,
over MQTT (a Mosquitto of the test's own plays the network server's broker) and over HTTP.

What each test shows is what the issue asks: the readings arrive at the uplink's time, decoded by
the server or by TownPulse's codec sandbox; a second delivery is produced to Kafka once (counted
on the topic, before storage's unique key could hide it); an unknown DevEUI is dead-lettered and
listed; bad events and misbehaving codecs are dead-lettered while the gateway keeps ingesting.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest

from shared.schemas import ReadingBatch
from testing.prometheus import metric_value
from tests.broker_support import Broker
from tests.lorawan_support import (
    chirpstack_topic,
    chirpstack_uplink,
    end_offsets,
    example_bytes,
    install_codec,
    records_for,
    repository_available,
    tts_uplink,
)
from tests.support import since_longest_range, wait_for

pytestmark = pytest.mark.integration

EM310 = "milesight-iot/em310-udl"
EM310_PROFILE = "milesight-iot-em310-udl"
EM300 = "milesight-iot/em300-di"
EM300_PROFILE = "milesight-iot-em300-di"


def _eui() -> str:
    return uuid.uuid4().hex[:16]


def _readings(api: httpx.Client, device_id: str, metric: str) -> list[dict[str, Any]]:
    r = api.get(
        f"/v1/devices/{device_id}/readings",
        params={"start": since_longest_range(), "metric": metric},
    )
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


def _deadletters(api: httpx.Client, reason: str) -> list[dict[str, Any]]:
    r = api.get("/v1/deadletters", params={"reason": reason, "limit": 1000})
    assert r.status_code == 200, r.text
    rows: list[dict[str, Any]] = r.json()
    return rows


def _at(seconds_ago: float) -> datetime:
    return (datetime.now(UTC) - timedelta(seconds=seconds_ago)).replace(microsecond=0)


def _same_time(a: str, b: datetime) -> bool:
    return datetime.fromisoformat(a.replace("Z", "+00:00")) == b


@pytest.fixture(scope="module")
def codecs(api_module: httpx.Client) -> None:
    repository_available()
    install_codec(api_module, EM310)
    install_codec(api_module, EM300)


@pytest.fixture(scope="module")
def api_module(stack_env: dict[str, str], admin_key: str) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=stack_env["API_URL"], headers={"Authorization": f"Bearer {admin_key}"}, timeout=30
    ) as client:
        yield client


@pytest.fixture
def lorawan_device(api: httpx.Client) -> Iterator[Callable[..., dict[str, Any]]]:
    made: list[str] = []

    def make(profile: str = EM310_PROFILE, **fields: Any) -> dict[str, Any]:
        dev_eui = fields.pop("dev_eui", None) or _eui()
        r = api.post(
            "/v1/devices",
            json={"id": f"eui-{dev_eui}", "dev_eui": dev_eui, "profile": profile, **fields},
        )
        assert r.status_code == 201, r.text
        body: dict[str, Any] = r.json()
        assert body["mqtt"] is None  # it never talks to the broker itself
        made.append(body["device"]["id"])
        return body["device"]

    yield make
    for device_id in made:
        api.delete(f"/v1/devices/{device_id}", params={"erase": "true"})


@pytest.fixture
def integration(api: httpx.Client) -> Iterator[Callable[..., dict[str, Any]]]:
    made: list[str] = []

    def make(**fields: Any) -> dict[str, Any]:
        integration_id = f"it-{uuid.uuid4().hex[:8]}"
        r = api.post("/v1/integrations", json={"id": integration_id, **fields})
        assert r.status_code == 201, r.text
        made.append(integration_id)
        body: dict[str, Any] = r.json()
        return body

    yield make
    for integration_id in made:
        api.delete(f"/v1/integrations/{integration_id}")


class NetworkServer:
    """What a network server does on its broker: publish uplink events, QoS 1."""

    def __init__(self, broker: Broker) -> None:
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"ns-{uuid.uuid4().hex[:6]}"
        )
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        wait_for(self.client.is_connected, timeout=10, what="the network server's connection")

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(timeout=10)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def network_server(broker: Broker) -> Iterator[NetworkServer]:
    ns = NetworkServer(broker)
    yield ns
    ns.close()


def _connected(api: httpx.Client, integration_id: str) -> bool:
    r = api.get("/v1/integrations")
    assert r.status_code == 200, r.text
    return any(i["id"] == integration_id and i["status"]["connected"] for i in r.json())


def test_chirpstack_mqtt_uplinks_decoded_by_townpulse_stored_once_at_their_time(
    api: httpx.Client,
    codecs: None,
    lorawan_device: Callable[..., dict[str, Any]],
    integration: Callable[..., dict[str, Any]],
    broker: Broker,
    network_server: NetworkServer,
    stack_env: dict[str, str],
) -> None:
    app_id = str(uuid.uuid4())
    device = lorawan_device(metadata={"bin_depth_mm": 3000})
    dev_eui = device["dev_eui"]
    it = integration(
        kind="chirpstack",
        transport="mqtt",
        mqtt_host="127.0.0.1",
        mqtt_port=broker.port,
        application=app_id,
    )
    wait_for(lambda: _connected(api, it["id"]), timeout=20, what="the integration to connect")
    f_port, data = example_bytes(EM310)
    t1, t2 = _at(600), _at(300)
    offsets = end_offsets(stack_env["KAFKA_BOOTSTRAP"], "readings.waste")
    first = chirpstack_uplink(
        dev_eui=dev_eui, application_id=app_id, f_cnt=10, time=t1, data=data, f_port=f_port
    )
    topic = chirpstack_topic(app_id, dev_eui)
    network_server.publish(topic, first)
    network_server.publish(topic, first)  # delivered again: the same deduplication id
    # Decoded by the network server: the object is used, no codec runs.
    network_server.publish(
        topic,
        chirpstack_uplink(
            dev_eui=dev_eui, application_id=app_id, f_cnt=11, time=t2, decoded={"distance": 500}
        ),
    )
    wait_for(
        lambda: len(_readings(api, device["id"], "fill_pct")) == 2,
        timeout=30,
        what="both uplinks' fill levels",
    )
    fills = sorted(_readings(api, device["id"], "fill_pct"), key=lambda r: r["ts"])
    assert _same_time(fills[0]["ts"], t1) and _same_time(fills[1]["ts"], t2)
    # The official example's distance is 2116 mm; a 3000 mm deep container.
    assert fills[0]["value"] == pytest.approx((3000 - 2116) / 3000 * 100)
    assert fills[1]["value"] == pytest.approx((3000 - 500) / 3000 * 100)
    assert _readings(api, device["id"], "rssi_dbm")[0]["value"] == -97
    # Produced once each: counted on Kafka, before storage's unique key.
    records = [
        ReadingBatch.from_bytes(v)
        for v in records_for(
            stack_env["KAFKA_BOOTSTRAP"], "readings.waste", device["id"], since=offsets
        )
    ]
    assert sorted(b.uplink.f_cnt for b in records if b.uplink) == [10, 11]
    uplinks = api.get(f"/v1/devices/{device['id']}/uplinks").json()
    by_cnt = {u["f_cnt"]: u for u in uplinks}
    assert by_cnt[10]["codec"] == "milesight-iot-em310-udl" and by_cnt[10]["codec_version"] >= 1
    assert by_cnt[11]["codec"] is None
    dups = metric_value(
        httpx.get(f"{stack_env['GATEWAY_URL']}/metrics").text,
        "townpulse_gateway_duplicate_uplinks_total",
        source=it["id"],
    )
    assert dups >= 1


def test_unknown_deveui_is_dead_lettered_and_listed_as_heard(
    api: httpx.Client,
    integration: Callable[..., dict[str, Any]],
    broker: Broker,
    network_server: NetworkServer,
) -> None:
    app_id = str(uuid.uuid4())
    it = integration(
        kind="chirpstack", transport="mqtt", mqtt_host="127.0.0.1", mqtt_port=broker.port
    )
    wait_for(lambda: _connected(api, it["id"]), timeout=20, what="the integration to connect")
    stranger = _eui()
    f_port, data = example_bytes(EM310)
    network_server.publish(
        chirpstack_topic(app_id, stranger),
        chirpstack_uplink(
            dev_eui=stranger, application_id=app_id, f_cnt=1, data=data, f_port=f_port
        ),
    )

    def heard() -> bool:
        r = api.get("/v1/heard-devices")
        assert r.status_code == 200, r.text
        return any(h["device_key"] == stranger and h["source"] == it["id"] for h in r.json())

    wait_for(heard, timeout=20, what="the stranger listed as heard")
    wait_for(
        lambda: any(stranger in d["detail"] for d in _deadletters(api, "unknown_device")),
        timeout=20,
        what="the unknown DevEUI dead-lettered",
    )


def test_bad_events_dead_lettered_gateway_unaffected(
    api: httpx.Client,
    codecs: None,
    lorawan_device: Callable[..., dict[str, Any]],
    integration: Callable[..., dict[str, Any]],
    broker: Broker,
    network_server: NetworkServer,
) -> None:
    app_id = str(uuid.uuid4())
    device = lorawan_device()
    dev_eui = device["dev_eui"]
    it = integration(
        kind="chirpstack",
        transport="mqtt",
        mqtt_host="127.0.0.1",
        mqtt_port=broker.port,
        application=app_id,
    )
    wait_for(lambda: _connected(api, it["id"]), timeout=20, what="the integration to connect")
    topic = chirpstack_topic(app_id, dev_eui)
    f_port, data = example_bytes(EM310)
    bad: list[tuple[str, bytes]] = [
        ("invalid_json", b"{not json"),
        ("bad_event", b'{"deviceInfo": {"devEui": "zz"}}'),
        (
            "not_base64",
            chirpstack_uplink(dev_eui=dev_eui, application_id=app_id, f_cnt=1, data=b"x").replace(
                b'"eA=="', b'"@@@"'
            ),
        ),
        (
            # The EM310's codec makes nothing of bytes it does not know (no error of its own).
            "no_metrics",
            chirpstack_uplink(
                dev_eui=dev_eui, application_id=app_id, f_cnt=3, data=b"\x01", f_port=f_port
            ),
        ),
    ]
    for _, payload in bad:
        network_server.publish(topic, payload)
    t_good = _at(60)
    network_server.publish(
        topic,
        chirpstack_uplink(
            dev_eui=dev_eui, application_id=app_id, f_cnt=4, time=t_good, data=data, f_port=f_port
        ),
    )
    wait_for(
        lambda: len(_readings(api, device["id"], "fill_pct")) == 1,
        timeout=30,
        what="the good uplink after the bad ones",
    )
    for reason, _ in bad:
        # This test's own: on its topic (a fresh application id).
        wait_for(
            lambda reason=reason: any(d["topic"] == topic for d in _deadletters(api, reason)),
            timeout=20,
            what=f"a dead letter {reason}",
        )
    # Nothing of the bad ones was stored: the good uplink's readings only.
    assert len(_readings(api, device["id"], "rssi_dbm")) == 1


def test_replayed_frame_refused_counter_reset_taken(
    api: httpx.Client,
    codecs: None,
    lorawan_device: Callable[..., dict[str, Any]],
    integration: Callable[..., dict[str, Any]],
) -> None:
    app_id = str(uuid.uuid4())
    device = lorawan_device()
    it = integration(kind="chirpstack", transport="http", application=app_id)
    url = it["ingest_path"]
    headers = {"Authorization": f"Bearer {it['http_secret']}"}
    dev_eui = device["dev_eui"]

    def post(f_cnt: int, at: datetime, distance: float) -> httpx.Response:
        return api.post(
            url,
            headers=headers,
            content=chirpstack_uplink(
                dev_eui=dev_eui,
                application_id=app_id,
                f_cnt=f_cnt,
                time=at,
                decoded={"distance": distance},
            ),
        )

    assert post(100, _at(900), 500).status_code == 202
    # An application the integration is not configured for: refused, with the reason.
    other = api.post(
        url,
        headers=headers,
        content=chirpstack_uplink(
            dev_eui=dev_eui,
            application_id=str(uuid.uuid4()),
            f_cnt=101,
            time=_at(800),
            decoded={"distance": 500},
        ),
    )
    assert other.status_code == 422 and "wrong_application" in other.text, other.text
    replay = post(99, _at(1200), 600)
    assert replay.status_code == 422 and "replayed_frame" in replay.text
    # The device rejoined: its counter starts again, later in time.
    assert post(0, _at(300), 700).status_code == 202
    wait_for(
        lambda: len(_readings(api, device["id"], "fill_pct")) == 2,
        timeout=30,
        what="the two accepted uplinks",
    )


def test_chirpstack_http_secret_checked_retry_stored_once(
    api: httpx.Client,
    stack_env: dict[str, str],
    codecs: None,
    lorawan_device: Callable[..., dict[str, Any]],
    integration: Callable[..., dict[str, Any]],
) -> None:
    app_id = str(uuid.uuid4())
    device = lorawan_device()
    it = integration(kind="chirpstack", transport="http", application=app_id)
    assert it["http_secret"] and it["ingest_path"] == f"/v1/ingest/chirpstack/{it['id']}"
    f_port, data = example_bytes(EM310)
    body = chirpstack_uplink(
        dev_eui=device["dev_eui"],
        application_id=app_id,
        f_cnt=5,
        time=_at(120),
        data=data,
        f_port=f_port,
    )
    offsets = end_offsets(stack_env["KAFKA_BOOTSTRAP"], "readings.waste")
    anonymous = httpx.post(f"{stack_env['API_URL']}{it['ingest_path']}", content=body)
    assert anonymous.status_code == 401
    wrong = httpx.post(
        f"{stack_env['API_URL']}{it['ingest_path']}",
        content=body,
        headers={"Authorization": "Bearer not-the-secret"},
    )
    assert wrong.status_code == 401
    good = {"Authorization": f"Bearer {it['http_secret']}"}
    first = httpx.post(f"{stack_env['API_URL']}{it['ingest_path']}", content=body, headers=good)
    assert first.status_code == 202, first.text
    again = httpx.post(f"{stack_env['API_URL']}{it['ingest_path']}", content=body, headers=good)
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    wait_for(
        lambda: len(_readings(api, device["id"], "fill_pct")) == 1,
        timeout=30,
        what="the uplink stored",
    )
    records = records_for(
        stack_env["KAFKA_BOOTSTRAP"], "readings.waste", device["id"], since=offsets
    )
    assert len(records) == 1


def test_tts_webhook_and_mqtt(
    api: httpx.Client,
    stack_env: dict[str, str],
    codecs: None,
    lorawan_device: Callable[..., dict[str, Any]],
    integration: Callable[..., dict[str, Any]],
    broker: Broker,
    network_server: NetworkServer,
) -> None:
    device = lorawan_device()
    hook = integration(kind="tts", transport="http")
    f_port, data = example_bytes(EM310)
    r = httpx.post(
        f"{stack_env['API_URL']}{hook['ingest_path']}",
        headers={"Authorization": f"Bearer {hook['http_secret']}"},
        content=tts_uplink(
            device_id="bin-7",
            dev_eui=device["dev_eui"],
            application_id="bins",
            f_cnt=1,
            time=_at(600),
            data=data,
            f_port=f_port,
        ),
    )
    assert r.status_code == 202, r.text
    mqtt_it = integration(
        kind="tts",
        transport="mqtt",
        mqtt_host="127.0.0.1",
        mqtt_port=broker.port,
        application="bins@town",
    )
    wait_for(lambda: _connected(api, mqtt_it["id"]), timeout=20, what="the TTS integration")
    network_server.publish(
        "v3/bins@town/devices/bin-7/up",
        tts_uplink(
            device_id="bin-7",
            dev_eui=device["dev_eui"],
            application_id="bins",
            f_cnt=2,
            time=_at(300),
            decoded={"distance": 900},
        ),
    )
    wait_for(
        lambda: len(_readings(api, device["id"], "fill_pct")) == 2,
        timeout=30,
        what="both TTS uplinks",
    )


def _remove_profiles_and_codecs(api: httpx.Client, devices: list[str], *names: str) -> None:
    # Runs before the devices' fixture ends: they go first, then the profiles, then the codecs.
    for device_id in devices:
        api.delete(f"/v1/devices/{device_id}", params={"erase": "true"})
    for name in names:
        assert api.delete(f"/v1/profiles/{name}").status_code == 204
        assert api.delete(f"/v1/codecs/{name}").status_code == 204


LOOPING = "function decodeUplink(input) { while (true) {} }"
# A string doubled: past the memory limit in about 24 turns, long before the time limit (an array
# of holes, `new Array(1e5)`, allocates little and ran into the time limit first on CI).
HUNGRY = "function decodeUplink(input) { var s = 'x'; while (true) { s = s + s; } }"
THROWING = "function decodeUplink(input) { throw new Error('bad frame'); }"
GOOD = "function decodeUplink(input) { return {data: {distance: input.bytes[0] * 10}}; }"


@pytest.mark.parametrize(
    ("script", "reason"),
    [(LOOPING, "codec_timeout"), (HUNGRY, "codec_memory"), (THROWING, "codec_error")],
)
def test_misbehaving_codec_is_cut_off_and_the_gateway_keeps_ingesting(
    api: httpx.Client,
    lorawan_device: Callable[..., dict[str, Any]],
    integration: Callable[..., dict[str, Any]],
    script: str,
    reason: str,
    request: pytest.FixtureRequest,
) -> None:
    name = f"bad-{uuid.uuid4().hex[:8]}"
    r = api.post("/v1/codecs", json={"name": name, "script": script})
    assert r.status_code == 201, r.text
    good_name = f"good-{uuid.uuid4().hex[:8]}"
    assert api.post("/v1/codecs", json={"name": good_name, "script": GOOD}).status_code == 201
    for profile, codec in ((name, name), (good_name, good_name)):
        r = api.put(
            f"/v1/profiles/{profile}",
            json={
                "definition": {
                    "domain": "waste",
                    "codec": codec,
                    "readings": [{"metric": "distance_mm", "field": "distance"}],
                }
            },
        )
        assert r.status_code in (200, 201), r.text
    bad_device, good_device = lorawan_device(profile=name), lorawan_device(profile=good_name)
    request.addfinalizer(
        lambda: _remove_profiles_and_codecs(
            api, [bad_device["id"], good_device["id"]], name, good_name
        )
    )
    it = integration(kind="chirpstack", transport="http")
    headers = {"Authorization": f"Bearer {it['http_secret']}"}
    app_id = str(uuid.uuid4())
    refused = api.post(
        it["ingest_path"],
        headers=headers,
        content=chirpstack_uplink(
            dev_eui=bad_device["dev_eui"], application_id=app_id, f_cnt=1, data=b"\x05"
        ),
    )
    assert refused.status_code == 422 and reason in refused.text, refused.text
    wait_for(
        lambda: any(d["device_id"] == bad_device["id"] for d in _deadletters(api, reason)),
        timeout=20,
        what=f"the {reason} dead letter",
    )
    ok = api.post(
        it["ingest_path"],
        headers=headers,
        content=chirpstack_uplink(
            dev_eui=good_device["dev_eui"], application_id=app_id, f_cnt=1, data=b"\x07"
        ),
    )
    assert ok.status_code == 202, ok.text
    wait_for(
        lambda: [r["value"] for r in _readings(api, good_device["id"], "distance_mm")] == [70.0],
        timeout=30,
        what="the good codec's reading",
    )


def test_a_degrading_link_raises_an_alert(
    api: httpx.Client,
    lorawan_device: Callable[..., dict[str, Any]],
    integration: Callable[..., dict[str, Any]],
) -> None:
    device = lorawan_device()
    rule = api.post(
        "/v1/alert-rules",
        json={
            "name": "weak link",
            "domain": "waste",
            "device_id": device["id"],
            "metric": "rssi_dbm",
            "op": "<=",
            "threshold": -118,
            "cooldown_s": 0,
        },
    )
    assert rule.status_code == 201, rule.text
    try:
        it = integration(kind="chirpstack", transport="http")
        headers = {"Authorization": f"Bearer {it['http_secret']}"}
        app_id = str(uuid.uuid4())
        for f_cnt, rssi in ((1, -95), (2, -121)):
            r = api.post(
                it["ingest_path"],
                headers=headers,
                content=chirpstack_uplink(
                    dev_eui=device["dev_eui"],
                    application_id=app_id,
                    f_cnt=f_cnt,
                    time=_at(600 - f_cnt * 60),
                    decoded={"distance": 800},
                    rssi=rssi,
                ),
            )
            assert r.status_code == 202, r.text

        def alerted() -> bool:
            r = api.get("/v1/alerts", params={"device_id": device["id"]})
            assert r.status_code == 200, r.text
            return any(a["kind"] == "waste.rssi_dbm_low" for a in r.json())

        wait_for(alerted, timeout=30, what="the weak link's alert")
        link = api.get(f"/v1/devices/{device['id']}").json()["link"]
        assert link["rssi"] == -121 and link["gateways"] == 1
    finally:
        api.delete(f"/v1/alert-rules/{rule.json()['id']}")


def test_a_changed_device_setting_applies_to_the_next_uplink(
    api: httpx.Client,
    lorawan_device: Callable[..., dict[str, Any]],
    integration: Callable[..., dict[str, Any]],
) -> None:
    device = lorawan_device()
    it = integration(kind="chirpstack", transport="http")
    headers = {"Authorization": f"Bearer {it['http_secret']}"}
    app_id = str(uuid.uuid4())

    def send(f_cnt: int) -> None:
        r = api.post(
            it["ingest_path"],
            headers=headers,
            content=chirpstack_uplink(
                dev_eui=device["dev_eui"],
                application_id=app_id,
                f_cnt=f_cnt,
                time=_at(900 - 60 * f_cnt),
                decoded={"distance": 500},
            ),
        )
        assert r.status_code == 202, r.text

    send(1)  # the profile's default depth: 1000 mm
    wrong = api.patch(f"/v1/devices/{device['id']}", json={"profile": "milesight-iot-em300-di"})
    assert wrong.status_code == 422 and "energy" in wrong.text
    changed = api.patch(f"/v1/devices/{device['id']}", json={"metadata": {"bin_depth_mm": 2000}})
    assert changed.status_code == 200, changed.text
    assert changed.json()["metadata"] == {"bin_depth_mm": 2000}
    # The gateway hears of the change from the database's notification.
    deadline_fill = (2000 - 500) / 2000 * 100
    for attempt in range(2, 40):
        send(attempt)
        fills = [r["value"] for r in _readings(api, device["id"], "fill_pct")]
        if fills and fills[-1] == pytest.approx(deadline_fill):
            break
        wait_for(
            lambda n=attempt: len(_readings(api, device["id"], "fill_pct")) >= n,
            timeout=30,
            what="the uplink stored",
        )
    fills = [
        r["value"] for r in sorted(_readings(api, device["id"], "fill_pct"), key=lambda r: r["ts"])
    ]
    assert fills[0] == pytest.approx(50.0) and fills[-1] == pytest.approx(deadline_fill)
