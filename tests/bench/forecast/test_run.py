"""How the forecast benchmark tells its energy model the temperature (issue #24 item 6)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bench.forecast.run import _Temperature, scored_from
from shared.ml.online import Step

pytestmark = pytest.mark.unit

T0 = datetime(2018, 1, 1, tzinfo=UTC)


class _Spy:
    """A regressor-style model that records what it is told."""

    def __init__(self) -> None:
        self.learnt: list[dict[str, Any]] = []
        self.asked: list[dict[str, Any]] = []

    def learn_one(self, x: dict[str, Any], y: float) -> None:
        self.learnt.append(dict(x))

    def predict_one(self, x: dict[str, Any]) -> float:
        self.asked.append(dict(x))
        return 0.0


@pytest.mark.parametrize(
    ("mode", "learns_it", "is_told_it"),
    [("honest", True, False), ("none", False, False), ("oracle", True, True)],
)
def test_each_run_is_told_the_temperature_it_may_know(
    mode: str, learns_it: bool, is_told_it: bool
) -> None:
    spy = _Spy()
    model = _Temperature(spy, mode=mode)
    x = {"ts": T0, "temperature_c": 4.0}
    model.learn_one(x, 1.0)
    model.predict_one({"ts": T0 + timedelta(hours=24), "temperature_c": 9.0})
    assert ("temperature_c" in spy.learnt[0]) is learns_it
    assert ("temperature_c" in spy.asked[0]) is is_told_it
    assert x == {"ts": T0, "temperature_c": 4.0}  # the step's features are left as they were


def test_the_first_year_is_warm_up() -> None:
    steps = [Step(datetime(2018, 3, 5, 7, tzinfo=UTC), 1.0), Step(T0.replace(year=2021), 2.0)]
    assert scored_from(steps) == datetime(2019, 1, 1, tzinfo=UTC)
    assert scored_from([]) is None
