"""`townpulse devices import`: a CSV file sent in chunks to POST /v1/devices/bulk.

The credentials the API returns are shown only once: they go to a file made with mode 0600,
appended to on each run, so a re-run (which only finds `exists` for what is done) loses nothing.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

CREDENTIAL_COLUMNS = ("id", "username", "password", "topic", "host", "port", "tls_port", "qos")


class ImportFailed(RuntimeError):
    """The API refused a whole chunk (not one row): nothing after it was sent."""


@dataclass
class ImportSummary:
    created: int = 0
    exists: int = 0
    errors: list[str] = field(default_factory=list)
    # Created without MQTT credentials: devices with a DevEUI, heard through their network
    # server.
    without_credentials: int = 0


def read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    """The header and the non-empty data rows (the API checks the columns and each row)."""
    with path.open(newline="", encoding="utf-8-sig") as f:
        records = list(csv.reader(f))
    if not records:
        raise ValueError(
            f"{path} is empty: expected a header row id,domain,name,lat,lon (or dev_eui,profile)"
        )
    return records[0], [r for r in records[1:] if any(cell.strip() for cell in r)]


def _as_csv(header: Sequence[str], rows: Sequence[Sequence[str]]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue().encode()


def open_credentials(path: Path) -> io.TextIOWrapper:
    """Append to `path`, made with mode 0600 (and put back to 0600 if it was wider)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.fchmod(fd, 0o600)
    f = open(fd, "a", newline="", encoding="utf-8")  # noqa: SIM115 -- the caller closes it
    if f.tell() == 0:
        csv.writer(f).writerow(CREDENTIAL_COLUMNS)
    return f


def import_rows(
    api: httpx.Client,
    *,
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    out: Path,
    chunk: int,
) -> ImportSummary:
    """Send `rows` `chunk` at a time; each created device's credentials are written at once."""
    summary = ImportSummary()
    progress = Progress(
        TextColumn("registering"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with open_credentials(out) as creds, progress:
        writer = csv.writer(creds)
        task = progress.add_task("devices", total=len(rows))
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            r = api.post(
                "/v1/devices/bulk",
                content=_as_csv(header, part),
                headers={"Content-Type": "text/csv"},
            )
            if r.status_code != 200:
                raise ImportFailed(
                    f"rows {start + 1}-{start + len(part)}: HTTP {r.status_code}: {r.text}"
                )
            for row in r.json()["rows"]:
                number = start + row["row"] + 1  # data rows from 1, blank lines skipped
                if row["status"] == "created":
                    m = row["mqtt"]
                    if m is None:
                        summary.without_credentials += 1
                    else:
                        writer.writerow([row["id"], *(m[c] for c in CREDENTIAL_COLUMNS[1:])])
                    summary.created += 1
                elif row["status"] == "exists":
                    summary.exists += 1
                else:
                    summary.errors.append(f"row {number} ({row['id'] or '?'}): {row['error']}")
            creds.flush()
            progress.advance(task, len(part))
    return summary
