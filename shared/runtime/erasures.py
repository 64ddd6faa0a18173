"""The runtime's erasure guard: what an operator erased (shared/erasure.py) never comes back.

An erased device's readings may still be in Kafka, its model in memory, its checkpoint saved
before the erasure existed or raced it. The guard is the runtime's one place that knows of
erasures: which devices it has seen erased and when, which records and checkpoints that
voids, and the lock and check every transaction saving states takes. The runtime
(shared/runtime/worker.py) drops the models the guard reports newly erased.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime

from psycopg import AsyncConnection
from psycopg.rows import DictRow

from shared.db import Pool
from shared.erasure import erasures, exclude_erasures


class ErasedMeanwhile(Exception):
    """A device of the batch was erased after prepare() read its erasures: its models learnt
    what the erasure removed. The batch fails; the stream core replays its partitions from
    their checkpoints (discard()), and the replay knows of the erasure."""


class ErasureGuard:
    """The erasures one runtime has acted on, and the checks that keep them."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        # Device -> when it was erased: records received until then are not learnt or scored
        # again, checkpoints learnt from before then are never restored.
        self._erased: dict[str, datetime] = {}

    async def read(self, device_ids: Collection[str]) -> list[str]:
        """Erasures of these devices (one indexed query per batch, so that a reading of a device
        registered again after an erasure is always learnt by a fresh model). Returns the
        devices erased since last asked: their checkpoints are gone from the database, and the
        caller drops their models from memory."""
        if not device_ids:
            return []
        async with self._pool.connection() as conn:
            erased = await erasures(conn, device_ids)
        new = self._unknown(erased)
        self._erased.update(new)
        return list(new)

    def forgets(self, device_id: str, *, received_at: datetime) -> bool:
        """Whether a record of this device, received then, went with its erasure."""
        erased = self._erased.get(device_id)
        return erased is not None and received_at <= erased

    def voids(self, device_id: str, *, learnt_since: datetime | None) -> bool:
        """Whether a stored checkpoint, learning since then, learnt from before the device's
        erasure (or is of unknown age: saved before the erasure lock existed, or by hand)."""
        erased = self._erased.get(device_id)
        return erased is not None and (learnt_since is None or learnt_since <= erased)

    async def hold(self, conn: AsyncConnection[DictRow], device_ids: Collection[str]) -> None:
        """Held to the commit: no erasure commits before this transaction does, and it sees
        every erasure committed before. Raises ErasedMeanwhile if one of these devices was
        erased since `read` (its model in memory learnt what the erasure removed)."""
        await exclude_erasures(conn)
        if device_ids and (meanwhile := self._unknown(await erasures(conn, device_ids))):
            raise ErasedMeanwhile(sorted(meanwhile))

    def _unknown(self, erased: Mapping[str, datetime]) -> dict[str, datetime]:
        """The erasures among `erased` not acted on yet."""
        return {d: at for d, at in erased.items() if self._erased.get(d) != at}
