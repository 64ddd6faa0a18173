"""Unit tests for `bench.report`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bench import report
from bench.common import REPO, RESULTS, data_dir, file_commit

pytestmark = pytest.mark.unit


META = {
    "command": "python -m bench.nab.run",
    "date": "2026-01-01T00:00:00+00:00",
    "machine": {"cores": 2, "memory_gb": 8.0, "cpu": "Test CPU"},
    "commit": {"sha": "0123456789abcdef", "dirty": False},
}


def test_report_puts_our_nab_row_into_the_scoreboard(tmp_path: Path) -> None:
    board = tmp_path / "SCOREBOARD.md"
    board.write_text(
        "## Main scoreboard (NAB v1.0)\n\n| Detector | Standard | Reward Low FP | Reward Low FN |\n"
        "|---|---|---|---|\n| Perfect | 100.0 | 100.0 | 100.0 |\n"
        "| Numenta HTM | 70.5-69.7 | 62.6 | 75.2 |\n| Null | 0.0 | 0.0 | 0.0 |\n\n"
        "## Additional HTM variants\n\n| Detector | Standard | Reward Low FP | Reward Low FN |\n"
        "|---|---|---|---|\n| Other | 1 | 2 | 3 |\n"
    )
    results = tmp_path / "results"
    results.mkdir()
    nab = {
        "meta": META,
        "benchmark": "nab",
        "detector": "townpulse",
        "standard": 50.0,
        "reward_low_FP_rate": 40.0,
        "reward_low_FN_rate": 60.0,
        "threshold": {"standard": 0.9},
    }
    (results / "nab.json").write_text(json.dumps(nab))
    (results / "throughput.json").write_text(json.dumps({"meta": META, "events_per_s": 1234}))
    text = report.build(results, scoreboard=board)
    lines = text.splitlines()
    ours = next(i for i, line in enumerate(lines) if "this run" in line)
    assert "Numenta HTM" in lines[ours - 1] and "Null" in lines[ours + 1]
    assert "Other" not in text
    assert "`python -m bench.nab.run`" in text and "2 cores, 8.0 GB, Test CPU" in text
    assert "`0123456789ab`" in text
    assert "| events_per_s | 1234 |" in text


def test_registration_section_gives_each_step_and_the_verdict(tmp_path: Path) -> None:
    step = {"seconds": 10.0, "dynsec_file_kb": 1.0}
    result = {
        "meta": META,
        "benchmark": "registration",
        "chunk": 500,
        "broker_clients_at_start": 2,
        "broker_clients_at_end": 10_102,
        "bulk_total": {"devices": 10_000, "seconds": 900.0, "devices_per_s": 11.1},
        "bulk_steps": [
            {**step, "from": 0, "to": 5000, "devices_per_s": 250.0},
            {**step, "from": 5000, "to": 10_000, "devices_per_s": 5.5},
        ],
        "one_by_one_start": {"devices": 50, "devices_per_s": 12.0},
        "one_by_one_end": {"devices": 50, "devices_per_s": 2.0},
    }
    (tmp_path / "registration.json").write_text(json.dumps(result))
    text = report.build(tmp_path, scoreboard=tmp_path / "none.md")
    assert "| 5000-10000 | 10.0 | 5.5 | 1.0 |" in text
    assert "5.5 devices/s over the last 5000 devices, **not met**" in text
    # Results from before the version was recorded ran on Debian 12's broker.
    assert "## Device registration on Mosquitto 2.0.11:" in text


def test_registration_section_gives_the_broker_and_its_longest_pause(tmp_path: Path) -> None:
    step = {"seconds": 2.0, "dynsec_file_kb": 5000.0, "puback_max_ms": 95.5}
    result = {
        "meta": META,
        "benchmark": "registration",
        "chunk": 500,
        "broker_version": "2.1.2",
        "broker_clients_at_start": 2,
        "broker_clients_at_end": 10_102,
        "bulk_total": {"devices": 10_000, "seconds": 25.0, "devices_per_s": 400.0},
        "bulk_steps": [{**step, "from": 9000, "to": 10_000, "devices_per_s": 335.3}],
        "one_by_one_start": {"devices": 50, "devices_per_s": 12.0},
        "one_by_one_end": {"devices": 50, "devices_per_s": 6.0},
        "broker_puback_during_bulk": {
            "publishes": 200,
            "every_s": 0.1,
            "p50_ms": 1.2,
            "p95_ms": 40.0,
            "p99_ms": 80.0,
            "max_ms": 95.5,
        },
    }
    (tmp_path / "registration.json").write_text(json.dumps(result))
    text = report.build(tmp_path, scoreboard=tmp_path / "none.md")
    assert "## Device registration on Mosquitto 2.1.2:" in text
    assert "335.3 devices/s over the last 1000 devices, **met**" in text
    assert "longest **95.5 ms**" in text
    assert "| 9000-10000 | 2.0 | 335.3 | 5000.0 | 95.5 |" in text


def test_ten_thousand_devices_section_gives_memory_per_device_and_verdicts(tmp_path: Path) -> None:
    from bench.e2e import per_device_kb

    before = {"energy": 150.0, "gateway": 80.0, "kafka": 240.0}
    after = {"energy": 170.0, "gateway": 100.0, "kafka": 260.0}
    out = {
        "registration": {"devices": 10_240, "seconds": 1024.0},
        "memory_before_readings_mb": before,
        "memory_after_readings_mb": after,
    }
    # Kafka is not a Python service: left out; 20 MB over 10,240 devices is 2 kB each.
    assert per_device_kb(out) == {"energy": 2.0, "gateway": 2.0}
    phase = {
        "offered_msgs_per_s": 1000,
        "window_s": 60.0,
        "sustained": True,
        "latency": {
            "publish_to_stored": {"p50_ms": 200, "p99_ms": 900},
            "publish_to_scored_energy_scores": {"p50_ms": 300, "p99_ms": 1500},
        },
    }
    result = {
        **out,
        "meta": META,
        "devices": 10_240,
        "connections": {"devices": 10_240, "seconds": 30.0},
        "latency_phase": phase,
        "rss_mb": {"energy": 180.0, "gateway": 110.0, "kafka": 300.0},
        "python_services_rss_mb_after_readings": 270.0,
        "registration_devices_per_s": 10.0,
        "memory_per_device_kb": per_device_kb(out),
        "targets": {"python_services_rss_mb_max_at_10000_devices": 1536},
    }
    (tmp_path / "e2e_10k.json").write_text(json.dumps(result))
    text = report.build(tmp_path, scoreboard=tmp_path / "none.md")
    assert "| registration, devices/s (bulk, 0 to 10,000) | 10.0 | >= 200 | **not met** |" in text
    assert (
        "| Python services' RSS, MB, after readings (peak during the run) | 270.0 (290.0) |" in text
    )
    assert "| energy | 150.0 | 170.0 | 2.0 | 2048 | 10.0 |" in text


@pytest.mark.parametrize(("unread", "says"), [(17_107, "read one per save"), (0, "None is left")])
def test_autosave_section_says_what_its_own_run_showed(
    tmp_path: Path, unread: int, says: str
) -> None:
    result = {
        "meta": META,
        "benchmark": "mosquitto_autosave",
        "broker_version": "2.1.2",
        "messages": 20_000,
        "ack_messages": 20_000,
        "rows": [{"policy": "every change", "gateway_connected": 8626, "gateway_away": 6176}],
        "unread_pubacks": [{"policy": "every change", "devices": 200, "unread_pubacks": unread}],
    }
    (tmp_path / "mosquitto_autosave.json").write_text(json.dumps(result))
    text = report.build(tmp_path, scoreboard=tmp_path / "none.md")
    assert "## Mosquitto 2.1.2: what saving after every change costs" in text
    assert says in text


def test_latency_only_section_splits_the_devices_first_seconds_from_the_rest() -> None:
    from bench.e2e import _series

    # 100 readings a second for 10 s: the first second slow (new devices), then steady.
    timed = [(t / 100, 800.0 if t < 100 else 100.0 + t % 7) for t in range(1000)]
    series = _series(timed)
    assert series["first"]["n"] == 500 and series["after"]["n"] == 500
    assert series["first"]["p99_ms"] == 800.0 and series["after"]["p99_ms"] <= 106.0
    assert [s["p50_ms"] for s in series["over_time"][:2]] == [800.0, 103.0]
    name = next(iter(report.LATENCY_ONLY))
    result = {
        "meta": META,
        "devices": 2000,
        "latency_phase": {
            "latency": {
                k: series
                for k in (
                    "publish_to_gateway_receipt",
                    "publish_to_stored",
                    "publish_to_scored_energy_scores",
                )
            }
        },
    }
    text = "\n".join(report.latency_only_section(name, result))
    assert "split at 5 s" in text
    first, after = series["first"], series["after"]
    row = (
        f"| publish -> stored | {first['p50_ms']} / 800.0 | {after['p50_ms']} / {after['p99_ms']} |"
    )
    assert row in text


@pytest.mark.parametrize(
    ("install", "says"),
    [
        ({"python": "/srv/tp/bin/python3", "dev_extras": False}, "from a production install"),
        ({"python": "/repo/.venv/bin/python", "dev_extras": True}, "from the development install"),
        (None, "not recorded then"),
    ],
)
def test_footprint_section_says_which_install_the_services_ran_from(
    tmp_path: Path, install: dict[str, object] | None, says: str
) -> None:
    result: dict[str, object] = {
        "meta": META,
        "benchmark": "footprint",
        "layout": "separate",
        "devices": 215,
        "settle_s": 420.0,
        "window_s": 600.0,
        "messages_per_s": 0.36,
        "processes": {"kafka": {"rss_mb_mean": 225.0, "rss_mb_peak": 231.0, "cpu_cores": 0.03}},
        "platform_rss_mb_mean": 1334.8,
        "python_rss_mb_mean": 919.6,
        "platform_cpu_cores": 0.083,
        "targets": {"platform_rss_mb_max": 1200},
    }
    if install is not None:
        result["install"] = install
    (tmp_path / "footprint.json").write_text(json.dumps(result))
    text = report.build(tmp_path, scoreboard=tmp_path / "none.md")
    assert says in text
    assert "**1334.8 MB** mean (target <= 1200 MB: not met)" in text


def test_superseded_runs_go_to_the_history_page_and_todays_are_indexed(tmp_path: Path) -> None:
    results = tmp_path / "results"
    (results / report.HISTORY).mkdir(parents=True)
    later = {**META, "date": "2026-02-02T00:00:00+00:00", "commit": {"sha": "fedcba9876543210"}}
    (results / "throughput.json").write_text(json.dumps({"meta": later, "events_per_s": 2000}))
    (results / report.HISTORY / "throughput_before.json").write_text(
        json.dumps({"meta": META, "events_per_s": 1000})
    )
    today = tmp_path / "BENCHMARKS.md"
    history = tmp_path / "performance-history.md"
    data = tmp_path / "data"
    (data / "nab").mkdir(parents=True)
    report.main(
        [
            "--results-dir", str(results),
            "--output", str(today),
            "--history-output", str(history),
            "--data-dir", str(data),
        ]
    )  # fmt: skip
    current, old = today.read_text(), history.read_text()
    assert "| events_per_s | 2000 |" in current and "1000" not in current
    assert "| events_per_s | 1000 |" in old and "2000" not in old
    # The index links each of today's sections with its date and commit.
    row = "| [throughput](#throughput) | see below | 2026-02-02 00:00 | `fedcba987654` |"
    assert row in current
    assert "## At a glance" not in old


def test_report_generation_section_gives_times_size_and_rows(tmp_path: Path) -> None:
    result = {
        "meta": META,
        "benchmark": "report_generation",
        "history_days_in_database": 24.5,
        "period": {"days": 30, "start": "2026-11-07", "end": "2026-12-07"},
        "runs": 3,
        "queries_s_median": 1.25,
        "render_s_median": 6.5,
        "total_s_median": 7.75,
        "pdf_bytes": 71_098,
        "pdf_pages": 7,
        "rows_in_period": {"readings": 12_345},
    }
    (tmp_path / "report_generation.json").write_text(json.dumps(result))
    text = report.build(tmp_path, scoreboard=tmp_path / "none.md")
    assert "## Monthly report: time to make it and its size" in text
    assert "| total (s) | 7.75 |" in text and "| PDF size (kB) | 71.1 |" in text
    assert "with 24.5 days of the simulated town's history" in text
    assert "| readings | 12345 |" in text


def _from_markers(text: str) -> list[str]:
    return re.findall(r"<!-- from (\S+) -->", text)


def test_every_result_file_appears_exactly_once_with_a_headline_date_and_commit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The repository's own results: each current one once in BENCHMARKS.md (a section and a
    row of the index with its key figure), each superseded one once in the history page."""
    monkeypatch.setattr(report, "_draw_curve", lambda *a, **k: None)  # no PNG written
    current = sorted(RESULTS.glob("*.json"))
    superseded = sorted((RESULTS / report.HISTORY).glob("*.json"))
    assert current and superseded
    board = data_dir() / "nab" / "SCOREBOARD.md"
    today = report.build(RESULTS, scoreboard=board)
    old = report.build(RESULTS / report.HISTORY, scoreboard=board, index=False)

    def rel(path: Path) -> str:
        return str(path.relative_to(REPO))

    assert sorted(_from_markers(today)) == sorted(rel(p) for p in current)
    assert sorted(_from_markers(old)) == sorted(rel(p) for p in superseded)
    assert not {p.stem for p in current} & {p.stem for p in superseded}
    index = today.split("## At a glance", 1)[1].split("\n<!-- from", 1)[0]
    rows = [line for line in index.splitlines() if line.startswith("| [")]
    assert len(rows) == len(current)
    for path in current:
        r = json.loads(path.read_text())
        kind = r.get("benchmark", path.stem)
        figure = report.headline(kind, r)
        assert figure != report.NO_HEADLINE, path  # a headline function that reads its layout
        date, commit, _ = report.run_stamp(path, r)
        assert date != "?" and commit != "unknown", path
        stamp = f"| {figure} | {date[:16].replace('T', ' ')}"
        assert any(stamp in row and f"`{commit}`" in row for row in rows), path


