"""River's heavy package initialisers stay unrun while the domains' default models work, and
run, whole, as soon as anything asks for a name they define.

Each check runs in a fresh interpreter: the test session itself has imported all of River.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.unit

# What the deferral keeps out: SciPy's statistics, and the River packages that import them.
HEAVY_MODULES = ("scipy.stats", "river.tree", "river.proba", "river.metrics", "river.linear_model")


def _run(code: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_the_domains_default_models_learn_score_and_checkpoint_without_the_heavy_packages() -> None:
    result = _run(
        f"""
        import json, pickle, sys
        from datetime import UTC, datetime, timedelta
        import services.energy.app, services.traffic.app, services.waste.app
        from services.energy.domain.meter import EnergyProcessor
        from services.traffic.domain.counter import TrafficProcessor
        from services.waste.domain.bin import WasteProcessor
        from shared.schemas import Reading

        t0 = datetime(2026, 3, 2, tzinfo=UTC)
        def readings(metrics):
            return [
                Reading(ts=t0 + timedelta(minutes=15 * i), metric=m, value=float(v(i)))
                for i in range(200) for m, v in metrics.items()
            ]
        domains = {{
            "energy": (EnergyProcessor(), {{"energy_kwh": lambda i: 5 + i % 7}}),
            "traffic": (TrafficProcessor(), {{"vehicles": lambda i: 40 + i % 9,
                                              "speed_kmh": lambda i: 48}}),
            "waste": (WasteProcessor(), {{"fill_pct": lambda i: i % 100}}),
        }}
        rows = {{}}
        for name, (processor, metrics) in domains.items():
            state = processor.new_state("d-1")
            effects = processor.process(state, device_id="d-1", readings=readings(metrics))
            state = pickle.loads(pickle.dumps(state))
            processor.process(state, device_id="d-1", readings=readings(metrics))
            rows[name] = len(effects.rows)
        print(json.dumps({{
            "rows": rows,
            "loaded": [m for m in {HEAVY_MODULES!r} if m in sys.modules],
        }}))
        """
    )
    assert result["loaded"] == []
    assert all(n > 0 for n in result["rows"].values()), result  # type: ignore[union-attr]


def test_a_deferred_package_answers_as_if_imported_whole() -> None:
    # A HoltWinters pickled where River was imported whole, as an older checkpoint was.
    full = subprocess.run(
        [
            sys.executable,
            "-c",
            "import pickle, sys; from river import time_series; "
            "m = time_series.HoltWinters(alpha=0.4); [m.learn_one(float(v)) for v in range(9)]; "
            "sys.stdout.buffer.write(pickle.dumps(m))",
        ],
        capture_output=True,
        check=True,
        timeout=120,
    ).stdout
    result = _run(
        f"""
        import json, pickle, sys
        import shared.ml
        from river.time_series.base import Forecaster
        restored = pickle.loads({full!r})
        probed = hasattr(sys.modules["river.time_series"], "__wrapped__")  # as inspect does
        before = "river.time_series.snarimax" in sys.modules
        import river.time_series, river.preprocessing
        from river import preprocessing
        from river.time_series import SNARIMAX
        from shared.ml.registry import ModelSpec
        scaler = ModelSpec(path="river.preprocessing.StandardScaler").build()
        try:
            river.time_series.no_such_name
            missing = "found"
        except AttributeError as exc:
            missing = str(exc)
        print(json.dumps({{
            "restored": restored.forecast(horizon=2),
            "is_forecaster": isinstance(restored, Forecaster),
            "probed": probed,
            "snarimax_before": before,
            "snarimax": SNARIMAX.__name__,
            "scaler": type(scaler).__name__,
            "same_module": preprocessing is sys.modules["river.preprocessing"],
            "listed": "HoltWinters" in dir(river.time_series),
            "missing": missing,
        }}))
        """
    )
    # Unpickling needed only the submodule, and a probe for a dunder name runs nothing.
    assert result["snarimax_before"] is False and result["probed"] is False
    assert result["is_forecaster"] is True and len(result["restored"]) == 2  # type: ignore[arg-type]
    assert result["snarimax"] == "SNARIMAX" and result["scaler"] == "StandardScaler"
    assert result["same_module"] is True and result["listed"] is True
    assert "no attribute 'no_such_name'" in str(result["missing"])


def test_threads_asking_at_once_all_get_the_name() -> None:
    # The first runs the package's __init__ (half a second: SciPy); the others wait for it.
    result = _run(
        """
        import json, threading
        import shared.ml
        import river.preprocessing as pp
        barrier, got = threading.Barrier(4), []
        def ask():
            barrier.wait()
            try:
                got.append(pp.StandardScaler.__name__)
            except AttributeError as exc:
                got.append(str(exc))
        threads = [threading.Thread(target=ask) for _ in range(4)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        print(json.dumps({"got": got}))
        """
    )
    assert result["got"] == ["StandardScaler"] * 4
