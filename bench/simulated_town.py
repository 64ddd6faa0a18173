"""The simulated town's first console, replayed offline: the alerts an operator would see after
`make up`, against the simulator's labelled events (issue #24, item 4's target: alert precision
>= 0.8 and event recall >= 0.9 on three seeds).

    nice -n 10 python -m bench.simulated_town [--seeds 1,2,3] [--workers 2]

For each seed, the town `townpulse up` runs (`townpulse.simulator.cli.living_town_config`: its
sizes, LoRaWAN shares, fifteen days of backfill and its labelled events after thirteen days, as
`LIVING_TOWN_ARGS` says), started at a fixed instant (`STARTS`: the calendar is part of the
town, the events land on those days), and followed `AFTER_NOW` past it (the living town goes on
with the wall clock). Every device's readings, as the gateway makes them (MQTT JSON as it is;
the LoRaWAN devices' uplinks through their shipped profiles: an EM310-UDL bin sends fill only,
an EM300-DI meter a pulse count turned into kWh), go through its domain's own processor as the
runtime feeds it (`shared.runtime.processor.replay`), and the alert events through the alerts
service's lifecycle (`services.alerts.domain.replay.alerts_of`): the alerts the console lists.

Matching (`judge`): an alert matches a labelled event when it is on a device the event acts on
and opens within the event's window or `AFTER` past its end (the aftermath, as
shared.ml.alert_scoring counts it); an event is detected when an alert opens within its window,
its delay the first such opening minus its start. Precision: alerts matching an event over all
alerts, warm-up included (the first console shows them all). `market_day` (the town's own extra
market) is context, not a fault: the alerts it explains (bins filling faster, busier roads) are
not false, but no alert is owed for it (`CONTEXT_KINDS`), so it is out of recall.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import httpx

from bench.common import command_line, run_meta, write_result
from services.alerts.domain.replay import Opened, alerts_of
from services.energy.domain.replay import meter_processor
from services.gateway.ingest.profile import (
    MemoryCounters,
    Profile,
    map_fields,
    parse_profile,
    shipped_profiles,
)
from services.lighting.domain.circuit import LightingProcessor
from services.lighting.settings import LightingSettings
from services.traffic.domain.counter import TrafficProcessor
from services.waste.domain.bin import WasteProcessor
from shared.ml.alert_scoring import AFTER, Label, match
from shared.runtime.processor import DeviceProcessor, replay
from shared.schemas import Reading
from townpulse.simulator.cli import living_town_config
from townpulse.simulator.events import (
    EVENT_KINDS,
    EVENT_SPECS,
    FAULT_KINDS,
    LabelledEvent,
    affects,
)
from townpulse.simulator.lorawan import LoRaWanDevice
from townpulse.simulator.readings import iter_readings
from townpulse.simulator.runner import (
    RunnerConfig,
    plan_events,
    plan_window,
    read_progress,
    town_of,
)
from townpulse.simulator.town import Device, Domain, Town
from townpulse.stack import read_env_file
from townpulse.stack.config import StackSettings

NAME = "simulated_town"
SEEDS = (1, 2, 3)
# When each seed's `make up` is taken to start (UTC): a Wednesday morning, a Monday at dawn
# after a weekend, a Saturday afternoon, so that the labelled days and the warm-up's day types
# differ between seeds. Fixed, so that a run is repeatable.
STARTS = {
    1: datetime(2026, 3, 11, 8, 7, tzinfo=UTC),
    2: datetime(2026, 3, 16, 5, 52, tzinfo=UTC),
    3: datetime(2026, 3, 21, 14, 22, tzinfo=UTC),
}
# The living town goes on with the wall clock after the first console: a day of it is judged too.
AFTER_NOW = timedelta(days=1)
# Happenings the town organises itself (the simulator's labels say which): they explain alerts,
# they owe none.
CONTEXT_KINDS = frozenset(EVENT_KINDS) - FAULT_KINDS
# What an alert about each event should say it is (a detection of another kind still brings the
# technician to the right device at the right time, but tells them the wrong story).
EXPECTED_KINDS: dict[str, frozenset[str]] = {
    "meter_left_on": frozenset({"energy.consumption_off_hours", "energy.consumption_high"}),
    "meter_step_up": frozenset({"energy.consumption_high", "energy.consumption_off_hours"}),
    "meter_stuck": frozenset({"energy.meter_stuck"}),
    "meter_silent": frozenset({"energy.meter_silent", "energy.silent"}),
    "bin_fast_fill": frozenset({"waste.abnormal_fill"}),
    "bin_fire": frozenset({"waste.fire_risk"}),
    "bin_stuck": frozenset({"waste.sensor_stuck"}),
    "road_incident": frozenset({"traffic.incident"}),
    "lamp_failure": frozenset({"lighting.lamp_failure"}),
    "lighting_daylight": frozenset({"lighting.daylight"}),
    "lighting_schedule": frozenset({"lighting.schedule"}),
    "lighting_drift": frozenset({"lighting.drift"}),
    "market_day": frozenset({"waste.abnormal_fill", "traffic.flow_high", "traffic.congestion"}),
}
# A live stack's services may be behind the simulator's newest readings by this much.
LIVE_MARGIN = timedelta(hours=1)
TARGET_PRECISION = 0.8
TARGET_RECALL = 0.9


@dataclass(frozen=True, slots=True)
class TownRun:
    """One seed's town, its history's window and its labelled events."""

    seed: int
    config: RunnerConfig
    town: Town
    now: datetime
    start: datetime
    end: datetime
    events: tuple[LabelledEvent, ...]


def town_run(seed: int, *, now: datetime | None = None, until: datetime | None = None) -> TownRun:
    """The town `make up` simulates with `seed`, started at `now` (`STARTS[seed]` by default),
    judged until `until` (`AFTER_NOW` after `now` by default)."""
    now = STARTS[seed] if now is None else now
    config = living_town_config(seed=seed)
    town = town_of(config)
    # The stack's gateway takes readings this old (what `townpulse up` tells the simulator).
    os.environ.setdefault("TOWNPULSE_MAX_AGE_S", str(StackSettings().max_age_s))
    start, end = plan_window(
        now=now, backfill=config.backfill, duration=config.duration, step=config.step
    )
    events = plan_events(town, config=config, planned=start, start=start, end=end, now=now)
    end = now + AFTER_NOW if until is None else until
    return TownRun(seed, config, town, now, start, end, tuple(events))


# The run each worker process replays: set by `_use_run` in the pool's initializer, else the
# seed's default run.
_RUNS: dict[int, TownRun] = {}


def _use_run(run: TownRun) -> None:
    _RUNS[run.seed] = run


def _cached_run(seed: int) -> TownRun:
    if seed not in _RUNS:
        _RUNS[seed] = town_run(seed)
    return _RUNS[seed]


@cache
def _profiles() -> dict[str, Profile]:
    return {doc["name"]: parse_profile(doc) for doc in shipped_profiles()}


def device_messages(run: TownRun, device: Device) -> Iterator[list[Reading]]:
    """The device's messages as the gateway hands them to its domain's service, in time order.

    A device's readings depend on the seed, its id and the town's weather only, so it is
    simulated alone (as part of the whole town it would give the same).
    """
    alone = Town(seed=run.town.seed, centre=run.town.centre, devices=(device,))
    readings = iter_readings(
        alone, start=run.start, end=run.end, step=run.config.step, events=run.events
    )
    if device.lorawan is None:
        for r in readings:
            yield [Reading(ts=r.ts, metric=m, value=v) for m, v in r.metrics.items()]
        return
    radio = LoRaWanDevice(device, seed=run.seed, step=run.config.step)
    profile = _profiles()[device.lorawan.model.profile]
    counters = MemoryCounters()
    for r in readings:
        frame = radio.frame(r.ts, r.metrics)
        if frame is None:
            continue
        yield map_fields(
            profile,
            frame.decoded,
            device_id=device.id,
            ts=r.ts,
            metadata=device.metadata,
            counters=counters,
        )


def processor_for(domain: Domain) -> DeviceProcessor[Any]:
    """The processor each domain service runs, with the services' default settings."""
    if domain is Domain.ENERGY:
        return meter_processor()
    if domain is Domain.WASTE:
        return WasteProcessor()
    if domain is Domain.LIGHTING:
        # The town and schedule from the environment, as the service and the simulator read them.
        settings = LightingSettings(dev_mode=True)
        return LightingProcessor(town=settings.town(), lamp_w=settings.lighting_lamp_w)
    return TrafficProcessor()


