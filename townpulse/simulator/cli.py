"""`townpulse simulate`: the command-line front of the live runner.

The main CLI mounts it with `app.command("simulate")(simulate)`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer

from townpulse.simulator.durations import parse_duration
from townpulse.simulator.events import EVENT_KINDS, EVENT_SPECS, parse_kinds
from townpulse.simulator.runner import (
    CATCH_UP_STEPS,
    LORAWAN_BINS,
    LORAWAN_INTEGRATION,
    LORAWAN_METERS,
    RunnerConfig,
    run,
)
from townpulse.simulator.town import ID_PREFIX_RE, Domain

# What `townpulse up` runs: a town with fifteen days of history, so that its models have seen
# every day type and hour on three days (shared/ml/warmup.py) before the first console is seen;
# labelled events in the last two days of that history, after the warm-up; no history published
# twice across restarts. Then it follows the wall clock. The speed (a simulated day per second)
# is no longer what bounds the backfill: the history goes in blocks of steps, each sent once
# the previous one is acknowledged, so TownPulse's pace sets the simulator's (README, "first
# run", and bench/first_run.py say how long it takes).
LIVING_TOWN_ARGS = (
    "--backfill",
    "15d",
    "--speed",
    "86400",
    "--inject",
    "all",
    "--inject-after",
    "13d",
    "--resume",
)


def _duration(value: str) -> str:
    # Validate early so typer reports a bad value as a usage error.
    try:
        parse_duration(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    return value


def _optional_duration(value: str | None) -> str | None:
    return None if value is None else _duration(value)


def _kinds(value: str) -> str:
    try:
        parse_kinds(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    return value


def _id_prefix(value: str) -> str:
    if not ID_PREFIX_RE.match(value):
        raise typer.BadParameter("letters, digits, '_', '.' and '-' only (at most 40)")
    return value


def _read_key(path: Path) -> str:
    try:
        key = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise typer.BadParameter(
            f"cannot read the admin API key file {path}: {exc.strerror}"
        ) from None
    if not key:
        raise typer.BadParameter(f"the admin API key file {path} is empty")
    return key


def simulate(
    ctx: typer.Context,
    energy: Annotated[int, typer.Option(min=0, help="Number of building energy meters.")] = 40,
    waste: Annotated[int, typer.Option(min=0, help="Number of waste bins.")] = 150,
    traffic: Annotated[int, typer.Option(min=0, help="Number of traffic counters.")] = 25,
    lighting: Annotated[int, typer.Option(min=0, help="Number of public lighting cabinets.")] = 20,
    speed: Annotated[
        float,
        typer.Option(min=1.0, help="Simulated seconds per wall-clock second while catching up."),
    ] = 1.0,
    backfill: Annotated[
        str,
        typer.Option(
            callback=_duration,
            help="Start this far in the past, e.g. 6h, 2d (at most what the gateway takes, "
            "TOWNPULSE_MAX_AGE_S, less an hour).",
        ),
    ] = "0",
    duration: Annotated[
        str | None,
        typer.Option(
            callback=_optional_duration,
            help="Stop after this much simulated time (default: run until stopped).",
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the town and its events.")] = 42,
    inject: Annotated[
        str,
        typer.Option(
            callback=_kinds,
            help=f"Comma-separated events to inject, or 'all': {', '.join(EVENT_KINDS)}.",
        ),
    ] = "",
    inject_after: Annotated[
        str,
        typer.Option(
            callback=_duration,
            help="Injected events start this long after the backfill's start (the models' "
            "warm-up), e.g. 13d.",
        ),
    ] = "0",
    events_out: Annotated[
        Path | None,
        typer.Option(
            help="JSON-lines file the labelled events are appended to "
            "(default: RUN_DIR/simulator/events.jsonl)."
        ),
    ] = None,
    api_url: Annotated[str, typer.Option(envvar="API_URL", help="Operator API base URL.")] = (
        "http://127.0.0.1:8000"
    ),
    admin_api_key_file: Annotated[
        Path | None,
        typer.Option(envvar="ADMIN_API_KEY_FILE", help="File holding the admin API key."),
    ] = None,
    mqtt_host: Annotated[
        str | None,
        typer.Option(envvar="MQTT_HOST", help="Broker host (default: as returned by the API)."),
    ] = None,
    mqtt_port: Annotated[
        int | None,
        typer.Option(envvar="MQTT_PORT", help="Broker port (default: as returned by the API)."),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            help="Start after the last step a previous run published (within --backfill)."
        ),
    ] = False,
    run_dir: Annotated[
        Path,
        typer.Option(
            envvar="TOWNPULSE_RUN_DIR", help="Stack run directory (credentials are kept there)."
        ),
    ] = (Path(".run")),
    lorawan_bins: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Share of the bins that are Milesight EM310-UDL sensors behind a LoRaWAN "
            "network server, pushed as ChirpStack uplinks to the API's HTTP ingest (0: none).",
        ),
    ] = LORAWAN_BINS,
    lorawan_meters: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Share of the energy meters read by Milesight EM300-DI pulse counters behind "
            "that network server (0: none).",
        ),
    ] = LORAWAN_METERS,
    lorawan_raw: Annotated[
        bool,
        typer.Option(
            "--lorawan-raw/--lorawan-decoded",
            help="Send only the frames' bytes, for TownPulse to decode with the codecs it "
            "imports from the Device Repository (default: the network server adds its own "
            "decoded object).",
        ),
    ] = False,
    lorawan_integration: Annotated[
        str,
        typer.Option(help="Id of the ChirpStack HTTP integration the network server pushes to."),
    ] = LORAWAN_INTEGRATION,
    id_prefix: Annotated[
        str,
        typer.Option(
            callback=_id_prefix,
            help="Put before every device id: a second town beside the first.",
        ),
    ] = "",
    catch_up_steps: Annotated[
        int,
        typer.Option(
            min=1,
            max=96,
            envvar="TOWNPULSE_SIM_CATCH_UP_STEPS",
            help="While catching up, send at most this many steps already due together: one "
            "SenML pack per MQTT device, one push of uplinks (1: a step at a time, one message "
            "per reading).",
        ),
    ] = CATCH_UP_STEPS,
    ingest_url: Annotated[
        str | None,
        typer.Option(
            help="Base URL the LoRaWAN network server pushes its uplinks to (default: the API's, "
            "which forwards them to the gateway; a gateway's URL skips that hop).",
        ),
    ] = None,
) -> None:
    """Simulate the town's sensors and publish their readings over MQTT (and, for its LoRaWAN
    devices, as a ChirpStack network server's HTTP integration)."""
    if admin_api_key_file is None:
        raise typer.BadParameter("set ADMIN_API_KEY_FILE or pass --admin-api-key-file")
    _configure_logging()
    config = runner_config(ctx.params, api_key=_read_key(admin_api_key_file))
    stats = run(config)
    typer.echo(
        f"published {stats.published} readings in {stats.steps} steps "
        f"({stats.dropped} dropped, {stats.unacked} unacknowledged; "
        f"{stats.uplinks} as LoRaWAN uplinks, {stats.refused} refused)"
    )


