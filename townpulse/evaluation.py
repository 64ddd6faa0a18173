"""Evaluate the project's models on a town's own history (``townpulse evaluate``).

Product code (the benchmarks import the same baselines, metrics and online loop from
``shared.ml``); the JSON it prints is documented, field by field, in docs/evaluate.md.

The CSV format is documented in docs/evaluate.md: a header ``timestamp,value[,label]``, one
reading a line, ISO 8601 timestamps (without an offset they are read in ``tz``), an empty value
for a missing reading, and an optional ``label`` of 0/1 (1 = the reading lies in a known anomaly).

What it reports, with the same code and metrics as the benchmarks:

- forecasts, online, at the domain's horizons, against the domain's baselines (MAE, RMSE,
  CV(RMSE)); readings are placed on a regular grid whose step is the median interval;
- with labels, anomaly detection scored the NAB way (standard profile): each run of 1-labels is an
  anomaly window, the threshold is optimised on this file (so it is optimistic) and, when one is
  given, also at a threshold fixed beforehand (``--threshold``: a fair figure), reported with
  where it came from (the user, or the NAB corpus run's).

The models run in the town's calendar (time zone and public holidays): local hours, weekdays and
holidays are what the profiles learn.
"""

from __future__ import annotations

import csv
import importlib
import itertools
import json
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from zoneinfo import ZoneInfo

from rich.progress import Progress

from shared.ml.alert_scoring import (
    MONTH,
    Label,
    alerts_per_month,
    read_labels,
    score_alerts,
)
from shared.ml.baselines import LastValue, TimeOfWeekMean, previous_day, previous_week
from shared.ml.calendar import TownCalendar
from shared.ml.nab_scoring import (
    CostMatrix,
    FileLabels,
    ScoredFile,
    best_threshold,
    normalise,
    score_file,
    sweep,
)
from shared.ml.online import MODEL, HorizonResult, Predictor, Step, evaluate_online, ratio
from shared.townholidays import NO_HOLIDAYS, check_holidays

if TYPE_CHECKING:
    from services.alerts.domain.replay import Opened

DOMAINS = ("energy", "traffic", "generic")
# Version of the JSON layout (docs/evaluate.md): bumped when a field changes meaning or goes.
# 3: the threshold given with --threshold is "fixed", not "nab corpus" (it may come from anywhere);
# its `source` says where it did come from (added fields do not bump the schema).
SCHEMA = 3
# Where a threshold fixed beforehand came from (`at_fixed_threshold.source`), in words.
THRESHOLD_SOURCES = {
    "user": "given with --threshold",
    "nab_corpus": "the NAB corpus run's, standard profile, chosen for the generic detector",
}
# NAB's standard profile (config/profiles.json).
STANDARD = CostMatrix(tp_weight=1.0, fp_weight=0.11, fn_weight=1.0)
DAY = timedelta(days=1)


class Detector(Protocol):
    def score_one(self, x: dict[str, Any]) -> float: ...
    def learn_one(self, x: dict[str, Any]) -> None: ...


@dataclass(frozen=True, slots=True)
class Reading:
    ts: datetime
    value: float | None
    label: int | None


class CsvFormatError(ValueError):
    """The file does not follow docs/evaluate.md."""


def read_readings(path: Path, *, tz: tzinfo = UTC) -> list[Reading]:
    """Rows of ``timestamp,value[,label]``, sorted by time (the last of duplicates wins)."""
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        fields = [f.strip() for f in reader.fieldnames or []]
        if fields[:2] != ["timestamp", "value"] or not set(fields) <= {
            "timestamp",
            "value",
            "label",
        }:
            raise CsvFormatError(f"{path}: header must be timestamp,value[,label], got {fields}")
        by_ts: dict[datetime, Reading] = {}
        for line, raw in enumerate(reader, start=2):
            row = {k.strip(): (v or "").strip() for k, v in raw.items() if k is not None}
            try:
                ts = datetime.fromisoformat(row["timestamp"])
                if ts.tzinfo is None:
                    ts = ts.replace(tzinfo=tz)
                value = float(row["value"]) if row["value"] else None
                if value is not None and not math.isfinite(value):
                    value = None
                label = int(row["label"]) if row.get("label") else None
            except ValueError as exc:
                raise CsvFormatError(f"{path}:{line}: {exc}") from exc
            if label not in (None, 0, 1):
                raise CsvFormatError(f"{path}:{line}: label must be 0 or 1")
            by_ts[ts] = Reading(ts, value, label)
    if not by_ts:
        raise CsvFormatError(f"{path}: no readings")
    return [by_ts[ts] for ts in sorted(by_ts)]