def device_alerts(seed: int, device_id: str) -> list[Opened]:
    """The alerts one device of seed `seed`'s town opens over the judged history."""
    run = _cached_run(seed)
    device = run.town.get(device_id)
    events = replay(
        processor_for(device.domain),
        device_id=device_id,
        messages=device_messages(run, device),
    )
    opened, _ = alerts_of(events)
    return opened


def town_alerts(run: TownRun, *, workers: int = 1) -> list[Opened]:
    """Every alert the town's first console (and the day after) lists, by opening time."""
    ids = [d.id for d in run.town]
    _use_run(run)
    if workers <= 1:
        per_device = [device_alerts(run.seed, i) for i in ids]
    else:
        with ProcessPoolExecutor(workers, initializer=_use_run, initargs=(run,)) as pool:
            per_device = list(pool.map(device_alerts, [run.seed] * len(ids), ids, chunksize=4))
    return sorted((a for alerts in per_device for a in alerts), key=lambda a: a.opened_at)


# ---- matching ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Judged:
    """An alert and what it was: `detection` (within an event's window), `aftermath` (within
    `after` past its end) or `false`; `event` is the index of the event it belongs to."""

    alert: Opened
    domain: str
    role: str
    event: int | None


@dataclass(frozen=True, slots=True)
class Detection:
    """A labelled event and the first alert opened within its window, on a device it acts on
    in `domain` (a town-wide event is judged in each domain it touches)."""

    event: LabelledEvent
    domain: str
    first_alert: datetime | None
    alert_kinds: tuple[str, ...]

    @property
    def right_kind(self) -> bool:
        """Whether an alert of the kind the event should give opened within its window."""
        return bool(EXPECTED_KINDS.get(self.event.kind, frozenset()) & set(self.alert_kinds))

    @property
    def delay_h(self) -> float | None:
        if self.first_alert is None:
            return None
        return round((self.first_alert - self.event.start) / timedelta(hours=1), 2)


