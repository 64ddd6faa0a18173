"""Unit tests for `bench.lorawan`: what it sends is what ChirpStack would, and what it computes."""

from __future__ import annotations

import doctest
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bench import lorawan, report
from bench.codec import repository
from bench.lorawan import DATA, OBJECT, Em310, EventTemplate, event_dict, topic, uplink_event
from services.gateway.ingest import chirpstack
from services.gateway.ingest.codec import CodecSandbox, load_repository_codec
from services.gateway.ingest.rejection import Limits

pytestmark = pytest.mark.unit

EUI = "b0a1b2c300000007"
APP = "5fb11ce5-30db-485e-8da0-b3c26c5f5875"


def test_doctests() -> None:
    result = doctest.testmod(lorawan)
    assert result.attempted > 10 and result.failed == 0


@pytest.mark.parametrize("mode", [DATA, OBJECT])
def test_a_rendered_event_is_the_official_message_serialised(mode: str) -> None:
    ts, dedup = 1_796_000_000, str(uuid.uuid4())
    values = Em310.at(3, 41)
    rendered = EventTemplate(eui=EUI, application_id=APP).render(
        mode=mode, device=3, seq=41, ts=ts, dedup_id=dedup
    )
    official = uplink_event(
        eui=EUI,
        application_id=APP,
        f_cnt=41,
        at=datetime.fromtimestamp(ts, UTC),
        dedup_id=dedup,
        data=values.payload() if mode == DATA else None,
        decoded=values.decoded() if mode == OBJECT else None,
    )
    assert json.loads(rendered) == event_dict(official)


@pytest.mark.parametrize("mode", [DATA, OBJECT])
def test_the_gateway_reads_the_events_as_the_bench_means_them(mode: str) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    at = now - timedelta(days=6, hours=12)
    dedup = str(uuid.uuid4())
    body = EventTemplate(eui=EUI, application_id=APP).render(
        mode=mode, device=5, seq=9, ts=int(at.timestamp()), dedup_id=dedup
    )
    uplink = chirpstack.parse_uplink(body, received_at=now, limits=Limits(), topic=topic(APP, EUI))
    values = Em310.at(5, 9)
    assert (uplink.device_key, uplink.f_cnt, uplink.f_port, uplink.time) == (EUI, 9, 85, at)
    assert uplink.dedup_id == dedup and uplink.application == APP
    if mode == DATA:
        assert (uplink.payload, uplink.decoded) == (values.payload(), None)
    else:
        assert (uplink.payload, uplink.decoded) == (None, values.decoded())


@pytest.mark.parametrize(
    "values", [Em310.at(0, 0), Em310.at(17, 150), Em310(battery=100, distance=4500, tilted=True)]
)
def test_the_codec_decodes_the_bytes_to_the_object_the_server_sends(values: Em310) -> None:
    """Both ways give the profile the same fields: only who decodes differs."""
    codec = load_repository_codec(repository(), lorawan.CODEC_PATH)
    decoded = CodecSandbox(codec.script).decode(
        values.payload(), f_port=lorawan.F_PORT, recv_time=datetime.now(UTC)
    )
    assert decoded.data == values.decoded()


def test_devices_uplinks_go_up_and_stay_in_the_gateways_window() -> None:
    seqs: dict[int, list[int]] = {}
    for m in range(1000):
        device, seq = lorawan.seq_of(m, 7, 100)
        seqs.setdefault(device, []).append(seq)
    assert all(s == list(range(100, 100 + len(s))) for s in seqs.values())
    # The last uplink a device may send is still in the past.
    assert lorawan.MAX_SEQ * lorawan.STEP_S <= lorawan.START_AGO_S


def _phase(mode: str, gateway: float, platform: float, **extra: Any) -> dict[str, Any]:
    per = {"gateway": gateway, "platform": platform}
    return {
        "mode": mode,
        "sustained": True,
        "stored_per_s": 1000.0,
        "cpu_us_per_uplink": per,
        "cpu_us_per_uplink_gross": {k: v + 100 for k, v in per.items()},
        **extra,
    }


