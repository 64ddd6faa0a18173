"""Runner plumbing without a network: clock, windows, credentials, registration, CLI."""

from __future__ import annotations

import json
import logging
import stat
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import typer
from typer.testing import CliRunner

from services.gateway.ingest.native import DeviceTopic, parse_payload
from services.gateway.ingest.rejection import Limits
from shared.topics import Domain as Topic
from townpulse.simulator import cli as cli_module
from townpulse.simulator import runner as runner_module
from townpulse.simulator.durations import parse_duration
from townpulse.simulator.events import EVENT_KINDS, STEP, LabelledEvent, floor_to_step
from townpulse.simulator.provision import (
    ApiError,
    CredentialStore,
    DeviceRegistry,
    MqttCredentials,
    provision,
)
from townpulse.simulator.readings import iter_readings
from townpulse.simulator.runner import (
    RunnerConfig,
    RunStats,
    SimClock,
    injection_window,
    max_backfill,
    plan_window,
    read_progress,
    resume_start,
    write_events,
    write_progress,
)
from townpulse.simulator.town import Domain, build_town

pytestmark = pytest.mark.unit

NOW = datetime(2026, 3, 2, 12, 7, 30, tzinfo=UTC)
SECRET = "s3cret-Pa55word"
API_KEY = "admin-key-should-never-show"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", timedelta(0)),
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("6h", timedelta(hours=6)),
        ("2d", timedelta(days=2)),
        ("1w", timedelta(weeks=1)),
        ("1d12h", timedelta(hours=36)),
        ("1.5h", timedelta(minutes=90)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["2x", "h", "-1d", "1d 2", "abc"])
def test_parse_duration_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_clock_replays_the_backlog_fast_then_follows_the_wall_clock() -> None:
    start, end = plan_window(now=NOW, backfill=timedelta(days=2), duration=None)
    assert start == datetime(2026, 2, 28, 12, 0, tzinfo=UTC) and end is None
    clock = SimClock(sim_start=start, wall_start=NOW, speed=100.0)
    # Two days of backlog take 48 h / 100 = 28.8 min of wall time.
    assert clock.wall_time_for(start) == NOW
    assert clock.wall_time_for(start + timedelta(days=1)) == NOW + timedelta(minutes=14.4)
    ts = start
    while ts < NOW + timedelta(hours=2):
        assert clock.wall_time_for(ts) >= ts  # never published before it happened
        ts += timedelta(minutes=15)
    assert clock.wall_time_for(NOW + timedelta(hours=1)) == NOW + timedelta(hours=1)


def test_real_time_without_backfill_publishes_the_interval_that_just_ended() -> None:
    start, end = plan_window(now=NOW, backfill=timedelta(0), duration=timedelta(hours=1))
    assert start == datetime(2026, 3, 2, 12, 0, tzinfo=UTC) <= NOW
    assert end == start + timedelta(hours=1)


def test_backfill_is_capped_to_what_the_gateway_accepts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TOWNPULSE_MAX_AGE_S", raising=False)
    start, _ = plan_window(now=NOW, backfill=timedelta(days=30), duration=None)
    assert NOW - start <= max_backfill() + timedelta(minutes=15)
    assert NOW - start < timedelta(days=7)
    # A gateway set to take 40 days takes a month's backfill.
    monkeypatch.setenv("TOWNPULSE_MAX_AGE_S", str(40 * 86400))
    start, _ = plan_window(now=NOW, backfill=timedelta(days=31), duration=None)
    assert NOW - start >= timedelta(days=31)


def test_injection_window() -> None:
    start = NOW - timedelta(days=2)
    assert injection_window(start=start, end=NOW + timedelta(hours=1), now=NOW) == (
        start,
        NOW + timedelta(hours=1),
    )
    assert injection_window(start=start, end=None, now=NOW) == (start, NOW)
    assert injection_window(start=NOW, end=None, now=NOW) == (NOW, NOW + timedelta(days=1))