def judge(
    alerts: Sequence[Opened],
    events: Sequence[LabelledEvent],
    town: Town,
    *,
    after: timedelta = AFTER,
) -> tuple[list[Judged], list[Detection]]:
    """Each alert with its role, and each (event, domain) with its first alert.

    Per device, through shared.ml.alert_scoring.match (the counting of `townpulse evaluate` and
    the fault benchmark): the device's alerts against the events that act on it.
    """
    by_device: dict[str, list[Opened]] = {}
    for a in alerts:
        by_device.setdefault(a.device_id, []).append(a)
    judged: list[Judged] = []
    first: dict[tuple[int, str], datetime] = {}
    kinds: dict[tuple[int, str], set[str]] = {}
    touched: set[tuple[int, str]] = set()
    for device in town:
        mine = [i for i, e in enumerate(events) if affects(e, device)]
        domain = device.domain.value
        touched.update((i, domain) for i in mine)
        opened = by_device.get(device.id, [])
        if not opened:
            continue
        labels = [Label(events[i].start, events[i].end, events[i].kind) for i in mine]
        matched, _ = match([a.opened_at for a in opened], labels, after=after)
        for i, m in zip(mine, matched, strict=True):
            if m.first_alert is None:
                continue
            key = (i, domain)
            first[key] = min(first.get(key, m.first_alert), m.first_alert)
            kinds.setdefault(key, set()).update(
                a.kind for a in opened if m.label.start <= a.opened_at <= m.label.end
            )
        for a in opened:
            inside = [i for i in mine if events[i].start <= a.opened_at <= events[i].end]
            later = [i for i in mine if events[i].end < a.opened_at <= events[i].end + after]
            if inside:
                judged.append(Judged(a, domain, "detection", inside[0]))
            elif later:
                judged.append(Judged(a, domain, "aftermath", later[0]))
            else:
                judged.append(Judged(a, domain, "false", None))
    # An event no device of its own domain could show stays judged there (missed).
    for i, e in enumerate(events):
        touched.add((i, EVENT_SPECS[e.kind].domain.value))
    detections = [
        Detection(
            events[i], domain, first.get((i, domain)), tuple(sorted(kinds.get((i, domain), ())))
        )
        for i, domain in sorted(touched)
    ]
    return sorted(judged, key=lambda j: j.alert.opened_at), detections


def _median(values: Sequence[float]) -> float | None:
    return round(statistics.median(values), 2) if values else None


