"""What other users of the machine may read in the running stack's run directory: its public
CA and API certificates, nothing else (logs name devices, Kafka's data holds every reading)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

# The stack's CA certificate: handed to every device, public by design; the API's certificate,
# which its HTTPS listener shows every client (its key stays 0600).
PUBLIC = {Path("tls"), Path("tls/ca.crt"), Path("api-tls"), Path("api-tls/server.crt")}


def _readable_by_others(run: Path) -> list[str]:
    """Paths below `run` that another user can reach (every directory above them has o+x)
    and read (o+r)."""
    found: list[str] = []
    for root, dirs, files in os.walk(run):
        here = Path(root)
        if not os.stat(here).st_mode & stat.S_IXOTH:
            dirs.clear()  # nobody else gets past this one
            continue
        for name in [*dirs, *files]:
            path = here / name
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode) or not mode & stat.S_IROTH:
                continue
            if path.relative_to(run) not in PUBLIC:
                found.append(f"{path.relative_to(run)} ({stat.filemode(mode)})")
    return found


def test_only_the_ca_certificate_is_readable_by_other_users(stack_env: dict[str, str]) -> None:
    run = Path(stack_env["TOWNPULSE_RUN_DIR"])
    assert _readable_by_others(run) == []


def test_logs_are_the_stacks_own(stack_env: dict[str, str]) -> None:
    logs = Path(stack_env["TOWNPULSE_RUN_DIR"]) / "logs"
    assert stat.S_IMODE(logs.stat().st_mode) == 0o700
    files = list(logs.glob("*.log"))
    assert files
    for log in files:
        assert stat.S_IMODE(log.stat().st_mode) == 0o600, log
