"""On `make up`'s town (bench/simulated_town.py: fifteen days of history, then its labelled
events), a road incident is told as one incident, not as congestion, nor split in two."""

from __future__ import annotations

import pytest

from bench.simulated_town import device_alerts, town_run

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_road_incident_opens_one_incident_alert(seed: int) -> None:
    run = town_run(seed)
    (incident,) = [e for e in run.events if e.kind == "road_incident"]
    assert incident.device_id is not None
    during = [a for a in device_alerts(seed, incident.device_id) if incident.covers(a.opened_at)]
    assert [(a.kind, a.severity) for a in during] == [("traffic.incident", "critical")]
