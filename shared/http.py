"""HTTP plumbing shared by every service: its app (`create_service_app`), the typed objects
its routes use (`AppResource`), health, readiness, metrics, keys, roles, audit."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import math
import signal
import sys
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from datetime import datetime, timedelta
from typing import Annotated, Any, Generic, TypeVar, cast

import fastapi.routing
import psycopg
import uvicorn
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Response, status
from fastapi.dependencies.models import Dependant
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest
from psycopg_pool import PoolTimeout
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared import audit
from shared.auth import Role, hash_key, key_id_of
from shared.db import Pool
from shared.inputs import check_instant, utcnow
from shared.keyring import KeyRing
from shared.logging import SERVICE, configure_logging
from shared.settings import ServiceSettings
from shared.supervise import EXIT_TASK_DIED, Supervisor
from shared.throttle import FailureThrottle

log = logging.getLogger(__name__)

AUTH_REFUSED = Counter(
    "townpulse_http_auth_refused_total",
    "Requests refused for their API key: 401 (no or wrong key) or 429 (too many wrong ones)",
    ["status"],
)
# When the key table cannot be read (the database restarting): a few seconds, as /readyz.
KEYS_UNAVAILABLE_RETRY_AFTER_S = 5

T = TypeVar("T")
S = TypeVar("S", bound=ServiceSettings)


class AppResource(Generic[T]):
    """An object a service's app holds for its routes and checks (its pool, its settings, a
    client), given to a route as a typed dependency: `pool: Annotated[Pool, Depends(POOL)]`.

    The one place that reads and writes the app's state (Starlette's untyped `app.state`, under
    `name`, where a test may also put a stand-in): routes name the type they get, and mypy sees
    it. Async, so that FastAPI calls it in the event loop, not in a worker thread.
    """

    def __init__(self, name: str) -> None:
        self.name = name

    async def __call__(self, request: Request) -> T:
        return self.of(request.app)

    def of(self, app: Starlette) -> T:
        """The object, which the app's start-up (or its builder) must have put."""
        return cast(T, getattr(app.state, self.name))

    def find(self, app: Starlette) -> T | None:
        """The object, or None if nothing put it."""
        return cast(T | None, getattr(app.state, self.name, None))

    def put(self, app: Starlette, value: T) -> None:
        setattr(app.state, self.name, value)


# What every service's app holds: its settings, its database pool (the audit log's too), the
# supervisor of its long-running tasks, the Gate's key table, and what to call when a supervised
# task dies (set by serve_together).
SETTINGS: AppResource[ServiceSettings] = AppResource("settings")
POOL: AppResource[Pool] = AppResource("pool")
SUPERVISOR: AppResource[Supervisor] = AppResource("supervisor")
KEYRING: AppResource[KeyRing] = AppResource("keyring")
ON_FATAL: AppResource[Callable[[], None]] = AppResource("on_fatal")

AppPool = Annotated[Pool, Depends(POOL)]
AppKeyRing = Annotated[KeyRing, Depends(KEYRING)]


def settings_of(kind: type[S]) -> AppResource[S]:
    """The app's settings as its service's own class (`kind`): what its routes depend on."""
    del kind  # for the type only: the app holds one settings object, of its service's class
    return AppResource(SETTINGS.name)


ReadyCheck = Callable[[], Awaitable[object]]
# A dependency that does not answer in this time is reported as not ready, so /readyz itself
# answers well within a load balancer's or `townpulse status`'s own timeout.
READY_CHECK_TIMEOUT_S = 2.0


