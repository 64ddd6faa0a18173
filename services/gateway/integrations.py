"""The network servers' brokers the gateway subscribes to, kept in line with the integrations table.

Each enabled MQTT integration gets its own MQTT client (a persistent session, QoS 1, PUBACK only
once Kafka has the record, like TownPulse's own broker). An admin's change is announced by the
table's trigger (migration 0008) and applied without a restart: a changed connection setting
reconnects that integration alone. The console's status (connected, last uplink, uplinks and
errors per hour) is collected in memory and saved every few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from psycopg import AsyncConnection

from services.gateway.adapters import db
from services.gateway.adapters.db import IntegrationRow, Status
from services.gateway.adapters.devices import listen
from services.gateway.ingest import chirpstack, mapped, tts
from services.gateway.mqtt_source import Incoming, MqttSource
from shared.db import Pool
from shared.stream.retry import retry_forever

log = logging.getLogger(__name__)

CHANNEL = "townpulse_integrations"
# How often the console's figures are saved: fresh enough for a person looking at the page.
STATUS_EVERY_S = 5.0


def source_for(
    row: IntegrationRow,
    *,
    client_id: str,
    keepalive_s: int,
    on_message: Callable[[Incoming], None],
    on_state: Callable[[bool, str | None], None],
    loop: asyncio.AbstractEventLoop,
    persistent: bool = True,
) -> MqttSource:
    """An MQTT client for the integration's broker (ValueError: no topic to subscribe to)."""
    return MqttSource(
        host=row.mqtt_host or "",
        port=row.mqtt_port or (8883 if row.mqtt_tls else 1883),
        client_id=client_id,
        persistent=persistent,
        username=row.mqtt_username or "",
        password=row.mqtt_password or "",
        share_group="",
        keepalive_s=keepalive_s,
        on_message=on_message,
        loop=loop,
        subscriptions=subscription(row),
        integration=row.id,
        tls=row.mqtt_tls,
        tls_ca=row.ca_certificate,
        on_state=on_state,
    )


def subscription(row: IntegrationRow) -> tuple[str, ...]:
    """The topic the town set, else the network server's (or Tasmota's and Shelly's) default."""
    if row.topic:
        return (row.topic,)
    if row.kind == "chirpstack":
        return (chirpstack.subscription(row.application),)
    if row.kind == "tts":
        return (tts.subscription(row.application),)
    return mapped.EXTERNAL_SUBSCRIPTIONS


