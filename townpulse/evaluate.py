"""`townpulse evaluate`: check the models on a town's own history before trusting them."""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from shared.townholidays import holiday_regions
from townpulse import evaluation, operator_api

# The NAB corpus run's results (`python -m bench.nab.run`): `--threshold nab` reads the threshold
# it chose there (a file of this checkout, read, never imported).
NAB_RESULTS = Path(__file__).resolve().parents[1] / "bench" / "results" / "nab.json"


def _date(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise typer.BadParameter(f"{option}: not an ISO 8601 date: {text!r}") from exc


def threshold_of(text: str | None, *, nab_results: Path | None = None) -> tuple[float | None, str]:
    """``--threshold``: a score in [0, 1] the user fixed, or ``nab``, the standard profile's
    threshold the NAB corpus run chose; with where it came from (``THRESHOLD_SOURCES``).

    >>> threshold_of("0.5")
    (0.5, 'user')
    >>> threshold_of("2")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    click.exceptions.BadParameter: --threshold: a score in [0, 1], or 'nab' (...), not '2'
    """
    if text is None:
        return None, "user"
    if text.strip().lower() == "nab":
        nab_results = nab_results or NAB_RESULTS
        value = evaluation.nab_corpus_threshold(nab_results)
        if value is None:
            raise typer.BadParameter(
                f"--threshold nab: no NAB run's threshold in {nab_results} "
                "(`python -m bench.nab.run` writes it)"
            )
        return value, "nab_corpus"
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= 1.0:  # NaN included
        raise typer.BadParameter(
            "--threshold: a score in [0, 1], or 'nab' (the NAB corpus run's threshold), "
            f"not {text!r}"
        )
    return value, "user"


def _list_holidays(value: bool) -> None:
    """``--list-holidays``: every country code and its subdivisions, then exit."""
    if not value:
        return
    for country, subdivs in holiday_regions().items():
        typer.echo(f"{country}: {', '.join(subdivs)}" if subdivs else country)
    raise typer.Exit()


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
            "(FR, DE, US...), with a subdivision after a hyphen (FR-57, DE-BY), or none "
            "(--list-holidays lists them)"
        ),
    ] = "none",
    list_holidays: Annotated[
        bool,
        typer.Option(
            "--list-holidays",
            is_eager=True,
            expose_value=False,
            callback=_list_holidays,
            help="list the countries and subdivisions --holidays accepts, and exit",
        ),
    ] = False,
    score_from: Annotated[
        str | None,
        typer.Option(help="learn from everything, judge only from this date (ISO 8601) on"),
    ] = None,
    threshold: Annotated[
        str | None,
        typer.Option(
            metavar="T|nab",
            help="anomaly threshold fixed beforehand (labelled files): a score in [0, 1], or "
            "nab for the one the NAB corpus run chose (bench/results/nab.json); a fair figure "
            "beside the file-optimised one, reported with where it came from",
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
    labels: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            readable=True,
            help="CSV start,end[,kind] of known faults: replays the energy service and its "
            "alerts on the file and scores the alerts (recall, delay, false alerts)",
        ),
    ] = None,
    clean: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            readable=True,
            help="with --labels: the same device's history without those faults "
            "(alerts per device-month on it)",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
    record: Annotated[
        str | None,
        typer.Option(
            help="record the figures in the public register under this algorithm (e.g. "
            "energy.consumption_anomaly), through the operator API of `townpulse up`'s stack"
        ),
    ] = None,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
) -> None:
    """Forecast and anomaly metrics of the project's models on a CSV (see docs/evaluate.md)."""
    # Every option is checked before the run, which may take minutes: a mistake found after it
    # would cost the whole run (here the options alone, in `evaluation.evaluate` those that
    # depend on the file).
    if record is not None and ALGORITHM.fullmatch(record) is None:
        raise typer.BadParameter(f"--record: not an algorithm id: {record!r}")
    fixed, source = threshold_of(threshold)
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
        if not os.access(plot.resolve().parent, os.W_OK):
            raise typer.BadParameter(f"--plot: cannot write in {plot.resolve().parent}")
    declared = None if record is None else _registered(record, path)
    try:
        result: dict[str, Any] = evaluation.evaluate(
            domain,
            path,
            progress=progress,
            tz=tz,
            holidays=holidays,
            score_from=start,
            fixed_threshold=fixed,
            threshold_source=source,
            keep=plot is not None,
            plot_horizon=plot_horizon,
            plot_week=week,
            labels=labels,
            clean=clean,
        )
    except ValueError as exc:  # CsvFormatError included: the user's file, not a bug
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    failed = None
    if plot is not None:
        try:
            evaluation.plot(result, plot, week_of=week, horizon=plot_horizon)
            result["plot"] = str(plot.resolve())
        except (ValueError, OSError) as exc:
            # Checked before the run as far as the file tells: the report is printed anyway.
            failed = exc
    result.pop("_series", None)
    typer.echo(json.dumps(result, indent=2) if as_json else evaluation.render(result))
    if failed is not None:
        typer.echo(f"error: --plot: {failed}", err=True)
        raise typer.Exit(2)
    if record is not None and declared is not None:
        _record(record, declared, result, path)


