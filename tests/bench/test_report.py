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
