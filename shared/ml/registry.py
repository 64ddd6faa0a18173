"""Models named in settings: a dotted path and its parameters, so a town can swap one in.

>>> spec = ModelSpec(path="river.anomaly.HalfSpaceTrees", params={"seed": 1, "n_trees": 5})
>>> model = spec.build()
>>> type(model).__name__, model.n_trees
('HalfSpaceTrees', 5)
>>> describe(model).startswith("river.anomaly.hst.HalfSpaceTrees/river-")
True
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
from functools import lru_cache
from importlib.metadata import version as _dist_version
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ModelSpec(BaseModel):
    """A model as a setting, e.g. ``{"path": "river.anomaly.HalfSpaceTrees", "params": {}}``.

    ``path`` names a class or a function returning the model; ``params`` are its keyword
    arguments (JSON values). With pydantic-settings it is read from one JSON environment
    variable, e.g. ``TOWNPULSE_ANOMALY_SCORER='{"path": "river.anomaly.HalfSpaceTrees"}'``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str = Field(pattern=r"^[A-Za-z_][\w.]*\.[A-Za-z_]\w*$", max_length=200)
    params: dict[str, Any] = Field(default_factory=dict)

    def target(self) -> Any:
        module, _, name = self.path.rpartition(".")
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"model {self.path!r} cannot be imported: {exc}") from exc

    def build(self, **context: Any) -> Any:
        """The model; `context` (e.g. the town's ``calendar``) is passed where it is accepted."""
        target = self.target()
        accepted = _parameters(target)
        extra = {k: v for k, v in context.items() if k in accepted and k not in self.params}
        try:
            return target(**self.params, **extra)
        except TypeError as exc:  # missing or unknown parameters: say which model
            raise ValueError(f"model {self.path!r} cannot be built: {exc}") from exc


@lru_cache(maxsize=64)
def _parameters(target: Any) -> frozenset[str]:
    # Read once per model class: a signature costs more than building the model (a new
    # device's first reading builds one; 2,000 new bins spent most of a second in it).
    return frozenset(inspect.signature(target).parameters)


def _name(model: Any) -> str:
    cls = type(model)
    version = getattr(model, "version", None)
    version = f"v{version}" if version is not None else f"river-{_dist_version('river')}"
    return f"{cls.__module__}.{cls.__qualname__}/{version}"


def describe(model: Any) -> str:
    """Class, version and parameters of a model, for checkpoints: another model, another name.

    A model's own ``version`` attribute counts when it has one, else River's version; the
    ``forecaster``, wrapped ``model`` and ``scorer`` inside it are named too; the parameters
    enter as a short hash of the repr (River estimators print their parameters, nested ones
    included).
    """
    digest = hashlib.sha256(repr(model).encode()).hexdigest()[:8]
    return "+".join(_names(model)) + f"#{digest}"


def _names(model: Any) -> list[str]:
    names = [_name(model)]
    for part in ("forecaster", "model", "scorer"):
        if (inner := getattr(model, part, None)) is not None:
            names.extend(_names(inner))
    return names
