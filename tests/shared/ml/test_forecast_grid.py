"""EwmGrid: a profile's cells packed in the order they are first updated, compared by value."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta

import pytest

from shared.ml.cells import Ewm, EwmGrid
from shared.ml.forecast import SeasonalProfile

pytestmark = pytest.mark.unit


def test_a_cell_learns_as_an_ewm_does() -> None:
    grid, ewm = EwmGrid(10, alpha=0.2), Ewm(alpha=0.2)
    for y in (3.0, 5.5, 4.0, 9.0, 1.5):
        grid.update(7, y)
        ewm.update(y)
    assert (grid.count(7), grid.value(7), grid.std(7)) == (ewm.n, ewm.mean, ewm.std)
    assert (grid.count(6), grid.value(6), grid.std(6)) == (0, 0.0, 0.0)


def test_a_young_profile_holds_only_the_cells_it_has_seen() -> None:
    p = SeasonalProfile(slot_minutes=15)  # 3 day types x 96 slots
    t0 = datetime(2026, 3, 2, tzinfo=UTC)
    for i in range(4):
        p.learn_one({"ts": t0 + timedelta(minutes=15 * i)}, float(i))
    assert len(p.cells.at) == 288
    assert len(p.cells.n) == len(p.cells.mean) == len(p.cells.var) == 4
    assert len(pickle.dumps(p.cells)) < 1000


def test_grids_with_the_same_cells_are_equal_whatever_order_they_were_filled_in() -> None:
    a, b = EwmGrid(5, alpha=0.1), EwmGrid(5, alpha=0.1)
    for i, y in ((1, 2.0), (3, 4.0), (1, 3.0)):
        a.update(i, y)
    for i, y in ((3, 4.0), (1, 2.0), (1, 3.0)):
        b.update(i, y)
    assert a == b and list(a.mean) != list(b.mean)
    b.update(4, 1.0)
    assert a != b