def test_write_events_appends_json_lines(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "events.jsonl"
    e1 = LabelledEvent("bin_fire", "bin-001", NOW, NOW + timedelta(hours=1))
    e2 = LabelledEvent("market_day", None, NOW, NOW + timedelta(hours=6))
    write_events(out, [e1])
    write_events(out, [e2])
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines == [e1.to_json(), e2.to_json()]


def _creds(device_id: str, password: str = SECRET, domain: str = "energy") -> MqttCredentials:
    return MqttCredentials(
        host="mosquitto",
        port=1883,
        username=device_id,
        password=password,
        topic=f"sensors/{domain}/{device_id}",
    )


def test_credentials_store_round_trip_with_owner_only_mode(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path / "simulator" / "credentials.json")
    assert store.load() == {}
    creds = {"meter-001": _creds("meter-001")}
    store.save(creds)
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert store.load() == creds
    assert [p.name for p in store.path.parent.iterdir()] == ["credentials.json"]
    assert SECRET not in repr(creds["meter-001"])


def test_credentials_store_ignores_a_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    path.write_text("{not json")
    assert CredentialStore(path).load() == {}


class FakeApi:
    """In-memory operator API behind an httpx mock transport."""

    def __init__(self, existing: set[str] | None = None, fail_on: str | None = None) -> None:
        self.devices = set(existing or ())
        self.fail_on = fail_on
        self.calls: list[str] = []
        self.rotations = 0

    def handler(self, request: httpx.Request) -> httpx.Response:
        assert request.headers["Authorization"] == f"Bearer {API_KEY}"
        self.calls.append(f"{request.method} {request.url.path}")
        if request.url.path == "/v1/devices" and request.method == "POST":
            body = json.loads(request.content)
            if body["id"] == self.fail_on:
                return httpx.Response(500, json={"detail": "database unavailable"})
            if body["id"] in self.devices:
                return httpx.Response(409, json={"detail": "device exists"})
            self.devices.add(body["id"])
            return httpx.Response(201, json=self._answer(body["id"], body["domain"]))
        device_id = request.url.path.split("/")[3]
        if device_id not in self.devices:
            return httpx.Response(404, json={"detail": "no such device"})
        self.rotations += 1
        return httpx.Response(200, json=self._answer(device_id, None))

    def _answer(self, device_id: str, domain: str | None) -> dict[str, object]:
        prefix = device_id.split("-")[0]
        domain = domain or {"meter": "energy", "bin": "waste", "counter": "traffic"}[prefix]
        mqtt = {
            "host": "mosquitto",
            "port": 1883,
            "username": device_id,
            "password": f"{SECRET}-{self.rotations}",
            "topic": f"sensors/{domain}/{device_id}",
        }
        return {"device": {"id": device_id}, "mqtt": mqtt}

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url="http://api.test",
            transport=httpx.MockTransport(self.handler),
            headers={"Authorization": f"Bearer {API_KEY}"},
        )


