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
    "ciphers",
    "ciphers_tls1.3",
    "retain_available",
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
    for name in (
        "TOWNPULSE_MQTT_AUTOSAVE_S",
        "TOWNPULSE_MQTT_AUTOSAVE_CHANGES",
        "TOWNPULSE_MQTT_PLAIN_BIND",
        "TOWNPULSE_MQTT_PLAIN_OFF_LOOPBACK",
    ):
        monkeypatch.delenv(name, raising=False)


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


def test_the_broker_refuses_retained_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    _clean_env(monkeypatch)
    assert _settings(render_config(StackSettings(), **PATHS))["retain_available"] == "false"


def test_tls_1_2_offers_only_forward_secret_aead_suites(monkeypatch: pytest.MonkeyPatch) -> None:
    _clean_env(monkeypatch)
    conf = _settings(render_config(StackSettings(), **PATHS))
    assert conf["tls_version"] == "tlsv1.2"
    for suite in conf["ciphers"].split(":"):
        assert suite.startswith("ECDHE-"), suite
        assert suite.endswith(("-GCM-SHA256", "-GCM-SHA384", "-CHACHA20-POLY1305")), suite
    assert conf["ciphers_tls1.3"].split(":") == [
        "TLS_AES_128_GCM_SHA256",
        "TLS_AES_256_GCM_SHA384",
        "TLS_CHACHA20_POLY1305_SHA256",
    ]


@pytest.mark.parametrize(
    "address",
    ["0.0.0.0", "192.168.1.10", "::", "mqtt.town.example"],  # noqa: S104 - refused, not bound
)
def test_plain_mqtt_off_loopback_is_refused(monkeypatch: pytest.MonkeyPatch, address: str) -> None:
    _clean_env(monkeypatch)
    monkeypatch.setenv("TOWNPULSE_MQTT_PLAIN_BIND", address)
    with pytest.raises(ValidationError, match="TOWNPULSE_MQTT_PLAIN_OFF_LOOPBACK"):
        StackSettings()


def test_plain_mqtt_off_loopback_when_the_town_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    _clean_env(monkeypatch)
    monkeypatch.setenv("TOWNPULSE_MQTT_PLAIN_BIND", "10.0.0.2")
    monkeypatch.setenv("TOWNPULSE_MQTT_PLAIN_OFF_LOOPBACK", "true")
    listeners = [
        line
        for line in render_config(StackSettings(), **PATHS).splitlines()
        if line.startswith("listener ")
    ]
    assert listeners[0].split()[2] == "10.0.0.2"


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "localhost", "127.0.0.53"])
def test_plain_mqtt_on_loopback_needs_nothing(
    monkeypatch: pytest.MonkeyPatch, address: str
) -> None:
    _clean_env(monkeypatch)
    monkeypatch.setenv("TOWNPULSE_MQTT_PLAIN_BIND", address)
    assert StackSettings().mqtt_plain_bind == address
