"""Reading the services' Prometheus expositions (their /metrics pages)."""

from __future__ import annotations


def metric_value(text: str, name: str, **labels: str) -> float:
    """One sample from a Prometheus exposition, labels in any order (0 if absent)."""
    want = {f'{k}="{v}"' for k, v in labels.items()}
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        series, _, value = line.rpartition(" ")
        rest = series[len(name) :]
        if rest.startswith("{") and rest.endswith("}"):
            got = set(rest[1:-1].split(",")) if rest != "{}" else set()
        elif rest == "":
            got = set()
        else:
            continue  # another metric whose name starts with this one
        if got == want:
            return float(value)
    return 0.0
