"""Reading the NAB corpus as stored in the shared data folder (never copied into the repo).

Layout (NAB's own): ``data/<category>/<name>.csv`` with ``timestamp,value``,
``labels/combined_windows.json`` and ``config/profiles.json``.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from shared.ml.nab_scoring import CostMatrix, FileLabels, load_profiles, window_rows


@dataclass(frozen=True, slots=True)
class Series:
    """One data file: its corpus name (``<category>/<name>.csv``) and raw rows."""

    name: str
    timestamps: list[str]
    values: list[str]

    @property
    def category(self) -> str:
        return self.name.split("/", 1)[0]

    @property
    def file_name(self) -> str:
        return self.name.split("/", 1)[1]


def parse_timestamp(text: str) -> datetime:
    """NAB's timestamps (``2014-04-10 07:15:00``, windows add ``.000000``); no zone is given."""
    return datetime.fromisoformat(text.strip())


def read_series(data_root: Path, name: str) -> Series:
    with (data_root / name).open(newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        if header[:2] != ["timestamp", "value"]:
            raise ValueError(f"{name}: unexpected header {header}")
        rows = [r for r in reader if r]
    return Series(name=name, timestamps=[r[0] for r in rows], values=[r[1] for r in rows])


@dataclass(frozen=True, slots=True)
class Corpus:
    root: Path
    windows: dict[str, list[tuple[datetime, datetime]]]
    profiles: dict[str, CostMatrix]

    @property
    def names(self) -> list[str]:
        return sorted(self.windows)

    def series(self, name: str) -> Series:
        return read_series(self.root / "data", name)

    def labels(self, series: Series) -> FileLabels:
        stamps = [parse_timestamp(t) for t in series.timestamps]
        return FileLabels(
            name=series.name,
            n_rows=len(stamps),
            windows=window_rows(stamps, self.windows[series.name]),
        )


def load_corpus(root: Path) -> Corpus:
    """The corpus under ``root`` (e.g. ``../shared/data/nab``)."""
    raw = json.loads((root / "labels" / "combined_windows.json").read_text())
    windows = {
        name: [(parse_timestamp(a), parse_timestamp(b)) for a, b in limits]
        for name, limits in raw.items()
    }
    return Corpus(
        root=root,
        windows=windows,
        profiles=load_profiles(root / "config" / "profiles.json"),
    )
