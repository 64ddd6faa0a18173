"""Models are pickled at every checkpoint: the compact forms of their running means (a cell's own
reduction, then a profile's cells in flat arrays) restore them exactly, and checkpoints written
before either still load."""

from __future__ import annotations

import math
import pickle
from datetime import UTC, datetime, timedelta

import pytest

from services.energy.domain.meter import EnergyProcessor
from shared.ml.cells import Ewm, EwmGrid
from shared.ml.forecast import SeasonalProfile
from shared.ml.weekly import WeeklyProfile
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


def _updated() -> Ewm:
    e = Ewm(alpha=0.2)
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


# pickle.dumps(profile, protocol=5) of each profile at f176b63, before their cells were flat arrays
# (a dict of _Ewm per profile): slot_minutes=60, then the four readings of `_friday_to_monday`.
SEASONAL_BEFORE_GRID = (
    b"\x80\x05\x95z\x01\x00\x00\x00\x00\x00\x00\x8c\x12shared.ml.forecast\x94\x8c\x0fSeasonalP"
    b"rofile\x94\x93\x94)\x81\x94}\x94(\x8c\x0cslot_minutes\x94K<\x8c\x05alpha\x94G?\xc9\x99"
    b"\x99\x99\x99\x99\x9a\x8c\x08calendar\x94\x8c\x12shared.ml.calendar\x94\x8c\x0cTownCalend"
    b"ar\x94\x93\x94)\x81\x94]\x94(\x8c\x0cEurope/Paris\x94\x8c\x02FR\x94eb\x8c\x05slots\x94}"
    b"\x94(\x8c\x07workday\x94K\x08\x86\x94h\x00\x8c\x04_Ewm\x94\x93\x94(G?\xc9\x99\x99\x99"
    b"\x99\x99\x9aG@\x04\x00\x00\x00\x00\x00\x00G@\x02\x00\x00\x00\x00\x00\x00K\x02t\x94R\x94"
    b"\x8c\x08saturday\x94K\x08\x86\x94h\x14(G?\xc9\x99\x99\x99\x99\x99\x9aG@\x04\x00\x00\x00"
    b"\x00\x00\x00G\x00\x00\x00\x00\x00\x00\x00\x00K\x01t\x94R\x94\x8c\x06sunday\x94K\x08\x86"
    b"\x94h\x14(G?\xc9\x99\x99\x99\x99\x99\x9aG?\xfc\x00\x00\x00\x00\x00\x00G\x00\x00\x00\x00"
    b"\x00\x00\x00\x00K\x01t\x94R\x94u\x8c\x07overall\x94h\x14(G?\x84z\xe1G\xae\x14{G@\x02\x80"
    b"\x00\x00\x00\x00\x00G?\xf3\xb0\x00\x00\x00\x00\x00K\x04t\x94R\x94ub."
)
WEEKLY_BEFORE_GRID = (
    b"\x80\x05\x95V\x02\x00\x00\x00\x00\x00\x00\x8c\x10shared.ml.weekly\x94\x8c\rWeeklyProfile"
    b"\x94\x93\x94)\x81\x94}\x94(\x8c\x0cslot_minutes\x94K<\x8c\x05alpha\x94G?\xb9\x99\x99\x99"
    b"\x99\x99\x9a\x8c\x0cshrink_weeks\x94G@\x08\x00\x00\x00\x00\x00\x00\x8c\x08calendar\x94"
    b"\x8c\x12shared.ml.calendar\x94\x8c\x0cTownCalendar\x94\x93\x94)\x81\x94]\x94(\x8c\x0cEur"
    b"ope/Paris\x94\x8c\x02FR\x94eb\x8c\x05cells\x94}\x94(K\x04K\x08\x86\x94\x8c\x12shared.ml."
    b"forecast\x94\x8c\x04_Ewm\x94\x93\x94(G?\xb9\x99\x99\x99\x99\x99\x9aG?\xf0\x00\x00\x00"
    b"\x00\x00\x00G\x00\x00\x00\x00\x00\x00\x00\x00K\x01t\x94R\x94K\x05K\x08\x86\x94h\x15(G?"
    b"\xb9\x99\x99\x99\x99\x99\x9aG@\x04\x00\x00\x00\x00\x00\x00G\x00\x00\x00\x00\x00\x00\x00"
    b"\x00K\x01t\x94R\x94K\x06K\x08\x86\x94h\x15(G?\xb9\x99\x99\x99\x99\x99\x9aG?\xfc\x00\x00"
    b"\x00\x00\x00\x00G\x00\x00\x00\x00\x00\x00\x00\x00K\x01t\x94R\x94K\x00K\x08\x86\x94h\x15("
    b"G?\xb9\x99\x99\x99\x99\x99\x9aG@\x10\x00\x00\x00\x00\x00\x00G\x00\x00\x00\x00\x00\x00"
    b"\x00\x00K\x01t\x94R\x94u\x8c\x06pooled\x94}\x94(\x8c\x07workday\x94K\x08\x86\x94h\x15(G?"
    b"\xb9\x99\x99\x99\x99\x99\x9aG@\x04\x00\x00\x00\x00\x00\x00G@\x02\x00\x00\x00\x00\x00\x00"
    b"K\x02t\x94R\x94\x8c\x08saturday\x94K\x08\x86\x94h\x15(G?\xb9\x99\x99\x99\x99\x99\x9aG@"
    b"\x04\x00\x00\x00\x00\x00\x00G\x00\x00\x00\x00\x00\x00\x00\x00K\x01t\x94R\x94\x8c\x06sund"
    b"ay\x94K\x08\x86\x94h\x15(G?\xb9\x99\x99\x99\x99\x99\x9aG?\xfc\x00\x00\x00\x00\x00\x00G"
    b"\x00\x00\x00\x00\x00\x00\x00\x00K\x01t\x94R\x94u\x8c\x07overall\x94h\x15(G?\x84z\xe1G"
    b"\xae\x14{G@\x02\x80\x00\x00\x00\x00\x00G?\xf3\xb0\x00\x00\x00\x00\x00K\x04t\x94R\x94ub."
)


