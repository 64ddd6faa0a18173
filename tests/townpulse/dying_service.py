"""A service whose one supervised task dies after a moment (for tests/townpulse/test_keeper.py),
alone or beside a healthy one in the same process (tests/shared/test_serve_together.py)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from shared.http import observability_router, serve, serve_together
from shared.settings import ServiceSettings
from shared.supervise import Supervisor


def create_app() -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async def doomed() -> None:
            await asyncio.sleep(0.5)
            raise RuntimeError("the bug that nobody expected")

        supervisor = Supervisor(on_fatal=app.state.on_fatal)
        supervisor.start("doomed", doomed())
        app.state.supervisor = supervisor
        yield
        await supervisor.stop()

    app = FastAPI(lifespan=lifespan)
    app.include_router(observability_router(lambda: {"tasks": app.state.supervisor.check}))
    return app


def create_healthy_app() -> FastAPI:
    app = FastAPI()
    app.include_router(observability_router(lambda: {}))
    return app


if __name__ == "__main__":
    port = int(sys.argv[1])
    settings = ServiceSettings(dev_mode=True, http_port=port)
    if len(sys.argv) > 2:  # PORT BESIDE_PORT: beside a healthy service, in one process
        beside = ServiceSettings(dev_mode=True, http_port=int(sys.argv[2]))
        serve_together(
            [(create_app(), settings, "dying"), (create_healthy_app(), beside, "healthy")]
        )
    else:
        serve(create_app(), settings, service="dying")
