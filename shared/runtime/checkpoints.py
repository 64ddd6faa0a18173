"""Authenticated model checkpoints: a pickle is loaded only if its HMAC says this service wrote it.

Models are River estimators, pickled into `runtime_state`. Unpickling runs code chosen by
whoever wrote the bytes, so a row changed by anyone but the domain services (an SQL injection
elsewhere, a compromised service, a restored dump from elsewhere) must never reach
`pickle.loads`. Each checkpoint carries an HMAC-SHA256 over its group, device, model version,
applied offset and state; the key is given to the domain services only (`.run/secrets/
checkpoint-key`, TOWNPULSE_CHECKPOINT_KEY) and the database never holds it. A checkpoint whose
HMAC does not match is refused: the device's model starts fresh and an alert says so
(shared/runtime/worker.py).

Checkpoints written before HMACs existed (`state_mac` NULL) are refused the same way, unless
TOWNPULSE_CHECKPOINT_ACCEPT_UNSIGNED is set for the first start after the upgrade (README,
Security): they are then loaded once and signed at their next save.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Verdict(StrEnum):
    SIGNED = "signed"
    UNSIGNED = "unsigned"
    TAMPERED = "tampered"


@dataclass(frozen=True)
class CheckpointKey:
    """Signs and verifies checkpoints.

    >>> k = CheckpointKey(b"k" * 32)
    >>> mac = k.sign(group_id="g", device_id="d", model_version="1", applied=5, state=b"s")
    >>> k.verify(group_id="g", device_id="d", model_version="1", applied=5, state=b"s", mac=mac)
    <Verdict.SIGNED: 'signed'>
    >>> k.verify(group_id="g", device_id="e", model_version="1", applied=5, state=b"s", mac=mac)
    <Verdict.TAMPERED: 'tampered'>
    >>> k.verify(group_id="g", device_id="d", model_version="1", applied=5, state=b"s", mac=None)
    <Verdict.UNSIGNED: 'unsigned'>
    """

    key: bytes

    @classmethod
    def ephemeral(cls) -> CheckpointKey:
        """A key for a runtime built without one (unit tests): its checkpoints outlive no
        restart, which is safe (a model starts fresh), never trusting."""
        return cls(secrets.token_bytes(32))

    def sign(
        self, *, group_id: str, device_id: str, model_version: str, applied: int, state: bytes
    ) -> bytes:
        # The fields are JSON-encoded (unambiguous), then the state: a state cannot be moved to
        # another device, group or offset.
        head = json.dumps([group_id, device_id, str(model_version), int(applied)]).encode()
        return hmac.new(self.key, head + b"\0" + state, hashlib.sha256).digest()

    def verify(
        self,
        *,
        group_id: str,
        device_id: str,
        model_version: str,
        applied: int,
        state: bytes,
        mac: bytes | None,
    ) -> Verdict:
        if mac is None:
            return Verdict.UNSIGNED
        expected = self.sign(
            group_id=group_id,
            device_id=device_id,
            model_version=model_version,
            applied=applied,
            state=state,
        )
        return Verdict.SIGNED if hmac.compare_digest(expected, mac) else Verdict.TAMPERED

    def resign(
        self,
        *,
        group_id: str,
        device_id: str,
        model_version: str,
        applied: int,
        state: bytes,
        mac: bytes | None,
        new_applied: int,
    ) -> bytes | None:
        """The MAC of a checkpoint moved to another offset (a restore into a new Kafka), or
        None when its own MAC does not verify: signing an unsigned or tampered state would
        launder it.

        >>> k = CheckpointKey(b"k" * 32)
        >>> mac = k.sign(group_id="g", device_id="d", model_version="1", applied=5, state=b"s")
        >>> moved = k.resign(group_id="g", device_id="d", model_version="1", applied=5,
        ...                  state=b"s", mac=mac, new_applied=0)
        >>> k.verify(group_id="g", device_id="d", model_version="1", applied=0, state=b"s",
        ...          mac=moved)
        <Verdict.SIGNED: 'signed'>
        >>> print(k.resign(group_id="g", device_id="d", model_version="1", applied=5,
        ...                state=b"t", mac=mac, new_applied=0))
        None
        """
        same = {"group_id": group_id, "device_id": device_id, "model_version": model_version}
        if self.verify(**same, applied=applied, state=state, mac=mac) is not Verdict.SIGNED:
            return None
        return self.sign(**same, applied=new_applied, state=state)


class Upgradable:
    """A dataclass device state whose checkpoints outlive the addition of fields.

    Unpickling restores the attributes a checkpoint holds and runs no `__init__`: a field added
    since the checkpoint was written would be missing. Here each missing field takes its
    default, and `_upgrade` may derive it from what the old state held. The model version
    (which discards checkpoints of another version) stays for changes a default cannot bridge.

    >>> from dataclasses import field
    >>> @dataclass
    ... class State(Upgradable):
    ...     n: int = 0
    ...     seen: list[int] = field(default_factory=list)
    >>> s = State.__new__(State)
    >>> s.__setstate__({"n": 3})
    >>> s
    State(n=3, seen=[])
    """

    def __setstate__(self, state: dict[str, Any]) -> None:
        old = dict(state)
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            if f.name in state:
                continue
            if f.default is not dataclasses.MISSING:
                state[f.name] = f.default
            elif f.default_factory is not dataclasses.MISSING:
                state[f.name] = f.default_factory()
        self.__dict__.update(state)
        self._upgrade(old)

    def _upgrade(self, old: dict[str, Any]) -> None:
        """Derive new fields from a checkpoint's attributes (`old`); by default nothing."""
