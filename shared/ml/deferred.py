"""River's heavy package initialisers, run only when something asks for a name they define.

Importing ``river.time_series.base`` (the forecasters' base class) first runs
``river/time_series/__init__.py``, which imports SNARIMAX, its metrics and, through
``river.preprocessing`` -> ``river.feature_extraction`` -> ``river.tree`` -> ``river.proba``,
SciPy's statistics: 78 MB of a domain service's 160 MB of imports, for classes the default
models never use (River imports its submodules eagerly; a maintainer on the same cost:
https://github.com/online-ml/river/pull/966). A deferred package is in ``sys.modules`` with its
real ``__path__``, so its submodules import as usual (``river.time_series.base``,
``river.preprocessing.scale``, a checkpoint's ``river.time_series.holt_winters``); the first
look-up of a name the package itself defines (``river.preprocessing.StandardScaler``, a model
setting's dotted path) runs its ``__init__`` then, once, and answers as if it had always run.

>>> defer("river.time_series")
>>> from river.time_series.base import Forecaster
>>> from river import time_series
>>> time_series.SNARIMAX.__name__
'SNARIMAX'
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types
from typing import Any

# Packages whose initialisers import what the default models never use (measured with
# `python -X importtime` and the services' RSS; see docs/performance.md).
HEAVY = ("river.time_series", "river.preprocessing")


# One for all deferred packages: a package's __init__ may import another's names.
_running = threading.RLock()


class _DeferredPackage(types.ModuleType):
    # Only called for names the module does not have yet (a module's own attributes, its
    # __path__ and imported submodules among them, never reach it).
    def __getattr__(self, name: str) -> Any:
        if not name.startswith("__"):
            self._run()
            if name in self.__dict__:
                return self.__dict__[name]
        raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")

    def __dir__(self) -> list[str]:
        self._run()
        return list(self.__dict__)

    def _run(self) -> None:
        """Run the package's ``__init__`` once; another thread asking meanwhile waits for it."""
        state = self.__dict__
        with _running:
            # Marked before running: the __init__'s own imports look names up here (and get
            # AttributeError, then import the submodule, as for any package being imported).
            if state["_deferred_ran"]:
                return
            state["_deferred_ran"] = True
            try:
                state["__spec__"].loader.exec_module(self)
            except BaseException:
                state["_deferred_ran"] = False  # as a failed import: the next look-up retries
                raise


def defer(name: str) -> None:
    """Put package `name` in ``sys.modules`` without running its ``__init__`` yet.

    Nothing happens when it is already imported, or when it is not a package.
    """
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        return
    module = _DeferredPackage(name)
    module.__spec__ = spec
    module.__loader__ = spec.loader
    module.__file__ = spec.origin
    module.__path__ = list(spec.submodule_search_locations)
    module.__package__ = name
    module.__dict__["_deferred_ran"] = False
    sys.modules[name] = module
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(importlib.import_module(parent), child, module)
