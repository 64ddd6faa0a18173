"""Processes of the local stack: pid files, logs, generated secrets, start and stop by pid.

Processes are stopped by the pid they were started with, never by name, because other
processes share the machine; a pid file also holds a marker that the process's command line
must contain, so that a recycled pid is never taken for ours.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from townpulse.stack.config import REPO, StackError

log = logging.getLogger("townpulse.stack")

_CHILDREN: list[subprocess.Popen[bytes]] = []


@dataclass(frozen=True)
class Launch:
    """How a component starts: its command line, its own environment (over `base_env()`), the OS
    user it runs as, and the marker its pid file holds.

    The one description of a component's process: the local runner spawns it
    (`Processes.spawn_launch`) and `townpulse service install` writes it into a systemd unit.
    """

    argv: list[str]
    marker: str
    env: dict[str, str] = field(default_factory=dict)
    user: str | None = None


def keeper(name: str) -> str:
    """The pid-file name of a component's keeper (townpulse/keeper.py)."""
    return f"{name}.keeper"


@dataclass(frozen=True)
class Keeping:
    """How a keeper stops and restarts its component (townpulse/keeper.py's options)."""

    # What the component takes as "shut down cleanly" (PostgreSQL: SIGINT, its fast shutdown),
    # and how long its shutdown may take before SIGKILL.
    stop_signal: signal.Signals = signal.SIGTERM
    stop_timeout_s: float = 30
    # The longest wait between restarts: 30 s for a service; less for the infrastructure, which
    # every service waits on and which costs nothing to try again (Kafka after a full disk).
    max_delay_s: float = 30


class Processes:
    """The run directory (`.run/` by default): pids, logs, secrets, data."""

    def __init__(self, run_dir: Path) -> None:
        self.run = run_dir.resolve()
        self.pids = self.run / "pids"
        self.logs = self.run / "logs"
        self.secrets_dir = self.run / "secrets"

    def secret(self, name: str) -> str:
        """A generated secret, created once and kept in a 0600 file."""
        path = self.secrets_dir / name
        if not path.exists():
            self.secrets_dir.mkdir(parents=True, exist_ok=True)
            os.chmod(self.secrets_dir, 0o700)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(24))
        return path.read_text().strip()

    def private_dir(self, path: Path) -> Path:
        """A directory only the stack's own user may read (0700), made so if it exists already:
        logs carry device ids, Kafka's data readings, pid files which processes are ours."""
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, 0o700)
        return path

    def data_dir(self, name: str, owner: str, *, create: bool = True) -> Path:
        """A data directory owned by `owner`, who must be able to reach it.

        Daemons refuse to run as root, so they run as their own user; if the run directory sits
        below a folder that user cannot enter, fall back to a private folder in /var/lib. With
        `create=False`, only where it is (the systemd units name it before it exists).
        """
        preferred = self.run / "data" / name
        # Others (the daemons' users) traverse it to their own directory; nobody lists it.
        preferred.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(preferred.parent, 0o711)  # noqa: S103 - execute only: see above
        user = pwd.getpwnam(owner)
        if reachable_by(preferred.parent, user, fix=create):
            path = preferred
        else:
            tag = uuid.uuid5(uuid.NAMESPACE_URL, str(self.run)).hex[:12]
            path = Path("/var/lib/townpulse") / tag / name
            log.info("%s cannot reach %s; using %s", owner, preferred, path)
        if not create:
            return path
        path.mkdir(parents=True, exist_ok=True)
        os.chown(path, user.pw_uid, user.pw_gid)
        os.chmod(path, 0o700)
        return path

    def pid_file(self, name: str) -> Path:
        return self.pids / f"{name}.pid"

    def pid(self, name: str) -> int | None:
        """The pid of a running component, if its pid file points at a live process of ours."""
        try:
            pid_text, _, marker = self.pid_file(name).read_text().strip().partition(" ")
            pid = int(pid_text)
        except (OSError, ValueError):
            return None
        # A recycled pid belongs to someone else: the marker we started it with must be there.
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            return None
        if marker and marker not in cmdline:
            return None
        return pid if alive(pid) else None

    def spawn(
        self,
        name: str,
        argv: list[str],
        *,
        marker: str,
        env: dict[str, str] | None = None,
        user: str | None = None,
        cwd: Path | None = None,
        log_name: str | None = None,
    ) -> int:
        self.private_dir(self.pids)
        self.private_dir(self.logs)
        # 0600, also a log an older version made world-readable: what the services log names
        # devices, and a daemon's log may show its configuration.
        fd = os.open(
            self.logs / f"{log_name or name}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600
        )
        os.fchmod(fd, 0o600)
        logf = os.fdopen(fd, "ab")
        kwargs: dict[str, object] = {}
        if user:
            pw = pwd.getpwnam(user)
            kwargs.update(user=pw.pw_uid, group=pw.pw_gid, extra_groups=[])
        proc = subprocess.Popen(
            argv,
            stdout=logf,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**base_env(), **(env or {})},
            cwd=cwd or REPO,
            # Its own session: a Ctrl-C in the terminal that ran `make up` does not reach it.
            start_new_session=True,
            **kwargs,  # type: ignore[call-overload]
        )
        logf.close()
        # The child outlives this process (its own session); keep the Popen object so that it
        # is not collected (and warned about) while the child runs.
        _CHILDREN.append(proc)
        self.pid_file(name).write_text(f"{proc.pid} {marker}\n")
        return int(proc.pid)

    def spawn_launch(self, launch: Launch, *, name: str, log_name: str | None = None) -> int:
        return self.spawn(
            name,
            launch.argv,
            marker=launch.marker,
            env=launch.env,
            user=launch.user,
            log_name=log_name,
        )

    def keep(self, name: str, launch: Launch, keeping: Keeping | None = None) -> None:
        """A process under a keeper, unless it (or its keeper) runs already."""
        if self.pid(keeper(name)) or self.pid(name):
            return
        keeping = keeping or Keeping()
        self.pids.mkdir(parents=True, exist_ok=True)
        options = [
            f"--stop-signal={keeping.stop_signal.name}",
            f"--stop-timeout={keeping.stop_timeout_s:g}",
            f"--max-delay={keeping.max_delay_s:g}",
            *([f"--user={launch.user}"] if launch.user else []),
        ]
        self.spawn(
            keeper(name),
            [
                sys.executable,
                "-m",
                "townpulse.keeper",
                name,
                str(self.pids),
                launch.marker,
                *options,
                "--",
                *launch.argv,
            ],
            marker=f"townpulse.keeper {name}",
            env=launch.env,
            log_name=name,
        )
        # Until the child has exec'd, its command line is ours and `pid()` does not know it:
        # a second start (the compact layout's next member) would spawn a second keeper.
        wait_until(lambda: self.pid(keeper(name)) is not None, timeout=10, what=f"{name}'s keeper")

    def stop_kept(self, name: str, keeping: Keeping | None = None) -> None:
        """Stop a kept process and its keeper (which would otherwise start it again)."""
        keeping = keeping or Keeping()
        # The keeper's own deadline first, then SIGKILL to the keeper.
        self.stop(keeper(name), timeout=keeping.stop_timeout_s + 10)
        # Left by a keeper that was killed, or started before it was kept.
        self.stop(name, sig=keeping.stop_signal, timeout=keeping.stop_timeout_s)

    def stop(self, name: str, *, sig: signal.Signals = signal.SIGTERM, timeout: float = 30) -> None:
        """Signal a component and wait for it to exit (SIGKILL after `timeout`)."""
        pid = self.pid(name)
        if pid is None:
            self.pid_file(name).unlink(missing_ok=True)
            return
        log.info("stopping %s (pid %d)", name, pid)
        os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.pid(name) is not None:
            reap(pid)
            time.sleep(0.1)
        if self.pid(name) is not None:
            log.warning("%s did not stop in %.0f s: SIGKILL", name, timeout)
            os.kill(pid, signal.SIGKILL)
            wait_until(lambda: self.pid(name) is None, timeout=10, what=f"{name} to die")
        self.pid_file(name).unlink(missing_ok=True)

    def kill(self, name: str) -> None:
        """SIGKILL a component (tests of crash safety use this)."""
        pid = self.pid(name)
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            # Its keeper (if any) starts a new one with another pid: wait for this one only.
            wait_until(lambda: not alive(pid), timeout=10, what=f"{name} to die")


