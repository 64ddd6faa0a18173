"""`townpulse evaluate`: check the models on a town's own history before trusting them."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from townpulse import evaluation


def _date(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise typer.BadParameter(f"{option}: not an ISO 8601 date: {text!r}") from exc


def evaluate(
    path: Annotated[
        Path,
        typer.Argument(
            exists=True, dir_okay=False, readable=True, help="CSV: timestamp,value[,label]"
        ),
    ],
    domain: Annotated[
        str, typer.Option(help="energy, traffic or generic: sets the model and the horizons")
    ] = "energy",
    tz: Annotated[
        str,
        typer.Option(
            help="the town's time zone: reads timestamps without an offset, and the "
            "models' local hours"
        ),
    ] = "UTC",
    holidays: Annotated[
        str,
        typer.Option(
            help="whose public holidays the models know: any country of the holidays package "
            "(FR, DE, US...), with a subdivision after a hyphen (FR-57, DE-BY), or none"
        ),
    ] = "none",
    score_from: Annotated[
        str | None,
        typer.Option(help="learn from everything, judge only from this date (ISO 8601) on"),
    ] = None,
    threshold: Annotated[
        float | None,
        typer.Option(
            help="anomaly threshold fixed beforehand (labelled files), e.g. the NAB run's: "
            "scored as given, a fair figure beside the file-optimised one"
        ),
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option(help="write a PNG of one week: actual, model and strongest baseline"),
    ] = None,
    plot_week: Annotated[
        str | None, typer.Option(help="first day of the plotted week (default: the last week)")
    ] = None,
    plot_horizon: Annotated[
        str | None, typer.Option(help="horizon to plot, e.g. 1h (default: the first)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
) -> None:
    """Forecast and anomaly metrics of the project's models on a CSV (see docs/evaluate.md)."""
    start = _date(score_from, "--score-from")
    week = _date(plot_week, "--plot-week")
    if plot is None and (plot_week or plot_horizon):
        raise typer.BadParameter("--plot-week and --plot-horizon need --plot FILE.png")
    if plot is not None:
        # Checked now: the run may take minutes, and its result would be lost at the end.
        if plot.suffix.lower() != ".png":
            raise typer.BadParameter(f"--plot: a .png file, not {plot}")
        if not plot.resolve().parent.is_dir():
            raise typer.BadParameter(f"--plot: no directory {plot.resolve().parent}")
    try:
        result: dict[str, Any] = evaluation.evaluate(
            domain,
            path,
            progress=progress,
            tz=tz,
            holidays=holidays,
            score_from=start,
            fixed_threshold=threshold,
            keep=plot is not None,
            plot_horizon=plot_horizon,
            plot_week=week,
        )
        if plot is not None:
            evaluation.plot(result, plot, week_of=week, horizon=plot_horizon)
    except ValueError as exc:  # CsvFormatError included: the user's file, not a bug
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    result.pop("_series", None)
    if plot is not None:
        result["plot"] = str(plot.resolve())
    typer.echo(json.dumps(result, indent=2) if as_json else evaluation.render(result))
