"""Forecast quality of the project's forecaster on real history, online, against baselines.

    python -m bench.forecast.run energy     # -> bench/results/forecast_energy.json
    python -m bench.forecast.run traffic    # -> bench/results/forecast_traffic.json
    python -m bench.forecast.run all

The model is ``shared.ml.dayahead.make_forecaster(domain)`` -- what the domain services run (for
traffic, ``shared.ml.forecast.make_forecaster``'s model, which it hands over to).

Energy (12 Cambridge buildings, 2018-2021, hourly): hour-ahead and day-ahead forecasts against
previous-day and previous-week persistence, the first year learnt only (warm-up), the rest
scored. Targets (issue 6): <= 0.8x previous-day persistence's MAE and CV(RMSE), and hourly
CV(RMSE) <= 30% (ASHRAE Guideline 14's calibration bound). Summaries average the per-building
figures, so a small building counts as much as a big one.

The model learns each hour with the outdoor temperature observed then (Bedford); it forecasts
without the target hour's temperature (it only knows what it has observed: honest). Next to it,
on the same steps (issue #24 item 6): the same model without any temperature (a town without a
temperature source), the same model told the temperature actually observed at the target hour
("oracle": a perfect weather forecast, not achievable), and the model the service ran before
(`calendar_blend`).

Traffic (I-94, 2012-2018, hourly): the data is hourly, so the issue's "15-60 min ahead" is one
step, 60 minutes ahead; baseline: historical average by time of week (local time), plus the two
persistences for context. Target: <= 0.8x the time-of-week baseline's MAE.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.progress import Progress

from bench.common import RESULTS, command_line, data_dir, run_meta, write_result
from bench.forecast.data import TRAFFIC_TZ, energy_buildings, load_energy, load_traffic
from shared.ml.baselines import LastValue, TimeOfWeekMean, previous_day, previous_week
from shared.ml.calendar import TownCalendar
from shared.ml.dayahead import TEMPERATURE
from shared.ml.forecast import CalendarForecaster
from shared.ml.online import MODEL, Features, Predictor, Step, evaluate_online, learn, ratio

DEFAULT_FORECASTER = "shared.ml.dayahead:make_forecaster"
DEFAULT_WORKERS = 2
ENERGY_HORIZONS = {"1h": 1, "24h": 24}
TRAFFIC_HORIZONS = {"60min": 1}
TARGET_RATIO = 0.8
ASHRAE_CV_RMSE = 0.30


# The data sets' own towns: Cambridge (UK) for energy, the I-94 near Minneapolis for traffic.
# A French town's services run with the default calendar (Europe/Paris, French holidays).
DATA_CALENDARS = {
    "energy": TownCalendar("Europe/London", "GB"),
    "traffic": TownCalendar("America/Chicago", "US"),
}


def load_forecaster_factory(spec: str, domain: str) -> Callable[[], Predictor]:
    """``"module:function"`` -> a zero-argument factory calling ``function(domain)``.

    Factories that take a ``calendar`` get the data set's own (time zone, public holidays).
    """
    module, _, attr = spec.partition(":")
    make = getattr(importlib.import_module(module), attr or "make_forecaster")
    kwargs: dict[str, Any] = {}
    if domain in DATA_CALENDARS and "calendar" in inspect.signature(make).parameters:
        kwargs["calendar"] = DATA_CALENDARS[domain]

    def factory() -> Predictor:
        model: Predictor = make(domain, **kwargs)
        return model

    return factory


def _energy_hour_of_week() -> TimeOfWeekMean:
    return TimeOfWeekMean(tz=DATA_CALENDARS["energy"].tz, slot_minutes=60)


# The strongest simple baseline differs by horizon: an hour ahead, the last value; a day ahead,
# the same hour last week (or the hour-of-week mean).
ENERGY_BASELINES: dict[str, Callable[[], Predictor]] = {
    "last_value": LastValue,
    "previous_day": previous_day,
    "previous_week": previous_week,
    "hour_of_week_mean": _energy_hour_of_week,
}
# Issue 10's targets: per horizon, the baseline to beat and the ratio to reach (MAE and CV(RMSE)).
ENERGY_TARGETS = {"1h": ("last_value", 0.9), "24h": ("previous_week", 0.8)}
MIN_BUILDINGS = 9


class _Temperature:
    """A model as the bench runs it: which temperature it is told (issue #24 item 6).

    ``honest``: learns the temperature observed at each reading, forecasts without the target
    hour's (the model falls back on what it observed); ``none``: never told one; ``oracle``:
    also told the temperature observed at the target hour when forecasting.
    """

    def __init__(self, model: Any, *, mode: str) -> None:
        self.model, self.mode = model, mode

    @staticmethod
    def _without(x: Features) -> Features:
        return {k: v for k, v in x.items() if k != TEMPERATURE}

    def predict_one(self, x: Features) -> float | None:
        told = x if self.mode == "oracle" else self._without(x)
        value: float | None = self.model.predict_one(told)
        return value

    def learn_one(self, x: Features, y: float) -> None:
        learn(self.model, self._without(x) if self.mode == "none" else x, y)


def _told(factory: Callable[[], Any], mode: str) -> Callable[[], Predictor]:
    return lambda: _Temperature(factory(), mode=mode)


def _calendar_blend() -> CalendarForecaster:
    """The energy forecaster before issue #24 (the day-type expert blend)."""
    calendar = DATA_CALENDARS["energy"]
    return CalendarForecaster(domain="energy", timezone=calendar.timezone, country=calendar.country)


# The model told the temperature otherwise, and the previous model, next to it on the same steps.
ENERGY_VARIANTS = ("without_temperature", "oracle_temperature", "calendar_blend")


def _variants(factory: Callable[[], Any]) -> dict[str, Callable[[], Predictor]]:
    return {
        "without_temperature": _told(factory, "none"),
        "oracle_temperature": _told(factory, "oracle"),
        "calendar_blend": _told(_calendar_blend, "none"),
    }


def scored_from(steps: Sequence[Step]) -> datetime | None:
    """The first year is warm-up: scoring starts on the 1st of January after the first step."""
    if not steps:
        return None
    return datetime(steps[0].ts.astimezone(UTC).year + 1, 1, 1, tzinfo=UTC)


def _traffic_time_of_week() -> TimeOfWeekMean:
    return TimeOfWeekMean(tz=TRAFFIC_TZ, slot_minutes=60)


def evaluate_building(root: Path, building: str, forecaster_spec: str) -> dict[str, Any]:
    """One building, both horizons: metrics per method and the model's ratios to baselines."""
    started = time.perf_counter()
    steps = load_energy(root, building)
    factory = load_forecaster_factory(forecaster_spec, "energy")
    start = scored_from(steps)
    res = evaluate_online(
        steps=steps,
        horizons=list(ENERGY_HORIZONS.values()),
        model_factory=_told(factory, "honest"),
        baselines={**ENERGY_BASELINES, **_variants(factory)},
        score_from=start,
    )
    out: dict[str, Any] = {
        "steps": len(steps),
        "missing": sum(s.value is None for s in steps),
        "scored_from": None if start is None else start.isoformat(),
        "temperature_hours": sum(TEMPERATURE in s.features for s in steps),
    }
    for label, h in ENERGY_HORIZONS.items():
        errs = res[h].errors()
        model = errs[MODEL]
        baseline = ENERGY_TARGETS[label][0]
        out[label] = {
            "n": res[h].n,
            "unscored": res[h].unscored,
            "metrics": {name: e.as_dict() for name, e in errs.items()},
            **{
                f"{metric}_ratio_{name}": ratio(getattr(model, metric), getattr(errs[name], metric))
                for name in ENERGY_BASELINES
                for metric in ("mae", "cv_rmse")
            },
            # Each variant against the horizon's target baseline, as the model is.
            "variants": {
                v: {
                    f"{metric}_ratio_{baseline}": ratio(
                        getattr(errs[v], metric), getattr(errs[baseline], metric)
                    )
                    for metric in ("mae", "cv_rmse")
                }
                for v in ENERGY_VARIANTS
            },
        }
    out["seconds"] = round(time.perf_counter() - started, 1)
    return out


def _mean(values: Sequence[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return round(statistics.fmean(vals), 4) if vals else None


def _variant_summary(
    rows: list[dict[str, float | None]], *, baseline: str, target: float
) -> dict[str, Any]:
    mae = [r[f"mae_ratio_{baseline}"] for r in rows]
    cv = [r[f"cv_rmse_ratio_{baseline}"] for r in rows]
    return {
        "mean_mae_ratio": _mean(mae),
        "mean_cv_rmse_ratio": _mean(cv),
        "buildings_within": sum(
            1
            for a, b in zip(mae, cv, strict=True)
            if a is not None and b is not None and a <= target and b <= target
        ),
        "buildings_mae_within": sum(1 for a in mae if a is not None and a <= target),
    }


def summarise_energy(per_building: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per horizon: mean ratios to every baseline, and the issue's target on its baseline."""
    summary: dict[str, Any] = {}
    for label in ENERGY_HORIZONS:
        rows = [b[label] for b in per_building.values()]
        methods = rows[0]["metrics"].keys()
        model_cv = [r["metrics"][MODEL]["cv_rmse"] for r in rows]
        s: dict[str, Any] = {
            "buildings": len(rows),
            "mean_cv_rmse": {m: _mean([r["metrics"][m]["cv_rmse"] for r in rows]) for m in methods},
            "median_cv_rmse": {
                m: round(statistics.median(r["metrics"][m]["cv_rmse"] for r in rows), 4)
                for m in methods
            },
            "mean_ratios": {
                f"{metric}_ratio_{name}": _mean([r[f"{metric}_ratio_{name}"] for r in rows])
                for name in ENERGY_BASELINES
                for metric in ("mae", "cv_rmse")
            },
            "buildings_cv_rmse_le_30pct": sum(1 for cv in model_cv if cv <= ASHRAE_CV_RMSE),
        }
        baseline, target = ENERGY_TARGETS[label]
        mae = [r[f"mae_ratio_{baseline}"] for r in rows]
        cv = [r[f"cv_rmse_ratio_{baseline}"] for r in rows]
        within = [
            a is not None and b is not None and a <= target and b <= target
            for a, b in zip(mae, cv, strict=True)
        ]
        mean_mae, mean_cv = _mean(mae), _mean(cv)
        # Hour ahead: MAE on every building; day ahead: MAE and CV(RMSE), mean and >= 9 of 12.
        if label == "1h":
            met = all(a is not None and a <= target for a in mae)
        else:
            met = (
                mean_mae is not None
                and mean_cv is not None
                and mean_mae <= target
                and mean_cv <= target
                and sum(within) >= MIN_BUILDINGS
            )
        s["target"] = {
            "baseline": baseline,
            "ratio": target,
            "mean_mae_ratio": mean_mae,
            "mean_cv_rmse_ratio": mean_cv,
            "worst_mae_ratio": max((a for a in mae if a is not None), default=None),
            "buildings_within": sum(within),
            # Issue #24 item 6 counts the MAE ratio alone.
            "buildings_mae_within": sum(1 for a in mae if a is not None and a <= target),
            "met": met,
        }
        s["variants"] = {
            v: _variant_summary([r["variants"][v] for r in rows], baseline=baseline, target=target)
            for v in ENERGY_VARIANTS
            if all("variants" in r for r in rows)
        }
        summary[label] = s
    return summary


def run_energy(
    *, root: Path, forecaster_spec: str, workers: int, progress: bool = True
) -> dict[str, Any]:
    buildings = energy_buildings(root)
    per_building: dict[str, dict[str, Any]] = {}
    with Progress(disable=not progress) as bar:
        task = bar.add_task("energy buildings", total=len(buildings))
        if workers <= 1:
            for b in buildings:
                per_building[b] = evaluate_building(root, b, forecaster_spec)
                bar.advance(task)
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                futures = {
                    pool.submit(evaluate_building, root, b, forecaster_spec): b for b in buildings
                }
                for fut in as_completed(futures):
                    per_building[futures[fut]] = fut.result()
                    bar.advance(task)
    return {
        "benchmark": "forecast_energy",
        "forecaster": forecaster_spec,
        "domain": "energy",
        "dataset": "Cambridge University Estates, 12 buildings, 2018-2021, hourly kWh",
        "horizons": ENERGY_HORIZONS,
        "targets": {
            **{label: {"baseline": b, "ratio": r} for label, (b, r) in ENERGY_TARGETS.items()},
            "cv_rmse": ASHRAE_CV_RMSE,
        },
        "summary": summarise_energy(per_building),
        "per_building": dict(sorted(per_building.items(), key=lambda kv: (len(kv[0]), kv[0]))),
    }


def run_traffic(*, root: Path, forecaster_spec: str, progress: bool = True) -> dict[str, Any]:
    started = time.perf_counter()
    steps = load_traffic(root)
    with Progress(disable=not progress) as bar:
        task = bar.add_task("traffic hours", total=len(steps))

        def tick(i: int) -> None:
            if i % 1000 == 999 or i == len(steps) - 1:
                bar.update(task, completed=i + 1)

        res = evaluate_online(
            steps=steps,
            horizons=list(TRAFFIC_HORIZONS.values()),
            model_factory=load_forecaster_factory(forecaster_spec, "traffic"),
            baselines={
                "time_of_week_mean": _traffic_time_of_week,
                "previous_day": previous_day,
                "previous_week": previous_week,
            },
            on_step=tick,
        )
    horizons: dict[str, Any] = {}
    for label, h in TRAFFIC_HORIZONS.items():
        errs = res[h].errors()
        mae_ratio = ratio(errs[MODEL].mae, errs["time_of_week_mean"].mae)
        horizons[label] = {
            "n": res[h].n,
            "unscored": res[h].unscored,
            "metrics": {name: e.as_dict() for name, e in errs.items()},
            "mae_ratio_time_of_week_mean": mae_ratio,
            "meets_target": mae_ratio is not None and mae_ratio <= TARGET_RATIO,
        }
    return {
        "benchmark": "forecast_traffic",
        "forecaster": forecaster_spec,
        "domain": "traffic",
        "dataset": "Metro Interstate Traffic Volume (I-94 westbound, ATR 301), 2012-2018, hourly",
        "note": "hourly data: the issue's 15-60 min ahead is evaluated as one step, 60 min ahead",
        "steps": len(steps),
        "missing": sum(s.value is None for s in steps),
        "targets": {"mae_ratio_to_time_of_week_mean": TARGET_RATIO},
        "horizons": horizons,
        "seconds": round(time.perf_counter() - started, 1),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.forecast.run", description=__doc__)
    parser.add_argument("domain", choices=["energy", "traffic", "all"])
    parser.add_argument("--data-dir", help="shared data folder (default ../shared/data)")
    parser.add_argument("--forecaster", default=DEFAULT_FORECASTER, help="module:factory")
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS)
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    parser.add_argument("--no-progress", action="store_true")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    meta = run_meta(command=command_line("bench.forecast.run", argv), data=data_dir(args.data_dir))
    root = data_dir(args.data_dir)
    progress = not args.no_progress

    if args.domain in ("energy", "all"):
        if not (root / "energy").is_dir():
            print(f"no energy data under {root}: skipped")
        else:
            out = run_energy(
                root=root, forecaster_spec=args.forecaster, workers=args.workers, progress=progress
            )
            path = write_result(
                "forecast_energy",
                {"meta": meta, **out},
                results_dir=args.results_dir,
            )
            for label, s in out["summary"].items():
                print(
                    f"energy {label}: mean CV(RMSE) model {s['mean_cv_rmse'][MODEL]:.3f}, "
                    f"target {s['target']} -> {path}"
                )
    if args.domain in ("traffic", "all"):
        if not (root / "traffic").is_dir():
            print(f"no traffic data under {root}: skipped")
        else:
            out = run_traffic(root=root, forecaster_spec=args.forecaster, progress=progress)
            path = write_result(
                "forecast_traffic",
                {"meta": meta, **out},
                results_dir=args.results_dir,
            )
            for label, hz in out["horizons"].items():
                print(
                    f"traffic {label}: MAE model {hz['metrics'][MODEL]['mae']}, "
                    f"time-of-week mean {hz['metrics']['time_of_week_mean']['mae']}, "
                    f"ratio {hz['mae_ratio_time_of_week_mean']} -> {path}"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
