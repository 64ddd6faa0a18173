"""insert_rows on the stack's PostgreSQL: a batch of rows in one statement, with the caller's
conflict clause, NULLs in any column, and nothing sent for an empty batch."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from psycopg.types.json import Jsonb

from services.waste.adapters.db import BIN_COLUMNS as BINS
from shared.runtime.tables import insert_rows
from tests.data_rows import connect
from townpulse.stack import Stack

pytestmark = pytest.mark.integration

UPSERT = """
    ON CONFLICT (device_id) DO UPDATE SET ts = EXCLUDED.ts, level = EXCLUDED.level,
        rates = coalesce(EXCLUDED.rates, waste_bins.rates)
"""


async def test_rows_go_in_one_statement_with_the_callers_conflict_clause(stack: Stack) -> None:
    a, b = (f"rows-{uuid.uuid4().hex[:10]}" for _ in range(2))
    t0 = datetime.now(UTC).replace(microsecond=0)
    async with await connect(stack.database_url()) as conn:
        try:
            await insert_rows(
                conn,
                "waste_bins",
                BINS,
                [
                    (a, t0, 40.0, 1.5, None, None, None, None, None, Jsonb({"mon": [1.0]})),
                    (b, t0, 10.0, 0.5, None, None, None, None, 12.5, None),
                ],
                conflict=UPSERT,
            )
            # The second batch updates a (keeping its rates: NULL coalesced) and nothing else.
            later = t0 + timedelta(minutes=5)
            row = (a, later, 45.0, 2.0, None, None, None, None, None, None)
            await insert_rows(conn, "waste_bins", BINS, [row], conflict=UPSERT)
            await insert_rows(conn, "waste_bins", BINS, [], conflict=UPSERT)
            cur = await conn.execute(
                "SELECT device_id, ts, level, full_at, temperature_c, rates FROM waste_bins"
                " WHERE device_id = ANY(%s) ORDER BY device_id",
                ([a, b],),
            )
            got = {r["device_id"]: r for r in await cur.fetchall()}
            assert (got[a]["ts"], got[a]["level"], got[a]["rates"]) == (later, 45.0, {"mon": [1.0]})
            assert (got[b]["level"], got[b]["full_at"], got[b]["temperature_c"]) == (
                10.0,
                None,
                12.5,
            )
            assert got[b]["rates"] is None
        finally:
            await conn.execute("DELETE FROM waste_bins WHERE device_id = ANY(%s)", ([a, b],))


async def test_rows_of_the_wrong_width_are_refused(stack: Stack) -> None:
    async with await connect(stack.database_url()) as conn:
        with pytest.raises(ValueError, match="3 values for 10 columns"):
            await insert_rows(
                conn,
                "waste_bins",
                BINS,
                [("x", datetime.now(UTC), 1.0)],
                conflict=UPSERT,
            )
