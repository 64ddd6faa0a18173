"""`townpulse service install|status|uninstall`, and the steps the units run (`prepare`, `wait`)."""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import shutil
import subprocess
from pathlib import Path
from typing import Annotated, TypedDict

import typer

from townpulse.service import units
from townpulse.stack import Stack, StackError

app = typer.Typer(
    help="Run TownPulse as systemd services of this machine (starts at boot, logs to the "
    "journal). `townpulse up` stays the way to run it for development.",
    no_args_is_help=True,
)

UNIT_DIR = Path("/etc/systemd/system")
ENV_DIR = Path("/etc/townpulse")
MANIFEST = "service-manifest.json"

UnitDir = Annotated[Path, typer.Option(help="Where the unit files go.")]
EnvDir = Annotated[
    Path, typer.Option(help="Where the units' environment files (secrets, 0600) go.")
]


def systemd_running() -> bool:
    """Whether systemd is PID 1 (its runtime directory exists only then: sd_booted(3))."""
    return Path("/run/systemd/system").is_dir()


def _pid1() -> str:
    try:
        return Path("/proc/1/comm").read_text().strip()
    except OSError:
        return "unknown"


def _systemctl(*args: str) -> subprocess.CompletedProcess[str]:
    systemctl = shutil.which("systemctl") or "systemctl"
    return subprocess.run(  # noqa: S603 - systemctl with our own units' names
        [systemctl, *args], capture_output=True, text=True, check=False
    )


def _write(path: Path, text: str, *, mode: int) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return hashlib.sha256(text.encode()).hexdigest()


def ensure_user(name: str = units.SERVICE_USER) -> bool:
    """The unprivileged system user Kafka, the services and the watch run as; True if made."""
    try:
        pwd.getpwnam(name)
        return False
    except KeyError:
        pass
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    subprocess.run(  # noqa: S603 - fixed arguments
        [useradd, "--system", "--no-create-home", "--home-dir", "/nonexistent",
         "--shell", "/usr/sbin/nologin", name],
        check=True,
    )  # fmt: skip
    return True


@app.command()
def install(
    unit_dir: UnitDir = UNIT_DIR,
    env_dir: EnvDir = ENV_DIR,
    sim: Annotated[bool, typer.Option(help="Also run the simulated town.")] = False,
    create_user: Annotated[
        bool, typer.Option(help="Create the `townpulse` system user if missing.")
    ] = True,
) -> None:
    """Write a unit per component, townpulse.target and the daily backup timer; enable them."""
    stack = Stack()
    if _manifest(env_dir).exists():
        # A second install replaces the first: nothing of the first is left behind.
        _remove(env_dir, quiet=True)
    if create_user and ensure_user():
        typer.echo(f"created the system user {units.SERVICE_USER!r}")
    plan = units.Writer(stack, env_dir=env_dir).plan(simulator=sim)
    written: dict[str, str] = {}
    for unit in plan.units:
        path = unit_dir / unit.name
        written[str(path)] = _write(path, unit.text, mode=0o644)
    for name, values in plan.env_files.items():
        path = env_dir / f"{name}.env"
        text = "".join(units.env_line(k, v) + "\n" for k, v in sorted(values.items()))
        # Database and MQTT passwords: root only (systemd reads it before dropping to the user).
        written[str(path)] = _write(path, text, mode=0o600)
    names = [u.name for u in plan.units]
    manifest = Manifest(units=names, files=written, unit_dir=str(unit_dir))
    _write(_manifest(env_dir), json.dumps(manifest, indent=2) + "\n", mode=0o600)
    typer.echo(f"wrote {len(plan.units)} units to {unit_dir} and their environment to {env_dir}")
    if not systemd_running():
        typer.echo(
            f"systemd is not running as PID 1 here (PID 1 is {_pid1()!r}): the units are "
            "written but cannot be enabled or started on this machine."
        )
        return
    if unit_dir != UNIT_DIR:
        typer.echo(f"{unit_dir} is not {UNIT_DIR}: not enabling (systemd does not read it)")
        return
    for args in (("daemon-reload",), ("enable", units.TARGET, *names)):
        result = _systemctl(*args)
        if result.returncode != 0:
            typer.echo(f"systemctl {' '.join(args)} failed: {result.stderr.strip()}", err=True)
            raise typer.Exit(1)
    typer.echo(f"enabled {units.TARGET}; start it now with `systemctl start {units.TARGET}`")


