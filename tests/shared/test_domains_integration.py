"""The registered manifests against the stack's database."""

from __future__ import annotations

import pytest

from shared import domains
from tests.data_rows import connect
from townpulse.stack import Stack

pytestmark = pytest.mark.integration


async def test_every_declared_table_and_column_is_in_the_database(stack: Stack) -> None:
    """A manifest naming a table or column the migrations did not make (a typo) would make an
    erasure or a retention run fail: each is in the stack's database."""
    async with await connect(stack.database_url()) as conn:
        cur = await conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = 'public'"
        )
        columns: dict[str, set[str]] = {}
        for row in await cur.fetchall():
            columns.setdefault(row["table_name"], set()).add(row["column_name"])
    for manifest in domains.registered():
        for table in manifest.tables:
            assert table.name in columns, table
            for column in (table.device_column, table.age):
                assert column is None or column in columns[table.name], (table, column)
