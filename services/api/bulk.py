"""Bulk registration's input: a JSON list or a CSV file, read into rows checked one by one.

Pure functions (no I/O): a malformed body is one `BulkBodyError` (the request is refused), a bad
row is that row's error (the other rows go on).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from services.api.schemas import DeviceIn

CSV_COLUMNS = (
    *("id", "domain", "name", "lat", "lon", "metadata"),
    *("dev_eui", "external_id", "profile"),
)
# A header needs one column of each group: what names the device, and what gives its domain.
CSV_REQUIRED = (("id", "dev_eui", "external_id"), ("domain", "profile"))
# A device named by one of these in two rows of a request is registered once (the first row).
UNIQUE_FIELDS = ("id", "dev_eui", "external_id")


class BulkBodyError(ValueError):
    """The body as a whole cannot be read (the request is refused with this reason)."""


@dataclass(frozen=True)
class ParsedRow:
    """One input row: a device to register, or why it cannot be (its id if it had one)."""

    id: str | None
    device: DeviceIn | None = None
    error: str | None = None


def _reason(exc: ValidationError) -> str:
    """Pydantic's errors as one line: `domain: Input should be 'energy', ...`."""
    parts = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(p) for p in err["loc"])
        if err["type"] == "value_error" and not where:
            # The model's own checks name their field: `id: required, or a dev_eui ...`.
            parts.append(str(err["ctx"]["error"]))
        else:
            parts.append(f"{where or 'row'}: {err['msg']}")
    return "; ".join(parts)


def check_row(raw: Any) -> ParsedRow:
    """Validate one row exactly as POST /v1/devices validates its body."""
    raw_id = raw.get("id") if isinstance(raw, dict) else None
    row_id = raw_id if isinstance(raw_id, str) else None
    try:
        device = DeviceIn.model_validate(raw)
    except ValidationError as exc:
        return ParsedRow(id=row_id, error=_reason(exc))
    return ParsedRow(id=device.device_id, device=device)


def _check_count(n: int, max_rows: int) -> None:
    if n == 0:
        raise BulkBodyError("no rows")
    if n > max_rows:
        raise BulkBodyError(f"{n} rows: at most {max_rows} per request (send it in chunks)")


def parse_json(body: bytes, *, max_rows: int) -> list[ParsedRow]:
    """A JSON list of POST /v1/devices bodies.

    >>> [r.error or r.id for r in parse_json(b'[{"id": "a", "domain": "waste"}, 3]', max_rows=5)]
    ['a', 'row: Input should be a valid dictionary or instance of DeviceIn']
    """
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BulkBodyError(f"not JSON: {exc}") from exc
    if not isinstance(data, list):
        raise BulkBodyError("expected a JSON list of devices")
    _check_count(len(data), max_rows)
    return [check_row(item) for item in data]


def _csv_device(record: dict[str, str]) -> dict[str, Any] | str:
    """A CSV record as a POST /v1/devices body, or why it cannot be one.

    An empty cell is a value not given, except an empty id in a row with nothing else to name
    the device by: then the id's own check says what is wrong.
    """
    given = ("domain", "name", "dev_eui", "external_id", "profile")
    raw: dict[str, Any] = {k: record[k] for k in given if record.get(k)}
    if record.get("id") or not (record.get("dev_eui") or record.get("external_id")):
        raw["id"] = record.get("id", "")
    lat, lon = (record.get("lat") or "").strip(), (record.get("lon") or "").strip()
    if bool(lat) != bool(lon):
        return "location: give both lat and lon, or neither"
    if lat:
        raw["location"] = {"lat": lat, "lon": lon}
    if record.get("metadata"):
        try:
            raw["metadata"] = json.loads(record["metadata"])
        except ValueError:
            return 'metadata: not JSON (a JSON object, e.g. {"zone": "north"})'
    return raw


def parse_csv(body: bytes, *, max_rows: int) -> list[ParsedRow]:
    """A CSV file with a header row, columns in any order: id,domain,name,lat,lon,metadata,
    dev_eui,external_id,profile, of which id, dev_eui or external_id, and domain or profile.

    >>> rows = parse_csv(b"id,domain,lat,lon\\nb1,waste,48.1,\\nb2,waste,48.1,2.3\\n", max_rows=5)
    >>> [r.error or r.id for r in rows]
    ['location: give both lat and lon, or neither', 'b2']
    >>> [r.id for r in parse_csv(b"dev_eui,profile\\n24E124126B316584,em310\\n", max_rows=5)]
    ['eui-24e124126b316584']
    """
    try:
        text = body.decode("utf-8-sig")  # Excel writes a BOM
    except UnicodeDecodeError as exc:
        raise BulkBodyError("CSV is not UTF-8") from exc
    try:
        records = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise BulkBodyError(f"unreadable CSV: {exc}") from exc
    if not records:
        raise BulkBodyError("empty CSV: expected a header row id,domain,name,lat,lon")
    header = [h.strip().lower() for h in records[0]]
    missing = [group for group in CSV_REQUIRED if not set(group) & set(header)]
    unknown = [h for h in header if h not in CSV_COLUMNS]
    if missing or unknown or len(set(header)) != len(header):
        raise BulkBodyError(
            f"CSV header {','.join(header)!r}: expected columns {','.join(CSV_COLUMNS)} "
            "(id, dev_eui or external_id, and domain or profile required, each once)"
        )
    rows = [r for r in records[1:] if any(cell.strip() for cell in r)]
    _check_count(len(rows), max_rows)
    parsed = []
    for cells in rows:
        if len(cells) != len(header):
            parsed.append(
                ParsedRow(
                    id=_cell(header, cells, "id"),
                    error=f"{len(cells)} fields, the header has {len(header)}",
                )
            )
            continue
        record = dict(zip(header, (c.strip() for c in cells), strict=True))
        raw = _csv_device(record)
        parsed.append(
            ParsedRow(id=record.get("id") or None, error=raw)
            if isinstance(raw, str)
            else check_row(raw)
        )
    return parsed


def _cell(header: list[str], cells: list[str], column: str) -> str | None:
    """A column's cell in a row that may be short, None when absent or empty."""
    if column not in header or header.index(column) >= len(cells):
        return None
    return cells[header.index(column)].strip() or None


def mark_duplicates(rows: list[ParsedRow]) -> list[ParsedRow]:
    """A second row with an id, DevEUI or external id already seen in the request is an error
    (the first one counts).

    >>> [r.error for r in mark_duplicates([ParsedRow(id="a"), ParsedRow(id="a")])]
    [None, 'duplicate id in this request (first at row 0)']
    """
    first: dict[tuple[str, str], int] = {}
    out = []
    for i, row in enumerate(rows):
        if row.id is not None and row.error is None:
            names = [("id", row.id)]
            if row.device is not None:
                names += [
                    (f, v) for f in UNIQUE_FIELDS[1:] if (v := getattr(row.device, f)) is not None
                ]
            seen = next((n for n in names if n in first), None)
            if seen is not None:
                row = ParsedRow(
                    id=row.id,
                    error=f"duplicate {seen[0]} in this request (first at row {first[seen]})",
                )
            else:
                first |= dict.fromkeys(names, i)
        out.append(row)
    return out