def test_provision_registers_new_devices_and_reuses_stored_credentials(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    town = build_town(energy=2, waste=1, traffic=1, seed=1)
    store = CredentialStore(tmp_path / "credentials.json")
    api = FakeApi()
    with api.client() as http:
        first = provision(DeviceRegistry(http), town, store)
    assert list(first) == [d.id for d in town] and len(api.calls) == 4
    assert all(first[d.id].topic == d.topic for d in town)
    with api.client() as http:
        again = provision(DeviceRegistry(http), town, store)
    assert again == first and len(api.calls) == 4  # nothing asked the second time
    assert SECRET not in caplog.text and API_KEY not in caplog.text


def test_existing_device_without_stored_credentials_gets_a_new_password(tmp_path: Path) -> None:
    town = build_town(energy=1, waste=0, traffic=0, seed=1)
    api = FakeApi(existing={"meter-001"})
    with api.client() as http:
        creds = provision(DeviceRegistry(http), town, CredentialStore(tmp_path / "c.json"))
    assert api.calls == ["POST /v1/devices", "POST /v1/devices/meter-001/credentials"]
    assert creds["meter-001"].username == "meter-001"


def test_renew_rotates_or_recreates(tmp_path: Path) -> None:
    device = build_town(energy=1, waste=0, traffic=0, seed=1).get("meter-001")
    api = FakeApi()
    with api.client() as http:
        registry = DeviceRegistry(http)
        registry.renew(device)  # unknown: 404, then created
        assert api.calls == ["POST /v1/devices/meter-001/credentials", "POST /v1/devices"]
        registry.renew(device)
        assert api.calls[-1] == "POST /v1/devices/meter-001/credentials"


def test_a_failed_registration_keeps_the_credentials_already_issued(tmp_path: Path) -> None:
    town = build_town(energy=3, waste=0, traffic=0, seed=1)
    store = CredentialStore(tmp_path / "credentials.json")
    api = FakeApi(fail_on="meter-002")
    with api.client() as http, pytest.raises(ApiError, match="HTTP 500: database unavailable"):
        provision(DeviceRegistry(http), town, store)
    assert sorted(store.load()) == ["meter-001"]


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("simulate")(cli_module.simulate)

    @app.command()
    def version() -> None:  # a second command, as in the main CLI
        """Print nothing."""

    return app


def test_cli_builds_the_runner_config_from_options_and_environment(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key_file = tmp_path / "admin.key"
    key_file.write_text(API_KEY + "\n")
    seen: list[RunnerConfig] = []

    def fake_run(config: RunnerConfig) -> RunStats:
        seen.append(config)
        return RunStats(steps=2, published=10)

    monkeypatch.setattr(cli_module, "run", fake_run)
    env = {
        "API_URL": "http://api.test:8080",
        "ADMIN_API_KEY_FILE": str(key_file),
        "MQTT_HOST": "127.0.0.1",
        "MQTT_PORT": "18830",
        "TOWNPULSE_RUN_DIR": str(tmp_path),
    }
    result = CliRunner().invoke(
        _app(),
        [
            "simulate",
            "--energy",
            "3",
            "--waste",
            "4",
            "--traffic",
            "5",
            "--speed",
            "100",
            "--backfill",
            "2d",
            "--duration",
            "6h",
            "--seed",
            "7",
            "--inject",
            "meter_left_on,bin_fire",
        ],
        env=env,
    )
    assert result.exit_code == 0, result.output
    assert "published 10 readings in 2 steps" in result.output
    (config,) = seen
    assert (config.energy, config.waste, config.traffic, config.seed) == (3, 4, 5, 7)
    assert config.speed == 100.0
    assert config.backfill == timedelta(days=2) and config.duration == timedelta(hours=6)
    assert config.inject == ("meter_left_on", "bin_fire")
    assert config.api_url == "http://api.test:8080" and config.api_key == API_KEY
    assert (config.mqtt_host, config.mqtt_port) == ("127.0.0.1", 18830)
    assert config.credentials_path == tmp_path / "simulator" / "credentials.json"
    assert config.events_path == tmp_path / "simulator" / "events.jsonl"
    assert API_KEY not in repr(config)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--inject", "meter_exploded"], "meter_exploded"),
        (["--backfill", "yesterday"], "invalid duration"),
        (["--speed", "0.5"], "speed"),
    ],
)
def test_cli_rejects_bad_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    monkeypatch.setattr(cli_module, "run", lambda config: pytest.fail("must not run"))
    key_file = tmp_path / "admin.key"
    key_file.write_text(API_KEY)
    result = CliRunner().invoke(
        _app(), ["simulate", *args], env={"ADMIN_API_KEY_FILE": str(key_file)}
    )
    assert result.exit_code == 2
    assert message in result.output


def test_all_injects_only_what_the_town_has_devices_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file = tmp_path / "admin.key"
    key_file.write_text(API_KEY)
    seen: list[RunnerConfig] = []
    monkeypatch.setattr(cli_module, "run", lambda config: seen.append(config) or RunStats())
    env = {"ADMIN_API_KEY_FILE": str(key_file), "TOWNPULSE_RUN_DIR": str(tmp_path)}
    for args in (["--lighting", "0", "--inject", "all"], ["--inject", "lamp_failure"]):
        result = CliRunner().invoke(_app(), ["simulate", *args], env=env)
        assert result.exit_code == 0, result.output
    without_lighting, named = seen
    assert "lamp_failure" not in without_lighting.inject and "bin_fire" in without_lighting.inject
    # Named one by one, a kind is kept (the run then says the town has no device for it).
    assert named.inject == ("lamp_failure",)


