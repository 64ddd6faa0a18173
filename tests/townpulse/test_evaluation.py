"""Unit tests for `townpulse.evaluation` and the `townpulse evaluate` command."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import holidays as holidays_lib
import pytest

from shared.ml.baselines import LastValue
from townpulse.evaluation import (
    CsvFormatError,
    evaluate,
    false_alarms,
    horizons_for,
    infer_step,
    label_windows,
    nab_corpus_threshold,
    plot,
    read_readings,
    register_figures,
    render,
    to_grid,
)

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
    from townpulse.evaluation import Reading

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
    )
    assert out["step_minutes"] == 60
    assert set(out["forecast"]) == {"1h", "24h"}
    one = out["forecast"]["1h"]
    assert set(one["metrics"]) == {"model", *BASELINES}
    assert one["n"] > 0
    anomaly = out["anomaly"]
    assert anomaly["windows"] == 1
    # caught at the first reading of the window, and one false positive when it drops back
    assert anomaly["at_file_optimised_threshold"]["windows_detected"] == 1
    assert 0 < anomaly["nab_standard_file_optimised"] <= 100
    assert "at_fixed_threshold" not in anomaly  # no threshold given
    text = render(out)
    assert "24h ahead" in text and "same time the week before" in text
    assert "labelled windows" in text
    # at 24 h ahead the last value known is yesterday's: said so, not "last_value"
    assert "last value known (24h before)" in text and "last_value" not in text


def test_evaluate_uses_a_threshold_fixed_beforehand(tmp_path: Path) -> None:
    (tmp_path / "nab.json").write_text(json.dumps({"threshold": {"standard": 0.5}}))
    out = evaluate(
        "generic",
        _history(tmp_path, labels=True),
        progress=False,
        forecaster_factory=LastValue,
        detector_factory=Jumpy,
        fixed_threshold=nab_corpus_threshold(tmp_path / "nab.json"),
        threshold_source="nab_corpus",
    )
    fixed = out["anomaly"]["at_fixed_threshold"]
    assert (fixed["threshold"], fixed["source"]) == (0.5, "nab_corpus")
    assert "nab_standard_at_fixed_threshold" in out["anomaly"]
    assert "at fixed threshold (0.5, the NAB corpus run's" in render(out)
    # The user's own threshold is said to be the user's, not the corpus's.
    mine = evaluate(
        "generic",
        _history(tmp_path, labels=True),
        progress=False,
        forecaster_factory=LastValue,
        detector_factory=Jumpy,
        fixed_threshold=0.5,
    )
    assert mine["anomaly"]["at_fixed_threshold"]["source"] == "user"
    assert "at fixed threshold (0.5, given with --threshold)" in render(mine)
    assert "corpus" not in render(mine)


def test_register_figures_at_a_threshold_fixed_beforehand(tmp_path: Path) -> None:
    out = evaluate(
        "energy",
        _history(tmp_path, labels=True),
        progress=False,
        forecaster_factory=LastValue,
        detector_factory=Jumpy,
        fixed_threshold=0.5,
    )
    figures = register_figures(out)
    # Jumpy flags the jump into the window (caught) and the drop back out of it (one false
    # alarm); 21 days of hourly readings are 504 / (30.44 * 24) months of one device.
    assert figures["recall"] == 1.0
    assert figures["false_alerts_per_device_month"] == pytest.approx(
        1 / (504 / (30.44 * 24)), abs=1e-4
    )
    assert figures["threshold_basis"] == "fixed"
    # The first horizon, against the strongest baseline there.
    one = out["forecast"]["1h"]
    strongest = min(BASELINES, key=lambda b: one["metrics"][b]["mae"])
    assert (figures["horizon"], figures["baseline"]) == ("1h", strongest)
    ratio = one["metrics"]["model"]["mae"] / one["metrics"][strongest]["mae"]
    assert figures["forecast_error_ratio"] == pytest.approx(ratio, abs=1e-3)


def test_false_alarms_are_runs_outside_the_windows() -> None:
    # Two runs outside (one of two readings, one of one), one run inside a window.
    scores = [0.9, 0.9, 0.1, 0.9, 0.9, 0.1, 0.9]
    windows = [-1, -1, -1, 0, 0, -1, -1]
    assert false_alarms(scores, windows, 0.5) == 2
    assert false_alarms(scores, windows, 0.95) == 0


def test_evaluate_without_labels_reports_forecasts_only(tmp_path: Path) -> None:
    out = evaluate(
        "traffic",
        _history(tmp_path, labels=False),
        progress=False,
        forecaster_factory=LastValue,
    )
    assert "anomaly" not in out
    assert set(out["forecast"]["1h"]["metrics"]) == {"model", *BASELINES}


def test_evaluate_refuses_unknown_domains(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="domain"):
        evaluate("water", _history(tmp_path, labels=False), progress=False)


BASELINES = {"last_value", "previous_day", "previous_week", "time_of_week_mean"}


def _holiday_fixture(tmp_path: Path) -> Path:
    """A building in Chicago, open 9-17 local time on workdays, closed on weekends and US public
    holidays, for 20 weeks of 2026 (Memorial Day, Juneteenth, Independence Day inside); the
    timestamps are UTC, so only the right time zone puts the opening hours in the same slots."""
    chicago = ZoneInfo("America/Chicago")
    us = holidays_lib.country_holidays("US", years=2026)
    lines = ["timestamp,value"]
    start = datetime(2026, 3, 2, tzinfo=UTC)
    for i in range(24 * 7 * 20):
        ts = start + timedelta(hours=i)
        local = ts.astimezone(chicago)
        open_ = local.weekday() < 5 and local.date() not in us and 9 <= local.hour < 17
        lines.append(f"{ts.isoformat()},{100.0 if open_ else 10.0}")
    return _csv(tmp_path, "\n".join(lines) + "\n")


def test_calendar_options_drive_the_models_calendar(tmp_path: Path) -> None:
    """The right town (Chicago, US holidays) forecasts the day ahead best; each wrong option
    costs accuracy. The baselines do not know holidays, so only the model's figure moves."""
    path = _holiday_fixture(tmp_path)

    def day_ahead_mae(tz: str, holidays: str) -> float:
        out = evaluate(
            "energy", path, progress=False, tz=tz, holidays=holidays, score_from=SCORE_FROM
        )
        assert out["calendar"] == {"timezone": tz, "holidays": holidays}
        mae: float = out["forecast"]["24h"]["metrics"]["model"]["mae"]
        return mae

    right = day_ahead_mae("America/Chicago", "US")
    assert right < day_ahead_mae("America/Chicago", "none")
    assert right < day_ahead_mae("America/Chicago", "FR")
    assert right < day_ahead_mae("Europe/Paris", "US")


