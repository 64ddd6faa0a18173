"""Models are pickled at every checkpoint: the compact form of their running means restores them
exactly, and checkpoints written before it still load."""

from __future__ import annotations

import math
import pickle
from datetime import UTC, datetime, timedelta

import pytest

from services.energy.domain.meter import EnergyProcessor
from shared.ml.forecast import _Ewm
from shared.schemas import Reading

pytestmark = pytest.mark.unit

# pickle.dumps(_Ewm(alpha=0.2) after updates 1.0, 2.5, 1.75, protocol=5), written at 7b51512,
# before _Ewm had its own __reduce__: what every checkpoint in a town's database holds.
BEFORE = (
    b"\x80\x05\x95`\x00\x00\x00\x00\x00\x00\x00\x8c\x12shared.ml.forecast\x94\x8c\x04_Ewm\x94"
    b"\x93\x94)\x81\x94N}\x94(\x8c\x05alpha\x94G?\xc9\x99\x99\x99\x99\x99\x9a\x8c\x04mean\x94G"
    b"?\xfc\x00\x00\x00\x00\x00\x00\x8c\x03var\x94G?\xd8\x00\x00\x00\x00\x00\x01\x8c\x01n\x94K"
    b"\x03u\x86\x94b."
)


def _updated() -> _Ewm:
    e = _Ewm(alpha=0.2)
    for v in (1.0, 2.5, 1.75):
        e.update(v)
    return e


def test_a_running_mean_round_trips_exactly() -> None:
    e = _updated()
    back = pickle.loads(pickle.dumps(e, protocol=pickle.HIGHEST_PROTOCOL))
    assert back == e and back.var == 0.37500000000000006
    assert b"alpha" not in pickle.dumps(e)  # the compact form, not a state dict


def test_a_checkpoint_pickled_before_the_compact_form_still_loads() -> None:
    back = pickle.loads(BEFORE)
    assert back == _updated()
    back.update(3.0)  # and learns on
    assert back.n == 4


def test_a_restored_energy_model_goes_on_exactly_as_the_original() -> None:
    proc = EnergyProcessor()
    state = proc.new_state("m")
    t0 = datetime(2026, 3, 2, tzinfo=UTC)

    def readings(lo: int, hi: int) -> list[Reading]:
        return [
            Reading(
                ts=t0 + timedelta(minutes=15 * i),
                metric="energy_kwh",
                value=round(5 + 4 * math.sin(i / 10) + (40 if i == hi - 5 else 0), 3),
            )
            for i in range(lo, hi)
        ]

    proc.process(state, device_id="m", readings=readings(0, 1500))
    restored = pickle.loads(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))
    more = readings(1500, 1800)
    assert (
        proc.process(restored, device_id="m", readings=more).rows
        == proc.process(state, device_id="m", readings=more).rows
    )