def _friday_to_monday(profile: SeasonalProfile | WeeklyProfile) -> None:
    t0 = datetime(2026, 3, 6, 7, tzinfo=UTC)  # a Friday, 08:00 in Paris
    for day, value in enumerate((1.0, 2.5, 1.75, 4.0)):
        profile.learn_one({"ts": t0 + timedelta(days=day)}, value)


@pytest.mark.parametrize(
    ("before", "cls"),
    [(SEASONAL_BEFORE_GRID, SeasonalProfile), (WEEKLY_BEFORE_GRID, WeeklyProfile)],
    ids=["seasonal", "weekly"],
)
def test_a_profile_checkpointed_before_the_grid_loads_into_it_exactly(
    before: bytes, cls: type[SeasonalProfile | WeeklyProfile]
) -> None:
    fresh = cls(slot_minutes=60)
    _friday_to_monday(fresh)
    back = pickle.loads(before)
    assert "slots" not in vars(back) and back == fresh  # every cell in its place, none more
    t1 = datetime(2026, 3, 13, 7, tzinfo=UTC)
    week = [{"ts": t1 + timedelta(days=d, hours=h)} for d in range(7) for h in (0, 1)]
    assert [back.predict_one(x) for x in week] == [fresh.predict_one(x) for x in week]
    assert len({back.predict_one(x) for x in week}) > 2  # not every slot falling back alike
    for x in week:
        back.learn_one(x, 3.0)
        fresh.learn_one(x, 3.0)
    assert back == fresh


@pytest.mark.parametrize("cls", [SeasonalProfile, WeeklyProfile], ids=["seasonal", "weekly"])
def test_a_profile_round_trips_and_learns_on_exactly(
    cls: type[SeasonalProfile | WeeklyProfile],
) -> None:
    p = cls(slot_minutes=15)
    t0 = datetime(2026, 3, 2, tzinfo=UTC)
    for i in range(2000):
        p.learn_one({"ts": t0 + timedelta(minutes=15 * i)}, math.sin(i / 7) + (i % 96) / 10)
    back = pickle.loads(pickle.dumps(p, protocol=pickle.HIGHEST_PROTOCOL))
    assert back == p and back is not p
    later = [{"ts": t0 + timedelta(minutes=15 * i)} for i in range(2000, 2200)]
    for x in later:
        assert back.predict_one(x) == p.predict_one(x)
        assert back.spread_one(x) == p.spread_one(x)
        back.learn_one(x, 1.0)
        p.learn_one(x, 1.0)
    assert back == p