def base_env() -> dict[str, str]:
    keep = ("PATH", "LANG", "LC_ALL", "TZ", "JAVA_HOME", "VIRTUAL_ENV", "PYTHONPATH")
    env = {k: v for k, v in os.environ.items() if k in keep or k.startswith("TOWNPULSE_")}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
    env["HOME"] = "/tmp"  # noqa: S108 - daemons running as their own users have no home here
    env["PYTHONUNBUFFERED"] = "1"
    return env


def read_env_file(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if "=" in line and not line.startswith("#"):
                k, v = line.split("=", 1)
                out[k.strip()] = v.strip()
    return out


def reachable_by(path: Path, user: pwd.struct_passwd, *, fix: bool = True) -> bool:
    """Whether `user` can traverse every directory down to `path` (others' execute bit).

    With `fix`, `path` is created and opened to traversal; without, only its parents count
    (what `fix` would do to `path` itself is taken for done)."""
    if fix:
        path.mkdir(parents=True, exist_ok=True)
    for p in [path, *path.parents]:
        if not p.exists():
            continue
        st = p.stat()
        if st.st_uid == user.pw_uid:
            continue
        if not st.st_mode & 0o001:
            if p == path:
                if fix:
                    os.chmod(p, st.st_mode | 0o001)
                continue
            return False
    return True


def alive(pid: int) -> bool:
    reap(pid)
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def wait_until(
    cond: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    give_up: Callable[[], bool] | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        if give_up and give_up():
            raise StackError(f"gave up waiting for {what}: the process exited")
        time.sleep(0.2)
    raise StackError(f"timed out after {timeout:.0f} s waiting for {what}")


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_port(port: int, *, timeout: float, what: str) -> None:
    wait_until(lambda: port_open(port), timeout=timeout, what=f"{what} on port {port}")


def http_ok(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def can_connect(url: str) -> bool:
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False
