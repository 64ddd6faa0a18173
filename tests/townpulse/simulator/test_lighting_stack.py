"""The simulated town's lighting cabinets against the running stack: their labelled faults (a
lamp out, a stuck contactor, a lost programme) become the lighting alerts an operator sees,
counted as bench/simulated_town.py counts them, and the live alerts are those its offline
replay of the same readings through the lighting processor gives.

The cabinets follow the sun and the council's schedule of the environment (shared.night's
ScheduleSettings), which the stack's lighting service reads too: run the stack and the tests
with the same TOWNPULSE_TOWN_* and TOWNPULSE_LIGHTING_* settings (or none).

Each run has its own device ids, erased afterwards.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.simulated_town import TARGET_PRECISION, TownRun, figures, judge, town_alerts
from services.alerts.domain.replay import Opened
from tests.support import wait_for
from townpulse.simulator.events import STEP, LabelledEvent
from townpulse.simulator.runner import RunnerConfig, run
from townpulse.simulator.town import Domain, build_town

pytestmark = pytest.mark.e2e

SIZES: dict[str, Any] = {"energy": 0, "waste": 0, "traffic": 0, "lighting": 4, "seed": 5}
# Three days: the first nights teach the service each cabinet's power, the faults come after.
DAYS = 3
FAULTS = ("lamp_failure", "lighting_daylight", "lighting_schedule")


@pytest.fixture
def prefix(api: httpx.Client) -> Iterator[str]:
    tag = f"l{uuid.uuid4().hex[:8]}-"
    yield tag
    for device in build_town(**SIZES, id_prefix=tag):
        api.delete(f"/v1/devices/{device.id}", params={"erase": "true"})


def _live(api: httpx.Client, device_ids: list[str]) -> set[tuple[str, str, datetime]]:
    found = set()
    for device_id in device_ids:
        r = api.get("/v1/alerts", params={"device_id": device_id, "limit": 500})
        assert r.status_code == 200, r.text
        found |= {
            (a["device_id"], a["kind"], datetime.fromisoformat(a["opened_at"]))
            for a in r.json()
            if a["opened_at"] is not None
        }
    return found


def test_the_lighting_faults_become_the_alerts_the_bench_counts(
    prefix: str,
    api: httpx.Client,
    stack_env: dict[str, str],
    admin_key: str,
    tmp_path: Path,
) -> None:
    config = RunnerConfig(
        api_url=stack_env["API_URL"],
        api_key=admin_key,
        run_dir=tmp_path,
        mqtt_host=stack_env["MQTT_HOST"],
        mqtt_port=int(stack_env["MQTT_PORT"]),
        speed=1e9,
        backfill=timedelta(days=DAYS),
        duration=timedelta(days=DAYS),
        inject=FAULTS,
        inject_after=timedelta(hours=30),
        id_prefix=prefix,
        **SIZES,
    )
    stats = run(config)
    town = build_town(**SIZES, id_prefix=prefix)
    steps = DAYS * 24 * 4
    assert stats.last_ts is not None and stats.published == steps * len(town)
    events = tuple(
        LabelledEvent(
            e["kind"],
            e["device_id"],
            datetime.fromisoformat(e["start"]),
            datetime.fromisoformat(e["end"]),
        )
        for e in map(json.loads, config.events_path.read_text().splitlines())
    )
    assert sorted(e.kind for e in events) == sorted(FAULTS)
    start = stats.last_ts - (steps - 1) * STEP
    replay = TownRun(
        seed=SIZES["seed"],
        config=config,
        town=town,
        now=stats.last_ts,
        start=start,
        end=stats.last_ts + STEP,
        events=events,
    )
    offline = {(a.device_id, a.kind, a.opened_at) for a in town_alerts(replay)}
    ids = [d.id for d in town.of(Domain.LIGHTING)]
    # The service and the alerts service may still be working through the last readings.
    live = wait_for(
        lambda: found if (found := _live(api, ids)) >= offline else None,
        timeout=180,
        interval=2,
        what="the replay's lighting alerts on the stack",
    )
    assert live == offline

    alerts = [Opened(d, k, t, "warning") for d, k, t in sorted(live, key=lambda a: a[2])]
    judged, detections = judge(alerts, events, town)
    f = figures(judged, detections)["by_domain"]["lighting"]
    assert f["events"] == len(FAULTS)
    assert f["recall"] == 1.0 and f["right_kind"] == len(FAULTS), detections
    assert f["precision"] is not None and f["precision"] >= TARGET_PRECISION, judged