# pickle.dumps(profile, protocol=5) of WeeklyProfile(slot_minutes=360) at d23767a, then the four
# readings of `_friday_to_monday`: before shared.ml.cells, its grid and running mean were
# shared.ml.forecast.EwmGrid and shared.ml.forecast._Ewm.
WEEKLY_BEFORE_CELLS = (
    b"\x80\x05\x95 \x03\x00\x00\x00\x00\x00\x00\x8c\x10shared.ml.weekly\x94\x8c\rWeeklyProfile"
    b"\x94\x93\x94)\x81\x94}\x94(\x8c\x0cslot_minutes\x94Mh\x01\x8c\x05alpha\x94G?\xb9\x99\x99"
    b"\x99\x99\x99\x9a\x8c\x0cshrink_weeks\x94G@\x08\x00\x00\x00\x00\x00\x00\x8c\x08calendar"
    b"\x94\x8c\x12shared.ml.calendar\x94\x8c\x0cTownCalendar\x94\x93\x94)\x81\x94]\x94(\x8c"
    b"\x0cEurope/Paris\x94\x8c\x02FR\x94eb\x8c\x07overall\x94\x8c\x12shared.ml.forecast\x94"
    b"\x8c\x04_Ewm\x94\x93\x94(G?\x84z\xe1G\xae\x14{G@\x02\x80\x00\x00\x00\x00\x00G?\xf3\xb0"
    b"\x00\x00\x00\x00\x00K\x04t\x94R\x94\x8c\x05cells\x94h\x11\x8c\x07EwmGrid\x94\x93\x94)"
    b"\x81\x94N}\x94(h\x06G?\xb9\x99\x99\x99\x99\x99\x9a\x8c\x02at\x94\x8c\x05array\x94\x8c"
    b"\x14_array_reconstructor\x94\x93\x94(\x8c\x05array\x94\x8c\x05array\x94\x93\x94\x8c\x01h"
    b"\x94K\x04C@\xff\xff\x03\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"
    b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x00\x00\xff\xff\xff\xff\xff"
    b"\xff\x01\x00\xff\xff\xff\xff\xff\xff\x02\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"
    b"\xff\x94t\x94R\x94\x8c\x04mean\x94h\x1e(h!\x8c\x01d\x94K\x10C \x00\x00\x00\x00\x00\x00"
    b"\xf0?\x00\x00\x00\x00\x00\x00\x04@\x00\x00\x00\x00\x00\x00\xfc?\x00\x00\x00\x00\x00\x00"
    b"\x10@\x94t\x94R\x94\x8c\x01n\x94h\x1e(h!\x8c\x01q\x94K\x0cC \x01\x00\x00\x00\x00\x00\x00"
    b"\x00\x01\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00"
    b"\x00\x00\x00\x94t\x94R\x94\x8c\x03var\x94h\x1e(h!h'K\x10C \x00\x00\x00\x00\x00\x00\x00"
    b"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
    b"\x00\x00\x00\x94t\x94R\x94u\x86\x94b\x8c\x06pooled\x94h\x18)\x81\x94N}\x94(h\x06G?\xb9"
    b'\x99\x99\x99\x99\x99\x9ah\x1bh\x1e(h!h"K\x04C\x18\xff\xff\x00\x00\xff\xff\xff\xff\xff'
    b"\xff\x01\x00\xff\xff\xff\xff\xff\xff\x02\x00\xff\xff\xff\xff\x94t\x94R\x94h&h\x1e(h!h'K"
    b"\x10C\x18\x00\x00\x00\x00\x00\x00\x04@\x00\x00\x00\x00\x00\x00\x04@\x00\x00\x00\x00\x00"
    b"\x00\xfc?\x94t\x94R\x94h+h\x1e(h!h,K\x0cC\x18\x02\x00\x00\x00\x00\x00\x00\x00\x01\x00"
    b"\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x94t\x94R\x94h0h\x1e(h!h'K\x10"
    b"C\x18\x00\x00\x00\x00\x00\x00\x02@\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
    b"\x00\x00\x00\x94t\x94R\x94u\x86\x94bub."
)


def test_a_checkpoint_naming_the_cells_in_shared_ml_forecast_still_loads() -> None:
    assert b"shared.ml.forecast\x94\x8c\x04_Ewm" in WEEKLY_BEFORE_CELLS
    assert b"\x8c\x07EwmGrid" in WEEKLY_BEFORE_CELLS
    fresh = WeeklyProfile(slot_minutes=360)
    _friday_to_monday(fresh)
    back = pickle.loads(WEEKLY_BEFORE_CELLS)
    assert type(back.overall) is Ewm and type(back.cells) is EwmGrid
    assert back == fresh
    t1 = datetime(2026, 3, 13, 7, tzinfo=UTC)
    week = [{"ts": t1 + timedelta(days=d, hours=h)} for d in range(7) for h in (0, 6)]
    assert [back.predict_one(x) for x in week] == [fresh.predict_one(x) for x in week]
    # Saved again, it names the cells where they live now.
    again = pickle.dumps(back, protocol=5)
    assert b"shared.ml.cells" in again and b"shared.ml.forecast" not in again
