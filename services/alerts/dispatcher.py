"""Delivering the webhook outbox: leased rows, bounded concurrency, results written in batches.

- A row is leased (by this instance, for longer than an attempt can take) before it is sent, so
  two instances never send it at once; after a crash the lease runs out (or, for this instance,
  is released at start) and the row is sent again with the same webhook-id.
- Per subscription and alert, only the oldest pending row is eligible: events of one alert reach
  a receiver in order, while other alerts and other subscriptions go on.
- Each subscription has its own in-flight cap: a slow or dead receiver uses its own slots only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from prometheus_client import Counter, Gauge, Histogram

from services.alerts.adapters import sender
from services.alerts.adapters import webhooks as db
from services.alerts.adapters.secrets import WebhookSecrets
from services.alerts.domain import webhooks
from services.alerts.domain.webhooks import Outcome
from services.alerts.settings import AlertsSettings
from shared.db import Pool
from shared.stream.retry import DEFAULT_BACKOFF, retry_forever
from shared.supervise import Supervisor

log = logging.getLogger(__name__)

DELIVERIES = Counter(
    "townpulse_alerts_deliveries_total", "Webhook delivery attempts by outcome", ["outcome"]
)
ATTEMPT_SECONDS = Histogram(
    "townpulse_alerts_delivery_attempt_seconds",
    "Duration of one webhook attempt",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15),
)
DELIVERY_LATENCY = Histogram(
    "townpulse_alerts_delivery_latency_seconds",
    "Alert change committed to webhook delivered (retries included)",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600, 86400),
)
BACKLOG = Gauge("townpulse_alerts_outbox_backlog", "Webhook deliveries not yet done")


@dataclass(frozen=True, slots=True)
class Done:
    row: dict[str, Any]
    result: sender.AttemptResult


class Dispatcher:
    def __init__(self, *, pool: Pool, settings: AlertsSettings) -> None:
        self._pool = pool
        # One HTTP client (connection pool) per subscription: receivers do not share or wait
        # for each other's connections, and each pool stays small (httpcore scans its whole
        # pool on every request).
        self._clients: dict[str, httpx.AsyncClient] = {}
        self._s = settings
        self.secrets = WebhookSecrets(settings.webhook_secrets_key)
        self._wake = asyncio.Event()
        self._done: asyncio.Queue[Done] = asyncio.Queue()
        self._in_flight: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._turn = 0
        # Long enough that an attempt in progress never loses its lease to another instance.
        self._lease_s = settings.webhook_timeout_s * 2 + 30

    def wake(self) -> None:
        """New rows were committed (an alert change, a redelivery): look at the outbox now."""
        self._wake.set()

    def start(self, supervisor: Supervisor) -> None:
        supervisor.start("webhook-dispatcher", self.run())
        supervisor.start("webhook-recorder", self._record_loop())
        supervisor.start("webhook-backlog", self._backlog_loop())

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for client in self._clients.values():
            await client.aclose()

    async def _release_own_leases(self) -> None:
        async with self._pool.connection() as conn:
            # Our own leases come from before a restart: nothing of ours is in flight now.
            await db.release_leases(conn, self._s.instance)

    async def run(self) -> None:
        await retry_forever(self._release_own_leases, what="releasing our leases")
        failures = 0
        while True:
            free = self._s.webhook_max_in_flight - sum(self._in_flight.values())
            claimed = 0
            if free > 0:
                try:
                    claimed = await self._claim(free)
                    failures = 0
                except Exception as exc:
                    delay = DEFAULT_BACKOFF.delay(failures)
                    failures += 1
                    log.error("claiming outbox rows failed, retry in %.1f s: %r", delay, exc)
                    await asyncio.sleep(delay)
                    continue
            if claimed == 0 or free <= claimed:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._wake.wait(), timeout=self._s.webhook_poll_interval_s
                    )

    def _client(self, sub: str) -> httpx.AsyncClient:
        client = self._clients.get(sub)
        if client is None:
            n = self._s.webhook_max_in_flight_per_subscription
            client = self._clients[sub] = httpx.AsyncClient(
                # No redirects: a signed body must not wander to another host.
                follow_redirects=False,
                timeout=self._s.webhook_timeout_s,
                limits=httpx.Limits(max_connections=n, max_keepalive_connections=n),
                trust_env=False,
            )
        return client

    async def _drop_clients(self, enabled: list[str]) -> None:
        for sub in set(self._clients) - set(enabled):
            if not self._in_flight.get(sub):
                await self._clients.pop(sub).aclose()

    async def _claim(self, free: int) -> int:
        per_sub = self._s.webhook_max_in_flight_per_subscription
        async with self._pool.connection() as conn, conn.transaction():
            subs = await db.enabled_subscriptions(conn)
            await self._drop_clients(subs)
            # Start with a different subscription each time: none is always served last.
            self._turn = (self._turn + 1) % max(1, len(subs))
            ids: list[int] = []
            for sub in subs[self._turn :] + subs[: self._turn]:
                room = min(per_sub - self._in_flight.get(sub, 0), free - len(ids))
                if room > 0:
                    ids += await db.due_heads(conn, sub, limit=room)
            if not ids:
                return 0
            rows = await db.lease(conn, ids, instance=self._s.instance, lease_s=self._lease_s)
        for row in rows:
            sub = row["subscription_id"]
            self._in_flight[sub] = self._in_flight.get(sub, 0) + 1
            task = asyncio.create_task(self._attempt(row))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return len(rows)

    async def _attempt(self, row: dict[str, Any]) -> None:
        started_at = datetime.now(UTC)
        try:
            secrets = [self.secrets.open(row["secret"])]
            expires = row["previous_secret_expires_at"]
            if row["previous_secret"] and expires and expires > datetime.now(UTC):
                secrets.append(self.secrets.open(row["previous_secret"]))
            result = await sender.send(
                self._client(row["subscription_id"]),
                url=row["url"],
                msg_id=row["msg_id"],
                body=row["body"],
                secrets=secrets,
                timeout_s=self._s.webhook_timeout_s,
                max_response_bytes=self._s.webhook_max_response_bytes,
                allowed_networks=self._s.webhook_allowed_networks,
            )
        except Exception as exc:
            # Whatever a send raises (a URL httpx cannot use, a header it cannot parse) is a
            # failed attempt, recorded and retried: the in-flight slot is always given back.
            log.warning("webhook attempt raised: %r", exc)
            result = sender.AttemptResult(
                started_at=started_at,
                latency_s=(datetime.now(UTC) - started_at).total_seconds(),
                status_code=None,
                error=f"{type(exc).__name__}: {exc}"[:300],
                retry_after_s=None,
            )
        await self._done.put(Done(row, result))

    async def _record_loop(self) -> None:
        while True:
            batch = [await self._done.get()]
            # Everything finished meanwhile goes in the same transaction: one commit per batch,
            # not per delivery, is what lets a few thousand deliveries per second through.
            while not self._done.empty() and len(batch) < 1000:
                batch.append(self._done.get_nowait())
            await retry_forever(
                lambda batch=batch: self._record(batch),  # type: ignore[misc]
                what=f"recording {len(batch)} delivery results",
            )
            for d in batch:
                sub = d.row["subscription_id"]
                self._in_flight[sub] -= 1
                if self._in_flight[sub] <= 0:
                    del self._in_flight[sub]
            self.wake()

    async def _record(self, batch: list[Done]) -> None:
        now = datetime.now(UTC)
        rows, attempts, disabled, outcomes = [], [], set(), []
        for d in batch:
            row, res = d.row, d.result
            outcome = webhooks.classify(res.status_code)
            failures = row["round_failures"]
            next_at = now
            if outcome is Outcome.RETRY:
                failures += 1
                delay = webhooks.next_delay(
                    row["retry_schedule_s"] or webhooks.DEFAULT_RETRY_SCHEDULE_S,
                    failed_attempts=failures,
                    rand=random.random(),  # noqa: S311 - jitter, not security
                    retry_after_s=res.retry_after_s,
                )
                if delay is None:
                    outcome = Outcome.FAILED
                else:
                    next_at = now + timedelta(seconds=delay)
            elif outcome is Outcome.DISABLED:
                disabled.add(row["subscription_id"])
            status = {
                Outcome.DELIVERED: "delivered",
                Outcome.RETRY: "pending",
                Outcome.FAILED: "failed",
                Outcome.DISABLED: "failed",
            }[outcome]
            rows.append(
                {
                    "id": row["id"],
                    "status": status,
                    "round_failures": failures,
                    "next_attempt_at": next_at,
                    "status_code": res.status_code,
                    "error": res.error,
                    "delivered_at": now if outcome is Outcome.DELIVERED else None,
                }
            )
            attempts.append(
                {
                    "id": row["id"],
                    "attempt": row["attempts"] + 1,
                    "started_at": res.started_at,
                    "latency_ms": res.latency_s * 1000,
                    "status_code": res.status_code,
                    "error": res.error,
                    "outcome": outcome.value,
                }
            )
            outcomes.append((outcome, res, row["created_at"]))
        ended: dict[str, tuple[bool, int]] = {}
        for d, (outcome, _, _) in zip(batch, outcomes, strict=True):
            sub = d.row["subscription_id"]
            delivered, failed = ended.get(sub, (False, 0))
            if outcome is Outcome.DELIVERED:
                ended[sub] = (True, 0)
            elif outcome is Outcome.FAILED:
                ended[sub] = (delivered, failed + 1)
        worn_out: list[str] = []
        limit = self._s.webhook_disable_after_failures
        async with self._pool.connection() as conn, conn.transaction():
            await db.record_results(conn, rows, attempts)
            for sub, (delivered, failed) in ended.items():
                n = await db.count_failures(conn, sub, delivered=delivered, failed=failed)
                if n is not None and limit > 0 and n >= limit:
                    worn_out.append(sub)
            for sub in sorted(disabled):
                await db.disable(conn, sub, reason="receiver answered 410 Gone")
            for sub in worn_out:
                await db.disable(
                    conn,
                    sub,
                    reason=f"{limit} deliveries in a row failed after every retry; fix the "
                    "receiver, enable the webhook and redeliver the failed deliveries",
                )
        for outcome, res, created_at in outcomes:
            DELIVERIES.labels(outcome.value).inc()
            ATTEMPT_SECONDS.observe(res.latency_s)
            if outcome is Outcome.DELIVERED:
                DELIVERY_LATENCY.observe((now - created_at).total_seconds())
        for sub in disabled:
            log.warning("webhook subscription %s disabled: its receiver answered 410", sub)
        for sub in worn_out:
            log.warning("webhook subscription %s disabled: %d failed deliveries", sub, limit)

    async def _backlog_loop(self) -> None:
        while True:
            try:
                async with self._pool.connection() as conn:
                    BACKLOG.set(await db.backlog(conn))
            except Exception:
                log.exception("counting the outbox backlog failed")
            # A gauge for dashboards: every few seconds is plenty, and the count is not free.
            await asyncio.sleep(5)
