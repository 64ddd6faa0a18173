"""Durations in time on devices that each report at their own pace: `shared.cadence`, under the
name the domain services import it by. It lives outside shared/runtime/ so that models
(shared/ml/anomaly.py's windows) use it without an import cycle between shared's packages.
"""

from shared.cadence import (
    DEFAULT_INTERVAL,
    GAPS,
    MAX_INTERVAL,
    MIN_INTERVAL,
    Cadence,
    readings_for,
    spoken,
    upgrade_timing,
)

__all__ = [
    "DEFAULT_INTERVAL",
    "GAPS",
    "MAX_INTERVAL",
    "MIN_INTERVAL",
    "Cadence",
    "readings_for",
    "spoken",
    "upgrade_timing",
]
