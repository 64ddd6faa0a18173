"""The broker's configuration the stack writes, and compose's copy of it."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from townpulse.stack import DEPLOY, StackSettings
from townpulse.stack.mosquitto import render_config

PATHS = {
    name: Path(f"/x/{name}")
    for name in ("data_dir", "dynsec_plugin", "cafile", "certfile", "keyfile")
}
# Settings compose must share with the local broker (ports and paths differ by design).
SHARED = (
    "per_listener_settings",
    "tls_version",
    "allow_anonymous",
    "persistence",
    "autosave_on_changes",
    "autosave_interval",
    "max_queued_messages",
    "max_queued_bytes",
    "max_inflight_messages",
    "max_packet_size",
)


def _settings(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key in SHARED:
            out[key] = value
    return out


def test_by_default_the_broker_saves_after_every_change(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TOWNPULSE_MQTT_AUTOSAVE_CHANGES", raising=False)
    conf = _settings(render_config(StackSettings(), **PATHS))
    assert conf["autosave_on_changes"] == "true"
    assert conf["autosave_interval"] == "1"


def test_a_town_can_trade_crash_safety_for_throughput(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOWNPULSE_MQTT_AUTOSAVE_CHANGES", "100")
    assert _settings(render_config(StackSettings(), **PATHS))["autosave_interval"] == "100"


def test_saving_never_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOWNPULSE_MQTT_AUTOSAVE_CHANGES", "0")
    with pytest.raises(ValidationError):
        StackSettings()


def test_compose_broker_has_the_local_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TOWNPULSE_MQTT_AUTOSAVE_CHANGES", raising=False)
    local = _settings(render_config(StackSettings(), **PATHS))
    compose = _settings((DEPLOY / "mosquitto" / "docker.conf").read_text())
    assert set(local) == set(SHARED)
    assert compose == local
