"""Erasure of a device through the operator API, against the real stack: every row naming it
goes, its aggregates are erased or anonymised, an audit record is written, and a device
registered again with the same id starts empty."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from aiokafka import AIOKafkaProducer
from psycopg import AsyncConnection

from shared import erasure, retention
from shared.schemas import AlertEvent, Reading, ReadingBatch
from shared.topics import READINGS_TOPICS, Domain
from testing.alerts_support import event, produce_events, produce_readings, unique_kind
from tests.data_rows import (
    add_reading,
    add_row,
    connect,
    count_rows,
    plain_database,
    refresh_aggregates,
)
from tests.support import Publisher, count_readings, wait_for
from townpulse.stack import Stack

pytestmark = pytest.mark.integration

# Rows written straight to the database (the pipeline makes readings, levels and model state).
DIRECT = (
    "energy_scores",
    "energy_forecasts",
    "energy_episodes",
    "waste_collections",
    "waste_episodes",
    "traffic_flows",
    "traffic_forecasts",
    "traffic_episodes",
    "deadletters",
    "runtime_outbox",
    "alert_processed_events",
)
# Every table that must hold nothing about an erased device.
ERASED = (*DIRECT, *(t for t, _ in erasure.device_tables()), "alerts", "webhook_outbox")


async def _footprint(conn: AsyncConnection[Any], device_id: str) -> str:
    """One row in every table that can name the device; returns the alert id."""
    now = datetime.now(UTC)
    for table in DIRECT:
        await add_row(conn, table, device_id, now - timedelta(hours=2))
    # Older readings, materialised into the aggregates (what erasure must anonymise or erase).
    old = now - timedelta(days=30)
    await add_reading(conn, device_id, old)
    await refresh_aggregates(conn, old, old)
    alert_id = f"alert-{uuid.uuid4().hex[:10]}"
    await conn.execute(
        "INSERT INTO alerts (id, device_id, domain, kind, state, severity, count, first_seen,"
        " last_seen, last_observed_at, active, min_duration_s, cooldown_s)"
        " VALUES (%s, %s, 'waste', 'overflow', 'open', 'warning', 1, now(), now(), now(), true,"
        " 0, 60)",
        (alert_id, device_id),
    )
    await conn.execute(
        "INSERT INTO alert_timeline (alert_id, at, type) VALUES (%s, now(), 'opened')",
        (alert_id,),
    )
    await conn.execute(
        "INSERT INTO alert_feedback (alert_id, device_id, domain, kind, verdict, episode_start,"
        " given_by) VALUES (%s, %s, 'waste', 'overflow', 'false_alarm', now(), 'key:test')",
        (alert_id, device_id),
    )
    sub = f"test-{uuid.uuid4().hex[:10]}"
    # Disabled: the dispatcher leaves the pending message alone.
    await conn.execute(
        "INSERT INTO webhook_subscriptions (id, url, secret, event_types, enabled)"
        " VALUES (%s, 'https://example.invalid/hook', 'whsec-test', ARRAY['alert.opened'], false)",
        (sub,),
    )
    await conn.execute(
        "INSERT INTO webhook_outbox (subscription_id, msg_id, alert_id, event_type, body)"
        " VALUES (%s, %s, %s, 'alert.opened', %s)",
        (sub, f"msg-{uuid.uuid4().hex}", alert_id, json.dumps({"device_id": device_id})),
    )
    await conn.execute(
        "INSERT INTO alert_rules (id, domain, device_id, metric, op, threshold, severity, kind)"
        " VALUES (%s, 'waste', %s, 'fill_pct', '>=', 90, 'warning', 'full')",
        (f"rule-{uuid.uuid4().hex[:10]}", device_id),
    )
    for table, insert in (
        (
            "runtime_state",
            "INSERT INTO runtime_state (group_id, device_id, model_version, state)"
            " VALUES ('test', %s, 'v1', '\\x00')",
        ),
        (
            "waste_bins",
            "INSERT INTO waste_bins (device_id, ts, level, rate_pct_h) VALUES (%s, now(), 40, 1)"
            " ON CONFLICT DO NOTHING",
        ),
        (
            "alert_device_activity",
            "INSERT INTO alert_device_activity (device_id, domain, last_at)"
            " VALUES (%s, 'waste', now()) ON CONFLICT DO NOTHING",
        ),
    ):
        await conn.execute(insert, (device_id,))  # type: ignore[arg-type]
        assert await count_rows(conn, table, device_id) >= 1
    return alert_id


async def test_erasure_leaves_nothing_and_a_new_device_starts_empty(
    api: httpx.Client, device_factory, stack: Stack
) -> None:
    device = device_factory("waste")
    publisher = Publisher(device)
    try:
        now = datetime.now(UTC)
        # Oldest first: the bin model skips a reading older than one it has already seen.
        for k in (2, 1, 0):
            ts = (now - timedelta(minutes=10 * k)).isoformat()
            publisher.publish(json.dumps({"ts": ts, "fill_pct": 40 + k})).wait_for_publish(10)
    finally:
        publisher.close()
    wait_for(lambda: count_readings(api, device.id) == 3, timeout=60, what="readings stored")

    async with await connect(stack.database_url()) as conn:
        # The waste service's own rows from those readings: cleaned levels.
        async def levels() -> int:
            return await count_rows(conn, "waste_levels", device.id)

        deadline = datetime.now(UTC) + timedelta(seconds=60)
        while await levels() < 3 and datetime.now(UTC) < deadline:
            await conn.execute("SELECT pg_sleep(0.2)")
        assert await levels() == 3
        alert_id = await _footprint(conn, device.id)
        assert await count_rows(conn, "readings_hourly", device.id) >= 1

        r = await asyncio.to_thread(
            api.delete, f"/v1/devices/{device.id}", params={"erase": "true"}
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["rows"]["readings"] == 4
        assert body["rows"]["waste_levels"] == 3
        assert body["aggregates"] == "anonymised"
        anonymous = body["anonymous_id"]

        left = {t: n for t in ERASED if (n := await count_rows(conn, t, device.id))}
        assert not left, f"rows still naming the erased device: {left}"
        cur = await conn.execute(
            "SELECT count(*) AS n FROM webhook_outbox WHERE alert_id = %s", (alert_id,)
        )
        assert (await cur.fetchone())["n"] == 0  # type: ignore[index]
        cur = await conn.execute(
            "SELECT count(*) AS n FROM alert_timeline WHERE alert_id = %s", (alert_id,)
        )
        assert (await cur.fetchone())["n"] == 0  # type: ignore[index]
        cur = await conn.execute("SELECT count(*) AS n FROM devices WHERE id = %s", (device.id,))
        assert (await cur.fetchone())["n"] == 0  # type: ignore[index]
        for view in ("readings_hourly", "readings_daily"):
            assert await count_rows(conn, view, device.id) == 0
            # The town's totals keep the 30-day-old reading, under an id that links to no one.
            assert await count_rows(conn, view, anonymous) >= 1

        # The audit entry names the device by its pseudonym (see the test below).
        cur = await conn.execute(
            "SELECT key_id, role, outcome, detail FROM audit_log"
            " WHERE action = 'device.erase' AND target = %s",
            (f"device:{erasure.pseudonym(_pseudonym_key(stack), device.id)}",),
        )
        audits = await cur.fetchall()
        assert len(audits) == 1
        assert audits[0]["role"] == "admin" and audits[0]["key_id"]
        assert audits[0]["outcome"] == "erased"
        assert audits[0]["detail"]["rows"]["readings"] == 4
        # One entry per erasure: the Gate's own record of the request is not added to it.
        cur = await conn.execute(
            "SELECT count(*) AS n FROM audit_log WHERE target IN (%s, %s) AND at > now() - "
            "interval '10 minutes' AND detail->>'method' = 'DELETE'",
            (device.id, f"device:{device.id}"),
        )
        assert (await cur.fetchone())["n"] == 0  # type: ignore[index]

    # Registered again under the same id: nothing of the erased device shows.
    r = await asyncio.to_thread(api.post, "/v1/devices", json={"id": device.id, "domain": "waste"})
    assert r.status_code == 201, r.text
    assert count_readings(api, device.id) == 0
    assert count_readings(api, device.id, bucket="1h") == 0
    assert count_readings(api, device.id, bucket="1d") == 0
    r = await asyncio.to_thread(api.get, "/v1/deadletters", params={"device_id": device.id})
    assert r.json() == []


def _pseudonym_key(stack: Stack) -> bytes:
    return (stack.secrets_dir / "audit-pseudonym-key").read_text().strip().encode()


# Every text or JSON column of the audit log, as text: where an id could hide.
AUDIT_TEXT = "concat_ws(' ', key_id, role, action, target, outcome, detail::text)"


async def test_erasure_leaves_no_plain_device_id_in_the_audit_log(
    api: httpx.Client, device_factory, stack: Stack
) -> None:
    device = device_factory("energy")
    # Entries naming it as a target, in a path, in a query string and as a created id.
    neighbour = f"{device.id}0"
    for patch in ({"name": "town hall meter"}, {"name": "renamed"}):
        r = await asyncio.to_thread(api.patch, f"/v1/devices/{device.id}", json=patch)
        assert r.status_code == 200, r.text
    r = await asyncio.to_thread(api.post, f"/v1/devices/{device.id}/ingest-token")
    assert r.status_code == 201, r.text
    r = await asyncio.to_thread(api.patch, f"/v1/devices/{neighbour}", json={"name": "x"})
    assert r.status_code == 404
    key = _pseudonym_key(stack)
    alias = erasure.pseudonym(key, device.id)
    async with await connect(stack.database_url()) as conn:
        cur = await conn.execute(
            f"SELECT id FROM audit_log WHERE position(%s IN {AUDIT_TEXT}) > 0",
            (device.id,),
        )
        named = {row["id"] for row in await cur.fetchall()}
        cur = await conn.execute(
            f"SELECT id FROM audit_log WHERE position(%s IN {AUDIT_TEXT}) > 0",
            (neighbour,),
        )
        neighbours = {row["id"] for row in await cur.fetchall()}
        # Creation, the two changes and the token; the neighbour's 404 names another id.
        assert len(named - neighbours) >= 4 and len(neighbours) == 1
        cur = await conn.execute("SELECT count(*) AS n FROM audit_log")
        total = (await cur.fetchone())["n"]  # type: ignore[index]

        r = await asyncio.to_thread(api.delete, f"/v1/devices/{device.id}", params={"erase": "1"})
        assert r.status_code == 200, r.text

        cur = await conn.execute(
            f"SELECT id FROM audit_log WHERE position(%s IN {AUDIT_TEXT}) > 0",
            (device.id,),
        )
        # Only the neighbour's entry, whose id merely starts with the erased one, still has it:
        # the erased id is nowhere as a whole.
        assert {row["id"] for row in await cur.fetchall()} == neighbours
        # Every entry is kept, now under the pseudonym, and the erasure's own is added.
        cur = await conn.execute("SELECT count(*) AS n FROM audit_log")
        assert (await cur.fetchone())["n"] == total + 1  # type: ignore[index]
        cur = await conn.execute(
            f"SELECT id FROM audit_log WHERE position(%s IN {AUDIT_TEXT}) > 0",
            (alias,),
        )
        renamed = {row["id"] for row in await cur.fetchall()}
        assert named - neighbours < renamed and len(renamed) == len(named - neighbours) + 1


async def test_erasure_with_aggregates_erases_them(
    api: httpx.Client, device_factory, stack: Stack
) -> None:
    device = device_factory("waste")
    async with await connect(stack.database_url()) as conn:
        old = datetime.now(UTC) - timedelta(days=20)
        await add_reading(conn, device.id, old)
        await refresh_aggregates(conn, old, old)
        assert await count_rows(conn, "readings_daily", device.id) == 1
        r = await asyncio.to_thread(
            api.delete, f"/v1/devices/{device.id}", params={"erase": "true", "aggregates": "true"}
        )
        assert r.status_code == 200, r.text
        assert r.json()["aggregates"] == "erased" and r.json()["anonymous_id"] is None
        for view in ("readings", "readings_hourly", "readings_daily"):
            assert await count_rows(conn, view, device.id) == 0


async def test_readings_still_in_kafka_stay_erased(
    api: httpx.Client, device_factory, stack: Stack, stack_env: dict[str, str]
) -> None:
    device = device_factory("waste")
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)

    def batch(minute: int, *, received_at: datetime) -> bytes:
        return ReadingBatch(
            device_id=device.id,
            domain=Domain.WASTE,
            received_at=received_at,
            readings=[Reading(ts=hour + timedelta(minutes=minute), metric="fill_pct", value=1)],
        ).to_bytes()

    in_flight = batch(1, received_at=datetime.now(UTC))
    r = await asyncio.to_thread(api.delete, f"/v1/devices/{device.id}", params={"erase": "true"})
    assert r.status_code == 200, r.text
    r = await asyncio.to_thread(api.post, "/v1/devices", json={"id": device.id, "domain": "waste"})
    assert r.status_code == 201, r.text
    # Received before the erasure but stored after it (Kafka lag, a re-read), then a reading
    # of the device registered again.
    producer = AIOKafkaProducer(bootstrap_servers=stack_env["KAFKA_BOOTSTRAP"], acks="all")
    await producer.start()
    try:
        topic = READINGS_TOPICS[Domain.WASTE]
        await producer.send_and_wait(topic, in_flight, key=device.id.encode())
        after = batch(2, received_at=datetime.now(UTC))
        await producer.send_and_wait(topic, after, key=device.id.encode())
    finally:
        await producer.stop()
    async with await connect(stack.database_url()) as conn:
        deadline = datetime.now(UTC) + timedelta(seconds=60)
        while await count_rows(conn, "readings", device.id) < 1 and datetime.now(UTC) < deadline:
            await conn.execute("SELECT pg_sleep(0.2)")
        cur = await conn.execute("SELECT ts FROM readings WHERE device_id = %s", (device.id,))
        # Same partition, in order: the later reading stored means the earlier one was seen.
        assert [r["ts"] for r in await cur.fetchall()] == [hour + timedelta(minutes=2)]


def test_alerts_of_an_erased_device_still_in_kafka_stay_erased(
    api: httpx.Client, device_factory, stack: Stack, stack_env: dict[str, str]
) -> None:
    """The alerts service lagging (or replaying) past an erasure: the device's readings and
    episodes from before it do not bring back its activity or its alerts."""
    device = device_factory("waste")
    bootstrap = stack_env["KAFKA_BOOTSTRAP"]
    before, erased_kind, fresh_kind = datetime.now(UTC), unique_kind(), unique_kind()

    def readings(received_at: datetime) -> ReadingBatch:
        return ReadingBatch(
            device_id=device.id,
            domain=Domain.WASTE,
            received_at=received_at,
            readings=[Reading(ts=received_at, metric="fill_pct", value=5)],
        )

    def episode(kind: str, start: datetime) -> AlertEvent:
        return event(device.id, kind, "start", episode_start=start, ts=start, domain=Domain.WASTE)

    r = api.delete(f"/v1/devices/{device.id}", params={"erase": "true"})
    assert r.status_code == 200, r.text
    r = api.post("/v1/devices", json={"id": device.id, "domain": "waste"})
    assert r.status_code == 201, r.text
    after = datetime.now(UTC)
    # Keyed by device: each topic's later record consumed means its earlier one was.
    produce_readings(bootstrap, [readings(before), readings(after)])
    produce_events(bootstrap, [episode(erased_kind, before), episode(fresh_kind, after)])

    def activity() -> list[tuple[Any, ...]]:
        with psycopg.connect(stack.database_url()) as conn:
            return conn.execute(
                "SELECT last_at, period_s FROM alert_device_activity WHERE device_id = %s",
                (device.id,),
            ).fetchall()

    wait_for(lambda: activity() and activity()[0][0] == after, timeout=60, what="the new reading")
    # Counting the erased reading would have given the device a period (the gap between them).
    assert activity() == [(after, None)]

    def alerts(kind: str) -> list[dict[str, Any]]:
        r = api.get("/v1/alerts", params={"kind": kind, "device_id": device.id})
        assert r.status_code == 200, r.text
        return list(r.json())

    wait_for(lambda: alerts(fresh_kind), timeout=60, what="the new device's alert")
    assert alerts(erased_kind) == []


def test_erasure_of_a_device_deleted_earlier(api: httpx.Client, device_factory) -> None:
    device = device_factory("traffic")
    assert api.delete(f"/v1/devices/{device.id}").status_code == 204
    r = api.delete(f"/v1/devices/{device.id}", params={"erase": "true"})
    assert r.status_code == 200, r.text
    assert r.json()["rows"]["devices"] == 1
    assert api.delete(f"/v1/devices/{device.id}", params={"erase": "true"}).status_code == 404


def test_erasure_input_and_access(
    api: httpx.Client, device_factory, stack_env: dict[str, str]
) -> None:
    device = device_factory("energy")
    r = api.delete(f"/v1/devices/{device.id}", params={"aggregates": "true"})
    assert r.status_code == 422
    assert "erase" in r.json()["detail"]
    key = api.post("/v1/api-keys", json={"name": "op-erase", "role": "operator"}).json()
    try:
        r = httpx.delete(
            f"{stack_env['API_URL']}/v1/devices/{device.id}",
            params={"erase": "true"},
            headers={"Authorization": f"Bearer {key['key']}"},
        )
        assert r.status_code == 403
    finally:
        api.delete(f"/v1/api-keys/{key['id']}")
    assert api.get(f"/v1/devices/{device.id}").status_code == 200


@pytest.fixture(params=["stack", pytest.param("plain", marks=pytest.mark.plain_postgres)])
async def database(request: pytest.FixtureRequest, stack: Stack) -> AsyncIterator[str]:
    """The stack's database, and one kept on plain PostgreSQL (monthly partitions instead of
    hypertables), whatever the stack runs: the fallback must not rot where CI has TimescaleDB."""
    if request.param == "stack":
        yield stack.database_url()
    else:
        async with plain_database(stack) as url:
            async with await connect(url) as conn:
                # A reading makes its month's partition (readings_2026m11...).
                await add_reading(conn, f"probe-{uuid.uuid4().hex[:8]}", datetime.now(UTC))
            yield url


async def test_every_table_naming_devices_is_erased(database: str) -> None:
    """A table added later with a device_id column must be added to the erasure too."""
    async with await connect(database) as conn:
        # A month of a partitioned table (plain PostgreSQL's readings_2026m11...) is erased
        # through its parent, like a hypertable's chunks: only tables of their own count.
        cur = await conn.execute(
            "SELECT c.table_name FROM information_schema.columns c"
            " JOIN pg_class k ON k.relname = c.table_name"
            " JOIN pg_namespace n ON n.oid = k.relnamespace AND n.nspname = c.table_schema"
            " WHERE c.table_schema = 'public' AND c.column_name = 'device_id'"
            " AND NOT k.relispartition"
        )
        tables = {r["table_name"] for r in await cur.fetchall()}
        cur = await conn.execute(
            "SELECT count(*) AS n FROM pg_class WHERE relispartition AND relname LIKE 'readings%%'"
        )
        partitions = (await cur.fetchone())["n"]  # type: ignore[index]
        assert partitions > 0 or await retention.backend(conn) == "timescaledb"
    covered = {t for t, _ in erasure.device_tables()} | {
        "alerts",
        "deadletters",
        *erasure.AGGREGATES,
        # The tombstone itself: kept (for its retention period) on purpose.
        "device_erasures",
    }
    assert tables - covered == set()


@pytest.mark.plain_postgres
async def test_erasure_on_plain_postgresql_leaves_nothing(stack: Stack) -> None:
    """The same footprint erased on plain PostgreSQL: the monthly partitions through their
    parent, the hourly/daily rollup tables anonymised."""
    device_id = f"plain-{uuid.uuid4().hex[:8]}"
    async with plain_database(stack) as url, await connect(url) as conn:
        assert await retention.backend(conn) == "postgres"
        await _footprint(conn, device_id)
        assert await count_rows(conn, "readings", device_id) >= 1
        async with conn.transaction():
            result = await erasure.erase_device(
                conn,
                device_id=device_id,
                topic=f"townpulse/waste/{device_id}",
                erase_aggregates=False,
            )
        assert result["rows"]["readings"] >= 1
        left = {t: n for t in ERASED if (n := await count_rows(conn, t, device_id))}
        assert not left, f"rows still naming the erased device: {left}"
        for view in erasure.AGGREGATES:
            assert await count_rows(conn, view, device_id) == 0
            assert await count_rows(conn, view, result["anonymous_id"]) >= 1
