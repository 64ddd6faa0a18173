"""The gateway's SQL against the stack's PostgreSQL: shipped profiles and their codecs."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr

from services.gateway.adapters.db import codec_examples, install_shipped_profiles, profile_row
from shared.db import Pool, create_pool
from tests.lorawan_support import DEVICE_REPOSITORY

pytestmark = pytest.mark.integration


@pytest.fixture
async def pool(stack_env: dict[str, str]) -> AsyncIterator[Pool]:
    p = create_pool(SecretStr(stack_env["DATABASE_URL"]), max_size=2)
    await p.open()
    yield p
    await p.close()


async def test_shipped_profiles_come_with_their_codecs_from_a_local_repository(
    pool: Pool,
) -> None:
    async with pool.connection() as conn:
        # As on a new install: the parking sensor's codec is not there yet.
        await conn.execute("DELETE FROM codecs WHERE name = 'nwave-nps405'")
    await install_shipped_profiles(pool, repository=DEVICE_REPOSITORY)
    examples = await codec_examples(pool, "nwave-nps405")
    assert examples is not None and len(examples) == 4
    row = await profile_row(pool, "nwave-nps405")
    assert row is not None and row["shipped"] and row["domain"] == "traffic"
    # Run again (every start): nothing new, the installed version stays the only one.
    await install_shipped_profiles(pool, repository=DEVICE_REPOSITORY)
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT count(*) AS n FROM codecs WHERE name = 'nwave-nps405'")
        assert (await cur.fetchone())["n"] == 1
