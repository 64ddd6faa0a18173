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


def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TOWNPULSE_MQTT_AUTOSAVE_S", raising=False)
    monkeypatch.delenv("TOWNPULSE_MQTT_AUTOSAVE_CHANGES", raising=False)


def test_by_default_the_broker_saves_every_second(monkeypatch: pytest.MonkeyPatch) -> None:
    _clean_env(monkeypatch)
    conf = _settings(render_config(StackSettings(), **PATHS))
    assert conf["autosave_on_changes"] == "false"
    assert conf["autosave_interval"] == "1"


def test_a_town_can_save_after_every_change(monkeypatch: pytest.MonkeyPatch) -> None:
    _clean_env(monkeypatch)
    monkeypatch.setenv("TOWNPULSE_MQTT_AUTOSAVE_CHANGES", "1")
    conf = _settings(render_config(StackSettings(), **PATHS))
    assert (conf["autosave_on_changes"], conf["autosave_interval"]) == ("true", "1")


def test_a_town_can_save_less_often(monkeypatch: pytest.MonkeyPatch) -> None:
    _clean_env(monkeypatch)
    monkeypatch.setenv("TOWNPULSE_MQTT_AUTOSAVE_S", "30")
    conf = _settings(render_config(StackSettings(), **PATHS))
    assert (conf["autosave_on_changes"], conf["autosave_interval"]) == ("false", "30")


@pytest.mark.parametrize(
    ("name", "value"),
    [("TOWNPULSE_MQTT_AUTOSAVE_CHANGES", "0"), ("TOWNPULSE_MQTT_AUTOSAVE_S", "0")],
)
def test_never_saving_is_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    _clean_env(monkeypatch)
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        StackSettings()


def test_compose_broker_has_the_local_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    _clean_env(monkeypatch)
    local = _settings(render_config(StackSettings(), **PATHS))
    compose = _settings((DEPLOY / "mosquitto" / "docker.conf").read_text())
    assert set(local) == set(SHARED)
    assert compose == local