def runner_config(params: Mapping[str, Any], *, api_key: str) -> RunnerConfig:
    """The runner's config from the command's parsed options (`click.Context.params`)."""
    duration = params["duration"]
    return RunnerConfig(
        api_url=params["api_url"],
        api_key=api_key,
        run_dir=params["run_dir"],
        mqtt_host=params["mqtt_host"],
        mqtt_port=params["mqtt_port"],
        energy=params["energy"],
        waste=params["waste"],
        traffic=params["traffic"],
        lighting=params["lighting"],
        seed=params["seed"],
        speed=params["speed"],
        backfill=parse_duration(params["backfill"]),
        duration=parse_duration(duration) if duration is not None else None,
        inject=_injected(params),
        inject_after=parse_duration(params["inject_after"]),
        events_out=params["events_out"],
        resume=params["resume"],
        lorawan_bins=params["lorawan_bins"],
        lorawan_meters=params["lorawan_meters"],
        lorawan_raw=params["lorawan_raw"],
        lorawan_integration=params["lorawan_integration"],
        id_prefix=params["id_prefix"],
        catch_up_steps=params["catch_up_steps"],
        ingest_url=params["ingest_url"],
    )


def _injected(params: Mapping[str, Any]) -> tuple[str, ...]:
    """The kinds to inject: `all` is one of each kind the town has devices for (a town without
    lighting cabinets gets no lighting fault); kinds named one by one are taken as they are."""
    kinds = parse_kinds(params["inject"])
    if params["inject"].strip() != "all":
        return tuple(kinds)
    sizes = {domain: params[domain.value] for domain in Domain}
    return tuple(k for k in kinds if sizes[EVENT_SPECS[k].domain] > 0)


def living_town_config(*, seed: int) -> RunnerConfig:
    """What `townpulse up` runs (`LIVING_TOWN_ARGS`, the other options at their defaults),
    with another seed and no API key: the town bench/simulated_town.py replays offline."""
    app = typer.Typer()
    app.command()(simulate)
    command = typer.main.get_command(app)
    ctx = command.make_context("simulate", [*LIVING_TOWN_ARGS, "--seed", str(seed)])
    return runner_config(ctx.params, api_key="")


def _configure_logging() -> None:
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
    # The main CLI may have set the root logger to WARNING (no -v): the simulator's progress
    # lines are still what its log is for.
    logging.getLogger("townpulse.simulator").setLevel(logging.INFO)
    # httpx logs every request at INFO; 200-odd registrations would drown the progress lines.
    logging.getLogger("httpx").setLevel(logging.WARNING)
