"""The local stack in the compact layout starts one keeper and one process for the three domain
services, whichever of them it is asked to start, and knows them by that process afterwards."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from townpulse.stack import SERVICES
from townpulse.stack.config import COMPACT_MEMBERS, COMPACT_PROCESS, StackSettings
from townpulse.stack.processes import Processes
from townpulse.stack.services import Services, keeper

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _keepers_of(pids_dir: Path) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if f"townpulse.keeper {COMPACT_PROCESS} {pids_dir} " in cmd:
            found.append(int(proc.name))
    return found


def test_three_starts_make_one_shared_process_under_one_keeper(tmp_path: Path) -> None:
    settings = StackSettings(
        run_dir=tmp_path,
        layout="compact",
        energy_port=_free_port(),
        waste_port=_free_port(),
        traffic_port=_free_port(),
    )
    procs = Processes(tmp_path)
    # Nothing to connect to: the shared process fails to start and its keeper restarts it,
    # which is all this needs.
    services = Services(
        procs,
        settings,
        database_url=lambda role: "postgresql://nobody:nothing@127.0.0.1:1/none",
        ca_cert_file=tmp_path / "ca.crt",
    )
    members = [s for s in SERVICES if s.name in COMPACT_MEMBERS]
    # A race (a keeper not yet recognisable when the next member asks) shows up one time in a
    # few: three rounds.
    for _ in range(3):
        try:
            for spec in members:  # as `townpulse up` does, one after the other, at once
                services.start(spec)
            assert _keepers_of(procs.pids) == [procs.pid(keeper(COMPACT_PROCESS))]
            assert {services.process(s.name) for s in members} == {COMPACT_PROCESS}
            assert services.process("gateway") == "gateway"
        finally:
            services.stop("energy")
        assert _keepers_of(procs.pids) == []
