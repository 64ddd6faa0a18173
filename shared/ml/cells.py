"""Running means of the profile forecasters: one exponentially weighted mean and variance
(`Ewm`), and a grid of them by day type (or weekday) and slot of the day (`EwmGrid`).

`shared.ml.forecast` and `shared.ml.weekly` both build their profiles on these; neither imports
the other's internals. Checkpoints written before this module existed name `Ewm` and `EwmGrid`
in `shared.ml.forecast` (as `_Ewm` and `EwmGrid`), which still exports them for those.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.ml.calendar import SATURDAY, SUNDAY, WORKDAY

Features = dict[str, Any]


@dataclass(slots=True)
class Ewm:
    """Exponentially weighted mean and variance (West's incremental form)."""

    alpha: float
    mean: float = 0.0
    var: float = 0.0
    n: int = 0

    def update(self, y: float) -> None:
        if self.n == 0:
            self.mean, self.var = y, 0.0
        else:
            # Early on, average plainly (1/n) so the first readings don't get a tiny weight.
            a = max(self.alpha, 1.0 / (self.n + 1))
            diff = y - self.mean
            incr = a * diff
            self.mean += incr
            self.var = (1 - a) * (self.var + diff * incr)
        self.n += 1

    @property
    def std(self) -> float:
        return math.sqrt(max(self.var, 0.0))

    def __reduce__(self) -> tuple[type[Ewm], tuple[float, float, float, int]]:
        # A model holds about 1,500 of these (a cell per day type and slot, in every profile) and
        # is pickled at each checkpoint: the default pickling of a slotted class (a state dict
        # per object) was most of an energy checkpoint's 2 ms, and of its 3.4 ms reload. This
        # is 0.8 and 0.7 ms. Checkpoints pickled the old way still load (object's own
        # __setstate__ reads them).
        return (Ewm, (self.alpha, self.mean, self.var, self.n))


DAY_KINDS = (WORKDAY, SATURDAY, SUNDAY)
KIND_INDEX = {kind: i for i, kind in enumerate(DAY_KINDS)}


def slots_per_day(slot_minutes: int) -> int:
    return -(-24 * 60 // slot_minutes)


class EwmGrid:
    """The `Ewm` cells of a fixed grid (a day, or day type, by slot of the day) in flat arrays.

    A profile kept its cells in a dict of `Ewm` objects keyed by tuples: about 240 bytes a
    cell, and an energy meter's models hold about 1,500 cells (374 kB resident per meter after
    two weeks, measured by ``python -m bench.checkpoints``; 2,000 meters in memory were 750 MB).
    Here a cell is 24 bytes, packed in the order cells are first updated, behind an index of 2
    to 4 bytes per cell of the grid: a young profile holds only the cells it has seen (a
    worker taking 10,000 new meters at once grew by 382 MB with every cell allocated up front,
    by 94 MB with the dicts). The arithmetic is `Ewm.update`'s, so a profile learns exactly
    what it learnt with `Ewm` cells.
    """

    __slots__ = ("alpha", "at", "mean", "n", "var")

    def __init__(self, size: int, alpha: float) -> None:
        self.alpha = alpha
        # Position of each grid cell in the packed arrays; -1 until it is first updated.
        self.at = array("h" if size < 1 << 15 else "i", [-1]) * size
        self.mean = array("d")
        self.var = array("d")
        self.n = array("q")

    def count(self, i: int) -> int:
        """Values the cell has seen (0: never updated)."""
        p = self.at[i]
        return 0 if p < 0 else self.n[p]

    def value(self, i: int) -> float:
        """The cell's mean (0.0 before its first value)."""
        p = self.at[i]
        return 0.0 if p < 0 else self.mean[p]

    def std(self, i: int) -> float:
        p = self.at[i]
        return 0.0 if p < 0 else math.sqrt(max(self.var[p], 0.0))

    def update(self, i: int, y: float) -> None:
        p = self.at[i]
        if p < 0:
            self.at[i] = len(self.n)
            self.mean.append(y)
            self.var.append(0.0)
            self.n.append(1)
            return
        n = self.n[p]
        a = max(self.alpha, 1.0 / (n + 1))
        diff = y - self.mean[p]
        incr = a * diff
        self.mean[p] += incr
        self.var[p] = (1 - a) * (self.var[p] + diff * incr)
        self.n[p] = n + 1

    def load(self, cells: Mapping[int, Ewm]) -> None:
        """Cells of a checkpoint written before the grid (a dict of `Ewm`), by index."""
        for i, cell in cells.items():
            self.at[i] = len(self.n)
            self.mean.append(cell.mean)
            self.var.append(cell.var)
            self.n.append(cell.n)

    def _cells(self) -> list[tuple[int, float, float, int]]:
        return [(i, self.mean[p], self.var[p], self.n[p]) for i, p in enumerate(self.at) if p >= 0]

    def __eq__(self, other: object) -> bool:
        # The same cells with the same values, whatever order they were first updated in.
        if not isinstance(other, EwmGrid):
            return NotImplemented
        return (self.alpha, len(self.at), self._cells()) == (
            other.alpha,
            len(other.at),
            other._cells(),
        )

    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value