SCORE_FROM = datetime(2026, 5, 1, tzinfo=UTC)


def test_score_from_judges_only_the_later_period(tmp_path: Path) -> None:
    path = _holiday_fixture(tmp_path)
    whole = evaluate("energy", path, progress=False, forecaster_factory=LastValue)
    later = evaluate(
        "energy", path, progress=False, forecaster_factory=LastValue, score_from=SCORE_FROM
    )
    assert later["score_from"] == SCORE_FROM.isoformat()
    assert 0 < later["forecast"]["1h"]["n"] < whole["forecast"]["1h"]["n"]
    with pytest.raises(ValueError, match="after the last reading"):
        evaluate("energy", path, progress=False, score_from=datetime(2030, 1, 1, tzinfo=UTC))


def test_any_country_and_subdivision_the_holidays_package_knows(tmp_path: Path) -> None:
    path = _history(tmp_path, labels=False)
    for code in ("DE-BY", "FR-57", "JP", "none"):
        out = evaluate("energy", path, progress=False, holidays=code, forecaster_factory=LastValue)
        assert out["calendar"]["holidays"] == code
    # Moselle keeps Good Friday and St Stephen's day; the rest of France does not.
    from shared.ml.calendar import TownCalendar

    good_friday = date(2026, 4, 3)
    assert TownCalendar("Europe/Paris", "FR-57").is_holiday(good_friday)
    assert not TownCalendar("Europe/Paris", "FR").is_holiday(good_friday)


