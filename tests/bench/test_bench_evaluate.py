"""Unit tests for `bench.evaluate` and `bench.report`, with stand-in models."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bench import report
from bench.evaluate import (
    CsvFormatError,
    evaluate,
    horizons_for,
    infer_step,
    label_windows,
    read_readings,
    render,
    to_grid,
)
from bench.forecast.baselines import LastValue

pytestmark = pytest.mark.unit

T0 = datetime(2024, 1, 1, tzinfo=UTC)


class Jumpy:
    """Stand-in detector: 1.0 when the value jumps by more than 50 from the previous one."""

    def __init__(self) -> None:
        self.last: float | None = None

    def score_one(self, x: dict[str, Any]) -> float:
        return 1.0 if self.last is not None and abs(x["value"] - self.last) > 50 else 0.0

    def learn_one(self, x: dict[str, Any]) -> None:
        self.last = x["value"]


def _csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "history.csv"
    path.write_text(text)
    return path


def test_read_readings_parses_sorts_and_reads_naive_times_in_tz(tmp_path: Path) -> None:
    from zoneinfo import ZoneInfo

    path = _csv(
        tmp_path,
        "timestamp,value,label\n2024-01-01T01:00:00+00:00,2.5,0\n2024-01-01 00:00:00,,1\n",
    )
    paris = ZoneInfo("Europe/Paris")
    rows = read_readings(path, tz=paris)
    assert [r.value for r in rows] == [None, 2.5]
    assert rows[0].ts == datetime(2024, 1, 1, tzinfo=paris)
    assert [r.label for r in rows] == [1, 0]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("time,value\n2024-01-01,1\n", "header"),
        ("timestamp,value\nyesterday,1\n", "history.csv:2"),
        ("timestamp,value,label\n2024-01-01,1,2\n", "label must be 0 or 1"),
        ("timestamp,value\n", "no readings"),
    ],
)
def test_read_readings_explains_bad_files(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(CsvFormatError, match=match):
        read_readings(_csv(tmp_path, text))


def test_grid_and_step() -> None:
    from bench.evaluate import Reading

    rows = [Reading(T0 + timedelta(minutes=m), float(m), None) for m in (0, 15, 30, 61, 90)]
    # gaps 15, 15, 31, 29 min: the median is (15 + 29) / 2 = 22 min
    assert infer_step(rows) == timedelta(minutes=22)
    grid = to_grid(rows, timedelta(minutes=15))
    assert [s.value for s in grid] == [0.0, 15.0, 30.0, None, 61.0, None, 90.0]


def test_horizons_per_domain() -> None:
    assert horizons_for("energy", timedelta(hours=1)) == {"1h": 1, "24h": 24}
    assert horizons_for("energy", timedelta(minutes=15)) == {"1h": 4, "24h": 96}
    assert horizons_for("traffic", timedelta(minutes=15)) == {"15min": 1, "30min": 2, "1h": 4}
    assert horizons_for("traffic", timedelta(hours=1)) == {"1h": 1}
    assert horizons_for("generic", timedelta(minutes=5)) == {"5min": 1}


def test_label_windows() -> None:
    assert label_windows([1, 1, 0, 1]) == ((0, 1), (3, 3))
    assert label_windows([0, 0]) == ()


def _history(tmp_path: Path, *, labels: bool) -> Path:
    lines = ["timestamp,value" + (",label" if labels else "")]
    for i in range(24 * 21):
        ts = (T0 + timedelta(hours=i)).isoformat()
        value = 10.0 + 5 * math.sin(2 * math.pi * i / 24)
        label = 0
        if 24 * 15 <= i < 24 * 15 + 6:
            value += 100  # an anomaly, labelled
            label = 1
        lines.append(f"{ts},{value:.3f}" + (f",{label}" if labels else ""))
    return _csv(tmp_path, "\n".join(lines) + "\n")


def test_evaluate_forecasts_and_anomalies(tmp_path: Path) -> None:
    out = evaluate(
        "energy",
        _history(tmp_path, labels=True),
        progress=False,
        forecaster_factory=LastValue,
        detector_factory=Jumpy,
        results_dir=tmp_path,
    )
    assert out["step_minutes"] == 60
    assert set(out["forecast"]) == {"1h", "24h"}
    one = out["forecast"]["1h"]
    assert set(one["metrics"]) == {"model", "previous_day", "previous_week"}
    assert one["n"] > 0
    anomaly = out["anomaly"]
    assert anomaly["windows"] == 1
    # caught at the first reading of the window, and one false positive when it drops back
    assert anomaly["at_file_optimised_threshold"]["windows_detected"] == 1
    assert 0 < anomaly["nab_standard_file_optimised"] <= 100
    assert "at_nab_corpus_threshold" not in anomaly  # no nab.json in results_dir
    text = render(out)
    assert "24h ahead" in text and "previous_week" in text and "labelled windows" in text


def test_evaluate_uses_the_nab_corpus_threshold_when_known(tmp_path: Path) -> None:
    (tmp_path / "nab.json").write_text(json.dumps({"threshold": {"standard": 0.5}}))
    out = evaluate(
        "generic",
        _history(tmp_path, labels=True),
        progress=False,
        forecaster_factory=LastValue,
        detector_factory=Jumpy,
        results_dir=tmp_path,
    )
    assert out["anomaly"]["at_nab_corpus_threshold"]["threshold"] == 0.5
    assert "nab_standard_at_corpus_threshold" in out["anomaly"]


def test_evaluate_without_labels_reports_forecasts_only(tmp_path: Path) -> None:
    out = evaluate(
        "traffic",
        _history(tmp_path, labels=False),
        progress=False,
        forecaster_factory=LastValue,
    )
    assert "anomaly" not in out
    assert set(out["forecast"]["1h"]["metrics"]) == {"model", "time_of_week_mean", "previous_week"}


def test_evaluate_refuses_unknown_domains(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="domain"):
        evaluate("water", _history(tmp_path, labels=False), progress=False)


# --- report -----------------------------------------------------------------------------------

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


# --- the `townpulse evaluate` command ---------------------------------------------------------


def _cli() -> Any:
    import typer

    from townpulse.evaluate import evaluate as command

    app = typer.Typer()
    app.command()(command)
    return app


def test_cli_prints_the_report_with_the_projects_models(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    result = CliRunner().invoke(
        _cli(), [str(_history(tmp_path, labels=False)), "--domain", "energy", "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    assert "1h ahead" in result.output and "previous_day" in result.output


def test_cli_explains_a_bad_file(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    bad = _csv(tmp_path, "when,what\n1,2\n")
    result = CliRunner().invoke(_cli(), [str(bad), "--no-progress"])
    assert result.exit_code == 2
    assert "header must be timestamp,value[,label]" in result.output
