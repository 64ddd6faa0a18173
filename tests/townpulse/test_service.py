"""`townpulse service install|status|uninstall`: the systemd units, checked without systemd.

systemd is not PID 1 on this machine (nor in CI's container): the units are generated into a
temporary directory and checked with `systemd-analyze verify` (syntax, every ExecStart binary
present) and by reading them back; enabling them, starting them at boot and their hardening at
run time are not tested here.
"""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from townpulse.cli import app
from townpulse.service import units
from townpulse.stack import SERVICES, Stack

pytestmark = pytest.mark.integration

runner = CliRunner()


def _install(tmp_path: Path, *extra: str) -> tuple[Path, Path]:
    unit_dir, env_dir = tmp_path / "units", tmp_path / "env"
    result = runner.invoke(
        app,
        [
            "service",
            "install",
            "--unit-dir",
            str(unit_dir),
            "--env-dir",
            str(env_dir),
            "--no-create-user",
            *extra,
        ],
    )
    assert result.exit_code == 0, result.output
    return unit_dir, env_dir


def _read(path: Path) -> dict[str, dict[str, list[str]]]:
    """A unit file's sections and keys, each key with all its values (keys repeat)."""
    parser = configparser.RawConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
        elif "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            current.setdefault(key, []).append(value)
    return sections


def _one(unit: dict[str, dict[str, list[str]]], section: str, key: str) -> str:
    values = unit[section][key]
    assert len(values) == 1, values
    return values[0]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return _install(tmp_path_factory.mktemp("service"))


def test_systemd_analyze_verifies_every_generated_unit(installed: tuple[Path, Path]) -> None:
    unit_dir, _ = installed
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze missing: deploy/install.sh installs systemd"
    files = sorted(str(p) for p in unit_dir.iterdir())
    result = subprocess.run(
        [analyze, "verify", "--man=no", *files], capture_output=True, text=True, check=False
    )
    # Warnings too (an unknown key, a value systemd ignores) fail the test, not only errors.
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def test_one_unit_per_component_and_a_target_grouping_them(installed: tuple[Path, Path]) -> None:
    unit_dir, _ = installed
    stack = Stack()
    processes = stack.services.processes()
    expected = {
        *(units.unit_name(n) for n in ("postgres", "kafka", "mosquitto", "bootstrap", "watch")),
        *(units.unit_name(p) for p in processes),
        "townpulse-backup.service",
        "townpulse-backup.timer",
        units.TARGET,
    }
    assert {p.name for p in unit_dir.iterdir()} == expected
    # The simulator is off unless asked for.
    assert not (unit_dir / units.unit_name("simulator")).exists()
    target = _read(unit_dir / units.TARGET)
    grouped = set(_one(target, "Unit", "Wants").split())
    assert grouped == expected - {units.TARGET}
    assert _one(target, "Install", "WantedBy") == "multi-user.target"
    for name in expected - {units.TARGET, "townpulse-backup.timer"}:
        unit = _read(unit_dir / name)
        assert _one(unit, "Unit", "PartOf") == units.TARGET


def test_order_postgres_then_kafka_then_mosquitto_then_services(
    installed: tuple[Path, Path],
) -> None:
    unit_dir, _ = installed

    def after(name: str) -> set[str]:
        return set(_one(_read(unit_dir / units.unit_name(name)), "Unit", "After").split())

    assert units.unit_name("postgres") in after("kafka")
    assert units.unit_name("kafka") in after("mosquitto")
    bootstrap = _read(unit_dir / units.unit_name("bootstrap"))
    infra = {units.unit_name(n) for n in ("postgres", "kafka", "mosquitto")}
    assert set(_one(bootstrap, "Unit", "Requires").split()) == infra
    assert infra <= set(_one(bootstrap, "Unit", "After").split())
    for process in [*Stack().services.processes(), "watch"]:
        unit = _read(unit_dir / units.unit_name(process))
        assert {units.unit_name("bootstrap"), units.unit_name("mosquitto")} <= after(process)
        assert units.unit_name("bootstrap") in _one(unit, "Unit", "Requires").split()
    # "After" a server means after it accepts connections: each waits for its port.
    for name in ("postgres", "kafka", "mosquitto"):
        post = _one(_read(unit_dir / units.unit_name(name)), "Service", "ExecStartPost")
        assert shlex.split(post)[-2:] == ["wait", name]