# The register's algorithm ids (shared/algorithms.py): `<service>.<name>`.
ALGORITHM = re.compile(r"[a-z][a-z0-9_]*\.[a-z0-9_.-]{1,80}")


FILES = re.compile(r"\.(csv|png)$", re.IGNORECASE)


def public_command(args: list[str]) -> str:
    """The command as the register publishes it: files by their name only, so no directory of
    the machine it ran on is published.

    >>> public_command(["evaluate", "--tz", "Europe/Paris", "/home/ops/data/m.csv",
    ...                 "--plot=/tmp/w.png"])
    'townpulse evaluate --tz Europe/Paris m.csv --plot=w.png'
    """

    def name(arg: str) -> str:
        option, eq, value = arg.partition("=")
        if eq and option.startswith("--"):
            return f"{option}={name(value)}"
        # Files (the data set, the plot), not time zones such as Europe/Paris.
        return re.split(r"[/\\]", arg)[-1] if FILES.search(arg) else arg

    return shlex.join(["townpulse", *(name(a) for a in args)])


# What a run without a label column can measure (the anomaly figures need labels).
UNLABELLED_FIGURES = frozenset({"forecast_error_ratio"})


def _registered(algorithm: str, path: Path) -> list[str]:
    """Before the run: the figures the register declares for `algorithm`, from the running
    stack's operator API; exit 1 if the stack does not answer, the algorithm is not in the
    register, or a file without labels cannot measure any of its figures."""
    try:
        applies = operator_api.call("GET", "/register/", params={"lang": "en"})
    except (httpx.HTTPError, OSError) as exc:  # OSError: the stack's admin key file
        typer.echo(f"error: --record: the operator API does not answer ({exc})", err=True)
        raise typer.Exit(1) from exc
    declared = {a["id"]: a["quality_figures"] for a in applies["algorithms"]}
    if algorithm not in declared:
        typer.echo(f"error: {algorithm} is not in the register: {sorted(declared)}", err=True)
        raise typer.Exit(1)
    figures: list[str] = declared[algorithm]
    if not UNLABELLED_FIGURES & set(figures) and not _has_labels(path):
        typer.echo(
            f"error: without a label column, this run would have measured none of {figures}",
            err=True,
        )
        raise typer.Exit(1)
    return figures


def _has_labels(path: Path) -> bool:
    try:
        return any(r.label is not None for r in evaluation.read_readings(path))
    except ValueError:
        return True  # a bad file: `evaluation.evaluate` says what is wrong with it


def _record(algorithm: str, declared: list[str], result: dict[str, Any], path: Path) -> None:
    """PUT the run's figures to the register: the figures that apply to `algorithm` only (a
    forecast has no recall), so the API's check of what applies is the one that counts."""
    figures = evaluation.register_figures(result)
    kept = {k: v for k, v in figures.items() if k in declared}
    if not kept:
        typer.echo(f"error: this run measured none of {declared}", err=True)
        raise typer.Exit(1)
    if "forecast_error_ratio" in kept:
        kept |= {"baseline": figures["baseline"], "horizon": figures["horizon"]}
    if "threshold_basis" in figures and kept.keys() & {"recall", "false_alerts_per_device_month"}:
        kept["threshold_basis"] = figures["threshold_basis"]
    body = {
        "dataset": path.name[:200],
        "command": public_command(sys.argv[1:])[:1000],
        **kept,
    }
    stored = operator_api.call("PUT", f"/v1/register/quality/{algorithm}", json=body)
    typer.echo(f"recorded in the register: {algorithm} {stored['figures']}", err=True)