def infer_step(readings: Sequence[Reading]) -> timedelta:
    """The sampling interval: the median gap between consecutive readings."""
    gaps = [(b.ts - a.ts).total_seconds() for a, b in itertools.pairwise(readings)]
    if not gaps:
        raise CsvFormatError("need at least two readings")
    return timedelta(seconds=statistics.median(gaps))


def to_grid(readings: Sequence[Reading], step: timedelta) -> list[Step]:
    """Regular steps from the first reading; a reading lands in the step it falls in."""
    start = readings[0].ts
    values: dict[int, float] = {}
    for r in readings:
        if r.value is not None:
            values[int((r.ts - start) / step)] = r.value
    n = max(values, default=0) + 1
    tz = start.tzinfo
    return [Step((start + k * step).astimezone(tz), values.get(k)) for k in range(n)]


def horizons_for(domain: str, step: timedelta) -> dict[str, int]:
    """The domain's horizons in whole steps: energy hour/day ahead, traffic 15-60 min ahead."""

    def label(h: int) -> str:
        minutes = int((h * step).total_seconds() // 60)
        return f"{minutes // 60}h" if minutes % 60 == 0 else f"{minutes}min"

    if domain == "energy":
        wanted = [timedelta(hours=1), DAY]
    elif domain == "traffic":
        wanted = [timedelta(minutes=m) for m in (15, 30, 60)]
    else:
        wanted = [step]
    steps = sorted({max(1, round(w / step)) for w in wanted if w >= step} or {1})
    return {label(h): h for h in steps}


def baselines_for(
    domain: str, *, step: timedelta, tz: tzinfo
) -> dict[str, Callable[[], Predictor]]:
    """Every simple baseline, for every domain: the last value (strong minutes ahead), the same
    time yesterday and last week, and the mean of this time of the week."""
    slot = max(1, int(step.total_seconds() // 60))

    def time_of_week() -> TimeOfWeekMean:
        return TimeOfWeekMean(tz=tz, slot_minutes=slot)

    return {
        "last_value": LastValue,
        "previous_day": previous_day,
        "previous_week": previous_week,
        "time_of_week_mean": time_of_week,
    }


def _slot_minutes(step: timedelta) -> int:
    """Profile slots as wide as the data's step, within what a day divides into (15 min+)."""
    minutes = max(15, int(step.total_seconds() // 60))
    return minutes if (24 * 60) % minutes == 0 else 60


def _default_forecaster(
    domain: str, *, calendar: TownCalendar, step: timedelta
) -> Callable[[], Predictor]:
    # The services' own: energy's stored forecasts are the day-ahead model's, the others' the
    # calendar blend's (shared.ml.dayahead.make_forecaster chooses by domain).
    make = importlib.import_module("shared.ml.dayahead").make_forecaster

    def factory() -> Predictor:
        model: Predictor = make(domain, slot_minutes=_slot_minutes(step), calendar=calendar)
        return model

    return factory


def _default_detector(
    domain: str, *, calendar: TownCalendar, step: timedelta
) -> Callable[[], Detector]:
    make = importlib.import_module("shared.ml.anomaly").make_detector

    def factory() -> Detector:
        det: Detector = make(domain, slot_minutes=_slot_minutes(step), calendar=calendar)
        return det

    return factory


def label_windows(labels: Sequence[int]) -> tuple[tuple[int, int], ...]:
    """Runs of 1s as (first, last) row indices.

    >>> label_windows([0, 1, 1, 0, 0, 1])
    ((1, 2), (5, 5))
    """
    out: list[tuple[int, int]] = []
    start: int | None = None
    for i, lab in enumerate([*labels, 0]):
        if lab and start is None:
            start = i
        elif not lab and start is not None:
            out.append((start, i - 1))
            start = None
    return tuple(out)


def nab_corpus_threshold(results_file: Path) -> float | None:
    """The standard profile's threshold in a NAB results file (``bench/results/nab.json``)."""
    try:
        data = json.loads(results_file.read_text())
        return float(data["threshold"]["standard"])
    except (OSError, KeyError, TypeError, ValueError):
        return None


def false_alarms(scores: Sequence[float], window_of: Sequence[int], threshold: float) -> int:
    """Runs of consecutive readings at or above `threshold` outside every labelled window:
    what a person would have been alerted for in vain (a run is one alert, not one per reading).

    >>> false_alarms([0.9, 0.9, 0.1, 0.9, 0.9], [-1, -1, -1, 0, -1], 0.5)
    2
    """
    runs, inside = 0, False
    for score, window in zip(scores, window_of, strict=True):
        flagged = score >= threshold and window < 0
        runs += flagged and not inside
        inside = flagged
    return runs


def _at_threshold(f: ScoredFile, threshold: float, *, source: str | None = None) -> dict[str, Any]:
    t = score_file(f, threshold)
    detected = {
        win for s, win in zip(f.scores, f.window_of, strict=True) if win >= 0 and s >= threshold
    }
    return {
        "threshold": threshold,
        **({} if source is None else {"source": source}),
        "raw": round(t.score, 4),
        "windows_detected": len(detected),
        "false_positive_readings": t.fp,
        "false_alarms": false_alarms(f.scores, f.window_of, threshold),
    }


def evaluate_anomalies(
    readings: Sequence[Reading],
    detector_factory: Callable[[], Detector],
    *,
    on_row: Callable[[int], None] | None = None,
    fixed_threshold: float | None = None,
    threshold_source: str = "user",
    score_from: datetime | None = None,
) -> dict[str, Any]:
    """Score every measured reading, one at a time, then NAB-score against the labels.

    Readings before ``score_from`` are learnt but not judged. ``threshold_source`` says where
    ``fixed_threshold`` came from (a key of ``THRESHOLD_SOURCES``).
    """
    measured = [r for r in readings if r.value is not None]
    det = detector_factory()
    scores: list[float] = []
    rows = []
    for i, r in enumerate(measured):
        x = {"ts": r.ts, "value": r.value}
        score = float(det.score_one(x))
        det.learn_one(x)
        if score_from is None or r.ts >= score_from:
            scores.append(score)
            rows.append(r)
        if on_row is not None:
            on_row(i)
    labels = FileLabels("input", len(rows), label_windows([r.label or 0 for r in rows]))
    f = labels.scored(scores, STANDARD)
    out: dict[str, Any] = {"readings": len(rows), "windows": len(labels.windows)}
    if fixed_threshold is not None:
        out["at_fixed_threshold"] = _at_threshold(f, fixed_threshold, source=threshold_source)
    if not labels.windows:
        out["note"] = "no label=1 readings: only false positives can be counted"
        return out
    best = best_threshold(sweep([f]))
    null = best_threshold(sweep([labels.scored([0.5] * len(rows), STANDARD)])).score
    perfect = len(labels.windows) * STANDARD.tp_weight
    out["at_file_optimised_threshold"] = _at_threshold(f, best.threshold)
    out["nab_standard_file_optimised"] = round(normalise(best.score, null=null, perfect=perfect), 2)
    if fixed_threshold is not None:
        raw = score_file(f, fixed_threshold).score
        out["nab_standard_at_fixed_threshold"] = round(
            normalise(raw, null=null, perfect=perfect), 2
        )
    return out


# Domains whose service can be replayed reading by reading (`--labels`).
ALERT_DOMAINS = ("energy",)
EVALUATED_DEVICE = "evaluated"


def alert_openings(
    readings: Sequence[Reading], *, domain: str, calendar: TownCalendar
) -> list[Opened]:
    """When the alerts the domain's service would have raised on these readings opened: its
    own processor (services/<domain>/domain/replay.py) and the alerts service's lifecycle
    (services/alerts/domain/replay.py), one reading a message, as the stack runs them."""
    if domain not in ALERT_DOMAINS:
        raise ValueError(f"alerts can be replayed for {', '.join(ALERT_DOMAINS)} only")
    from services.alerts.domain.replay import alerts_of
    from services.energy.domain.replay import alert_events, meter_processor

    series = [(r.ts, r.value) for r in readings if r.value is not None]
    events = alert_events(
        series, device_id=EVALUATED_DEVICE, processor=meter_processor(calendar=calendar)
    )
    opened, _ = alerts_of(events)
    return opened


def evaluate_alerts(
    readings: Sequence[Reading],
    *,
    domain: str,
    calendar: TownCalendar,
    labels: Sequence[Label],
    step: timedelta,
    score_from: datetime | None = None,
    clean: Sequence[Reading] | None = None,
) -> dict[str, Any]:
    """Alerts, not scores: the service's alerts on the file against labelled windows (recall,
    median delay and false alerts per device-month, per kind; shared.ml.alert_scoring), and
    the alerts per device-month on the same device's data without the labelled faults."""

    def months_of(rows: Sequence[Reading]) -> float:
        kept = [r for r in rows if r.value is not None]
        return sum(score_from is None or r.ts >= score_from for r in kept) * step / MONTH

    def opened(rows: Sequence[Reading]) -> list[datetime]:
        at = [o.opened_at for o in alert_openings(rows, domain=domain, calendar=calendar)]
        return [t for t in at if score_from is None or t >= score_from]

    months = months_of(readings)
    in_window = [lab for lab in labels if score_from is None or lab.end >= score_from]
    out = score_alerts(opened(readings), in_window, months=months)
    if clean is not None:
        clean_months = months_of(clean)
        out["clean"] = {
            "alerts": len(at := opened(clean)),
            "months": round(clean_months, 3),
            "alerts_per_device_month": alerts_per_month(at, months=clean_months),
        }
    return out


def evaluate(
    domain: str,
    path: Path | str,
    progress: bool = True,
    *,
    tz: str = "UTC",
    holidays: str = NO_HOLIDAYS,
    score_from: datetime | None = None,
    fixed_threshold: float | None = None,
    threshold_source: str = "user",
    forecaster_factory: Callable[[], Predictor] | None = None,
    detector_factory: Callable[[], Detector] | None = None,
    keep: bool = False,
    plot_horizon: str | None = None,
    plot_week: datetime | None = None,
    labels: Path | None = None,
    clean: Path | None = None,
) -> dict[str, Any]:
    """Forecast (and, with labels, anomaly) metrics of the project's models on one CSV.

    ``tz`` and ``holidays`` are the town's calendar: how timestamps without an offset are read
    and what the models' local hours, weekdays and public holidays are. Every reading is learnt;
    forecasts and anomaly scores are judged from ``score_from`` on (all of them by default).
    With ``keep``, the per-target forecasts are returned under ``"_series"`` (for ``plot``);
    ``plot_horizon`` and ``plot_week`` (what ``plot`` will be asked for) are checked against the
    file before the run, which may take minutes, rather than after it, as is everything else
    given: an option wrong for this file is a ValueError before any model learns a reading.
    ``fixed_threshold`` (a score in [0, 1], for a file with a ``label`` column) came from
    ``threshold_source`` (``THRESHOLD_SOURCES``).

    With ``labels`` (a ``start,end[,kind]`` CSV), the domain's service is replayed on the file
    and its alerts are scored against those windows (``"alerts"``, see ``evaluate_alerts``);
    ``clean`` is the same device's history without the labelled faults, on which every alert
    counts as one too many.
    """
    if domain not in DOMAINS:
        raise ValueError(f"domain must be one of {', '.join(DOMAINS)}")
    if (labels is not None or clean is not None) and domain not in ALERT_DOMAINS:
        raise ValueError(f"--labels and --clean: domain {', '.join(ALERT_DOMAINS)} only")
    if clean is not None and labels is None:
        raise ValueError("--clean needs --labels FILE.csv")
    if threshold_source not in THRESHOLD_SOURCES:
        raise ValueError(f"threshold_source must be one of {', '.join(THRESHOLD_SOURCES)}")
    if fixed_threshold is not None and not 0.0 <= fixed_threshold <= 1.0:
        raise ValueError(f"--threshold {fixed_threshold:g}: anomaly scores lie in [0, 1]")
    check_holidays(holidays)
    try:
        zone = ZoneInfo(tz)
    except (ValueError, KeyError) as exc:  # ZoneInfoNotFoundError is a KeyError
        raise ValueError(f"unknown time zone {tz!r}") from exc
    calendar = TownCalendar(tz, holidays)
    readings = read_readings(Path(path), tz=zone)
    step = infer_step(readings)
    # Read now: a bad file is reported before a run that may take minutes.
    windows = None if labels is None else read_labels(Path(labels), tz=zone)
    clean_readings = None if clean is None else read_readings(Path(clean), tz=zone)
    if score_from is not None and score_from.tzinfo is None:
        score_from = score_from.replace(tzinfo=zone)
    if score_from is not None and score_from > readings[-1].ts:
        raise ValueError(f"--score-from {score_from.isoformat()} is after the last reading")
    steps = [Step(s.ts.astimezone(zone), s.value) for s in to_grid(readings, step)]
    horizons = horizons_for(domain, step)
    if plot_horizon is not None and plot_horizon not in horizons:
        raise ValueError(f"--plot-horizon must be one of {', '.join(horizons)}")
    if keep:
        week = None
        if plot_week is not None:
            week = plot_week if plot_week.tzinfo else plot_week.replace(tzinfo=zone)
        check_plot_week(readings, week=week, score_from=score_from)
    has_labels = any(r.label is not None for r in readings)
    if fixed_threshold is not None and not has_labels:
        raise ValueError("--threshold scores labelled readings: the file has no label column")
    measured = sum(r.value is not None for r in readings)
    out: dict[str, Any] = {
        "schema": SCHEMA,
        "domain": domain,
        "path": str(path),
        "calendar": {"timezone": tz, "holidays": holidays},
        "score_from": None if score_from is None else score_from.isoformat(),
        "readings": len(readings),
        "first": readings[0].ts.isoformat(),
        "last": readings[-1].ts.isoformat(),
        "step_minutes": step.total_seconds() / 60,
        "grid_steps": len(steps),
        "missing_steps": sum(s.value is None for s in steps),
    }
    with Progress(disable=not progress) as bar:
        task = bar.add_task("forecasting", total=len(steps))
        res = evaluate_online(
            steps=steps,
            horizons=list(horizons.values()),
            model_factory=forecaster_factory
            or _default_forecaster(domain, calendar=calendar, step=step),
            baselines=baselines_for(domain, step=step, tz=zone),
            on_step=lambda i: bar.update(task, completed=i + 1) if i % 500 == 0 else None,
            score_from=score_from,
        )
        bar.update(task, completed=len(steps))
        forecasts: dict[str, Any] = {}
        for label, h in horizons.items():
            if res[h].n == 0:
                forecasts[label] = {"n": 0, "note": "not enough history for the baselines"}
                continue
            errs = res[h].errors()
            model = errs[MODEL]
            baselines = {name: e for name, e in errs.items() if name != MODEL}
            forecasts[label] = {
                "n": res[h].n,
                "metrics": {name: e.as_dict() for name, e in errs.items()},
                "mae_ratio": {name: ratio(model.mae, e.mae) for name, e in baselines.items()},
                "cv_rmse_ratio": {
                    name: ratio(model.cv_rmse, e.cv_rmse) for name, e in baselines.items()
                },
                "strongest_baseline": min(baselines, key=lambda n: baselines[n].mae),
            }
        out["forecast"] = forecasts
        if has_labels:
            atask = bar.add_task("anomaly scores", total=measured)
            out["anomaly"] = evaluate_anomalies(
                readings,
                detector_factory or _default_detector(domain, calendar=calendar, step=step),
                on_row=lambda i: bar.update(atask, completed=i + 1) if i % 500 == 0 else None,
                fixed_threshold=fixed_threshold,
                threshold_source=threshold_source,
                score_from=score_from,
            )
            bar.update(atask, completed=measured)
        if windows is not None:
            bar.add_task("alerts (the service replayed)", total=None)
            out["alerts"] = evaluate_alerts(
                readings,
                domain=domain,
                calendar=calendar,
                labels=windows,
                step=step,
                score_from=score_from,
                clean=clean_readings,
            )
    if keep:
        out["_series"] = {label: res[h] for label, h in horizons.items()}
    return out


# Every forecast is scored beside every baseline, the value a week before included: nothing is
# scored (or plotted) in a file's first week.
FIRST_SCORED = timedelta(days=7)


def check_plot_week(
    readings: Sequence[Reading], *, week: datetime | None, score_from: datetime | None
) -> None:
    """ValueError unless the plotted week (``week``, or the last seven days) holds scored
    forecasts: checked before the run rather than found empty after it.

    >>> rows = [Reading(datetime(2024, 1, d, tzinfo=UTC), 1.0, None) for d in (1, 5)]
    >>> check_plot_week(rows, week=None, score_from=None)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: --plot: the file spans 4 days; nothing is plotted before its second week ...
    """
    first, last = readings[0].ts, readings[-1].ts
    scored_from = max(first + FIRST_SCORED, score_from or first)
    if last < first + FIRST_SCORED:
        raise ValueError(
            f"--plot: the file spans {(last - first) / DAY:.3g} days; nothing is plotted before "
            "its second week (the forecasts are scored beside the value a week before)"
        )
    if week is not None and not (scored_from < week + 7 * DAY and week <= last):
        raise ValueError(
            f"--plot-week {week.isoformat()} is outside the scored forecasts "
            f"({scored_from.isoformat()} .. {last.isoformat()}): no week to plot there"
        )


def plot(
    result: dict[str, Any],
    path: Path,
    *,
    week_of: datetime | None = None,
    horizon: str | None = None,
) -> Path:
    """A PNG of one week: actual, the model's forecast and the strongest baseline's.

    The week starts at ``week_of`` (default: the last seven days scored); ``horizon`` is one of
    the result's horizons (default: the first).
    """
    import matplotlib
    import matplotlib.dates

    matplotlib.use("Agg")  # files only: no display on a server
    import matplotlib.pyplot as plt

    series: dict[str, HorizonResult] = result["_series"]
    label = horizon or next(iter(series))
    if label not in series:
        raise ValueError(f"horizon must be one of {', '.join(series)}")
    res = series[label]
    if not res.targets:
        raise ValueError(f"no {label}-ahead forecast was scored: nothing to plot")
    start = week_of or (res.targets[-1] - timedelta(days=7))
    if start.tzinfo is None:
        start = start.replace(tzinfo=res.targets[0].tzinfo)
    end = start + timedelta(days=7)
    idx = [i for i, t in enumerate(res.targets) if start <= t < end]
    if not idx:
        raise ValueError(f"no scored forecast in the week from {start.isoformat()}")
    baseline = result["forecast"][label]["strongest_baseline"]
    # A missing reading is a break in the lines, not a straight segment across it.
    step = timedelta(minutes=result["step_minutes"])
    times: list[datetime] = []
    rows: list[tuple[float, float, float]] = []
    for i in idx:
        if times and res.targets[i] - times[-1] > step:
            times.append(times[-1] + step)
            rows.append((math.nan, math.nan, math.nan))
        times.append(res.targets[i])
        rows.append((res.actual[i], res.predictions[MODEL][i], res.predictions[baseline][i]))
    ts = matplotlib.dates.date2num(times)  # type: ignore[no-untyped-call]
    actual, model, base = zip(*rows, strict=True)
    fig, ax = plt.subplots(figsize=(12, 4), dpi=100)
    ax.plot(ts, actual, label="actual", color="black", linewidth=1.2)
    ax.plot(ts, model, label=f"model ({label} ahead)")
    ax.plot(ts, base, label=baseline_label(baseline, label), linestyle="--")
    ax.xaxis_date(tz=start.tzinfo)
    ax.set_title(f"{Path(result['path']).name}: week from {start:%Y-%m-%d}")
    ax.legend(loc="upper right")
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def baseline_label(name: str, horizon: str) -> str:
    """What a baseline predicts at a horizon, in words: at 24 h ahead, the last value known is
    the value of the same time the day before, not "the last value".

    >>> baseline_label("last_value", "24h")
    'last value known (24h before)'
    >>> baseline_label("previous_week", "1h")
    'same time the week before'
    """
    words = {
        "last_value": f"last value known ({horizon} before)",
        "previous_day": "same time the day before",
        "previous_week": "same time the week before",
        "time_of_week_mean": "mean of this time of the week",
    }
    return words.get(name, name)


def render(result: dict[str, Any]) -> str:
    """The report as plain text, one table per horizon."""
    lines = [
        f"{result['path']}: {result['readings']} readings, {result['first']} .. {result['last']}, "
        f"step {result['step_minutes']:g} min, {result['missing_steps']} missing steps",
    ]
    for label, fc in result["forecast"].items():
        lines.append("")
        if not fc["n"]:
            lines.append(f"{label} ahead: {fc['note']}")
            continue
        lines.append(f"{label} ahead ({fc['n']} forecasts; model/this = ratio of MAEs)")
        lines.append(f"  {'method':<34}{'MAE':>12}{'RMSE':>12}{'CV(RMSE)':>10}{'model/this':>12}")
        for name, m in fc["metrics"].items():
            rel = "" if name == MODEL else f"{fc['mae_ratio'][name]:>12}"
            shown = name if name == MODEL else baseline_label(name, label)
            lines.append(
                f"  {shown:<34}{m['mae']:>12.4g}{m['rmse']:>12.4g}{m['cv_rmse']:>10.1%}{rel}"
            )
    anomaly = result.get("anomaly")
    if anomaly:
        lines.append("")
        lines.append(f"anomalies: {anomaly['windows']} labelled windows")
        for key in ("nab_standard_file_optimised", "nab_standard_at_fixed_threshold"):
            if key in anomaly:
                lines.append(f"  {key.replace('_', ' ')}: {anomaly[key]}")
        for key in ("at_file_optimised_threshold", "at_fixed_threshold"):
            if key in anomaly:
                a = anomaly[key]
                origin = THRESHOLD_SOURCES.get(a.get("source", ""))
                lines.append(
                    f"  {key.replace('_', ' ')} ({a['threshold']:.10g}"
                    f"{'' if origin is None else ', ' + origin}): "
                    f"{a['windows_detected']} windows detected, "
                    f"{a['false_positive_readings']} false-positive readings"
                )
        if "note" in anomaly:
            lines.append(f"  {anomaly['note']}")
    alerts = result.get("alerts")
    if alerts:
        lines.append("")
        recall = "-" if alerts["recall"] is None else f"{alerts['recall']:.0%}"
        lines.append(
            f"alerts (the service replayed): {alerts['alerts']} opened, "
            f"{alerts['detected']}/{alerts['events']} labelled events detected ({recall}), "
            f"{alerts['false_alerts']} false ({alerts['false_alerts_per_device_month']} "
            "per device-month)"
        )
        lines.append(f"  {'kind':<24}{'events':>8}{'recall':>8}{'median delay':>14}")
        for kind, k in alerts["by_kind"].items():
            delay = "-" if k["median_delay_h"] is None else f"{k['median_delay_h']:g} h"
            lines.append(f"  {kind:<24}{k['events']:>8}{k['recall']:>8.0%}{delay:>14}")
        if "clean" in alerts:
            c = alerts["clean"]
            lines.append(
                f"  without the faults: {c['alerts']} alerts, "
                f"{c['alerts_per_device_month']} per device-month"
            )
    if "plot" in result:
        lines.append("")
        lines.append(f"plot: {result['plot']}")
    return "\n".join(lines)


# A month of one device's readings, for false alerts per device-month.
MONTH_MINUTES = 30.44 * 24 * 60


def register_figures(result: dict[str, Any]) -> dict[str, Any]:
    """The figures of an evaluation the public register shows (`townpulse evaluate --record`):

    - `recall`: labelled windows alerted in / windows;
    - `false_alerts_per_device_month`: false alarms per month of judged readings (one file is
      one device);
    - `forecast_error_ratio`: the model's MAE / the strongest baseline's, at the first horizon
      (with `baseline` and `horizon`).

    Anomaly figures at the threshold fixed beforehand when there is one (`--threshold`), else
    at the file-optimised one (`threshold_basis` says which).

    >>> register_figures({"step_minutes": 60, "forecast": {"1h": {"strongest_baseline": "b",
    ...     "mae_ratio": {"b": 0.8}}}, "anomaly": {"readings": 730, "windows": 4,
    ...     "at_file_optimised_threshold": {"windows_detected": 3, "false_alarms": 2}}})
    ... # doctest: +NORMALIZE_WHITESPACE
    {'forecast_error_ratio': 0.8, 'baseline': 'b', 'horizon': '1h', 'recall': 0.75,
     'false_alerts_per_device_month': 2.0015, 'threshold_basis': 'file_optimised'}
    """
    out: dict[str, Any] = {}
    for horizon, fc in result.get("forecast", {}).items():
        baseline = fc.get("strongest_baseline")
        if baseline is not None:
            out["forecast_error_ratio"] = round(fc["mae_ratio"][baseline], 4)
            out["baseline"], out["horizon"] = baseline, horizon
            break
    anomaly = result.get("anomaly") or {}
    basis = "fixed" if "at_fixed_threshold" in anomaly else "file_optimised"
    at = anomaly.get(f"at_{basis}_threshold")
    if at is not None:
        if anomaly["windows"]:
            out["recall"] = round(at["windows_detected"] / anomaly["windows"], 4)
        months = anomaly["readings"] * result["step_minutes"] / MONTH_MINUTES
        if months > 0:
            out["false_alerts_per_device_month"] = round(at["false_alarms"] / months, 4)
        out["threshold_basis"] = basis
    return out
