"""Traffic one-hour-ahead forecast error on simulated counters, against the historical average
by time of week.

    python -m bench.traffic_forecast_sim          # -> bench/results/traffic_forecast_sim.json
    python -m bench.traffic_forecast_sim --counters 10 --weeks 6

The simulated town's counters (rush hours, weekend shapes, French public holidays, tourist
roads; relative jitter plus Poisson counting noise) run through the traffic service's own
processor (`services.traffic.domain.counter.TrafficProcessor`), reading by reading. At each
reading the service issues its forecast of the next four 15-minute steps; each is scored when
its target's count arrives. The baseline learns the same readings: the mean of all past counts
in the same weekly 15-minute slot (local time), `shared.ml.baselines.TimeOfWeekMean` (the
baseline of the real-data benchmark, `python -m bench.forecast.run traffic`). Only targets that
both could predict, after the warm-up, are scored.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import RESULTS, command_line, run_meta, write_result
from services.traffic.domain.counter import CounterState, ForecastRow, TrafficProcessor
from shared.ml.baselines import TimeOfWeekMean
from shared.ml.calendar import PARIS
from shared.schemas import Reading
from townpulse.simulator.readings import iter_readings
from townpulse.simulator.town import build_town

HORIZONS_MIN = (15, 30, 45, 60)
TARGET_RATIO = 0.8


def run(*, counters: int, weeks: int, warmup_weeks: int, seed: int) -> dict[str, Any]:
    started = time.perf_counter()
    town = build_town(energy=0, waste=0, traffic=counters, seed=seed)
    start = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday; Easter and May holidays follow
    end = start + timedelta(weeks=weeks)
    scored_from = start + timedelta(weeks=warmup_weeks)
    proc = TrafficProcessor()
    states: dict[str, CounterState] = {}
    baselines: dict[str, TimeOfWeekMean] = {}
    # (device, target) -> horizon minutes -> (model, baseline)
    pending: dict[tuple[str, datetime], dict[int, tuple[float, float]]] = {}
    errors: dict[int, dict[str, list[float]]] = {
        h: {"model": [], "time_of_week_mean": [], "actual": []} for h in HORIZONS_MIN
    }
    for r in iter_readings(town, start=start, end=end):
        dev = r.device.id
        state = states.get(dev)
        if state is None:
            state = states[dev] = proc.new_state(dev)
            baselines[dev] = TimeOfWeekMean(tz=PARIS, slot_minutes=15)
        y = float(r.metrics["vehicles"])
        for h, (model, base) in pending.pop((dev, r.ts), {}).items():
            if r.ts >= scored_from:
                errors[h]["model"].append(model - y)
                errors[h]["time_of_week_mean"].append(base - y)
                errors[h]["actual"].append(y)
        readings = [Reading(ts=r.ts, metric=k, value=v) for k, v in r.metrics.items()]
        effects = proc.process(state, device_id=dev, readings=readings)
        baselines[dev].learn_one({"ts": r.ts}, y)
        for row in effects.rows:
            if not isinstance(row, ForecastRow):
                continue
            h = round((row.target_ts - row.issued_at) / timedelta(minutes=1))
            guess = baselines[dev].predict_one({"ts": row.target_ts})
            if h in errors and guess is not None:
                pending.setdefault((dev, row.target_ts), {})[h] = (row.expected, guess)

    def metrics(errs: list[float], actual: list[float]) -> dict[str, float]:
        mae = statistics.fmean(abs(e) for e in errs)
        return {
            "mae": round(mae, 3),
            "rmse": round(math.sqrt(statistics.fmean(e * e for e in errs)), 3),
            "wape": round(mae / statistics.fmean(actual), 4),
        }

    horizons: dict[str, Any] = {}
    for h, e in errors.items():
        m = {name: metrics(e[name], e["actual"]) for name in ("model", "time_of_week_mean")}
        ratio = round(m["model"]["mae"] / m["time_of_week_mean"]["mae"], 4)
        horizons[f"{h}min"] = {
            "n": len(e["actual"]),
            "metrics": m,
            "mae_ratio_time_of_week_mean": ratio,
        }
    return {
        "benchmark": "traffic_forecast_sim",
        "setup": {
            "counters": counters,
            "weeks": weeks,
            "warmup_weeks": warmup_weeks,
            "seed": seed,
            "start": start.isoformat(),
            "step_min": 15,
        },
        "model": "services.traffic.domain.counter.TrafficProcessor (WeeklyProfile + ResidualAR)",
        "baseline": "shared.ml.baselines.TimeOfWeekMean(tz=Europe/Paris, slot_minutes=15)",
        "horizons": horizons,
        "note": (
            "the simulator's noise is independent from one interval to the next, so the "
            "time-of-week mean is close to the best possible forecast here; the margin "
            "comes from pooling workdays while a weekday has few weeks, and holidays"
        ),
        "seconds": round(time.perf_counter() - started, 1),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.traffic_forecast_sim", description=__doc__
    )
    parser.add_argument("--counters", type=int, default=25)
    parser.add_argument("--weeks", type=int, default=8)
    parser.add_argument("--warmup-weeks", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    meta = run_meta(command=command_line("bench.traffic_forecast_sim", argv))
    out = run(
        counters=args.counters, weeks=args.weeks, warmup_weeks=args.warmup_weeks, seed=args.seed
    )
    path = write_result("traffic_forecast_sim", {"meta": meta, **out}, results_dir=args.results_dir)
    hz = out["horizons"]["60min"]
    print(
        f"traffic 60 min ahead (simulated): MAE {hz['metrics']['model']['mae']} vs "
        f"time-of-week mean {hz['metrics']['time_of_week_mean']['mae']}, ratio "
        f"{hz['mae_ratio_time_of_week_mean']} -> {path}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