class Integrations:
    def __init__(
        self,
        *,
        pool: Pool,
        conninfo: str,
        instance: str,
        keepalive_s: int,
        on_message: Callable[[Incoming], None],
        loop: asyncio.AbstractEventLoop,
        subscribe: bool = True,
    ) -> None:
        self._pool = pool
        self._conninfo = conninfo
        self._instance = instance
        self._keepalive_s = keepalive_s
        self._on_message = on_message
        self._loop = loop
        # False: know the integrations (the HTTP ingest checks their secrets), subscribe to none.
        self._subscribe = subscribe
        self.rows: dict[str, IntegrationRow] = {}
        self._sources: dict[str, tuple[tuple[Any, ...], MqttSource]] = {}
        self._states: dict[str, Status] = {}
        self._counts: dict[tuple[str, datetime], tuple[int, int]] = {}

    def row(self, integration_id: str) -> IntegrationRow | None:
        return self.rows.get(integration_id)

    def connected(self, integration_id: str) -> bool:
        entry = self._sources.get(integration_id)
        return entry is not None and entry[1].connected

    # ---- status ---------------------------------------------------------------------------------

    def counted(self, integration_id: str, *, ok: bool, error: str | None = None) -> None:
        now = datetime.now(UTC)
        hour = now.replace(minute=0, second=0, microsecond=0)
        uplinks, errors = self._counts.get((integration_id, hour), (0, 0))
        self._counts[(integration_id, hour)] = (uplinks + 1, errors + (not ok))
        state = self._states.setdefault(integration_id, Status())
        state.connected = self.connected(integration_id)
        if ok:
            state.last_uplink_at = now
        else:
            state.last_error, state.last_error_at = error, now

    def _state_changed(self, integration_id: str, connected: bool, error: str | None) -> None:
        # Called from paho's thread: hand it to the event loop.
        def apply() -> None:
            state = self._states.setdefault(integration_id, Status())
            state.connected = connected
            if error and not connected:
                state.last_error, state.last_error_at = error, datetime.now(UTC)

        self._loop.call_soon_threadsafe(apply)

    async def report(self) -> None:
        """Save the status every few seconds; a failed save keeps the figures for the next."""
        while True:
            await asyncio.sleep(STATUS_EVERY_S)
            states, counts = self._states, self._counts
            self._states = {}
            self._counts = {}
            try:
                await db.save_status(self._pool, states=states, counts=counts)
            except Exception as exc:
                log.warning("integration status not saved: %s", exc)
                for hour_key, (u, e) in counts.items():
                    u2, e2 = self._counts.get(hour_key, (0, 0))
                    self._counts[hour_key] = (u + u2, e + e2)
                for integration_id, state in states.items():
                    self._states.setdefault(integration_id, state)

    # ---- following the table --------------------------------------------------------------------

    async def follow(self) -> None:
        while True:
            await retry_forever(self._follow_once, what="following the integrations")

    async def _follow_once(self) -> None:
        conn = await AsyncConnection.connect(
            self._conninfo,
            autocommit=True,
            application_name="townpulse-integrations",
            keepalives_idle=30,
            keepalives_interval=10,
        )
        try:
            await listen(conn, CHANNEL)
            await self.reload()
            async for _ in conn.notifies():
                await self.reload()
        finally:
            await conn.close()

    async def reload(self) -> None:
        rows = {r.id: r for r in await db.integrations(self._pool)}
        self.rows = rows
        if not self._subscribe:
            return
        wanted = {r.id: r for r in rows.values() if r.enabled and r.transport == "mqtt"}
        for integration_id, (connection, _) in list(self._sources.items()):
            row = wanted.get(integration_id)
            if row is None or row.connection != connection:
                self._stop(integration_id)
        for row in wanted.values():
            if row.id not in self._sources:
                self._start(row)

    def _start(self, row: IntegrationRow) -> None:
        try:
            source = source_for(
                row,
                client_id=f"townpulse-{self._instance}-{row.id}",
                keepalive_s=self._keepalive_s,
                on_message=self._on_message,
                on_state=lambda up, error: self._state_changed(row.id, up, error),
                loop=self._loop,
            )
        except ValueError as exc:
            self._state_changed(row.id, False, str(exc))
            return
        source.start()
        self._sources[row.id] = (row.connection, source)
        log.info("integration started", extra={"integration": row.id})

    def _stop(self, integration_id: str) -> None:
        _, source = self._sources.pop(integration_id)
        with contextlib.suppress(Exception):
            source.stop()
        log.info("integration stopped", extra={"integration": integration_id})

    def stop(self) -> None:
        for integration_id in list(self._sources):
            self._stop(integration_id)


async def check_connection(row: IntegrationRow, *, timeout_s: float = 5.0) -> tuple[bool, str]:
    """Connect and subscribe with the stored settings, as the console's "test" button asks."""
    if row.transport == "http":
        return True, "HTTP: the network server posts to TownPulse; nothing to connect to"
    loop = asyncio.get_running_loop()
    done: asyncio.Future[tuple[bool, str]] = loop.create_future()

    def state(up: bool, error: str | None) -> None:
        def settle() -> None:
            if not done.done():
                done.set_result((up, "connected and subscribed" if up else (error or "failed")))

        loop.call_soon_threadsafe(settle)

    try:
        source = source_for(
            row,
            client_id=f"townpulse-test-{row.id}",
            persistent=False,
            keepalive_s=30,
            on_message=lambda _: None,
            on_state=state,
            loop=loop,
        )
    except Exception as exc:  # no topic, or a CA that is not PEM
        return False, f"invalid settings: {exc}"
    source.start()
    try:
        async with asyncio.timeout(timeout_s):
            return await done
    except TimeoutError:
        return False, f"no answer from {row.mqtt_host}:{row.mqtt_port} within {timeout_s:.0f} s"
    finally:
        await asyncio.to_thread(source.stop)
