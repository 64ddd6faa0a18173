"""The lighting service on the real stack: a WS558-shaped controller publishes over MQTT, the
service stores its rows, raises a lamp failure the alerts service opens, and its routes answer
through the operator API."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest

from services.lighting.settings import LightingSettings
from tests.support import Publisher, RegisteredDevice, wait_for
from townpulse.stack import Stack

pytestmark = pytest.mark.e2e

STEP = timedelta(minutes=15)
FULL_W, LAMP_W = 1000.0, 100.0


def _frames(start: datetime, end: datetime, fail_at: datetime) -> list[dict[str, object]]:
    """The controller's periodic reports, as its profile's readings: circuit 1 lit from sunset
    to sunrise (the service's default town), one lamp out from `fail_at`."""
    town = LightingSettings(dev_mode=True).town()
    out, ts, i = [], start, 0
    while ts < end:
        on = town.night(ts)
        watts = (FULL_W - (LAMP_W if ts >= fail_at else 0.0) + 2 * math.sin(i)) if on else 0.0
        out.append(
            {
                "ts": ts.isoformat().replace("+00:00", "Z"),
                "circuit_1_on": float(on),
                "power_w": round(watts, 2),
                "energy_kwh": round(watts * 0.25 / 1000, 6),
                "voltage_v": 230.0,
            }
        )
        ts, i = ts + STEP, i + 1
    return out


def test_a_lamp_failure_goes_from_mqtt_to_an_open_alert(
    api: httpx.Client,
    stack: Stack,
    device_factory: Callable[..., RegisteredDevice],
    publisher_factory: Callable[[RegisteredDevice], Publisher],
) -> None:
    device = device_factory("lighting", prefix="lamp")
    pub = publisher_factory(device)
    town = LightingSettings(dev_mode=True).town()
    # Three nights back (the gateway takes readings up to 7 days old); the lamp fails in the
    # middle of the last complete night.
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    start = now - timedelta(days=3, minutes=now.minute % 15)
    # The last night over by now: yesterday's (local), or the one before when today's dawn has
    # not come yet (a run after midnight).
    today = town.local(now).date()
    nights = [town.plan(today - timedelta(days=d)) for d in (1, 2)]
    last = next((p for p in nights if p is not None and p.dawn < now), None)
    assert last is not None
    fail_at = last.dusk + (last.dawn - last.dusk) / 2
    frames = _frames(start, now, fail_at)
    for frame in frames:
        pub.publish(json.dumps(frame)).wait_for_publish(30)

    def stored() -> int:
        with psycopg.connect(stack.database_url()) as conn:
            row = conn.execute(
                "SELECT count(*) FROM lighting_readings WHERE device_id = %s", (device.id,)
            ).fetchone()
            return int(row[0]) if row else 0

    wait_for(
        lambda: stored() == len(frames),
        timeout=180,
        interval=1,
        what="every report stored by the lighting service",
    )

    def opened() -> list[dict[str, object]]:
        r = api.get("/v1/alerts", params={"device_id": device.id, "kind": "lighting.lamp_failure"})
        assert r.status_code == 200, r.text
        return [a for a in r.json() if a["state"] in ("open", "acknowledged")]

    (alert,) = wait_for(opened, timeout=120, interval=1, what="the lamp failure's alert")
    assert alert["domain"] == "lighting"
    # No other kind: the circuit followed the sun and the default town has no schedule.
    r = api.get("/v1/alerts", params={"device_id": device.id})
    assert {a["kind"] for a in r.json()} == {"lighting.lamp_failure"}

    circuit = api.get(f"/v1/lighting/circuits/{device.id}")
    assert circuit.status_code == 200, circuit.text
    body = circuit.json()
    lit = [f for f in frames if f["circuit_1_on"] and str(f["ts"]) < fail_at.isoformat()]
    assert abs(body["learnt_w"]["100"] - FULL_W) < 10 and len(lit) > 0
    assert [f["kind"] for f in body["faults"]] == ["lighting.lamp_failure"]
    assert body["tonight"]["forecast_kwh"] == pytest.approx(
        body["learnt_w"]["100"] * body["tonight"]["hours"]["full"] / 1000, rel=0.01
    )

    # Savings: nothing dimmed or switched off but one lamp; the all-night baseline is the
    # learnt power over the night's readings (the column), the energy is what was published.
    params = {"start": start.isoformat(), "end": now.isoformat(), "device_id": device.id}
    savings = api.get("/v1/lighting/savings", params=params)
    assert savings.status_code == 200, savings.text
    s = savings.json()

    with psycopg.connect(stack.database_url()) as conn:
        rows = [
            (ts, float(b))
            for ts, b in conn.execute(
                "SELECT ts, baseline_kwh FROM lighting_readings"
                " WHERE device_id = %s AND baseline_kwh IS NOT NULL",
                (device.id,),
            ).fetchall()
        ]
    sent = {
        datetime.fromisoformat(str(f["ts"]).replace("Z", "+00:00")): float(str(f["energy_kwh"]))
        for f in frames
    }
    used = sum(sent[ts] for ts, _ in rows)
    assert s["used_kwh"] == pytest.approx(used, abs=1e-3)
    assert s["saved_kwh"] == pytest.approx(sum(b for _, b in rows) - used, abs=1e-3)
    assert s["saved_eur"] == pytest.approx(
        s["saved_kwh"] * s["factors"]["electricity_eur_per_kwh"], abs=0.01
    )


@pytest.mark.parametrize(
    ("params", "why"),
    [
        ({"start": "2026-01-01T00:00:00Z", "end": "2025-01-01T00:00:00Z"}, "before"),
        ({"start": "2020-01-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"}, "at most"),
        ({"start": "yesterday"}, ""),
        ({"device_id": "../etc"}, "device"),
    ],
)
def test_savings_refuse_bad_periods_with_a_reason(
    api: httpx.Client, params: dict[str, str], why: str
) -> None:
    r = api.get("/v1/lighting/savings", params=params)
    assert r.status_code == 422, r.text
    assert why in r.text


def test_an_unknown_circuit_is_a_404(api: httpx.Client) -> None:
    r = api.get("/v1/lighting/circuits/no-such-circuit")
    assert r.status_code == 404
    assert "no readings" in r.text


def test_erasing_a_controller_clears_its_lighting_rows(
    api: httpx.Client,
    stack: Stack,
    device_factory: Callable[..., RegisteredDevice],
    publisher_factory: Callable[[RegisteredDevice], Publisher],
) -> None:
    device = device_factory("lighting", prefix="lamp")
    pub = publisher_factory(device)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    frames = _frames(now - timedelta(hours=3), now, now)
    for frame in frames:
        pub.publish(json.dumps(frame)).wait_for_publish(30)

    def counts() -> dict[str, int]:
        with psycopg.connect(stack.database_url()) as conn:
            return {
                t: int(
                    conn.execute(
                        f"SELECT count(*) FROM {t} WHERE device_id = %s",
                        (device.id,),
                    ).fetchone()[0]  # type: ignore[index]
                )
                for t in ("lighting_readings", "lighting_circuits", "lighting_episodes")
            }

    wait_for(
        lambda: counts()["lighting_readings"] == len(frames) and counts()["lighting_circuits"],
        timeout=120,
        interval=1,
        what="the controller's rows",
    )
    r = api.delete(f"/v1/devices/{device.id}", params={"erase": "true"})
    assert r.status_code == 200, r.text
    assert r.json()["rows"]["lighting_readings"] == len(frames)
    assert r.json()["rows"]["lighting_circuits"] == 1
    assert counts() == dict.fromkeys(counts(), 0)
