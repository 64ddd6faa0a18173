"""Supervision: a task that stops makes readiness fail and asks the process to exit."""

from __future__ import annotations

import asyncio

import pytest

from shared.supervise import Supervisor

pytestmark = pytest.mark.unit


async def test_a_task_that_dies_fails_readiness_and_calls_for_an_exit() -> None:
    fatal: list[bool] = []
    sup = Supervisor(on_fatal=lambda: fatal.append(True))

    async def forever() -> None:
        await asyncio.Event().wait()

    async def broken() -> None:
        raise RuntimeError("bug")

    sup.start("steady", forever())
    await sup.check()
    sup.start("broken", broken())
    for _ in range(100):
        if sup.died:
            break
        await asyncio.sleep(0.01)
    assert sup.died == ["broken"]
    assert fatal == [True]
    with pytest.raises(RuntimeError, match="broken"):
        await sup.check()
    await sup.stop()


async def test_a_task_that_returns_is_a_death_too() -> None:
    sup = Supervisor()

    async def done() -> None:
        return None

    sup.start("quits", done())
    for _ in range(100):
        if sup.died:
            break
        await asyncio.sleep(0.01)
    assert sup.died == ["quits"]
    await sup.stop()


async def test_shutdown_is_not_a_death() -> None:
    fatal: list[bool] = []
    sup = Supervisor(on_fatal=lambda: fatal.append(True))
    sup.start("steady", asyncio.Event().wait())
    await sup.stop()
    assert not sup.died and not fatal
