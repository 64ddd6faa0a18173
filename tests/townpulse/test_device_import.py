"""`townpulse devices import` against the running stack."""

from __future__ import annotations

import csv
import secrets
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg.types.json import Jsonb

from townpulse.stack import Stack

pytestmark = pytest.mark.integration


def _import(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "townpulse", "devices", "import", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def ids(api: httpx.Client) -> Iterator[list[str]]:
    tag = uuid.uuid4().hex[:8]
    made = [f"imp-{tag}-{i:02d}" for i in range(20)]
    yield made
    for device_id in made:
        api.delete(f"/v1/devices/{device_id}")


def test_import_in_chunks_writes_credentials_once_and_reruns_safely(
    tmp_path: Path, ids: list[str], api: httpx.Client
) -> None:
    source = tmp_path / "bins.csv"
    lines = ["id,domain,name,lat,lon"]
    lines += [f"{d},waste,Bin {i},45.9,6.1" for i, d in enumerate(ids)]
    lines[13] = f"{ids[12]},waste,Bin 12,95,6.1"  # data row 13: latitude out of range
    source.write_text("\n".join(lines) + "\n")
    out = tmp_path / "creds.csv"

    first = _import(str(source), "--out", str(out), "--chunk", "7")
    assert first.returncode == 1, first.stderr  # one row failed
    assert f"row 13 ({ids[12]}): location.lat" in first.stderr
    assert "19 created, 0 already registered, 1 errors" in first.stdout
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    with out.open() as f:
        creds = list(csv.DictReader(f))
    assert [c["id"] for c in creds] == [d for d in ids if d != ids[12]]
    assert all(c["password"] and c["username"] == c["id"] for c in creds)
    assert api.get(f"/v1/devices/{ids[19]}").json()["name"] == "Bin 19"
    assert api.get(f"/v1/devices/{ids[12]}").status_code == 404

    again = _import(str(source), "--out", str(out), "--chunk", "7")
    assert "0 created, 19 already registered, 1 errors" in again.stdout
    assert out.read_text().count("\n") == 20  # header + 19: nothing new, nothing lost


def test_import_refuses_a_file_the_api_cannot_read(tmp_path: Path) -> None:
    source = tmp_path / "bad.csv"
    source.write_text("identifier,kind\nx,waste\n")
    done = _import(str(source), "--out", str(tmp_path / "c.csv"))
    assert done.returncode == 1
    assert "HTTP 422" in done.stderr and "CSV header" in done.stderr


def test_lorawan_rows_need_no_credentials(tmp_path: Path, api: httpx.Client, stack: Stack) -> None:
    profile = f"imp-{uuid.uuid4().hex[:10]}"
    euis = [secrets.token_hex(8) for _ in range(3)]
    with psycopg.connect(stack.database_url(), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO device_profiles (name, domain, definition) VALUES (%s, 'waste', %s)",
            (
                profile,
                Jsonb(
                    {
                        "name": profile,
                        "domain": "waste",
                        "readings": [{"metric": "fill_pct", "field": "d"}],
                    }
                ),
            ),
        )
    try:
        source = tmp_path / "bins.csv"
        source.write_text("dev_eui,profile,name\n" + "".join(f"{e},{profile},Bin\n" for e in euis))
        out = tmp_path / "creds.csv"
        done = _import(str(source), "--out", str(out))
        assert done.returncode == 0, done.stderr
        assert "3 created, 0 already registered, 0 errors" in done.stdout
        assert "3 devices with a DevEUI need none" in done.stdout
        assert out.read_text().count("\n") == 1  # the header only: nothing secret to keep
        got = api.get(f"/v1/devices/eui-{euis[0]}").json()
        assert (got["dev_eui"], got["profile"], got["domain"]) == (euis[0], profile, "waste")
    finally:
        for eui in euis:
            api.delete(f"/v1/devices/eui-{eui}")
        with psycopg.connect(stack.database_url(), autocommit=True) as conn:
            conn.execute("DELETE FROM device_profiles WHERE name = %s", (profile,))
