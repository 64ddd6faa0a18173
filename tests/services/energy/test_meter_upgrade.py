"""A meter state checkpointed before meters used the shared episode tracker still loads, and
goes on exactly as the code that wrote it would have: an open episode is continued (more
flagged readings, then its end, under the same event ids), a streak of flagged readings not
yet an episode opens it.

Pure logic. The fixture `fixtures/meter_state_v4.pickle.gz` was pickled by main's code at
0615242 (energy-meter/4, its own `Episode` and `flagged` list), with
`fixtures/make_meter_state_v4.py`; that script also wrote, with the same code,
`fixtures/meter_state_v4_next.json`: the events and episode rows each state produced next.
"""

from __future__ import annotations

import gzip
import json
import pickle
import random
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.energy.domain.meter import EnergyProcessor, EpisodeRow, MeterState
from shared.runtime.processor import Effects
from shared.schemas import Reading

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).parent / "fixtures"
QUARTER = timedelta(minutes=15)
# What the fixture's script fed each state next: three high readings, then eight normal ones.
MULTIPLIERS = [3.0, 3.0, 2.0] + [1.0] * 8


def load() -> tuple[dict[str, Any], dict[str, Any]]:
    with gzip.open(FIXTURES / "meter_state_v4.pickle.gz") as f:
        saved = pickle.load(f)
    expected = json.loads((FIXTURES / "meter_state_v4_next.json").read_text())
    return saved, expected


def go_on(state: MeterState, start: datetime) -> Effects:
    proc = EnergyProcessor()
    rng = random.Random(11)
    out = Effects()
    ts = start
    for m in MULTIPLIERS:
        local = ts + timedelta(hours=1)
        busy = local.weekday() < 5 and 8 <= local.hour < 18
        v = round((25.0 if busy else 10.0) * rng.uniform(0.9, 1.1) / 4 * m, 4)
        out.extend(
            proc.process(
                state, device_id="m", readings=[Reading(ts=ts, metric="energy_kwh", value=v)]
            )
        )
        ts += QUARTER
    return out


def episodes(out: Effects) -> list[list[Any]]:
    return [
        [
            r.kind,
            r.started_at.isoformat(),
            r.ended_at and r.ended_at.isoformat(),
            r.severity,
            pytest.approx(r.peak_score, abs=1e-12),
            pytest.approx(r.observed_kwh, abs=1e-9),
            pytest.approx(r.expected_kwh, abs=1e-9),
            r.readings,
        ]
        for r in out.rows
        if isinstance(r, EpisodeRow)
    ]


def test_the_saved_state_is_of_the_running_model_version() -> None:
    saved, _ = load()
    # Otherwise the runtime would discard the checkpoint rather than load it.
    assert saved["model_version"] == EnergyProcessor().model_version


@pytest.mark.parametrize("which", ["open", "pending"])
def test_an_old_state_goes_on_as_its_own_code_would_have(which: str) -> None:
    saved, expected = load()
    state = saved[which]
    assert isinstance(state, MeterState)
    if which == "open":
        assert (
            state.episode is not None
            and state.episode.started_at.isoformat() in (saved["start_ids"][0])
        )
    else:
        assert state.episode is None and state.tracker.streak == 1
    out = go_on(state, saved["next_ts"])
    got = [json.loads(e.model_dump_json()) for e in out.events]
    want = expected[which]["events"]
    assert [(e["event_id"], e["phase"], e["severity"]) for e in got] == [
        (e["event_id"], e["phase"], e["severity"]) for e in want
    ]
    for g, w in zip(got, want, strict=True):
        assert g["explanation"] == pytest.approx(w["explanation"])
    assert episodes(out) == expected[which]["episodes"]
    # The episode ended: the state holds none, nor anything of the old layout.
    assert state.episode is None and not {"flagged", "episode"} & set(vars(state))


def test_an_open_episode_ends_under_the_id_it_started_with() -> None:
    saved, _ = load()
    out = go_on(saved["open"], saved["next_ts"])
    (end,) = (e for e in out.events if e.phase == "end")
    assert end.event_id.removesuffix(":end") == saved["start_ids"][0].removesuffix(":start")