def observability_router(checks: Callable[[], dict[str, ReadyCheck]]) -> APIRouter:
    """`/healthz` (the process answers), `/readyz` (its dependencies do), `/metrics`."""
    router = APIRouter(tags=["operations"])

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Liveness: the process serves requests."""
        return {"status": "ok"}

    @router.get("/readyz")
    async def readyz(response: Response) -> dict[str, Any]:
        """Readiness: every dependency answered."""
        results: dict[str, str] = {}
        for name, check in checks().items():
            try:
                await asyncio.wait_for(check(), READY_CHECK_TIMEOUT_S)
                results[name] = "ok"
            except Exception as exc:
                results[name] = f"error: {type(exc).__name__}"
        ok = all(v == "ok" for v in results.values())
        if not ok:
            response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return {"status": "ok" if ok else "unavailable", "checks": results}

    @router.get("/metrics")
    async def metrics() -> Response:
        """Prometheus metrics."""
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


async def check_pool(pool: Pool) -> None:
    async with pool.connection() as conn:
        await conn.execute("SELECT 1")


class Principal(BaseModel):
    key_id: str
    role: Role


# Paths every service answers without a key: probes, metrics, and the API's own description
# (the code is open source; the description says nothing about the town).
PUBLIC_PATHS = ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/redoc")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# Documents the scheme in OpenAPI; the Gate below is what checks the key.
_bearer = HTTPBearer(auto_error=False)
_ROLE_OF: dict[Callable[..., Awaitable[Principal]], Role] = {}


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"}
    )


def _requires(role: Role) -> Callable[..., Awaitable[Principal]]:
    async def dependency(
        request: Request,
        _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        principal: Principal | None = getattr(request.state, "principal", None)
        if principal is None:
            # An app built without the Gate: closed, not open.
            raise _unauthorized("missing API key")
        if not principal.role.allows(role):
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail=f"{role.value} role required")
        return principal

    _ROLE_OF[dependency] = role
    return dependency


require_viewer = _requires(Role.VIEWER)
require_operator = _requires(Role.OPERATOR)
require_admin = _requires(Role.ADMIN)
# Any valid key; what it may do is each route's business.
authenticate = require_viewer

Viewer = Annotated[Principal, Depends(require_viewer)]
Operator = Annotated[Principal, Depends(require_operator)]
Admin = Annotated[Principal, Depends(require_admin)]


def _route_role(dependant: Dependant) -> Role | None:
    roles = [_ROLE_OF[d.call] for d in dependant.dependencies if d.call in _ROLE_OF]
    roles += [r for d in dependant.dependencies if (r := _route_role(d)) is not None]
    return max(roles, key=lambda r: r.rank) if roles else None


def _is_public(path: str, public: tuple[str, ...]) -> bool:
    """`path` is one of `public` or below one of them; "/" itself opens only "/".

    >>> _is_public("/open-data/x.csv", ("/open-data/",)), _is_public("/v1/devices", ("/",))
    (True, False)
    """
    return any(path == p or (p != "/" and path.startswith(p.rstrip("/") + "/")) for p in public)


def _api_routes(app: FastAPI) -> list[tuple[str, APIRoute]]:
    """(path as served, route) for every APIRoute of `app`, wherever its router was included."""
    contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    if contexts is None:  # FastAPI from before routers were included lazily
        return [(r.path_format, r) for r in app.routes if isinstance(r, APIRoute)]
    return [
        (c.path_format or "", c.original_route)
        for c in contexts(app.routes)
        if isinstance(c.original_route, APIRoute)
    ]


# A service's own start-up and shut-down around its app's life, given the app and the supervisor
# of its long-running tasks: it starts them, and stops the supervisor where its own shut-down
# order wants it (the gateway drains its messages first).
ServiceLifespan = Callable[[FastAPI, Supervisor], contextlib.AbstractAsyncContextManager[None]]
# A readiness check of one of a service's own dependencies (its broker), given its app.
AppCheck = Callable[[FastAPI], Awaitable[object]]


def create_service_app(
    *,
    title: str,
    settings: ServiceSettings,
    lifespan: ServiceLifespan,
    routers: Sequence[APIRouter] = (),
    checks: Mapping[str, AppCheck] | None = None,
    install: Callable[[FastAPI], Iterable[str]] | None = None,
    public: tuple[str, ...] = (),
    keys: bool = True,
    version: str = "0.1.0",
    description: str = "",
) -> FastAPI:
    """A service's app, as every service builds it: its settings held for its routes
    (`settings_of`), `lifespan` run under a supervisor that a dying task stops the process with
    (`SUPERVISOR`), `/healthz`, `/readyz` (the database, `checks`, the supervised tasks) and
    `/metrics`, then `routers`, then `install`, then the Gate in front of it all (`secure`).

    `install`: what is more than routers (the console's pages and static files, middleware that
    only requests with a good key may reach), run before the Gate is put in front; it returns
    paths served without a key, added to `public`. `keys=False`: a service that serves only the
    public probes and metrics, and so opens no connection to the key table.
    """

    @contextlib.asynccontextmanager
    async def run(app: FastAPI) -> AsyncIterator[None]:
        supervisor = Supervisor(on_fatal=ON_FATAL.find(app))
        SUPERVISOR.put(app, supervisor)
        async with lifespan(app, supervisor):
            yield

    app = FastAPI(title=title, version=version, description=description, lifespan=run)
    SETTINGS.put(app, settings)
    own = dict(checks or {})

    def ready() -> dict[str, ReadyCheck]:
        def bound(check: AppCheck) -> ReadyCheck:
            return lambda: check(app)

        return {
            "database": lambda: check_pool(POOL.of(app)),
            **{name: bound(check) for name, check in own.items()},
            "tasks": SUPERVISOR.of(app).check,
        }

    app.include_router(observability_router(ready))
    for router in routers:
        app.include_router(router)
    if install is not None:
        public += tuple(install(app))
    if keys:
        secure(app, settings=settings, public=public)
    return app


def secure(app: FastAPI, *, settings: ServiceSettings, public: tuple[str, ...] = ()) -> None:
    """Put the Gate in front of `app` and check that every route says which role it needs.

    Called once, after the routers are included: a route without a role, or a route that
    changes something yet is open to viewers, stops the service from starting. Each operation
    of the OpenAPI document says its role in `x-required-role`.
    """
    public = PUBLIC_PATHS + public
    roles: dict[tuple[str, str], Role] = {}
    for path, route in _api_routes(app):
        if _is_public(path, public):
            continue
        role = _route_role(route.dependant)
        if role is None:
            raise RuntimeError(f"{path}: no role dependency (Viewer, Operator, Admin)")
        methods = route.methods or set()
        if route.include_in_schema and role is Role.VIEWER and methods - SAFE_METHODS:
            raise RuntimeError(f"{sorted(methods)} {path}: viewers only read")
        roles.update({(path, m.lower()): role for m in methods})
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            for path, item in schema.get("paths", {}).items():
                for method, operation in item.items():
                    if (role := roles.get((path, method))) is not None:
                        operation["x-required-role"] = role.value
            _document_reasons(schema)
        return app.openapi_schema or generate()

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(psycopg.DataError, _unstorable)
    app.add_exception_handler(psycopg.errors.QueryCanceled, _too_slow)
    app.add_exception_handler(PoolTimeout, _busy)
    keyring = KeyRing(settings.database_url, ttl_s=settings.key_cache_ttl_s)
    KEYRING.put(app, keyring)
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> Any:
        # The key table's own connection, beside whatever the service opens.
        await keyring.open()
        try:
            async with inner(app) as state:
                yield state
        finally:
            await keyring.close()

    app.router.lifespan_context = lifespan
    app.add_middleware(
        Gate,
        max_body_bytes=settings.max_body_bytes,
        public=public,
        keyring=keyring,
        throttle=FailureThrottle(
            per_source=settings.auth_failures_per_source,
            per_key=settings.auth_failures_per_key,
            window_s=settings.auth_failure_window_s,
        ),
    )


def _document_reasons(schema: dict[str, Any]) -> None:
    """Our own 422s carry one sentence (`{"detail": "start must be before end"}`), FastAPI's
    a list of field errors: the document says both, so clients and schemathesis expect both."""
    error = schema.get("components", {}).get("schemas", {}).get("HTTPValidationError")
    if error is not None:
        listed = error["properties"]["detail"]
        error["properties"]["detail"] = {
            "anyOf": [listed, {"type": "string"}],
            "title": listed.get("title", "Detail"),
        }


def _json_safe(value: Any) -> Any:
    """`value` with NaN and infinities as strings: JSON has no such numbers.

    >>> _json_safe({"input": float("nan"), "ctx": [float("-inf"), 1.5]})
    {'input': 'nan', 'ctx': ['-inf', 1.5]}
    """
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


async def _invalid(request: Request, exc: Exception) -> Response:
    # FastAPI's own handler, except that it echoes the input: a NaN it refused made the 422
    # itself unrenderable, a 500.
    assert isinstance(exc, RequestValidationError)
    errors = _json_safe(jsonable_encoder(exc.errors()))
    return JSONResponse({"detail": errors}, status_code=422)


async def _unstorable(request: Request, exc: Exception) -> Response:
    # A value the route let through but PostgreSQL cannot hold (a NUL byte in a string, an
    # integer past bigint): the client's input, so a 4xx, never a 500.
    return JSONResponse(
        {"detail": f"a value cannot be stored or compared: {type(exc).__name__}"},
        status_code=422,
    )


async def _too_slow(request: Request, exc: Exception) -> Response:
    log.warning("statement timeout on %s %s", request.method, _route_template(request.scope))
    return JSONResponse(
        {"detail": "the query took too long; ask for a shorter range"}, status_code=503
    )


async def _busy(request: Request, exc: Exception) -> Response:
    # Every pool connection stayed taken for the pool's whole time-out: the service is
    # overloaded, not broken; the client may come back.
    log.warning("no database connection free for %s %s", request.method, request.url.path)
    return JSONResponse(
        {"detail": "the service is busy; retry shortly"},
        status_code=503,
        headers={"Retry-After": str(KEYS_UNAVAILABLE_RETRY_AFTER_S)},
    )


async def _send_json(
    send: Send, code: int, body: dict[str, Any], headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    content = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": code,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(content)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": content})


def _route_template(scope: Scope) -> str:
    """The path as its route declares it (`/v1/devices/{device_id}`): what a log may say."""
    route = scope.get("route")
    if isinstance(route, APIRoute):
        return route.path
    app = scope.get("app")
    if isinstance(app, FastAPI):
        for path, _ in _api_routes(app):
            if compile_path(path)[0].match(scope["path"]):
                return path
    return "(no route)"


class Gate:
    """What every request goes through before a route sees it, in this order.

    1. A declared body above the limit: 413, before anything else.
    2. The API key (unless the path is public): 401, logged with the source address, before a
       byte of the body is read, so an anonymous client cannot make the service parse anything.
       Checked on the keyring's own connection, good keys then kept in memory a while
       (shared/keyring.py): no request takes a connection of the service's pool before its
       key is verified. A source, or a key id, with too many
       failures in the window is answered 429 with Retry-After (shared/throttle.py).
    3. The body, read up to the limit (413 past it, for bodies sent without a length).
    4. After the route: changes (any method but GET/HEAD/OPTIONS) and refusals (403) go to the
       audit log, with the key, its role and the outcome, before the response leaves.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        public: tuple[str, ...],
        keyring: KeyRing,
        throttle: FailureThrottle,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.public = public
        self.keyring = keyring
        self.throttle = throttle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        declared = headers.get("content-length")
        if declared is not None and not (declared.isascii() and declared.isdigit()):
            await _send_json(send, 400, {"detail": "malformed Content-Length"})
            return
        if declared is not None and int(declared) > self.max_body_bytes:
            await _send_json(send, 413, {"detail": f"body over {self.max_body_bytes} bytes"})
            return
        if "\x00" in scope["path"] or b"%00" in scope.get("query_string", b""):
            # No text column can hold it; refused here rather than by the database.
            await _send_json(send, 400, {"detail": "NUL byte in the URL"})
            return
        principal: Principal | None = None
        if not _is_public(scope["path"], self.public):
            principal = await self._gate(scope, headers.get("authorization"), send)
            if principal is None:
                return
            scope.setdefault("state", {})["principal"] = principal
        body = await self._read_body(receive)
        if body is None:
            await _send_json(send, 413, {"detail": f"body over {self.max_body_bytes} bytes"})
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        async def send_audited(message: Message) -> None:
            if message["type"] == "http.response.start" and principal is not None:
                await self._audit(scope, principal, message["status"])
            await send(message)

        await self.app(scope, replay, send_audited)

    async def _gate(self, scope: Scope, authorization: str | None, send: Send) -> Principal | None:
        """The request's principal, or None once a refusal (401, 429, 503) has been sent."""
        client = scope.get("client")
        # The peer, or with a proxy in front (on loopback, uvicorn's forwarded_allow_ips), the
        # address it forwarded for.
        source = client[0] if client else "?"
        wait = self.throttle.source_retry_after(source)
        if wait is not None:
            await self._too_many(send, wait)
            return None
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        key_id = key_id_of(token) if scheme.lower() == "bearer" else None
        try:
            principal, reason = await self._authenticate(token, key_id)
        except (psycopg.Error, PoolTimeout) as exc:
            log.warning("cannot read the API keys: %r", exc)
            await _send_json(
                send,
                503,
                {"detail": "cannot check API keys now; retry shortly"},
                [(b"retry-after", str(KEYS_UNAVAILABLE_RETRY_AFTER_S).encode())],
            )
            return None
        if principal is not None:
            return principal
        if key_id is not None and (wait := self.throttle.key_retry_after(key_id)) is not None:
            # A wrong secret for a key id under attack. The right secret still passes (above):
            # it is 144 random bits no one guesses, and refusing it would hand whoever knows a
            # key id (it is in the audit log) a way to lock its owner out.
            await self._too_many(send, wait)
            return None
        # Only a key that was tried counts: a request with none guesses nothing (and a probe of
        # every route without a key is how tests/test_roles.py checks them).
        crossed = bool(token) and self.throttle.failed(source=source, key_id=key_id)
        # The source and the reason; never the key, not even in part. The route, not the path:
        # a path names devices, and logs keep no plain device id.
        log.warning(
            "401 %s %s from %s: %s", scope["method"], _route_template(scope), source, reason
        )
        if crossed:
            log.warning("too many failed API keys from %s (or for key id %s)", source, key_id)
        AUTH_REFUSED.labels("401").inc()
        await _send_json(send, 401, {"detail": reason}, [(b"www-authenticate", b"Bearer")])
        return None

    @staticmethod
    async def _too_many(send: Send, wait: int) -> None:
        # Not logged one by one: a flood would fill the log; the crossing was logged once.
        AUTH_REFUSED.labels("429").inc()
        await _send_json(
            send,
            429,
            {"detail": "too many failed API keys; retry later"},
            [(b"retry-after", str(wait).encode())],
        )

    async def _authenticate(self, token: str, key_id: str | None) -> tuple[Principal | None, str]:
        if not token:
            return None, "missing API key"
        if key_id is None:
            return None, "malformed API key"
        # Only the API's database role reads the hashes; every service asks the database
        # whether this key's hash is the stored one (migration 0009), on the keyring's own
        # connection, never the routes' pool.
        role = await self.keyring.role_of(key_id, hash_key(token))
        if role is None:
            return None, f"invalid API key (id {key_id})"
        return Principal(key_id=key_id, role=role), ""

    async def _read_body(self, receive: Receive) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    async def _audit(self, scope: Scope, principal: Principal, code: int) -> None:
        state = scope.get("state", {})
        route = scope.get("route")
        if not isinstance(route, APIRoute) or state.get("audited") or not route.include_in_schema:
            # No route (404), a route that recorded itself, or the proxy (the upstream records).
            return
        if scope["method"] in SAFE_METHODS and code != status.HTTP_403_FORBIDDEN:
            return
        if code == status.HTTP_405_METHOD_NOT_ALLOWED:
            return  # the path exists, no such action on it: nothing was attempted
        outcome = "ok" if code < 400 else "denied" if code in (401, 403) else "failed"
        params: dict[str, Any] = scope.get("path_params", {})
        target = state.get("audit_target") or "/".join(str(v) for v in params.values())
        detail: dict[str, Any] = {"method": scope["method"], "path": scope["path"], "status": code}
        if scope.get("query_string"):
            detail["query"] = scope["query_string"].decode("latin-1")[:500]
        detail.update(state.get("audit_detail", {}))
        try:
            pool = POOL.of(scope["app"])
            async with pool.connection() as conn:
                await audit.record(
                    conn,
                    key_id=principal.key_id,
                    role=principal.role.value,
                    action=route.name,
                    target=target or route.path,
                    outcome=outcome,
                    detail=detail,
                )
        except Exception:
            log.exception("audit record of %s %s failed", route.name, target)


