"""`townpulse evaluate --record`: an evaluation run's figures reach the public register of the
running stack, as the run's own JSON report computed them."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

pytestmark = pytest.mark.integration

T0 = datetime(2026, 1, 5, tzinfo=UTC)


@pytest.fixture
def history(tmp_path: Path, stack_env: dict[str, str]) -> Iterator[Path]:
    """Three weeks of an hourly meter with a daily cycle; its name is the test's own."""
    path = tmp_path / f"meter-{uuid.uuid4().hex[:8]}.csv"
    lines = ["timestamp,value"]
    for i in range(24 * 21):
        value = 10.0 + 5 * math.sin(2 * math.pi * i / 24) + (i * 7919 % 13) / 10
        lines.append(f"{(T0 + timedelta(hours=i)).isoformat()},{value:.3f}")
    path.write_text("\n".join(lines) + "\n")
    yield path
    with psycopg.connect(stack_env["DATABASE_URL"], autocommit=True) as conn:
        conn.execute("DELETE FROM register_quality WHERE dataset = %s", (path.name,))


def _evaluate(stack_env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TOWNPULSE_RUN_DIR": stack_env["TOWNPULSE_RUN_DIR"]}
    return subprocess.run(
        [sys.executable, "-m", "townpulse", "evaluate", "--no-progress", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_a_recorded_run_shows_on_the_register(history: Path, stack_env: dict[str, str]) -> None:
    run = _evaluate(
        stack_env, "--domain", "energy", "--json", "--record", "energy.forecast", str(history)
    )
    assert run.returncode == 0, run.stderr
    report: dict[str, Any] = json.loads(run.stdout)
    one = report["forecast"]["1h"]
    strongest = one["strongest_baseline"]
    expected = one["metrics"]["model"]["mae"] / one["metrics"][strongest]["mae"]

    doc = httpx.get(f"{stack_env['API_URL']}/register/", params={"lang": "en"}, timeout=30)
    shown = {a["id"]: a for a in doc.json()["algorithms"]}["energy.forecast"]["quality"]
    assert shown["dataset"] == history.name
    assert shown["figures"]["forecast_error_ratio"] == pytest.approx(expected, abs=1e-3)
    assert (shown["figures"]["baseline"], shown["figures"]["horizon"]) == (strongest, "1h")
    assert "--record energy.forecast" in shown["command"]
    # The file by its name: no directory of the machine the run was on is published.
    assert shown["command"].endswith(f" {history.name}")
    assert str(history.parent) not in doc.text


def test_a_run_without_the_figures_of_the_algorithm_records_nothing(
    history: Path, stack_env: dict[str, str]
) -> None:
    # No label column: no recall, no false alerts, nothing to record for an anomaly detector.
    run = _evaluate(stack_env, "--domain", "energy", "--record", "waste.anomaly", str(history))
    assert run.returncode == 1
    assert "measured none of" in run.stderr
    # Refused before the run, which would have printed its report first.
    assert run.stdout == ""
    with psycopg.connect(stack_env["DATABASE_URL"]) as conn:
        cur = conn.execute(
            "SELECT count(*) FROM register_quality WHERE dataset = %s", (history.name,)
        )
        assert cur.fetchone() == (0,)
