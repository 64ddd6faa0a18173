"""`townpulse evaluate`: check the models on a town's own history before trusting them."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from townpulse.stack import REPO


def _bench_evaluate() -> Any:
    try:
        from bench import evaluate as module
    except ImportError:
        # `bench/` lives in the repository, not in the installed package: an editable install
        # maps only shared/services/townpulse, so a checkout's root has to be put on the path.
        if not (REPO / "bench" / "evaluate.py").is_file():
            raise
        sys.path.insert(0, str(REPO))
        from bench import evaluate as module
    return module


def evaluate(
    path: Annotated[
        Path,
        typer.Argument(
            exists=True, dir_okay=False, readable=True, help="CSV: timestamp,value[,label]"
        ),
    ],
    domain: Annotated[
        str, typer.Option(help="energy, traffic or generic: sets horizons and baselines")
    ] = "energy",
    tz: Annotated[
        str, typer.Option(help="time zone of timestamps without an offset; local hours")
    ] = "UTC",
    as_json: Annotated[bool, typer.Option("--json", help="print the full result as JSON")] = False,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
) -> None:
    """Forecast and anomaly metrics of the project's models on a CSV (see docs/evaluate.md)."""
    bench = _bench_evaluate()
    try:
        result = bench.evaluate(domain, path, progress=progress, tz=tz)
    except ValueError as exc:  # CsvFormatError included: the user's file, not a bug
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(json.dumps(result, indent=2) if as_json else bench.render(result))
