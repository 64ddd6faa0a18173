"""Loaders for the real histories in the shared data folder, as regular hourly grids of `Step`s.

- Energy: Cambridge University Estates, ``energy/cambridge_estates/electricity/
  UCam_Building_<id>/<year>.csv`` (``datetime,equipment load [kWh]``, hourly, UTC). The authors
  set missing readings to 0, so an exact 0.0 is a missing value here. Feature:
  ``temperature_c`` from the Bedford weather station (``weather_bedford/<year>.csv``), taken at
  the target hour -- i.e. we assume a perfect temperature forecast, which a real deployment
  would replace with a weather service's forecast.
- Traffic: Metro Interstate Traffic Volume (I-94, ATR 301), hourly, local US Central time with
  DST. Hours repeated for several weather conditions are kept once; missing hours stay missing
  on the grid. Feature: ``temperature_c`` (the file's kelvins; its 0 K rows are bad values).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from shared.ml.online import Features, Step

HOUR = timedelta(hours=1)
ENERGY_DIR = Path("energy") / "cambridge_estates"
TRAFFIC_FILE = Path("traffic") / "metro_interstate_i94" / "Metro_Interstate_Traffic_Volume.csv"
TRAFFIC_TZ = ZoneInfo("America/Chicago")


def grid(
    values: dict[datetime, float],
    *,
    step: timedelta = HOUR,
    features: dict[datetime, Features] | None = None,
    tz: ZoneInfo | None = None,
) -> list[Step]:
    """Regular steps from the first to the last timestamp (aware); absent ones are missing.

    >>> t0 = datetime(2024, 1, 1, tzinfo=UTC)
    >>> [s.value for s in grid({t0: 1.0, t0 + 2 * HOUR: 3.0})]
    [1.0, None, 3.0]
    """
    if not values:
        return []
    feats = features or {}
    t, end = min(values), max(values)
    t, end = t.astimezone(UTC), end.astimezone(UTC)
    out = []
    while t <= end:
        ts = t.astimezone(tz) if tz is not None else t
        out.append(Step(ts, values.get(t), feats.get(t, {})))
        t += step
    return out


def energy_buildings(data_root: Path) -> list[str]:
    """Building folder names, e.g. ``UCam_Building_b0``, in numeric order."""
    folder = data_root / ENERGY_DIR / "electricity"
    names = [p.name for p in folder.iterdir() if p.is_dir()]
    return sorted(names, key=lambda n: (len(n), n))


def _read_hourly_utc(paths: Iterable[Path], column: int) -> dict[datetime, str]:
    out: dict[datetime, str] = {}
    for path in sorted(paths):
        with path.open(newline="") as fh:
            reader = csv.reader(fh)
            next(reader)
            for row in reader:
                if row:
                    out[datetime.fromisoformat(row[0]).replace(tzinfo=UTC)] = row[column]
    return out


def load_weather(data_root: Path) -> dict[datetime, Features]:
    raw = _read_hourly_utc((data_root / ENERGY_DIR / "weather_bedford").glob("*.csv"), 1)
    return {ts: {"temperature_c": float(v)} for ts, v in raw.items() if v != ""}


def load_energy(
    data_root: Path, building: str, *, weather: dict[datetime, Features] | None = None
) -> list[Step]:
    """One building's hourly kWh (0.0 = missing), with the temperature at each hour."""
    folder = data_root / ENERGY_DIR / "electricity" / building
    raw = _read_hourly_utc(folder.glob("*.csv"), 1)
    values = {ts: float(v) for ts, v in raw.items() if v != "" and float(v) != 0.0}
    if weather is None:
        weather = load_weather(data_root)
    return grid(values, features=weather)


def load_traffic(data_root: Path) -> list[Step]:
    """Hourly westbound I-94 volumes on a UTC grid, timestamps given in US Central time."""
    values: dict[datetime, float] = {}
    features: dict[datetime, Features] = {}
    with (data_root / TRAFFIC_FILE).open(newline="") as fh:
        for row in csv.DictReader(fh):
            local = datetime.fromisoformat(row["date_time"]).replace(tzinfo=TRAFFIC_TZ)
            ts = local.astimezone(UTC)
            if ts in values:  # same hour repeated for another weather condition
                continue
            values[ts] = float(row["traffic_volume"])
            kelvin = float(row["temp"])
            if kelvin > 0:
                features[ts] = {"temperature_c": round(kelvin - 273.15, 2)}
    return grid(values, features=features, tz=TRAFFIC_TZ)