def figures(judged: Sequence[Judged], detections: Sequence[Detection]) -> dict[str, Any]:
    """Precision, recall and median delay: in all, per domain and per event kind."""
    owed = [d for d in detections if d.event.kind not in CONTEXT_KINDS]

    def alert_block(js: Sequence[Judged]) -> dict[str, Any]:
        matching = sum(j.role != "false" for j in js)
        return {
            "alerts": len(js),
            "matching": matching,
            "aftermath": sum(j.role == "aftermath" for j in js),
            "false": len(js) - matching,
            "precision": round(matching / len(js), 4) if js else None,
        }

    def event_block(ds: Sequence[Detection]) -> dict[str, Any]:
        delays = [d.delay_h for d in ds if d.delay_h is not None]
        return {
            "events": len(ds),
            "detected": len(delays),
            "right_kind": sum(d.right_kind for d in ds),
            "recall": round(len(delays) / len(ds), 4) if ds else None,
            "median_delay_h": _median(delays),
        }

    domains = sorted({j.domain for j in judged} | {d.domain for d in detections})
    return {
        "all": alert_block(judged) | event_block(owed),
        "by_domain": {
            dom: alert_block([j for j in judged if j.domain == dom])
            | event_block([d for d in owed if d.domain == dom])
            for dom in domains
        },
        "by_event_kind": {
            kind: event_block([d for d in detections if d.event.kind == kind])
            | {"context": kind in CONTEXT_KINDS}
            for kind in sorted({d.event.kind for d in detections})
        },
        "false_by_kind": dict(
            sorted(Counter(j.alert.kind for j in judged if j.role == "false").items())
        ),
    }


# ---- the run -------------------------------------------------------------------------------


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat()


def seed_result(run: TownRun, alerts: Sequence[Opened]) -> dict[str, Any]:
    judged, detections = judge(alerts, run.events, run.town)
    return {
        "seed": run.seed,
        "now": _iso(run.now),
        "start": _iso(run.start),
        "end": _iso(run.end),
        "events": [
            {
                **e.to_json(),
                "domain": d.domain,
                "detected_at": None if d.first_alert is None else _iso(d.first_alert),
                "delay_h": d.delay_h,
                "alert_kinds": list(d.alert_kinds),
                "right_kind": d.right_kind,
            }
            for d in detections
            for e in (d.event,)
        ],
        "false_alerts": [
            {
                "device_id": j.alert.device_id,
                "kind": j.alert.kind,
                "opened_at": _iso(j.alert.opened_at),
                "severity": j.alert.severity,
            }
            for j in judged
            if j.role == "false"
        ],
        "alerts": [
            {
                "device_id": j.alert.device_id,
                "kind": j.alert.kind,
                "opened_at": _iso(j.alert.opened_at),
                "role": j.role,
                "event": None if j.event is None else run.events[j.event].kind,
            }
            for j in judged
        ],
        "figures": figures(judged, detections),
    }


def pooled(runs: Sequence[tuple[TownRun, Sequence[Opened]]]) -> dict[str, Any]:
    """The seeds' alerts and events together."""
    judged: list[Judged] = []
    detections: list[Detection] = []
    for run, alerts in runs:
        j, d = judge(alerts, run.events, run.town)
        judged += j
        detections += d
    return figures(judged, detections)