def test_units_start_the_same_command_lines_as_the_local_stack(
    installed: tuple[Path, Path],
) -> None:
    unit_dir, env_dir = installed
    stack = Stack()
    launches = {
        "postgres": stack.postgres.launch(),
        "kafka": stack.kafka.launch(),
        "mosquitto": stack.mosquitto.launch(),
        "watch": stack.watch_launch(),
        **{p: stack.services.launch(p) for p in stack.services.processes()},
    }
    for name, launch in launches.items():
        unit = _read(unit_dir / units.unit_name(name))
        # systemd reads % as a specifier: a literal one (pgBackRest's %p) is written %%.
        exec_start = _one(unit, "Service", "ExecStart").replace("%%", "%")
        assert shlex.split(exec_start) == launch.argv, name
        # Its environment: the stack's settings, then its own (secrets there, root only).
        env_files = unit["Service"]["EnvironmentFile"]
        assert env_files == [str(env_dir / "stack.env"), str(env_dir / f"{name}.env")]
        own = env_dir / f"{name}.env"
        assert own.stat().st_mode & 0o777 == 0o600
        lines = own.read_text().splitlines()
        for key, value in launch.env.items():
            if key == "TOWNPULSE_WATCH_SUPERVISOR":
                continue
            assert units.env_line(key, value) in lines, (name, key)
    gateway = next(s for s in SERVICES if s.name == "gateway")
    password = stack.services.env(gateway)["TOWNPULSE_MQTT_PASSWORD"]
    # No secret in the unit files, which anyone may read.
    assert all(password not in p.read_text() for p in unit_dir.iterdir())
    watch_env = (env_dir / "watch.env").read_text()
    assert "TOWNPULSE_WATCH_SUPERVISOR='systemd'" in watch_env


def test_unprivileged_users_restart_policy_journal_and_hardening(
    installed: tuple[Path, Path],
) -> None:
    unit_dir, _ = installed
    stack = Stack()
    users = {"postgres": "postgres", "mosquitto": "mosquitto", "kafka": "townpulse"}
    users |= {p: "townpulse" for p in [*stack.services.processes(), "watch"]}
    writable: dict[str, list[Path]] = {
        # Its archive_command (pgBackRest) writes the backup repository and its own directory.
        "postgres": [
            stack.procs.data_dir("postgres", "postgres", create=False),
            stack.procs.data_dir("pgbackrest", "postgres", create=False),
            stack.postgres.backrest.repo_path(),
        ],
        "kafka": [stack.kafka.data_dir],
        "mosquitto": [stack.procs.data_dir("mosquitto", "mosquitto", create=False)],
        "watch": [stack.run / "watch"],
    }
    for name, user in users.items():
        service = _read(unit_dir / units.unit_name(name))["Service"]
        assert service["User"] == [user], name
        assert service["Restart"] == ["on-failure"]
        assert service["StandardOutput"] == ["journal"]
        for key, value in units.HARDENING.items():
            assert service[key] == [value], (name, key)
        # Each writes to its own data only; the services write nowhere.
        paths = service.get("ReadWritePaths", [""])[0].split()
        assert paths == [str(p) for p in writable.get(name, [])], name
        # What needs root before a start runs as root for that step only.
        for pre in service.get("ExecStartPre", []):
            assert pre.startswith("+"), pre
        unit = _read(unit_dir / units.unit_name(name))["Unit"]
        assert int(_one({"Unit": unit}, "Unit", "StartLimitBurst")) > 0


def test_a_daily_backup_timer_runs_the_backup_command(installed: tuple[Path, Path]) -> None:
    unit_dir, _ = installed
    timer = _read(unit_dir / "townpulse-backup.timer")
    assert _one(timer, "Timer", "OnCalendar") == "daily"
    assert _one(timer, "Timer", "Persistent") == "true"
    assert _one(timer, "Timer", "Unit") == "townpulse-backup.service"
    service = _read(unit_dir / "townpulse-backup.service")
    assert shlex.split(_one(service, "Service", "ExecStart"))[-3:] == ["townpulse", "backup", "run"]
    assert _one(service, "Service", "Type") == "oneshot"


