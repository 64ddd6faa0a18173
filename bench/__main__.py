"""Run every quality benchmark, then rebuild BENCHMARKS.md: ``python -m bench`` (``make bench``).

Each step can be run on its own: ``python -m bench.nab.run``, ``python -m bench.nab.compare``,
``python -m bench.forecast.run all``, ``python -m bench.waste_time_to_full``, ``python -m
bench.waste_other_towns``, ``python -m bench.traffic_forecast_sim``, ``python -m
bench.simulated_town``, ``python -m bench.report``.
Extra arguments (e.g. ``--data-dir``) go to the benchmarks.
"""

from __future__ import annotations

import sys

from bench import (
    report,
    simulated_town,
    traffic_forecast_sim,
    waste_other_towns,
    waste_time_to_full,
)
from bench.forecast import run as forecast_run
from bench.nab import compare as nab_compare
from bench.nab import run as nab_run


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    data = (
        args[args.index("--data-dir") : args.index("--data-dir") + 2]
        if "--data-dir" in args
        else []
    )
    status = nab_run.main(args)
    status = status or nab_compare.main(data)
    status = status or forecast_run.main(["all", *args])
    # The simulated-town benchmarks take no data folder.
    status = status or waste_time_to_full.main([])
    status = status or waste_other_towns.main([])
    status = status or traffic_forecast_sim.main([])
    status = status or simulated_town.main([])
    status = status or report.main(data)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
