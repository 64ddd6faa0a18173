"""Live runner: register the town's devices and publish their readings over MQTT.

Simulated time starts `backfill` before now, runs `speed` times faster than the wall clock
until it catches up, then follows the wall clock; a timestamp is never published before the
wall clock has reached it.

While it catches up, the steps already due go out together, up to `catch_up_steps` of them: each
MQTT device sends its readings of those steps as one SenML pack (as a device that buffered its
readings does after an outage), the LoRaWAN uplinks of all of them go in one push (each device's
in order), and the runner waits for the broker's and TownPulse's acknowledgements once per block
instead of once per step. A step's round trip, not the pipeline, bounded the backfill: 15 days
took about 20 minutes with one message per reading and a wait after each step (bench/first_run.py).
Once caught up, each step goes alone, one flat JSON message per reading.

The town's LoRaWAN devices (a share of the bins and meters) send through a simulated network
server instead: each reading becomes the frame the device would send, pushed as a ChirpStack
uplink event to TownPulse's HTTP ingest, in the same step as the MQTT devices' readings.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import groupby
from pathlib import Path
from types import FrameType

import httpx

from townpulse.simulator.chirpstack_link import DEFAULT_WORKERS, ChirpStackLink
from townpulse.simulator.events import STEP, LabelledEvent, floor_to_step, schedule_events
from townpulse.simulator.lorawan import LoRaWanDevice, event_body
from townpulse.simulator.mqtt_link import DeviceLink, LinkState
from townpulse.simulator.provision import (
    CredentialStore,
    DeviceRegistry,
    MqttCredentials,
    NetworkServer,
    api_client,
    import_codecs,
    provision,
    provision_lorawan,
)
from townpulse.simulator.readings import Reading, iter_readings, to_message
from townpulse.simulator.town import Device, Town, build_town

log = logging.getLogger(__name__)


# The gateway refuses readings older than 7 days; keep a margin for slow publishing.
def max_backfill() -> timedelta:
    """How far back the gateway takes readings (`TOWNPULSE_MAX_AGE_S`, its setting, 7 days by
    default), less an hour for the time the backfill itself takes: a longer history (a month
    for the report's benchmark) needs the gateway started with a longer one."""
    seconds = int(os.environ.get("TOWNPULSE_MAX_AGE_S", 7 * 24 * 3600))
    return timedelta(seconds=seconds) - timedelta(hours=1)


CONNECT_TIMEOUT_S = 30.0
ACK_TIMEOUT_S = 30.0
PROGRESS_EVERY_S = 10.0
# Without a fixed duration, injected events are spread over at least this much simulated time.
MIN_INJECTION_WINDOW = timedelta(days=1)
# A third of the bins and one meter in ten go through the LoRaWAN network server by default:
# enough to see that path in every part of the console, while most of the town stays on MQTT.
LORAWAN_BINS = 1 / 3
LORAWAN_METERS = 0.1
LORAWAN_INTEGRATION = "simulated-chirpstack"
# Steps sent together while catching up: four hours of 15-minute readings, a pack of 16 readings
# (32 SenML records for a bin) per MQTT device, well within the gateway's 1,000 records and 64 kB.
CATCH_UP_STEPS = 16


@dataclass(frozen=True, slots=True)
class RunnerConfig:
    """Everything the runner needs; the API key is kept out of repr."""

    api_url: str
    api_key: str = field(repr=False)
    run_dir: Path
    mqtt_host: str | None = None
    mqtt_port: int | None = None
    energy: int = 40
    waste: int = 150
    traffic: int = 25
    lighting: int = 0
    seed: int = 42
    speed: float = 1.0
    backfill: timedelta = timedelta(0)
    duration: timedelta | None = None
    inject: tuple[str, ...] = ()
    # Injected events start this long after the backfill's start: the models' warm-up
    # (shared/ml/warmup.py) keeps them silent before, so events there would never be found.
    inject_after: timedelta = timedelta(0)
    events_out: Path | None = None
    step: timedelta = STEP
    # Start after the last step a previous run published (within `backfill`), so restarting the
    # stack does not publish the same history again.
    resume: bool = False
    # Shares of the bins (EM310-UDL) and meters (EM300-DI) sent through the LoRaWAN server.
    lorawan_bins: float = LORAWAN_BINS
    lorawan_meters: float = LORAWAN_METERS
    # True: the server forwards the frames' bytes only, and TownPulse decodes them with the
    # codecs imported from the Device Repository. False: it adds its own decoding (`object`).
    lorawan_raw: bool = False
    lorawan_integration: str = LORAWAN_INTEGRATION
    lorawan_workers: int = DEFAULT_WORKERS
    # Put before every device id: a second town beside `make up`'s (tests, measurements).
    id_prefix: str = ""
    # At most this many steps already due go out as one block (1: a step at a time).
    catch_up_steps: int = CATCH_UP_STEPS
    # Where the network server pushes its uplinks: the API (None), which forwards them to the
    # gateway, or the gateway's own URL, as a network server beside it would be configured.
    ingest_url: str | None = None

    @property
    def credentials_path(self) -> Path:
        """Where device credentials are kept between runs."""
        return self.run_dir / "simulator" / "credentials.json"

    @property
    def progress_path(self) -> Path:
        """Where the timestamp of the last fully published step is kept."""
        return self.run_dir / "simulator" / "last-published"

    @property
    def events_path(self) -> Path:
        """Where labelled events are appended."""
        return self.events_out or self.run_dir / "simulator" / "events.jsonl"


@dataclass(frozen=True, slots=True)
class SimClock:
    """Maps simulated instants to the wall-clock instants at which they may be published."""

    sim_start: datetime
    wall_start: datetime
    speed: float

    def wall_time_for(self, ts: datetime) -> datetime:
        """When to publish the reading stamped `ts`: on the accelerated schedule, never early.

        >>> t0 = datetime(2026, 3, 2, 12, tzinfo=UTC)
        >>> clock = SimClock(sim_start=t0 - timedelta(hours=10), wall_start=t0, speed=10.0)
        >>> clock.wall_time_for(t0 - timedelta(hours=5)).isoformat()  # 5 h of backlog: 30 min
        '2026-03-02T12:30:00+00:00'
        >>> clock.wall_time_for(t0 + timedelta(hours=3)).isoformat()  # caught up: real time
        '2026-03-02T15:00:00+00:00'
        """
        return max(self.wall_start + (ts - self.sim_start) / self.speed, ts)


@dataclass(slots=True)
class RunStats:
    """Counters reported at the end of a run.

    `published` counts the readings queued over MQTT (`messages` of them: several in a pack
    while catching up) and the LoRaWAN uplinks TownPulse took (`uplinks` of them; `refused` were
    answered 422/404, `duplicates` 200); `dropped` the readings the MQTT queue refused.
    """

    steps: int = 0
    messages: int = 0
    published: int = 0
    dropped: int = 0
    unacked: int = 0
    uplinks: int = 0
    refused: int = 0
    duplicates: int = 0
    last_ts: datetime | None = None


def plan_window(
    *,
    now: datetime,
    backfill: timedelta,
    duration: timedelta | None,
    step: timedelta = STEP,
) -> tuple[datetime, datetime | None]:
    """Simulated start (step-aligned) and exclusive end (None: run until stopped).

    >>> now = datetime(2026, 3, 2, 12, 7, tzinfo=UTC)
    >>> start, end = plan_window(now=now, backfill=timedelta(hours=2), duration=timedelta(hours=3))
    >>> start.isoformat(), end.isoformat()
    ('2026-03-02T10:00:00+00:00', '2026-03-02T13:00:00+00:00')
    """
    if backfill > (most := max_backfill()):
        log.warning("backfill %s exceeds what the gateway accepts; using %s", backfill, most)
        backfill = most
    start = floor_to_step(now - backfill, step)
    return start, (start + duration if duration is not None else None)


def injection_window(
    *,
    start: datetime,
    end: datetime | None,
    now: datetime,
) -> tuple[datetime, datetime]:
    """Window for injected events: the whole run, or at least a day when it is open-ended.

    >>> t = datetime(2026, 3, 2, tzinfo=UTC)
    >>> injection_window(start=t, end=None, now=t)[1].isoformat()
    '2026-03-03T00:00:00+00:00'
    """
    if end is not None:
        return start, end
    return start, max(now, start + MIN_INJECTION_WINDOW)


def resume_start(start: datetime, last_published: datetime | None, step: timedelta) -> datetime:
    """The first step not yet published: after `last_published` if that is within the window.

    >>> t = datetime(2026, 3, 2, tzinfo=UTC)
    >>> resume_start(t, t + timedelta(hours=5), timedelta(minutes=15)).isoformat()
    '2026-03-02T05:15:00+00:00'
    >>> resume_start(t, t - timedelta(days=9), timedelta(minutes=15)) == t
    True
    """
    if last_published is None or last_published < start:
        return start
    return floor_to_step(last_published, step) + step


def read_progress(path: Path) -> datetime | None:
    """The last published step of a previous run, if one was recorded."""
    try:
        ts = datetime.fromisoformat(path.read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return None
    return ts if ts.tzinfo is not None else None


def write_progress(path: Path, ts: datetime) -> None:
    """Record `ts` as published (write then rename: a crash leaves the old value or the new)."""
    # The simulator's folder holds its devices' credentials too: the stack's own, like its run
    # directory (tests/townpulse/test_run_dir.py), whichever file is written first.
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(ts.isoformat(), encoding="utf-8")
    tmp.replace(path)


def write_events(path: Path, events: list[LabelledEvent]) -> None:
    """Append events as JSON lines (one run's labels after the previous runs')."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        for event in events:
            fh.write(json.dumps(event.to_json(), separators=(",", ":")) + "\n")


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Set `stop` on SIGINT/SIGTERM while inside the block (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        log.info("received %s; stopping", signal.Signals(signum).name)
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _sleep_until(target: datetime, stop: threading.Event) -> bool:
    """Sleep until the wall clock reaches `target`; False if asked to stop first."""
    while True:
        remaining = (target - datetime.now(UTC)).total_seconds()
        if remaining <= 0:
            return not stop.is_set()
        # Wake up now and then: the wall clock may jump (NTP, suspend).
        if stop.wait(min(remaining, 5.0)):
            return False


class _Fleet:
    """The MQTT links of all devices, renewing credentials the broker refuses."""

    def __init__(
        self,
        devices: list[Device],
        creds: dict[str, MqttCredentials],
        *,
        registry: DeviceRegistry,
        store: CredentialStore,
        config: RunnerConfig,
    ) -> None:
        self._devices = {d.id: d for d in devices}
        self._creds = creds
        self._registry = registry
        self._store = store
        self._config = config
        self.links: dict[str, DeviceLink] = {}

    def _open(self, device: Device) -> DeviceLink:
        creds = self._creds[device.id]
        link = DeviceLink(
            device.id,
            creds,
            host=self._config.mqtt_host or creds.host,
            port=self._config.mqtt_port or creds.port,
        )
        link.start()
        self.links[device.id] = link
        return link

    def connect(self) -> None:
        """Open every link and wait (bounded) for the broker's answers."""
        for device in self._devices.values():
            self._open(device)
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        for link in self.links.values():
            link.wait_settled(deadline)
        self.heal()
        connected = sum(link.state is LinkState.CONNECTED for link in self.links.values())
        if self.links and connected == 0:
            raise RuntimeError(
                f"no device could connect to the MQTT broker within {CONNECT_TIMEOUT_S:.0f} s"
            )
        log.info("%d/%d devices connected to MQTT", connected, len(self.links))

    def heal(self) -> None:
        """Replace links whose credentials were refused with freshly issued ones."""
        refused = [i for i, link in self.links.items() if link.state is LinkState.REFUSED]
        if not refused:
            return
        log.warning("renewing MQTT credentials of %d refused device(s)", len(refused))
        for device_id in refused:
            self.links.pop(device_id).stop()
            self._creds[device_id] = self._registry.renew(self._devices[device_id])
        self._store.save({**self._store.load(), **self._creds})
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        for device_id in refused:
            if self._open(self._devices[device_id]).wait_settled(deadline) is LinkState.REFUSED:
                log.error("broker still refuses %s after renewing its credentials", device_id)

    def wait_acked(self, timeout_s: float) -> int:
        """Wait for all links' acknowledgements; return how many messages are still pending."""
        deadline = time.monotonic() + timeout_s
        return sum(link.wait_acked(deadline) for link in self.links.values())

    def close(self) -> None:
        """Disconnect every link."""
        for link in self.links.values():
            link.stop()


class _NetworkServer:
    """The simulated LoRaWAN network server: the devices' frames, pushed as ChirpStack events."""

    def __init__(
        self,
        devices: dict[str, LoRaWanDevice],
        link: ChirpStackLink | None,
        *,
        with_object: bool,
    ) -> None:
        self.devices = devices
        self._link = link
        self._with_object = with_object
        self._pending: list[tuple[str, bytes]] = []

    def take(self, reading: Reading) -> bool:
        """Queue the reading's uplink if its device is behind the server; False if it is not."""
        device = self.devices.get(reading.device.id)
        if device is None:
            return False
        event = device.uplink(reading.ts, reading.metrics, with_object=self._with_object)
        if event is not None:
            self._pending.append((reading.device.id, event_body(event)))
        return True

    def flush(self, stats: RunStats) -> None:
        """Push the queued uplinks; back once each is taken or refused (or the run stops)."""
        if self._link is None:
            return
        before = (self._link.stats.accepted, self._link.stats.duplicates)
        self._link.push(self._pending)
        self._pending = []
        pushed = self._link.stats
        stats.published += pushed.accepted - before[0]
        stats.uplinks, stats.refused, stats.duplicates = (
            pushed.accepted,
            pushed.refused,
            pushed.duplicates,
        )

    def close(self) -> None:
        """Close the integration's connections."""
        if self._link is not None:
            self._link.close()


def town_of(config: RunnerConfig) -> Town:
    """The town a run simulates."""
    return build_town(
        energy=config.energy,
        waste=config.waste,
        traffic=config.traffic,
        lighting=config.lighting,
        seed=config.seed,
        lorawan_bins=config.lorawan_bins,
        lorawan_meters=config.lorawan_meters,
        id_prefix=config.id_prefix,
    )


def plan_events(
    town: Town,
    *,
    config: RunnerConfig,
    planned: datetime,
    start: datetime,
    end: datetime | None,
    now: datetime,
) -> list[LabelledEvent]:
    """The labelled events a run started at `now` injects (none without `config.inject`).

    `planned` is the start of the backfill, `start` the first step this run publishes (later
    when it resumes), `end` the run's end (None: open-ended). What `run` writes to the events
    file, and what bench/simulated_town.py judges the alerts against.
    """
    if not config.inject:
        return []
    win_start, win_end = injection_window(start=start, end=end, now=now)
    # After the warm-up, unless the run is too short to have one.
    if (calm := floor_to_step(planned + config.inject_after, config.step)) < win_end:
        win_start = max(win_start, calm)
    return schedule_events(
        town,
        kinds=config.inject,
        start=win_start,
        end=win_end,
        seed=config.seed,
        step=config.step,
    )


def run(config: RunnerConfig, *, stop: threading.Event | None = None) -> RunStats:
    """Register the town, then publish its readings until the end or until `stop` is set.

    SIGINT and SIGTERM set `stop` when called from the main thread.
    """
    stop = stop or threading.Event()
    town = town_of(config)
    now = datetime.now(UTC)
    start, end = plan_window(
        now=now, backfill=config.backfill, duration=config.duration, step=config.step
    )
    planned = start
    if config.resume:
        start = resume_start(start, read_progress(config.progress_path), config.step)
    events = plan_events(town, config=config, planned=planned, start=start, end=end, now=now)
    if events:
        write_events(config.events_path, events)
        log.info("scheduled %d labelled event(s), written to %s", len(events), config.events_path)

    store = CredentialStore(config.credentials_path)
    mqtt_devices = [d for d in town if d.lorawan is None]
    with stop_on_signals(stop), api_client(config.api_url, config.api_key) as http:
        registry = DeviceRegistry(http)
        creds = provision(registry, mqtt_devices, store)
        server = _network_server(town, config=config, http=http, store=store, stop=stop)
        fleet = _Fleet(mqtt_devices, creds, registry=registry, store=store, config=config)
        try:
            fleet.connect()
            return _publish(
                town,
                fleet,
                server,
                config=config,
                start=start,
                end=end,
                events=events,
                stop=stop,
            )
        finally:
            fleet.close()
            server.close()


def _network_server(
    town: Town,
    *,
    config: RunnerConfig,
    http: httpx.Client,
    store: CredentialStore,
    stop: threading.Event,
) -> _NetworkServer:
    """Set up the LoRaWAN side: codecs, the HTTP integration, the devices and their cursors."""
    radios = town.lorawan
    if not radios:
        return _NetworkServer({}, None, with_object=True)
    models = {d.lorawan.model for d in radios if d.lorawan is not None}
    decodable = import_codecs(http, models)
    with_object = not config.lorawan_raw
    if config.lorawan_raw and decodable != models:
        # Bytes TownPulse cannot decode would all be refused: the server decodes instead.
        log.warning(
            "TownPulse has no codec for %s: the network server sends its decoded object too",
            ", ".join(sorted(m.value for m in models - decodable)),
        )
        with_object = True
    integration = NetworkServer(http, store, integration_id=config.lorawan_integration)
    access = integration.ensure()
    cursors = provision_lorawan(DeviceRegistry(http), radios)
    devices = {
        d.id: LoRaWanDevice(d, seed=config.seed, cursor=cursors[d.id], step=config.step)
        for d in radios
    }
    link = ChirpStackLink(
        api_url=config.ingest_url or config.api_url,
        access=access,
        renew=integration.renew,
        stop=stop,
        workers=config.lorawan_workers,
    )
    log.info(
        "%d devices send through ChirpStack HTTP integration %s (%s)",
        len(devices),
        access.integration_id,
        "decoded by the network server" if with_object else "bytes decoded by TownPulse",
    )
    return _NetworkServer(devices, link, with_object=with_object)


def _publish(
    town: Town,
    fleet: _Fleet,
    server: _NetworkServer,
    *,
    config: RunnerConfig,
    start: datetime,
    end: datetime | None,
    events: list[LabelledEvent],
    stop: threading.Event,
) -> RunStats:
    clock = SimClock(sim_start=start, wall_start=datetime.now(UTC), speed=config.speed)
    stats = RunStats()
    log.info(
        "simulating %d devices from %s%s at speed %g",
        len(town),
        start.isoformat(),
        f" to {end.isoformat()}" if end else "",
        config.speed,
    )
    next_progress = time.monotonic() + PROGRESS_EVERY_S
    readings = iter_readings(town, start=start, end=end, step=config.step, events=events)
    block: list[list[Reading]] = []
    for ts, group in groupby(readings, key=lambda r: r.ts):
        if not _sleep_until(clock.wall_time_for(ts), stop):
            block = []  # not sent: a resumed run publishes it
            break
        block.append(list(group))
        behind = clock.wall_time_for(ts + config.step) <= datetime.now(UTC)
        if len(block) < config.catch_up_steps and behind:
            continue  # the next step is due already: it goes with this one
        if not _send_block(block, fleet, server, stats=stats, stop=stop):
            block = []
            break
        block = []
        # Caught up (the next step is not due yet), the progress is said and saved at once.
        if time.monotonic() >= next_progress or not behind:
            next_progress = time.monotonic() + PROGRESS_EVERY_S
            _log_progress(stats, _lag(ts))
            if config.resume:
                write_progress(config.progress_path, ts)
    if block:
        _send_block(block, fleet, server, stats=stats, stop=stop)
    stats.unacked = fleet.wait_acked(ACK_TIMEOUT_S)
    if config.resume and stats.last_ts is not None:
        write_progress(config.progress_path, stats.last_ts)
    _log_progress(stats, _lag(stats.last_ts) if stats.last_ts else timedelta(0))
    return stats


def _send_block(
    steps: list[list[Reading]],
    fleet: _Fleet,
    server: _NetworkServer,
    *,
    stats: RunStats,
    stop: threading.Event,
) -> bool:
    """Publish the readings of consecutive steps (one message per MQTT device) and wait until
    the broker and TownPulse have taken them; False if the run stopped first."""
    fleet.heal()
    mqtt: dict[str, list[Reading]] = {}
    for group in steps:
        for reading in group:
            if not server.take(reading):
                mqtt.setdefault(reading.device.id, []).append(reading)
    for device_id, own in mqtt.items():
        if fleet.links[device_id].publish(to_message(own)):
            stats.published += len(own)
            stats.messages += 1
        else:
            stats.dropped += len(own)
    # The uplinks go while the broker acknowledges the MQTT messages; each device's in order,
    # since the next block starts only once this one's are taken.
    server.flush(stats)
    if stop.is_set():
        return False
    # Bounded in-flight: the next block waits until the broker has taken this one.
    stats.unacked = fleet.wait_acked(ACK_TIMEOUT_S)
    if stats.unacked:
        log.warning("%d message(s) not acknowledged after %.0f s", stats.unacked, ACK_TIMEOUT_S)
    stats.steps += len(steps)
    stats.last_ts = steps[-1][0].ts
    return True


def _lag(ts: datetime) -> timedelta:
    return datetime.now(UTC) - ts


def _log_progress(stats: RunStats, lag: timedelta) -> None:
    log.info(
        "simulated up to %s (%s behind the wall clock): %d published (%d MQTT messages), "
        "%d dropped, %d unacknowledged; LoRaWAN: %d uplinks taken, %d refused, %d duplicates",
        stats.last_ts.isoformat() if stats.last_ts else "-",
        str(lag).split(".")[0],
        stats.published,
        stats.messages,
        stats.dropped,
        stats.unacked,
        stats.uplinks,
        stats.refused,
        stats.duplicates,
    )