def test_the_simulator_on_request_gets_the_admin_key_as_a_credential(tmp_path: Path) -> None:
    unit_dir, _ = _install(tmp_path, "--sim")
    service = _read(unit_dir / units.unit_name("simulator"))["Service"]
    assert service["User"] == ["townpulse"]
    assert service["LoadCredential"] == [f"admin-api-key:{Stack().admin_key_file}"]
    assert service["Environment"] == ["ADMIN_API_KEY_FILE=%d/admin-api-key"]
    # Not also in its environment file, which would win over `Environment=`.
    assert "ADMIN_API_KEY_FILE" not in (tmp_path / "env" / "simulator.env").read_text()


def test_install_says_it_cannot_enable_without_systemd(tmp_path: Path) -> None:
    unit_dir, env_dir = tmp_path / "u", tmp_path / "e"
    result = runner.invoke(
        app,
        [
            *("service", "install", "--unit-dir", str(unit_dir)),
            *("--env-dir", str(env_dir), "--no-create-user"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "not running as PID 1" in result.output
    status = runner.invoke(app, ["service", "status", "--env-dir", str(env_dir)])
    assert status.exit_code == 0, status.output
    assert units.TARGET in status.output and "states unknown" in status.output


def test_uninstall_removes_exactly_what_install_wrote(tmp_path: Path) -> None:
    unit_dir, env_dir = tmp_path / "units", tmp_path / "env"
    unit_dir.mkdir()
    env_dir.mkdir()
    # Someone else's unit and file, in the same directories.
    (unit_dir / "other.service").write_text("[Service]\nExecStart=/bin/true\n")
    (env_dir / "other.conf").write_text("keep me\n")
    _install(tmp_path)
    assert (unit_dir / units.TARGET).exists()
    # A second install replaces the first without leaving anything behind.
    _install(tmp_path)
    result = runner.invoke(app, ["service", "uninstall", "--env-dir", str(env_dir)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in unit_dir.iterdir()) == ["other.service"]
    assert sorted(p.name for p in env_dir.iterdir()) == ["other.conf"]
    again = runner.invoke(app, ["service", "uninstall", "--env-dir", str(env_dir)])
    assert again.exit_code == 1


def _env_file(path: Path) -> dict[str, str]:
    """An EnvironmentFile as systemd reads the lines `install` writes (one quoted value each)."""
    out = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition("=")
        (out[key],) = shlex.split(value)
    return out


@pytest.mark.parametrize("name", ["postgres", "kafka", "mosquitto"])
def test_each_servers_readiness_step_runs_with_its_units_environment(
    installed: tuple[Path, Path], name: str
) -> None:
    """The unit's ExecStartPost, run as written with the unit's environment files, against the
    running stack: it finds the stack's server ready."""
    unit_dir, _ = installed
    service = _read(unit_dir / units.unit_name(name))["Service"]
    env: dict[str, str] = {}
    for path in service["EnvironmentFile"]:
        env |= _env_file(Path(path))
    assert env["TOWNPULSE_RUN_DIR"] == str(Stack().run)
    result = subprocess.run(
        shlex.split(_one({"Service": service}, "Service", "ExecStartPost")),
        env=env,
        cwd=_one({"Service": service}, "Service", "WorkingDirectory"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_the_api_unit_serves_https_with_a_key_prepared_for_its_user(
    installed: tuple[Path, Path],
) -> None:
    unit_dir, env_dir = installed
    service = _read(unit_dir / units.unit_name("api"))["Service"]
    pre = _one({"Service": service}, "Service", "ExecStartPre")
    # As root ("+"): it gives the API's user its HTTPS key (commands.prepare).
    assert pre.startswith("+") and shlex.split(pre[1:])[-2:] == ["prepare", "api"]
    text = (env_dir / "api.env").read_text()
    env = {k: shlex.split(v)[0] for k, _, v in (ln.partition("=") for ln in text.splitlines()) if v}
    stack = Stack()
    assert env["TOWNPULSE_HTTPS_PORT"] == str(stack.s.api_tls_port)
    assert env["TOWNPULSE_TLS_KEYFILE"] == str(stack.run / "api-tls" / "server.key")
