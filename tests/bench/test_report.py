"""Unit tests for `bench.report`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import report

pytestmark = pytest.mark.unit


META = {
    "command": "python -m bench.nab.run",
    "date": "2026-01-01T00:00:00+00:00",
    "machine": {"cores": 2, "memory_gb": 8.0, "cpu": "Test CPU"},
    "commit": {"sha": "0123456789abcdef", "dirty": False},
}


def test_report_puts_our_nab_row_into_the_scoreboard(tmp_path: Path) -> None:
    board = tmp_path / "SCOREBOARD.md"
    board.write_text(
        "## Main scoreboard (NAB v1.0)\n\n| Detector | Standard | Reward Low FP | Reward Low FN |\n"
        "|---|---|---|---|\n| Perfect | 100.0 | 100.0 | 100.0 |\n"
        "| Numenta HTM | 70.5-69.7 | 62.6 | 75.2 |\n| Null | 0.0 | 0.0 | 0.0 |\n\n"
        "## Additional HTM variants\n\n| Detector | Standard | Reward Low FP | Reward Low FN |\n"
        "|---|---|---|---|\n| Other | 1 | 2 | 3 |\n"
    )
    results = tmp_path / "results"
    results.mkdir()
    nab = {
        "meta": META,
        "benchmark": "nab",
        "detector": "townpulse",
        "standard": 50.0,
        "reward_low_FP_rate": 40.0,
        "reward_low_FN_rate": 60.0,
        "threshold": {"standard": 0.9},
    }
    (results / "nab.json").write_text(json.dumps(nab))
    (results / "throughput.json").write_text(json.dumps({"meta": META, "events_per_s": 1234}))
    text = report.build(results, scoreboard=board)
    lines = text.splitlines()
    ours = next(i for i, line in enumerate(lines) if "this run" in line)
    assert "Numenta HTM" in lines[ours - 1] and "Null" in lines[ours + 1]
    assert "Other" not in text
    assert "`python -m bench.nab.run`" in text and "2 cores, 8.0 GB, Test CPU" in text
    assert "`0123456789ab`" in text
    assert "| events_per_s | 1234 |" in text


def test_registration_section_gives_each_step_and_the_verdict(tmp_path: Path) -> None:
    step = {"seconds": 10.0, "dynsec_file_kb": 1.0}
    result = {
        "meta": META,
        "benchmark": "registration",
        "chunk": 500,
        "broker_clients_at_start": 2,
        "broker_clients_at_end": 10_102,
        "bulk_total": {"devices": 10_000, "seconds": 900.0, "devices_per_s": 11.1},
        "bulk_steps": [
            {**step, "from": 0, "to": 5000, "devices_per_s": 250.0},
            {**step, "from": 5000, "to": 10_000, "devices_per_s": 5.5},
        ],
        "one_by_one_start": {"devices": 50, "devices_per_s": 12.0},
        "one_by_one_end": {"devices": 50, "devices_per_s": 2.0},
    }
    (tmp_path / "registration.json").write_text(json.dumps(result))
    text = report.build(tmp_path, scoreboard=tmp_path / "none.md")
    assert "| 5000-10000 | 10.0 | 5.5 | 1.0 |" in text
    assert "5.5 devices/s over the last 5000 devices, **not met**" in text
