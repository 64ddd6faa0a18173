"""Which broker the stack runs: the 2.1 that deploy/build-mosquitto.sh built, else the machine's."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from townpulse.stack import DEPLOY, StackError, StackSettings
from townpulse.stack.mosquitto import find_install


def _fake_prefix(root: Path, *, plugin: bool = True) -> Path:
    for rel in ("sbin/mosquitto", "bin/mosquitto_ctrl", "lib/mosquitto_dynamic_security.so"):
        if rel.startswith("lib/") and not plugin:
            continue
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).touch()
    return root


@pytest.mark.unit
def test_the_built_broker_comes_first(tmp_path: Path) -> None:
    prefix = _fake_prefix(tmp_path)
    install = find_install(StackSettings(mosquitto_prefix=prefix))
    assert install.broker == prefix / "sbin" / "mosquitto"
    assert install.ctrl == prefix / "bin" / "mosquitto_ctrl"
    assert install.dynsec_plugin == prefix / "lib" / "mosquitto_dynamic_security.so"


@pytest.mark.unit
def test_a_half_built_prefix_is_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    prefix = _fake_prefix(tmp_path, plugin=False)
    # Nothing on the machine either: a clear error, not a broker without its plugin.
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(
        "townpulse.stack.mosquitto.DYNSEC_PLUGIN_CANDIDATES", (tmp_path / "absent.so",)
    )
    with pytest.raises(StackError, match="make install"):
        find_install(StackSettings(mosquitto_prefix=prefix))


@pytest.mark.integration
def test_make_install_gives_the_stack_the_version_compose_pins() -> None:
    """The installed broker is the one deploy/build-mosquitto.sh builds (and compose pins)."""
    build = (DEPLOY / "build-mosquitto.sh").read_text()
    version = re.search(r"^version=([0-9.]+)$", build, re.MULTILINE)
    assert version
    assert find_install(StackSettings()).version() == version.group(1)
