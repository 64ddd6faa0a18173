"""Forecast error metrics.

CV(RMSE) is RMSE divided by the mean of the observed values (ASHRAE Guideline 14 uses it, with an
``n - p`` denominator whose ``p`` we take as 0: with thousands of hours it changes nothing). The
issue calls it NRMSE; ``nrmse_range`` (RMSE over the observed range) is given too because some
papers mean that instead.

>>> m = errors([10.0, 20.0, 30.0], [12.0, 18.0, 30.0])
>>> m.mae, round(m.rmse, 4), round(m.cv_rmse, 4), round(m.nrmse_range, 4)
(1.3333, 1.633, 0.0816, 0.0816)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Errors:
    n: int
    mae: float
    rmse: float
    mean: float
    cv_rmse: float
    nrmse_range: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def mae(actual: Sequence[float], predicted: Sequence[float]) -> float:
    _check(actual, predicted)
    return math.fsum(abs(a - p) for a, p in zip(actual, predicted, strict=True)) / len(actual)


def rmse(actual: Sequence[float], predicted: Sequence[float]) -> float:
    _check(actual, predicted)
    sq = math.fsum((a - p) ** 2 for a, p in zip(actual, predicted, strict=True))
    return math.sqrt(sq / len(actual))


def cv_rmse(actual: Sequence[float], predicted: Sequence[float]) -> float:
    """RMSE / mean(actual): ASHRAE Guideline 14's CV(RMSE), as a fraction (0.3 = 30%)."""
    mean = math.fsum(actual) / len(actual)
    if mean == 0:
        return math.inf
    return rmse(actual, predicted) / abs(mean)


def nrmse_range(actual: Sequence[float], predicted: Sequence[float]) -> float:
    span = max(actual) - min(actual)
    if span == 0:
        return math.inf
    return rmse(actual, predicted) / span


def errors(actual: Sequence[float], predicted: Sequence[float], *, digits: int = 4) -> Errors:
    """All the metrics at once, rounded for reports."""
    _check(actual, predicted)
    return Errors(
        n=len(actual),
        mae=round(mae(actual, predicted), digits),
        rmse=round(rmse(actual, predicted), digits),
        mean=round(math.fsum(actual) / len(actual), digits),
        cv_rmse=round(cv_rmse(actual, predicted), digits),
        nrmse_range=round(nrmse_range(actual, predicted), digits),
    )


def _check(actual: Sequence[float], predicted: Sequence[float]) -> None:
    if len(actual) != len(predicted):
        raise ValueError(f"{len(actual)} actual values but {len(predicted)} predictions")
    if not actual:
        raise ValueError("no values to compare")
