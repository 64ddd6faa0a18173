"""The compact layout on the real stack: energy, waste and traffic in one process
(townpulse/together.py), here started as second instances of the stack's own services."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared.supervise import EXIT_TASK_DIED
from shared.topics import READINGS_TOPICS, Domain
from tests.runtime_support import assert_stored_once, interleave, produce
from tests.services.energy.test_energy_runtime import SQL, _oracle, _series
from tests.support import wait_for
from townpulse.stack import SERVICES, Stack
from townpulse.stack.config import COMPACT_MEMBERS, member_env_var
from townpulse.stack.processes import http_ok

pytestmark = pytest.mark.e2e

MEMBERS = [s for s in SERVICES if s.name in COMPACT_MEMBERS]
INSTANCE = 2  # beside the stack's own instances, on their ports + 10


@contextmanager
def together(
    stack: Stack, log: Path, overrides: Mapping[str, dict[str, str]] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    env = {**os.environ, **stack.services.env(MEMBERS[0], instance=INSTANCE)}
    for spec in MEMBERS:
        own = stack.services.env(spec, instance=INSTANCE) | (overrides or {}).get(spec.name, {})
        env[member_env_var(spec.name)] = json.dumps(own)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "townpulse.together", *(s.name for s in MEMBERS)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)


def _logged_services(log: Path) -> set[str]:
    lines = [ln for ln in log.read_text().splitlines() if ln.startswith("{")]
    return {json.loads(ln).get("service") for ln in lines}


def test_one_process_serves_and_scores_for_every_domain_service(
    stack: Stack, stack_env: dict[str, str], tmp_path: Path
) -> None:
    log = tmp_path / "together.log"
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=4)
    names = [f"cl-{uuid.uuid4().hex[:8]}" for _ in range(6)]
    series = {d: _series(d, start=start, n=150, phase=k / 6) for k, d in enumerate(names)}
    db, kafka = stack_env["DATABASE_URL"], stack_env["KAFKA_BOOTSTRAP"]
    with together(stack, log) as proc:
        for spec in MEMBERS:
            url = f"http://127.0.0.1:{stack.services.port(spec, INSTANCE)}/readyz"
            wait_for(lambda url=url: http_ok(url), timeout=120, what=f"{url} ready")
        # Without the stack's own energy service, the shared process's takes every partition.
        stack.stop_service("energy")
        try:
            produce(kafka, READINGS_TOPICS[Domain.ENERGY], interleave(series, 0, 150))
            expected = _oracle(series)
            assert_stored_once(
                db,
                SQL,
                names,
                expected,
                timeout=180,
                what="every reading scored by the shared process",
            )
        finally:
            stack.restart_service("energy")
        proc.terminate()
        assert proc.wait(60) == 0, log.read_text()[-2000:]
    # One process, yet every line says which service wrote it.
    assert set(COMPACT_MEMBERS) <= _logged_services(log)


def test_a_member_that_cannot_start_stops_the_process_for_its_keeper(
    stack: Stack, tmp_path: Path
) -> None:
    log = tmp_path / "together.log"
    nowhere = {"TOWNPULSE_KAFKA_BOOTSTRAP": "127.0.0.1:1"}
    with together(stack, log, overrides={"waste": nowhere}) as proc:
        assert proc.wait(120) == EXIT_TASK_DIED, log.read_text()[-2000:]