def serve(app: FastAPI, settings: ServiceSettings, *, service: str) -> None:
    """Run a service's app with uvicorn, logging as JSON.

    A supervised task that dies asks the server to stop (`ON_FATAL`), and the process
    then exits non-zero so that its process manager starts it again (shared/supervise.py).
    """
    serve_together([(app, settings, service)])


class _Server(uvicorn.Server):
    """The process's signals are handled once, for every server it runs (uvicorn's own handler
    would stop only the last one installed)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def serve_together(members: Sequence[tuple[FastAPI, ServiceSettings, str]]) -> None:
    """Run one or several services' apps in one process, each on its own port (several: a small
    town's layout, TOWNPULSE_LAYOUT=compact). They share the interpreter and its imported
    libraries, and fail together: a task that dies in one, or one that cannot start, stops them
    all and the process exits non-zero for its process manager to start it again."""
    key = members[0][1].log_pseudonym_key
    configure_logging(
        service="+".join(name for _, _, name in members),
        level=members[0][1].log_level,
        pseudonym_key=key.get_secret_value().encode() if key else None,
    )
    if not asyncio.run(_serve_together(members)):
        sys.exit(EXIT_TASK_DIED)


SHARED_STOP_TIMEOUT_S = 30.0


async def _member(server: uvicorn.Server) -> None:
    # uvicorn exits the process when an app cannot start (its lifespan failed): here that ends
    # this server only, and the others are stopped in order.
    with contextlib.suppress(SystemExit):
        await server.serve()


# TLS 1.2 with forward secrecy and AEAD only (TLS 1.3's suites are all such): no CBC or SHA-1
# suites, which also rules out TLS 1.0 and 1.1.
TLS_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"


def _https_config(app: FastAPI, s: ServiceSettings) -> uvicorn.Config:
    assert s.https_port is not None and s.tls_certfile is not None and s.tls_keyfile is not None
    return uvicorn.Config(
        app,
        host=s.https_host,
        port=s.https_port,
        log_config=None,
        timeout_keep_alive=30,
        lifespan="off",
        ssl_certfile=s.tls_certfile,
        ssl_keyfile=s.tls_keyfile,
        ssl_ciphers=TLS_CIPHERS,
    )


async def _after(plain: uvicorn.Server, https: uvicorn.Server) -> None:
    """Serve `https` once `plain` has started (its lifespan opened the app's pools)."""
    while not plain.started:
        if plain.should_exit:
            return
        # Start-up only: a short poll is simpler than hooking uvicorn's start-up.
        await asyncio.sleep(0.05)
    await _member(https)


class StrictTransport:
    """HSTS on every answer given over HTTPS (directly, or through a proxy on loopback that
    says so in X-Forwarded-Proto): a browser that once reached the console over HTTPS never
    tries plain HTTP for it again, so no one on the path can strip the TLS."""

    HEADER = (b"strict-transport-security", b"max-age=31536000")

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("scheme") != "https":
            await self.app(scope, receive, send)
            return

        async def send_hsts(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), self.HEADER]}
            await send(message)

        await self.app(scope, receive, send_hsts)


