"""Device states' checkpoints in `runtime_state`: pickled, signed, never saved over an erasure.

All of the runtime's SQL on checkpoints is here; when to checkpoint, and which device, is the
runtime's (shared/runtime/worker.py). A checkpoint is unpickled only once its HMAC says this
service wrote it (shared/runtime/checkpoints.py), and only for the processor's model version.
"""

from __future__ import annotations

import logging
import pickle
from datetime import datetime
from typing import Any, Generic, TypeVar

from prometheus_client import Counter
from psycopg import AsyncConnection
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from shared.runtime.checkpoints import CheckpointKey, Verdict
from shared.runtime.processor import Adopts, DeviceProcessor

log = logging.getLogger(__name__)

S = TypeVar("S")

DISCARDED = Counter(
    "townpulse_runtime_discarded_checkpoints_total",
    "Checkpoints of another model version, discarded",
    ["group"],
)
REFUSED = Counter(
    "townpulse_runtime_refused_checkpoints_total",
    "Checkpoints refused by their HMAC (unsigned or tampered), never unpickled",
    ["group", "verdict"],
)


class StateStore(Generic[S]):
    """The checkpoints of one consumer group's device states."""

    def __init__(
        self,
        *,
        group_id: str,
        processor: DeviceProcessor[S],
        key: CheckpointKey,
        accept_unsigned: bool = False,
    ) -> None:
        self.group_id = group_id
        self._processor = processor
        self._key = key
        self._accept_unsigned = accept_unsigned

    def row(
        self,
        device_id: str,
        *,
        state: S,
        clock: datetime | None,
        applied: int,
        since: datetime | None,
    ) -> dict[str, Any]:
        """A checkpoint to save: the pickled state, signed."""
        version = self._processor.model_version
        pickled = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
        mac = self._key.sign(
            group_id=self.group_id,
            device_id=device_id,
            model_version=version,
            applied=applied,
            state=pickled,
        )
        return {
            "group_id": self.group_id,
            "device_id": device_id,
            "model_version": version,
            "state": pickled,
            "mac": mac,
            "clock": clock,
            "applied": applied,
            "since": since,
            "learning_until": self._learning_until(state),
            "warming": self._warming(state),
        }

    def _learning_until(self, state: S) -> datetime | None:
        """What a processor that warms up says of this state (`learning_until(state)`): roughly
        when its model will be calibrated, None once it is. Shown by the console, never used to
        decide anything here."""
        learning_until = getattr(self._processor, "learning_until", None)
        if learning_until is None:
            return None
        until: datetime | None = learning_until(state)
        return until

    def _warming(self, state: S) -> Jsonb | None:
        """What of the model still warms up, and until when, where the processor says
        (`warming(state)`: e.g. an energy meter's band, schedule and level watch); shown by the
        console with `learning_until`, never used to decide anything here."""
        warming = getattr(self._processor, "warming", None)
        parts: dict[str, datetime] = {} if warming is None else warming(state)
        return Jsonb({part: until.isoformat() for part, until in parts.items()}) if parts else None

    async def save(self, conn: AsyncConnection[DictRow], rows: list[dict[str, Any]]) -> None:
        """Save checkpoints; the caller holds the erasure lock (shared.erasure)."""
        if not rows:
            return
        # An operator may erase a device between two batches of it: its model in memory learnt
        # what the erasure removed, and saving it would bring that back. The statement checks;
        # the lock makes it see an erasure that committed meanwhile, and holds off the next.
        async with conn.cursor() as cur:
            await cur.executemany(
                """
                INSERT INTO runtime_state (group_id, device_id, model_version, state, state_mac,
                                           clock, applied_offset, learnt_since, learning_until,
                                           warming)
                SELECT %(group_id)s, %(device_id)s, %(model_version)s, %(state)s, %(mac)s,
                       %(clock)s::timestamptz, %(applied)s::bigint, %(since)s::timestamptz,
                       %(learning_until)s::timestamptz, %(warming)s::jsonb
                WHERE NOT EXISTS (
                    SELECT 1 FROM device_erasures e WHERE e.device_id = %(device_id)s
                    AND (%(since)s::timestamptz IS NULL OR e.erased_at >= %(since)s::timestamptz)
                )
                ON CONFLICT (group_id, device_id) DO UPDATE SET
                    model_version = EXCLUDED.model_version, state = EXCLUDED.state,
                    state_mac = EXCLUDED.state_mac,
                    clock = EXCLUDED.clock, applied_offset = EXCLUDED.applied_offset,
                    learnt_since = EXCLUDED.learnt_since,
                    learning_until = EXCLUDED.learning_until, warming = EXCLUDED.warming,
                    updated_at = now()
                """,
                rows,
            )

    async def fetch(
        self, conn: AsyncConnection[DictRow], device_ids: list[str]
    ) -> dict[str, DictRow]:
        """The stored checkpoints of these devices (not yet trusted)."""
        cur = await conn.execute(
            "SELECT device_id, model_version, state, state_mac, clock, applied_offset,"
            " learnt_since, updated_at"
            " FROM runtime_state WHERE group_id = %s AND device_id = ANY(%s)",
            (self.group_id, device_ids),
        )
        return {r["device_id"]: r for r in await cur.fetchall()}

    def verdict(self, row: DictRow) -> Verdict | None:
        """None when the checkpoint may be unpickled (its HMAC is ours, or unsigned during the
        upgrade's one-off); else why it is refused (counted and logged here)."""
        device_id = row["device_id"]
        verdict = self._key.verify(
            group_id=self.group_id,
            device_id=device_id,
            model_version=row["model_version"],
            applied=int(row["applied_offset"] or 0),
            state=bytes(row["state"]),
            mac=None if row["state_mac"] is None else bytes(row["state_mac"]),
        )
        if verdict is Verdict.SIGNED:
            return None
        if verdict is Verdict.UNSIGNED and self._accept_unsigned:
            # The upgrade's one-off (TOWNPULSE_CHECKPOINT_ACCEPT_UNSIGNED): signed at next save.
            log.warning("loading an unsigned checkpoint", extra={"device_id": device_id})
            return None
        REFUSED.labels(self.group_id, verdict.value).inc()
        log.error(
            "refusing a checkpoint that this service did not sign: the model starts fresh",
            extra={"device_id": device_id, "verdict": verdict.value},
        )
        return verdict

    def restore(self, row: DictRow) -> S | None:
        """The state of a trusted checkpoint; None if another model version wrote it and the
        processor does not adopt it (`shared.runtime.processor.Adopts`)."""
        stored = row["model_version"]
        if stored == self._processor.model_version:
            # Only after its HMAC said this service wrote it (verdict()).
            state: S = pickle.loads(bytes(row["state"]))  # noqa: S301
            return state
        if isinstance(self._processor, Adopts):
            adopted: S | None = None
            try:
                old: S = pickle.loads(bytes(row["state"]))  # noqa: S301 - HMAC verified
                adopted = self._processor.adopt(old, stored_version=stored)
            except Exception as exc:  # classes of that version may be gone: start afresh
                log.warning("could not adopt a checkpoint: %r", exc)
            if adopted is not None:
                log.info(
                    "checkpoint of model version %s adopted by %s",
                    stored,
                    self._processor.model_version,
                    extra={"device_id": row["device_id"]},
                )
                return adopted
        self.discard(
            row["device_id"], "discarding checkpoint of another model version", stored=stored
        )
        return None

    def discard(self, device_id: str, why: str, **extra: Any) -> None:
        DISCARDED.labels(self.group_id).inc()
        log.warning(
            why,
            extra={
                "device_id": device_id,
                **extra,
                **({"current": self._processor.model_version} if extra else {}),
            },
        )
