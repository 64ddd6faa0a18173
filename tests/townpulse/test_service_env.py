"""Each service's environment from the local stack: its own database role and only the keys it
uses (townpulse/stack/services.py; docker-compose.yml has the same, tests/test_compose.py)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from townpulse.stack import SERVICES
from townpulse.stack.config import KEYS, MAINTENANCE_ROLE, StackSettings
from townpulse.stack.postgres import Postgres
from townpulse.stack.processes import Processes
from townpulse.stack.services import Services

pytestmark = pytest.mark.unit


def _services(tmp_path: Path) -> tuple[Services, Processes]:
    procs = Processes(tmp_path)
    settings = StackSettings(run_dir=tmp_path)
    postgres = Postgres(procs, settings)
    return (
        Services(procs, settings, database_url=postgres.role_url, ca_cert_file=tmp_path / "ca"),
        procs,
    )


def test_each_service_gets_its_own_role_and_only_its_keys(tmp_path: Path) -> None:
    services, procs = _services(tmp_path)
    passwords = set()
    for spec in SERVICES:
        env = services.env(spec)
        url = make_url(env["TOWNPULSE_DATABASE_URL"])
        assert url.username == f"townpulse_{spec.name}"
        passwords.add(url.password)
        for secret, (var, users) in KEYS.items():
            assert (var in env) == (spec.name in users), (spec.name, var)
            if var in env:
                assert env[var] == procs.secret(secret)
        maintenance = env.get("TOWNPULSE_MAINTENANCE_DATABASE_URL")
        assert (maintenance is not None) == (spec.name == "storage")
        if maintenance:
            assert make_url(maintenance).username == MAINTENANCE_ROLE
    assert len(passwords) == len(SERVICES)
    # Generated once, readable by the stack's owner only.
    for path in procs.secrets_dir.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
