"""Models as settings: a town swaps in a River model by name; checkpoints know which model."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from services.energy.domain.meter import EnergyProcessor
from services.energy.settings import EnergySettings
from services.traffic.domain.counter import TrafficProcessor
from shared.ml.calendar import TownCalendar
from shared.ml.registry import ModelSpec
from shared.schemas import Reading

pytestmark = pytest.mark.unit

HST = '{"path": "river.anomaly.HalfSpaceTrees", "params": {"seed": 1, "n_trees": 5}}'


def test_scorer_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOWNPULSE_ANOMALY_SCORER", HST)
    spec = EnergySettings(dev_mode=True).anomaly_scorer
    assert spec == ModelSpec(path="river.anomaly.HalfSpaceTrees", params={"seed": 1, "n_trees": 5})


@pytest.mark.parametrize("path", ["os.system;x", "", "nodots"])
def test_bad_model_paths_are_refused(path: str) -> None:
    with pytest.raises(ValidationError):
        ModelSpec(path=path)


def test_unknown_model_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="cannot be imported"):
        ModelSpec(path="river.anomaly.NoSuchDetector").build()


@pytest.mark.parametrize("make", [EnergyProcessor, TrafficProcessor])
def test_model_version_names_the_model_and_its_parameters(make: type) -> None:
    default = make()
    hst = make(anomaly_scorer=ModelSpec(path="river.anomaly.HalfSpaceTrees"))
    hst5 = make(anomaly_scorer=ModelSpec.model_validate_json(HST))
    london = make(calendar=TownCalendar("Europe/London", "GB"))
    versions = {p.model_version for p in (default, hst, hst5, london)}
    assert len(versions) == 4  # each change discards the other's checkpoints
    assert "shared.ml.anomaly.ResidualDetector/v" in default.model_version
    assert "HalfSpaceTrees" in hst.model_version
    assert make().model_version == default.model_version  # and only a change does


def test_energy_runs_with_a_swapped_in_river_scorer() -> None:
    proc = EnergyProcessor(anomaly_scorer=ModelSpec.model_validate_json(HST))
    state = proc.new_state("m1")
    t0 = datetime(2026, 1, 5, tzinfo=UTC)
    readings = [
        Reading(ts=t0 + timedelta(minutes=15 * i), metric="energy_kwh", value=5.0)
        for i in range(400)
    ]
    effects = proc.process(state, device_id="m1", readings=readings)
    scores = [r.score for r in effects.rows if type(r).__name__ == "ScoreRow"]
    assert len(scores) == 400 and all(0.0 <= s <= 1.0 for s in scores)
    assert type(state.detector.scorer).__name__ == "HalfSpaceTrees"


def test_a_models_signature_is_read_once_per_class() -> None:
    from shared.ml import registry

    spec = ModelSpec(path="river.anomaly.HalfSpaceTrees", params={"seed": 1, "n_trees": 5})
    registry._parameters.cache_clear()
    models = [spec.build(calendar=TownCalendar()) for _ in range(3)]
    info = registry._parameters.cache_info()
    assert (info.misses, info.hits) == (1, 2)
    assert len({id(m) for m in models}) == 3  # still a fresh model each time