def live_check(run_dir: Path, *, seed: int, start: datetime, workers: int) -> dict[str, Any]:
    """The alerts a live stack (`townpulse up --no-sim`, then the simulator with
    `LIVING_TOWN_ARGS --seed SEED` on `run_dir`) opened, against this replay of the same town.

    `start` is the simulator's first step (its log's "simulating ... from"); alerts are compared
    up to the last step the simulator recorded as published, less `LIVE_MARGIN` (the services
    may still be behind on the newest readings).
    """
    env = read_env_file(run_dir / "stack.env")
    config = living_town_config(seed=seed)
    published = read_progress(run_dir / "simulator" / "last-published")
    if published is None:
        raise SystemExit(f"{run_dir}: the simulator recorded no progress")
    cutoff = published - LIVE_MARGIN
    run = town_run(seed, now=start + config.backfill, until=cutoff + config.step)
    live_events = [
        json.loads(line)
        for line in (run_dir / "simulator" / "events.jsonl").read_text().splitlines()
        if line.strip()
    ]
    same_events = live_events == [e.to_json() for e in run.events]
    key = Path(env["ADMIN_API_KEY_FILE"]).read_text().strip()
    with httpx.Client(
        base_url=env["API_URL"], headers={"Authorization": f"Bearer {key}"}, timeout=60
    ) as api:
        response = api.get("/v1/alerts", params={"limit": 5000})
        response.raise_for_status()
        rows = response.json()
    live = {
        (a["device_id"], a["kind"], datetime.fromisoformat(a["opened_at"]))
        for a in rows
        if a["opened_at"] is not None and datetime.fromisoformat(a["opened_at"]) <= cutoff
    }
    offline = {
        (a.device_id, a.kind, a.opened_at)
        for a in town_alerts(run, workers=workers)
        if a.opened_at <= cutoff
    }

    def listed(items: set[tuple[str, str, datetime]]) -> list[dict[str, str]]:
        return [{"device_id": d, "kind": k, "opened_at": _iso(t)} for d, k, t in sorted(items)]

    return {
        "seed": seed,
        "start": _iso(run.start),
        "compared_until": _iso(cutoff),
        "same_events": same_events,
        "events": len(run.events),
        "live_alerts": len(live),
        "offline_alerts": len(offline),
        "both": len(live & offline),
        "only_live": listed(live - offline),
        "only_offline": listed(offline - live),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument(
        "--live-run-dir",
        type=Path,
        help="instead: compare a live stack's alerts (this run directory) with the replay",
    )
    parser.add_argument(
        "--live-start", help="the live simulator's first step (its log's 'simulating ... from')"
    )
    args = parser.parse_args(argv)
    if args.live_run_dir is not None:
        if args.live_start is None:
            parser.error("--live-run-dir needs --live-start")
        (seed,) = [int(s) for s in args.seeds.split(",")][:1] or [1]
        check = live_check(
            args.live_run_dir,
            seed=seed,
            start=datetime.fromisoformat(args.live_start),
            workers=args.workers,
        )
        path = write_result(
            f"{NAME}_live",
            {
                "benchmark": f"{NAME}_live",
                "meta": run_meta(
                    command=f"nice -n 10 {command_line('bench.simulated_town', argv)}"
                ),
                **check,
            },
        )
        print(json.dumps({k: v for k, v in check.items() if not k.startswith("only")}))
        print(f"wrote {path}")
        return 0
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    if unknown := [s for s in seeds if s not in STARTS]:
        parser.error(f"no start instant for seed(s) {unknown}; known: {sorted(STARTS)}")
    runs: list[tuple[TownRun, list[Opened]]] = []
    results = []
    t0 = time.monotonic()
    for seed in seeds:
        run = _cached_run(seed)
        alerts = town_alerts(run, workers=args.workers)
        result = seed_result(run, alerts)
        f = result["figures"]["all"]
        print(
            f"seed {seed}: {f['alerts']} alerts, precision {f['precision']}, "
            f"recall {f['recall']} ({f['detected']}/{f['events']}), "
            f"{time.monotonic() - t0:.0f} s"
        )
        runs.append((run, alerts))
        results.append(result)
    summary = pooled(runs)
    config = runs[0][0].config
    payload = {
        "benchmark": NAME,
        "meta": run_meta(command=f"nice -n 10 {command_line('bench.simulated_town', argv)}"),
        "town": {
            "energy": config.energy,
            "waste": config.waste,
            "traffic": config.traffic,
            "lighting": config.lighting,
            "lorawan_bins": round(config.lorawan_bins, 4),
            "lorawan_meters": config.lorawan_meters,
            "backfill_h": config.backfill / timedelta(hours=1),
            "inject_after_h": config.inject_after / timedelta(hours=1),
            "inject": list(config.inject),
            "judged_after_now_h": AFTER_NOW / timedelta(hours=1),
            "aftermath_h": AFTER / timedelta(hours=1),
            "context_kinds": sorted(CONTEXT_KINDS),
        },
        "targets": {"precision": TARGET_PRECISION, "recall": TARGET_RECALL},
        "seeds": results,
        "pooled": summary,
        "elapsed_s": round(time.monotonic() - t0, 1),
    }
    path = write_result(NAME, payload)
    a = summary["all"]
    print(f"pooled: precision {a['precision']}, recall {a['recall']}; wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