@app.command()
def status(env_dir: EnvDir = ENV_DIR) -> None:
    """Each unit `install` wrote, and its state as systemd sees it."""
    manifest = _read_manifest(env_dir)
    if manifest is None:
        typer.echo(f"not installed ({_manifest(env_dir)} missing)")
        raise typer.Exit(1)
    running = systemd_running()
    if not running:
        typer.echo(f"systemd is not running as PID 1 (PID 1 is {_pid1()!r}): states unknown")
    typer.echo(f"{'unit':<36} {'enabled':<10} {'active':<10} {'sub':<10} restarts")
    for name in manifest["units"]:
        row = {"UnitFileState": "-", "ActiveState": "-", "SubState": "-", "NRestarts": "-"}
        if running:
            result = _systemctl("show", f"--property={','.join(row)}", name)
            for line in result.stdout.splitlines():
                key, _, value = line.partition("=")
                if key in row and value:
                    row[key] = value
        typer.echo(
            f"{name:<36} {row['UnitFileState']:<10} {row['ActiveState']:<10} "
            f"{row['SubState']:<10} {row['NRestarts']}"
        )


@app.command()
def uninstall(env_dir: EnvDir = ENV_DIR) -> None:
    """Disable and remove exactly the files `install` wrote (its manifest lists them)."""
    if not _remove(env_dir, quiet=False):
        typer.echo(f"not installed ({_manifest(env_dir)} missing)")
        raise typer.Exit(1)


def _manifest(env_dir: Path) -> Path:
    return env_dir / MANIFEST


class Manifest(TypedDict):
    units: list[str]
    files: dict[str, str]
    unit_dir: str


def _read_manifest(env_dir: Path) -> Manifest | None:
    try:
        manifest: Manifest = json.loads(_manifest(env_dir).read_text())
    except FileNotFoundError:
        return None
    return manifest


def _remove(env_dir: Path, *, quiet: bool) -> bool:
    manifest = _read_manifest(env_dir)
    if manifest is None:
        return False
    names, files = manifest["units"], manifest["files"]
    if systemd_running() and Path(manifest["unit_dir"]) == UNIT_DIR:
        _systemctl("disable", "--now", *names)
    for path in files:
        Path(path).unlink(missing_ok=True)
    _manifest(env_dir).unlink()
    if systemd_running():
        _systemctl("daemon-reload")
    if not quiet:
        typer.echo(f"removed {len(names)} units and {len(files) - len(names)} environment files")
    return True


# ---- steps the units run ----------------------------------------------------------------------


@app.command(hidden=True)
def prepare(component: str) -> None:
    """What a component needs before it starts (run by its unit as root, `ExecStartPre=+`)."""
    stack = Stack()
    stack.run.mkdir(parents=True, exist_ok=True)
    os.chmod(stack.run, 0o711)  # noqa: S103 - traverse only, as `Stack.up`
    try:
        if component == "postgres":
            stack.postgres.prepare()
        elif component == "kafka":
            stack.kafka.prepare(owner=units.SERVICE_USER)
        elif component == "mosquitto":
            stack.mosquitto.prepare()
        elif component == units.BOOTSTRAP:
            stack.postgres.ensure_database()
            stack.postgres.ensure_backups()
            stack.bootstrap()
            stack.write_stack_env()
        elif component == "api":
            # Its HTTPS certificate, made by root at install from the stack's CA: the key is
            # the API's user's to read, nobody else's (mode 0600).
            files = stack.services.api_tls()
            pw = pwd.getpwnam(units.SERVICE_USER)
            for p in (files.server_cert.parent, files.server_cert, files.server_key):
                os.chown(p, pw.pw_uid, pw.pw_gid)
        elif component == "watch":
            path = stack.run / "watch"
            path.mkdir(exist_ok=True)
            pw = pwd.getpwnam(units.SERVICE_USER)
            for p in (path, *path.iterdir()):
                os.chown(p, pw.pw_uid, pw.pw_gid)
        else:
            raise typer.BadParameter(f"nothing to prepare for {component!r}")
    except StackError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc


@app.command(hidden=True)
def wait(component: str) -> None:
    """Until a component accepts connections (its unit's `ExecStartPost`, so that `After=`
    orders the next one after a ready one, not after a started one)."""
    stack = Stack()
    ready = {
        "postgres": stack.postgres.wait_ready,
        "kafka": stack.kafka.wait_ready,
        "mosquitto": stack.mosquitto.wait_ready,
    }
    if component not in ready:
        raise typer.BadParameter(f"no readiness check for {component!r}")
    try:
        ready[component]()
    except StackError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