def test_evaluate_refuses_unknown_calendars(tmp_path: Path) -> None:
    path = _history(tmp_path, labels=False)
    with pytest.raises(ValueError, match="holidays"):
        evaluate("energy", path, progress=False, holidays="XX")
    with pytest.raises(ValueError, match="subdivision 'ZZ' of DE"):
        evaluate("energy", path, progress=False, holidays="DE-ZZ")
    with pytest.raises(ValueError, match="time zone"):
        evaluate("energy", path, progress=False, tz="Mars/Olympus")


def test_plot_writes_a_png_of_one_week(tmp_path: Path) -> None:
    out = evaluate("energy", _history(tmp_path, labels=False), progress=False, keep=True)
    png = plot(out, tmp_path / "week.png", horizon="24h")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="horizon"):
        plot(out, tmp_path / "x.png", horizon="3h")


def test_plot_options_are_checked_before_the_run(tmp_path: Path) -> None:
    path = _history(tmp_path, labels=False)

    def refuse(**kwargs: Any) -> Any:
        return evaluate("energy", path, progress=False, forecaster_factory=Exploding, **kwargs)

    with pytest.raises(ValueError, match="--plot-horizon must be one of 1h, 24h"):
        refuse(keep=True, plot_horizon="3h")
    with pytest.raises(ValueError, match=r"--plot-week .* is outside the scored forecasts"):
        refuse(keep=True, plot_week=datetime(2030, 1, 1, tzinfo=UTC))
    # The first week has no scored forecast (nothing a week before to compare with).
    with pytest.raises(ValueError, match=r"--plot-week .* is outside the scored forecasts"):
        refuse(keep=True, plot_week=T0 - timedelta(days=2))
    # A week ending after the first scored forecast is plottable: no refusal (the run starts).
    with pytest.raises(AssertionError, match="the run started"):
        refuse(keep=True, plot_week=T0 + timedelta(days=1))
    # ... and so is one beginning after --score-from, not one ending before it.
    with pytest.raises(ValueError, match=r"--plot-week .* is outside the scored forecasts"):
        refuse(keep=True, plot_week=T0 + timedelta(days=7), score_from=T0 + timedelta(days=15))


