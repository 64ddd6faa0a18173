"""The state store's restore: a checkpoint of this model version is loaded; one of another is
discarded, unless the processor adopts it (shared.runtime.processor.Adopts)."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from shared.runtime.checkpoints import CheckpointKey
from shared.runtime.processor import Effects
from shared.runtime.states import StateStore

pytestmark = pytest.mark.unit


class Plain:
    model_version = "plain/2"

    def new_state(self, device_id: str) -> dict[str, Any]:
        return {}

    def process(self, state: dict[str, Any], *, device_id: str, readings: list[Any]) -> Effects:
        return Effects()


class Adopting(Plain):
    def adopt(self, state: dict[str, Any], *, stored_version: str) -> dict[str, Any] | None:
        if stored_version != "plain/1":
            return None
        return {**state, "adopted_from": stored_version}


def _row(version: str, state: object) -> dict[str, Any]:
    return {"device_id": "d1", "model_version": version, "state": pickle.dumps(state)}


def test_a_checkpoint_of_this_version_is_restored() -> None:
    store = StateStore(group_id="g", processor=Plain(), key=CheckpointKey.ephemeral())
    assert store.restore(_row("plain/2", {"n": 3})) == {"n": 3}


def test_another_version_is_discarded_unless_the_processor_adopts_it() -> None:
    plain = StateStore(group_id="g", processor=Plain(), key=CheckpointKey.ephemeral())
    assert plain.restore(_row("plain/1", {"n": 3})) is None
    adopting = StateStore(group_id="g", processor=Adopting(), key=CheckpointKey.ephemeral())
    assert adopting.restore(_row("plain/1", {"n": 3})) == {
        "n": 3,
        "adopted_from": "plain/1",
    }
    assert adopting.restore(_row("plain/0", {"n": 3})) is None
    # A pickle that no longer loads (a class gone with that version) starts afresh.
    broken = {"device_id": "d1", "model_version": "plain/1", "state": b"not a pickle"}
    assert adopting.restore(broken) is None