async def _serve_together(members: Sequence[tuple[FastAPI, ServiceSettings, str]]) -> bool:
    servers = [
        _Server(
            uvicorn.Config(
                app,
                host=s.http_host,
                port=s.http_port,
                log_config=None,
                # Services sit behind the operator API or on localhost; keep-alive matches
                # httpx pools.
                timeout_keep_alive=30,
            )
        )
        for app, s, _ in members
    ]
    # HTTPS listeners serve the same app (whose lifespan the plain listener runs), once it
    # has started.
    secured = [
        (plain, _Server(_https_config(app, s)))
        for (app, s, _), plain in zip(members, servers, strict=True)
        if s.https_port is not None
    ]
    servers += [server for _, server in secured]
    failed: list[str] = []
    stopping: list[bool] = []

    def stop_all() -> None:
        for server in servers:
            server.should_exit = True

    def on_signal() -> None:
        stopping.append(True)
        stop_all()

    for app, _, name in members:

        def on_fatal(name: str = name) -> None:
            failed.append(name)
            stop_all()

        ON_FATAL.put(app, on_fatal)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    try:
        tasks = []
        for (_, _, name), server in zip(members, servers[: len(members)], strict=True):
            # Each server in a context of its own: its lifespan's tasks and its requests
            # inherit the service's name, which every log line carries.
            context = contextvars.copy_context()
            context.run(SERVICE.set, name)
            tasks.append(asyncio.create_task(_member(server), name=name, context=context))
            for plain, https in secured:
                if plain is server:
                    tasks.append(
                        asyncio.create_task(
                            _after(plain, https), name=f"{name} (https)", context=context
                        )
                    )
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        # One server ending on its own (its start-up failed) stops the others: the process is
        # restarted whole.
        if not stopping and not failed:
            failed += [t.get_name() for t in done]
        stop_all()
        # A server still starting only sees `should_exit` once started; one whose start hangs
        # (a dependency down) is cancelled.
        _, pending = await asyncio.wait(tasks, timeout=SHARED_STOP_TIMEOUT_S)
        for task in pending:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        # The default action again: a process stuck on its way out still dies of SIGTERM.
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return not failed and all(server.started for server in servers)


# A year and a month: enough for a year-on-year comparison, small enough to bound a query.
MAX_TIME_RANGE = timedelta(days=400)


def _unprocessable(detail: str) -> HTTPException:
    # 422 by number: Starlette renamed the constant (..._CONTENT), older releases lack the new one.
    return HTTPException(422, detail=detail)


def check_time(value: datetime | None, name: str) -> datetime | None:
    """A query-string time, refused (422) if naive or outside [2000, a year from now]
    (shared.inputs.Instant, for a time that did not come through its type)."""
    if value is None:
        return None
    try:
        return check_instant(value)
    except ValueError as exc:
        raise _unprocessable(f"{name} {exc}") from exc


def time_window(
    start: datetime | None,
    end: datetime | None,
    *,
    default_span: timedelta,
    max_span: timedelta = MAX_TIME_RANGE,
) -> tuple[datetime, datetime]:
    """[start, end): end defaults to now, start to `default_span` before end; bounded."""
    end = check_time(end, "end") or utcnow()
    start = check_time(start, "start") or end - default_span
    if start >= end:
        raise _unprocessable("start must be before end")
    if end - start > max_span:
        raise _unprocessable(f"the range is at most {max_span.days} days")
    return start, end