def test_a_result_without_a_date_or_commit_takes_its_files_last_commit(tmp_path: Path) -> None:
    # A file git knows: this test module, whose last commit is what git log says.
    logged = file_commit(Path(__file__))
    assert logged is not None
    date, commit, how = report.run_stamp(Path(__file__), {"events_per_s": 1})
    assert (date, commit, how) == (logged["date"], logged["sha"][:12], "git")
    # The run's own record wins, top level (the oldest layout) or in `meta`.
    old = {"date": "2026-01-01T00:00:00+00:00", "commit": {"sha": "ab" * 20, "dirty": True}}
    assert report.run_stamp(tmp_path / "x.json", old) == (
        old["date"],
        "abababababab (dirty)",
        "run",
    )
    assert report.run_stamp(tmp_path / "x.json", {"meta": META})[1] == "0123456789ab"


def test_a_headline_missing_its_fields_falls_back_instead_of_failing_the_report() -> None:
    assert report.headline("chaos", {"lost_acked": 0}) == report.NO_HEADLINE
    assert report.headline("no_such_benchmark", {}) == report.NO_HEADLINE
    assert report.headline("alerts_fanout", {"deliveries_per_second": 139.1}) == (
        "139.1 webhook deliveries/s"
    )


def _energy_result() -> dict[str, object]:
    def horizon(baseline: str, ratios: dict[str, float]) -> dict[str, object]:
        metric = {"mean": 10.0, "cv_rmse": 0.1}
        return {
            "metrics": {"model": metric},
            f"mae_ratio_{baseline}": ratios["model"],
            "variants": {
                v: {f"mae_ratio_{baseline}": r, f"cv_rmse_ratio_{baseline}": r}
                for v, r in ratios.items()
                if v != "model"
            },
        }

    ratios = {
        "model": 0.75,
        "without_temperature": 0.76,
        "oracle_temperature": 0.7,
        "calendar_blend": 0.79,
    }

    def summary(baseline: str) -> dict[str, object]:
        target = {"baseline": baseline, "ratio": 0.8, "mean_mae_ratio": 0.75}
        target |= {"mean_cv_rmse_ratio": 0.74, "buildings_within": 1, "buildings_mae_within": 1}
        variants = {
            v: {
                "mean_mae_ratio": r,
                "mean_cv_rmse_ratio": r,
                "buildings_within": 1,
                "buildings_mae_within": 1,
            }
            for v, r in ratios.items()
            if v != "model"
        }
        return {"buildings": 1, "target": target, "variants": variants}

    return {
        "summary": {"24h": summary("previous_week")},
        "per_building": {
            "b1": {"24h": horizon("previous_week", ratios), "scored_from": "2019-01-01T00:00"}
        },
    }


def test_energy_section_shows_honest_oracle_and_previous_model_runs() -> None:
    lines = report._energy_variants(_energy_result())
    text = "\n".join(lines)
    assert "**oracle**" in text
    honest = report.ENERGY_VARIANT_LABELS["model"]
    assert f"| {honest} | 0.75 / 0.74 | 1/1, 1/1 |" in text
    assert "| b1 | 0.75 | 0.76 | 0.7 | 0.79 |" in text
    assert report._energy_scoring(_energy_result()).endswith("scored from 2019-01-01. ")