def test_a_plot_of_a_file_shorter_than_two_weeks_is_refused_before_the_run(
    tmp_path: Path,
) -> None:
    lines = ["timestamp,value"]
    lines += [f"{(T0 + timedelta(hours=i)).isoformat()},{i % 24}" for i in range(24 * 6)]
    path = _csv(tmp_path, "\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"the file spans 5\.96 days"):
        evaluate("energy", path, progress=False, forecaster_factory=Exploding, keep=True)


@pytest.mark.parametrize("threshold", [-0.1, 1.5, math.nan])
def test_a_threshold_outside_the_scores_is_refused(tmp_path: Path, threshold: float) -> None:
    with pytest.raises(ValueError, match="anomaly scores lie in"):
        evaluate(
            "energy",
            _history(tmp_path, labels=True),
            progress=False,
            forecaster_factory=Exploding,
            fixed_threshold=threshold,
        )


def test_a_threshold_without_labels_is_refused_before_the_run(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="the file has no label column"):
        evaluate(
            "energy",
            _history(tmp_path, labels=False),
            progress=False,
            forecaster_factory=Exploding,
            fixed_threshold=0.5,
        )


class Exploding(LastValue):
    """A model that fails if the run starts: options must be refused before it."""

    def learn_one(self, x: Any, y: float) -> None:
        raise AssertionError("the run started before the options were checked")


def test_plot_leaves_gaps_as_gaps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A day without readings is a break in every line (NaN points), not a straight segment."""
    import matplotlib.axes

    lines = ["timestamp,value"]
    for i in range(24 * 21):
        if 24 * 17 <= i < 24 * 18:
            continue  # day 18 is missing
        lines.append(f"{(T0 + timedelta(hours=i)).isoformat()},{50 + 40 * math.sin(i / 3.8)}")
    out = evaluate("energy", _csv(tmp_path, "\n".join(lines) + "\n"), progress=False, keep=True)
    drawn: list[list[float]] = []
    real = matplotlib.axes.Axes.plot

    def spy(self: Any, x: Any, y: Any, *args: Any, **kwargs: Any) -> Any:
        drawn.append(list(y))
        return real(self, x, y, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "plot", spy)
    plot(out, tmp_path / "week.png", horizon="1h", week_of=T0 + timedelta(days=14))
    assert len(drawn) == 3
    for y in drawn:
        assert sum(math.isnan(v) for v in y) == 1


def test_every_baseline_is_named_for_what_it_predicts() -> None:
    from townpulse.evaluation import baseline_label, baselines_for

    names = baselines_for("energy", step=timedelta(hours=1), tz=UTC)
    assert set(names) == BASELINES
    for name in names:
        assert baseline_label(name, "24h") != name  # words, not the JSON key
    # The previous day's value and the last value known a day ahead are the same reading, and
    # neither is "the last value" of the hour before.
    assert baseline_label("previous_day", "24h") == "same time the day before"
    assert baseline_label("last_value", "24h") == "last value known (24h before)"
    assert baseline_label("last_value", "1h") == "last value known (1h before)"


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
    assert "1h ahead" in result.output and "same time the day before" in result.output


def test_cli_prints_where_the_plot_is(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    png = tmp_path / "week.png"
    args = [str(_history(tmp_path, labels=False)), "--no-progress", "--plot", str(png)]
    result = CliRunner().invoke(_cli(), args)
    assert result.exit_code == 0, result.output
    assert f"plot: {png.resolve()}" in result.output and png.is_file()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--plot", "{tmp}/nowhere/week.png"], "no directory"),
        (["--plot", "{tmp}/week.svg"], "a .png file"),
        (["--plot-horizon", "1h"], "need --plot"),
        (["--plot", "{tmp}/w.png", "--plot-horizon", "3h"], "--plot-horizon must be one of"),
    ],
)
def test_cli_refuses_bad_plot_options_before_the_run(
    tmp_path: Path, extra: list[str], message: str
) -> None:
    from typer.testing import CliRunner

    args = [str(_history(tmp_path, labels=False)), "--no-progress"]
    args += [a.format(tmp=tmp_path) for a in extra]
    result = CliRunner().invoke(_cli(), args)
    assert result.exit_code == 2
    assert message in result.output


def _no_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's run fails the test if it starts: what is refused must be refused before it."""
    import townpulse.evaluation

    def run(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the run started")

    monkeypatch.setattr(townpulse.evaluation, "evaluate", run)


@pytest.mark.parametrize(
    ("holidays", "names"),
    [
        ("XX", ["unknown holidays country 'XX'", "townpulse evaluate --list-holidays"]),
        ("DE-ZZ", ["unknown subdivision 'ZZ' of DE", "BY", "NW"]),
    ],
)
def test_cli_refuses_an_unknown_calendar_before_reading_the_file(
    tmp_path: Path, holidays: str, names: list[str]
) -> None:
    from typer.testing import CliRunner

    # A file that is wrong too: the calendar is refused first, before the file is read.
    bad = _csv(tmp_path, "when,what\n1,2\n")
    result = CliRunner().invoke(_cli(), [str(bad), "--no-progress", "--holidays", holidays])
    assert result.exit_code == 2
    assert "header" not in result.output
    for name in names:
        assert name in result.output


def test_cli_lists_the_holidays_it_accepts() -> None:
    from typer.testing import CliRunner

    result = CliRunner().invoke(_cli(), ["--list-holidays"])  # no file needed
    assert result.exit_code == 0, result.output
    listed = dict(line.partition(": ")[::2] for line in result.output.splitlines())
    supported = holidays_lib.list_supported_countries(include_aliases=False)
    assert set(listed) == set(supported)
    assert set(listed["DE"].split(", ")) == set(supported["DE"])
    assert "BY" in listed["DE"].split(", ")


def test_cli_runs_in_a_subdivision_s_calendar(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    args = [str(_history(tmp_path, labels=False)), "--json", "--no-progress"]
    result = CliRunner().invoke(_cli(), [*args, "--holidays", "DE-BY", "--tz", "Europe/Berlin"])
    assert result.exit_code == 0, result.output
    calendar = json.loads(result.stdout)["calendar"]
    assert calendar == {"timezone": "Europe/Berlin", "holidays": "DE-BY"}


def test_cli_says_where_the_threshold_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    import townpulse.evaluate

    nab = tmp_path / "nab.json"
    nab.write_text(json.dumps({"threshold": {"standard": 0.875}}))
    monkeypatch.setattr(townpulse.evaluate, "NAB_RESULTS", nab)
    args = [str(_history(tmp_path, labels=True)), "--no-progress", "--domain", "generic"]

    def fixed(*extra: str) -> dict[str, Any]:
        result = CliRunner().invoke(_cli(), [*args, "--json", *extra])
        assert result.exit_code == 0, result.output
        out: dict[str, Any] = json.loads(result.stdout)["anomaly"]["at_fixed_threshold"]
        return out

    mine, corpus = fixed("--threshold", "0.5"), fixed("--threshold", "nab")
    assert (mine["threshold"], mine["source"]) == (0.5, "user")
    assert (corpus["threshold"], corpus["source"]) == (0.875, "nab_corpus")
    text = CliRunner().invoke(_cli(), [*args, "--threshold", "nab"]).output
    assert "at fixed threshold (0.875, the NAB corpus run's, standard profile" in text


@pytest.mark.parametrize(
    ("threshold", "labels", "message"),
    [
        ("1.5", True, "a score in [0, 1]"),
        ("-1", True, "a score in [0, 1]"),
        ("high", True, "a score in [0, 1], or 'nab'"),
        ("nab", True, "no NAB run's threshold in"),
        ("0.5", False, "the file has no label column"),
    ],
)
def test_cli_refuses_a_bad_threshold_before_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, threshold: str, labels: bool, message: str
) -> None:
    from typer.testing import CliRunner

    import townpulse.evaluate

    monkeypatch.setattr(townpulse.evaluate, "NAB_RESULTS", tmp_path / "no-nab.json")
    args = [str(_history(tmp_path, labels=labels)), "--no-progress", "--threshold", threshold]
    if labels:
        _no_run(monkeypatch)  # refused by the command itself
    result = CliRunner().invoke(_cli(), args)
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())  # rich wraps long messages


def test_cli_refuses_record_before_the_run_when_the_stack_does_not_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    key = tmp_path / "admin.key"
    key.write_text("k\n")
    # Port 1: nothing listens there. The process environment wins over stack.env, and
    # monkeypatch puts it back.
    env = {"API_URL": "http://127.0.0.1:1", "ADMIN_API_KEY_FILE": str(key)}
    (run_dir / "stack.env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    monkeypatch.setenv("TOWNPULSE_RUN_DIR", str(run_dir))
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    _no_run(monkeypatch)
    args = [str(_history(tmp_path, labels=False)), "--no-progress", "--record", "energy.forecast"]
    result = CliRunner().invoke(_cli(), args)
    assert result.exit_code == 1
    assert "the operator API does not answer" in result.output


def test_cli_prints_the_report_even_if_the_plot_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What cannot be known before the run (here, a disk that fills) loses the plot only."""
    from typer.testing import CliRunner

    import townpulse.evaluation

    def full_disk(*args: Any, **kwargs: Any) -> Path:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(townpulse.evaluation, "plot", full_disk)
    png = tmp_path / "week.png"
    args = [str(_history(tmp_path, labels=False)), "--no-progress", "--plot", str(png)]
    result = CliRunner().invoke(_cli(), args)
    assert result.exit_code == 2
    assert "1h ahead" in result.stdout and "plot:" not in result.stdout
    assert "No space left on device" in result.stderr


def test_cli_json_is_the_documented_layout(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    png = tmp_path / "week.png"
    args = [str(_history(tmp_path, labels=True)), "--json", "--no-progress", "--tz", "UTC"]
    args += ["--holidays", "GB", "--plot", str(png), "--score-from", "2024-01-10"]
    result = CliRunner().invoke(_cli(), args)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    documented = {
        "schema",
        "domain",
        "path",
        "calendar",
        "score_from",
        "readings",
        "first",
        "last",
        "step_minutes",
        "grid_steps",
        "missing_steps",
        "forecast",
        "anomaly",
        "plot",
    }
    assert set(out) == documented
    assert out["schema"] == 3 and out["plot"] == str(png.resolve()) and png.is_file()
    one = out["forecast"]["1h"]
    assert set(one) == {"n", "metrics", "mae_ratio", "cv_rmse_ratio", "strongest_baseline"}
    assert set(one["mae_ratio"]) == BASELINES


def test_cli_refuses_a_bad_register_id_before_the_run(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    args = [str(_history(tmp_path, labels=False)), "--no-progress", "--record", "Energy!"]
    result = CliRunner().invoke(_cli(), args)
    assert result.exit_code == 2
    assert "not an algorithm id" in result.output


def test_cli_explains_a_bad_file(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    bad = _csv(tmp_path, "when,what\n1,2\n")
    result = CliRunner().invoke(_cli(), [str(bad), "--no-progress"])
    assert result.exit_code == 2
    assert "header must be timestamp,value[,label]" in result.output


def _meter(tmp_path: Path, *, faults: bool) -> Path:
    """Three weeks of an hourly meter; with `faults`, an evening left on and an outage."""
    lines = ["timestamp,value"]
    for i in range(21 * 24):
        ts = T0 + timedelta(hours=i)
        value = 10.0 if ts.weekday() < 5 and 8 <= ts.hour < 18 else 2.0 + (i % 3) * 0.1
        if faults and 17 * 24 + 20 <= i < 17 * 24 + 26:
            value += 12.0
        if faults and 15 * 24 + 10 <= i < 15 * 24 + 16:
            value = 0.0
        lines.append(f"{ts.isoformat()},{value}")
    path = tmp_path / ("faulty.csv" if faults else "clean.csv")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_cli_labels_score_the_alerts_the_service_would_raise(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from shared.ml.calendar import TownCalendar
    from townpulse.evaluation import alert_openings

    left_on = (T0 + timedelta(hours=17 * 24 + 20), T0 + timedelta(hours=17 * 24 + 25))
    outage = (T0 + timedelta(hours=15 * 24 + 10), T0 + timedelta(hours=15 * 24 + 15))
    labels = tmp_path / "labels.csv"
    labels.write_text(
        "start,end,kind\n"
        + "".join(
            f"{a.isoformat()},{b.isoformat()},{k}\n"
            for (a, b), k in ((left_on, "left_on"), (outage, "outage"))
        )
    )
    faulty, clean = _meter(tmp_path, faults=True), _meter(tmp_path, faults=False)
    args = [str(faulty), "--json", "--no-progress", "--labels", str(labels)]
    result = CliRunner().invoke(_cli(), [*args, "--clean", str(clean)])
    assert result.exit_code == 0, result.output
    alerts = json.loads(result.output)["alerts"]

    # The same replay, counted here by hand.
    opened = [
        o.opened_at
        for o in alert_openings(
            read_readings(faulty), domain="energy", calendar=TownCalendar("UTC", "none")
        )
    ]
    firsts = {
        k: [t for t in opened if a <= t <= b]
        for (a, b), k in ((left_on, "left_on"), (outage, "outage"))
    }
    assert firsts["left_on"] and firsts["outage"], "both faults should alert"
    assert alerts["events"] == 2 and alerts["detected"] == 2 and alerts["alerts"] == len(opened)
    for kind, (start, _) in (("left_on", left_on), ("outage", outage)):
        delay = (min(firsts[kind]) - start).total_seconds() / 3600
        assert alerts["by_kind"][kind]["median_delay_h"] == delay
    quiet = alert_openings(
        read_readings(clean), domain="energy", calendar=TownCalendar("UTC", "none")
    )
    assert alerts["clean"]["alerts"] == len(quiet)
    assert alerts["clean"]["months"] == pytest.approx(21 / 30.44, abs=1e-3)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--domain", "traffic", "--labels", "{labels}"], "domain energy only"),
        (["--labels", "{history}"], "header must be start,end"),
    ],
)
def test_cli_refuses_bad_labels_before_the_run(
    tmp_path: Path, extra: list[str], message: str
) -> None:
    from typer.testing import CliRunner

    history = _history(tmp_path, labels=False)
    labels = tmp_path / "labels.csv"
    labels.write_text("start,end\n2024-01-02T00:00:00+00:00,2024-01-02T03:00:00+00:00\n")
    args = [str(history), "--no-progress"]
    args += [a.format(labels=labels, history=history) for a in extra]
    result = CliRunner().invoke(_cli(), args)
    assert result.exit_code == 2
    assert message in result.output