def test_compare_summary_takes_medians_per_way() -> None:
    phases = [
        _phase(DATA, 400, 1200),
        _phase(OBJECT, 380, 1150),
        _phase(OBJECT, 500, 1000),
        _phase(DATA, 420, 1300),
        _phase(DATA, 900, 3000),
        _phase(OBJECT, 390, 1100),
    ]
    out = lorawan.compare_summary(phases)
    assert out[DATA]["cpu_us_per_uplink"] == {"gateway": 420.0, "platform": 1300.0}
    assert out[OBJECT]["cpu_us_per_uplink"] == {"gateway": 390.0, "platform": 1100.0}
    assert out["decode_extra_cpu_pct"] == {"gateway": 7.7, "platform": 18.2}
    assert out["decode_extra_cpu_pct_gross"]["gateway"] == pytest.approx(
        100 * (520 / 490 - 1), 0.01
    )


def test_summary_judges_the_targets() -> None:
    out = {
        "compare": {"decode_extra_cpu_pct": {"gateway": 12.0, "platform": 4.0}},
        "ramp": {"max_sustained_per_s": 2000.0, "bound": {"bound": "gateway"}},
    }
    s = lorawan.summarise(out)
    assert s["meets"] == {
        "decoded_uplinks_per_s": False,
        "decode_extra_cpu_pct_platform": True,
        "decode_extra_cpu_pct_gateway": False,
    }
    assert s["bound_by"] == "gateway"


def _ramp_phase(name: str, ok: bool) -> dict[str, Any]:
    return {
        **_phase(DATA, 250.0, 700.0),
        "name": name,
        "sustained": ok,
        "achieved_per_s": 3000.0,
        "stored_per_s_second_half": 2950.0 if ok else 2400.0,
        "complete_after_window_s": 1.5 if ok else None,
    }


def test_the_report_shows_the_rates_the_extra_cpu_and_where_it_goes(tmp_path: Path) -> None:
    phases = [_phase(DATA, 420, 1300), _phase(OBJECT, 400, 1250)]
    out: dict[str, Any] = {
        "benchmark": "lorawan",
        "meta": {"command": "python -m bench.lorawan", "machine": {"cores": 2}, "commit": {}},
        "settings": {"devices": 500, "workers": 2, "grace": 10, "duration": 60.0},
        "codec": {"name": "milesight-iot-em310-udl", "version": 1, "profile": lorawan.PROFILE},
        "network_server_broker": {"mosquitto": "2.1.2", "max_inflight_messages": 1000},
        "compare": {"rate": 1000.0, **lorawan.compare_summary(phases)},
        "ramp": {
            "max_sustained_per_s": 2000.0,
            "first_failed_step": "ramp-step-3000",
            "stored_per_s_at_first_failed_step": 2400.0,
            "bound": {
                "bound": "machine CPU (all cores busy)",
                "step": "ramp-step-3000",
                "cores": 2,
                "machine_busy_cores": 1.97,
                "cpu_cores": {"gateway": 0.62, "postgres": 0.4, "waste": 0.3},
            },
        },
        "phases": [_ramp_phase("ramp-step-2000", True), _ramp_phase("ramp-step-3000", False)],
    }
    out["settings"]["compare_duration"] = 30.0
    result = {**lorawan.summarise(out), **out}
    results = tmp_path / "results"
    results.mkdir()
    (results / "lorawan.json").write_text(json.dumps(result))
    text = report.build(results, scoreboard=tmp_path / "none.md")
    assert (
        "| codec-decoded uplinks/s sustained for 60 s | 2000.0 | >= 3,000 | **not met** |" in text
    )
    assert "whole platform (at 1000/s) | +4.0% | <= 10% | met |" in text
    assert "the gateway alone | +5.0% | <= 10% | met |" in text
    assert "| TownPulse decodes `data` | 1000.0 | 420 (520) | 1300 (1400) | yes |" in text
    assert "| ramp-step-3000 | 3000.0 | 2400.0 |  | 250 | 700 |" in text
    assert "gateway 0.62, postgres 0.4, waste 0.3. Bound: machine CPU (all cores busy)." in text
