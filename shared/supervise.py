"""Supervision of a service's long-running tasks.

A background task nobody watches is a silent outage: every loop (consumer, relay, dispatcher,
MQTT pump...) runs under a `Supervisor`. One that ends for any reason but shutdown makes
`/readyz` fail and asks the process to exit with a non-zero status, so that the process manager
(the local stack's keeper, docker-compose's `restart:`, systemd) starts it again. The loops retry
outages themselves; reaching this point means something unexpected, and a fresh process is the
state nobody has to reason about.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)

EXIT_TASK_DIED = 70  # EX_SOFTWARE


class Supervisor:
    def __init__(self, *, on_fatal: Callable[[], None] | None = None) -> None:
        self._on_fatal = on_fatal
        self._tasks: dict[str, asyncio.Task[Any]] = {}
        self._stopping = False
        self.died: list[str] = []

    def start(self, name: str, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks[name] = task
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        if self._stopping:
            return
        name = task.get_name()
        self.died.append(name)
        exc = None if task.cancelled() else task.exception()
        log.critical("task %s stopped unexpectedly; exiting", name, exc_info=exc)
        if self._on_fatal is not None:
            self._on_fatal()

    async def check(self) -> None:
        """A readiness check: fails once any task has stopped."""
        if self.died:
            raise RuntimeError(f"task stopped: {', '.join(self.died)}")

    async def stop(self) -> None:
        self._stopping = True
        for t in self._tasks.values():
            t.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