def test_cli_needs_the_admin_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_module, "run", lambda config: pytest.fail("must not run"))
    missing = CliRunner().invoke(_app(), ["simulate"], env={"ADMIN_API_KEY_FILE": None})
    assert missing.exit_code == 2 and "ADMIN_API_KEY_FILE" in missing.output
    result = CliRunner().invoke(
        _app(), ["simulate"], env={"ADMIN_API_KEY_FILE": str(tmp_path / "nope")}
    )
    assert result.exit_code == 2 and "cannot read" in result.output


def test_the_living_town_preset_parses_and_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `townpulse up` passes to the simulator is accepted, with every event kind."""
    key_file = tmp_path / "admin.key"
    key_file.write_text(API_KEY)
    seen: list[RunnerConfig] = []

    def fake_run(config: RunnerConfig) -> RunStats:
        seen.append(config)
        return RunStats()

    monkeypatch.setattr(cli_module, "run", fake_run)
    result = CliRunner().invoke(
        _app(),
        ["simulate", *cli_module.LIVING_TOWN_ARGS],
        env={"ADMIN_API_KEY_FILE": str(key_file), "TOWNPULSE_RUN_DIR": str(tmp_path)},
    )
    assert result.exit_code == 0, result.output
    (config,) = seen
    # Two weeks at least, so that the models are warm (shared/ml/warmup.py) when the first
    # console is seen; the labelled events come after that warm-up, within the history.
    assert config.resume and config.backfill >= timedelta(days=14)
    assert timedelta(days=10) <= config.inject_after < config.backfill
    assert set(config.inject) == set(EVENT_KINDS)
    assert config.lighting == 20  # issue #25: the town's twenty lighting cabinets
    assert config.progress_path == tmp_path / "simulator" / "last-published"
    # A third of the bins and some meters through the LoRaWAN server, decoded by the server.
    assert (config.lorawan_bins, config.lorawan_meters) == (1 / 3, 0.1)
    assert not config.lorawan_raw and config.lorawan_integration == "simulated-chirpstack"
    assert config.id_prefix == ""


def test_cli_lorawan_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key_file = tmp_path / "admin.key"
    key_file.write_text(API_KEY)
    seen: list[RunnerConfig] = []

    def fake_run(config: RunnerConfig) -> RunStats:
        seen.append(config)
        return RunStats(published=5, uplinks=3, refused=1)

    monkeypatch.setattr(cli_module, "run", fake_run)
    args = [
        "simulate",
        "--lorawan-bins",
        "0.5",
        "--lorawan-meters",
        "0",
        "--lorawan-raw",
        "--lorawan-integration",
        "test-cs",
        "--id-prefix",
        "t-1-",
    ]
    result = CliRunner().invoke(_app(), args, env={"ADMIN_API_KEY_FILE": str(key_file)})
    assert result.exit_code == 0, result.output
    assert "3 as LoRaWAN uplinks, 1 refused" in result.output
    (config,) = seen
    assert (config.lorawan_bins, config.lorawan_meters, config.lorawan_raw) == (0.5, 0.0, True)
    assert (config.lorawan_integration, config.id_prefix) == ("test-cs", "t-1-")
    for bad, message in (("--lorawan-bins=1.5", "lorawan-bins"), ("--id-prefix=a/b", "prefix")):
        refused = CliRunner().invoke(
            _app(), ["simulate", bad], env={"ADMIN_API_KEY_FILE": str(key_file)}
        )
        assert refused.exit_code == 2 and message in refused.output


def test_resume_starts_after_the_last_published_step(tmp_path: Path) -> None:
    path = tmp_path / "simulator" / "last-published"
    start = NOW - timedelta(days=2)
    assert read_progress(path) is None
    assert resume_start(start, read_progress(path), timedelta(minutes=15)) == start
    write_progress(path, datetime(2026, 3, 2, 9, 45, tzinfo=UTC))
    assert resume_start(start, read_progress(path), timedelta(minutes=15)) == datetime(
        2026, 3, 2, 10, 0, tzinfo=UTC
    )
    # Older than the window (the stack was down for days): the window wins.
    write_progress(path, NOW - timedelta(days=9))
    assert resume_start(start, read_progress(path), timedelta(minutes=15)) == start
    path.write_text("garbage")
    assert read_progress(path) is None


def test_the_depot_is_in_town_but_apart_from_the_bins() -> None:
    town = build_town()
    lat, lon = town.depot
    bins = [(d.lat, d.lon) for d in town.of(Domain.WASTE)]
    # Within the town's extent...
    assert min(b[0] for b in bins) - 0.01 < lat < max(b[0] for b in bins)
    assert min(b[1] for b in bins) - 0.01 < lon < max(b[1] for b in bins)
    # ...and the same for every seed: the depot is a place, not a random draw.
    assert build_town(seed=1).depot == town.depot


class _Link:
    def __init__(self, device_id: str, sent: dict[str, list[bytes]]) -> None:
        self.device_id, self.sent = device_id, sent

    def publish(self, payload: bytes) -> bool:
        self.sent.setdefault(self.device_id, []).append(payload)
        return True


class _FakeFleet:
    """The MQTT links as `_publish` uses them, keeping what each device sent."""

    def __init__(self, device_ids: list[str]) -> None:
        self.sent: dict[str, list[bytes]] = {}
        self.links = {d: _Link(d, self.sent) for d in device_ids}
        self.waits = 0

    def heal(self) -> None:
        pass

    def wait_acked(self, timeout_s: float) -> int:
        self.waits += 1
        return 0


def _published(catch_up_steps: int, tmp_path: Path) -> tuple[_FakeFleet, RunStats, list[Any]]:
    town = build_town(energy=2, waste=2, traffic=1, seed=5, lorawan_bins=0, lorawan_meters=0)
    now = datetime.now(UTC)
    start = floor_to_step(now - timedelta(hours=6), STEP)
    config = RunnerConfig(
        api_url="http://api.test",
        api_key="k",
        run_dir=tmp_path,
        speed=1e9,  # every step of the backlog is due at once
        catch_up_steps=catch_up_steps,
    )
    fleet = _FakeFleet([d.id for d in town])
    stats = runner_module._publish(
        town,
        cast(Any, fleet),
        runner_module._NetworkServer({}, None, with_object=True),
        config=config,
        start=start,
        end=start + timedelta(hours=6),
        events=[],
        stop=threading.Event(),
    )
    expected = list(iter_readings(town, start=start, end=start + timedelta(hours=6)))
    return fleet, stats, expected


@pytest.mark.parametrize("catch_up_steps", [1, 5, 16])
def test_a_backlog_goes_in_packs_the_gateway_reads_as_the_same_readings(
    catch_up_steps: int, tmp_path: Path
) -> None:
    fleet, stats, expected = _published(catch_up_steps, tmp_path)
    steps = 6 * 4
    blocks = -(-steps // catch_up_steps)
    # One message per device per block, one wait for the broker's acknowledgements per block.
    assert all(len(sent) == blocks for sent in fleet.sent.values())
    assert fleet.waits == blocks + 1  # and a last one before the run ends
    assert (stats.steps, stats.published, stats.dropped) == (steps, len(expected), 0)
    assert stats.messages == blocks * len(fleet.links)
    # Decoded by the gateway's own parser: every reading once, in order, with its values.
    received = datetime.now(UTC)
    got = {
        device_id: [
            (r.ts, r.metric, r.value)
            for payload in payloads
            for r in parse_payload(
                DeviceTopic(Topic.WASTE, device_id), payload, received_at=received, limits=Limits()
            ).readings
        ]
        for device_id, payloads in fleet.sent.items()
    }
    want: dict[str, list[tuple[datetime, str, float]]] = {}
    for reading in expected:
        want.setdefault(reading.device.id, []).extend(
            (reading.ts, metric, value) for metric, value in reading.metrics.items()
        )
    assert got == want
    if catch_up_steps == 1:
        assert all(p.startswith(b"{") for sent in fleet.sent.values() for p in sent)
