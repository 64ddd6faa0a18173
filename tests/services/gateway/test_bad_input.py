"""Bad input never crashes anything: each bad message is dead-lettered with its reason and
counted, and every valid message around it is stored."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from testing.prometheus import metric_value
from tests.support import count_readings, since_longest_range, wait_for

pytestmark = pytest.mark.integration


def _ts(offset_s: float = 0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=offset_s)).isoformat().replace("+00:00", "Z")


BAD_PAYLOADS: list[tuple[str, bytes | str, str]] = [
    ("not-json", b"hello sensor", "invalid_json"),
    ("truncated", b'{"fill_pct": 12.', "invalid_json"),
    ("nan", b'{"fill_pct": NaN}', "non_finite_number"),
    ("infinity", b'{"fill_pct": Infinity}', "non_finite_number"),
    ("string-value", b'{"fill_pct": "63"}', "non_numeric_value"),
    ("bool-value", b'{"fill_pct": true}', "non_numeric_value"),
    ("empty-object", b"{}", "no_metrics"),
    ("empty-array", b"[]", "no_metrics"),
    ("bare-number", b"42", "wrong_shape"),
    ("not-utf8", b"\xff\xfe\x00{", "not_utf8"),
    (
        # Over the gateway's 64 KiB, under the broker's packet limit (256 KiB): larger packets
        # are refused by Mosquitto itself (max_packet_size), which closes the connection.
        "hundred-kibibytes",
        b'{"fill_pct": 1, "pad": "' + b"x" * (100 * 1024) + b'"}',
        "payload_too_large",
    ),
    ("senml-bad-bt", json.dumps([{"bt": "yesterday", "n": "fill_pct", "v": 1}]), "bad_base_field"),
    ("senml-bad-bn", json.dumps([{"bn": 17, "n": "fill_pct", "v": 1}]), "bad_base_field"),
    ("senml-bad-bver", json.dumps([{"bver": 99, "n": "fill_pct", "v": 1}]), "bad_base_field"),
    ("senml-string-value", json.dumps([{"n": "fill_pct", "vs": "full"}]), "unsupported_value_type"),
    ("too-old", json.dumps({"ts": _ts(-30 * 86400), "fill_pct": 1}), "timestamp_too_old"),
    ("future", json.dumps({"ts": _ts(3600), "fill_pct": 1}), "timestamp_in_future"),
    ("bad-ts", json.dumps({"ts": "last tuesday", "fill_pct": 1}), "invalid_timestamp"),
    ("bad-metric-name", json.dumps({"Fill Level": 1}), "invalid_metric_name"),
]


def test_bad_messages_are_dead_lettered_and_good_ones_stored(
    api: httpx.Client, device_factory, publisher_factory, stack_env
) -> None:
    device = device_factory("waste")
    pub = publisher_factory(device)
    before = httpx.get(f"{stack_env['GATEWAY_URL']}/metrics").text
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    good = 0
    for i, (_, payload, _) in enumerate(BAD_PAYLOADS):
        # A valid message before and after each bad one.
        for k in (0, 1):
            ts = (base + timedelta(seconds=2 * i + k)).isoformat().replace("+00:00", "Z")
            pub.publish(json.dumps({"ts": ts, "fill_pct": 10.0 + i, "temperature_c": 5.0}))
            good += 2  # two metrics each
            if k == 0:
                pub.publish(payload)
    wait_for(
        lambda: count_readings(api, device.id) == good, timeout=60, what=f"{good} readings stored"
    )

    def letters() -> dict[str, dict]:
        r = api.get("/v1/deadletters", params={"device_id": device.id, "limit": 1000})
        assert r.status_code == 200
        return {d["reason"]: d for d in r.json()}

    expected = {reason for _, _, reason in BAD_PAYLOADS}
    got = wait_for(
        lambda: (d := letters()) and expected <= d.keys() and d,
        timeout=60,
        what="one dead letter per bad payload",
    )
    assert len(
        api.get("/v1/deadletters", params={"device_id": device.id, "limit": 1000}).json()
    ) == len(BAD_PAYLOADS)
    for reason, letter in got.items():
        assert letter["topic"] == device.topic
        assert letter["detail"], reason
        assert len(letter["payload"]) <= 1024
    assert got["payload_too_large"]["payload_size"] > 100 * 1024

    after = httpx.get(f"{stack_env['GATEWAY_URL']}/metrics").text
    for _, _, reason in BAD_PAYLOADS:
        counted = metric_value(
            after, "townpulse_gateway_rejected_total", reason=reason
        ) - metric_value(before, "townpulse_gateway_rejected_total", reason=reason)
        assert counted >= 1, reason
    # Nothing crashed: every service still answers ready.
    for name in ("GATEWAY_URL", "STORAGE_URL", "API_URL"):
        assert httpx.get(f"{stack_env[name]}/readyz").status_code == 200


def test_device_cannot_publish_on_another_devices_topic(
    api: httpx.Client, device_factory, stack_env
) -> None:
    mallory = device_factory("waste")
    victim = device_factory("waste")
    ts = _ts(-60)
    # The broker's ACL drops it (MQTT 3.1.1 has no way to say so to the publisher).
    subprocess.run(
        [
            "mosquitto_pub",
            "-h",
            mallory.host,
            "-p",
            str(mallory.port),
            "-i",
            mallory.username,
            "-u",
            mallory.username,
            "-P",
            mallory.password,
            "-t",
            victim.topic,
            "-q",
            "1",
            "-m",
            json.dumps({"ts": ts, "fill_pct": 99}),
        ],
        check=True,
        timeout=30,
    )
    # A message of the victim's own afterwards: once it is stored, the forged one would be too.
    subprocess.run(
        [
            "mosquitto_pub",
            "-h",
            victim.host,
            "-p",
            str(victim.port),
            "-i",
            victim.username,
            "-u",
            victim.username,
            "-P",
            victim.password,
            "-t",
            victim.topic,
            "-q",
            "1",
            "-m",
            json.dumps({"ts": ts, "fill_pct": 5}),
        ],
        check=True,
        timeout=30,
    )
    wait_for(lambda: count_readings(api, victim.id) == 1, what="the victim's own reading")
    items = api.get(
        f"/v1/devices/{victim.id}/readings", params={"start": since_longest_range()}
    ).json()["items"]
    assert [i["value"] for i in items] == [5.0]
    assert count_readings(api, mallory.id) == 0


def test_unknown_credentials_are_refused_by_the_broker(stack_env) -> None:
    proc = subprocess.run(
        [
            "mosquitto_pub",
            "-h",
            stack_env["MQTT_HOST"],
            "-p",
            stack_env["MQTT_PORT"],
            "-u",
            "no-such-device",
            "-P",
            "guess",
            "-t",
            "sensors/waste/no-such-device",
            "-q",
            "1",
            "-m",
            '{"fill_pct": 1}',
        ],
        capture_output=True,
        timeout=30,
    )
    assert proc.returncode != 0
    assert b"not authorised" in proc.stderr.lower() or b"refused" in proc.stderr.lower()
