"""The `townpulse` CLI: against the running stack (integration), and its requests to the
operator API checked against a fake API (unit)."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.types.json import Jsonb
from typer.testing import CliRunner

from townpulse import cli as cli_module
from townpulse.stack import Stack


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "townpulse", *args], capture_output=True, text=True, timeout=120
    )


@pytest.mark.integration
def test_devices_add_list_remove() -> None:
    device_id = f"cli-{uuid.uuid4().hex[:8]}"
    added = _cli("devices", "add", device_id, "--domain", "waste", "--lat", "45.9", "--lon", "6.1")
    assert added.returncode == 0, added.stderr
    creds = json.loads(added.stdout)["mqtt"]
    assert creds["username"] == device_id and creds["password"]
    listed = _cli("devices", "list")
    assert device_id in listed.stdout
    assert _cli("devices", "remove", device_id).returncode == 0
    assert device_id not in _cli("devices", "list").stdout
    assert _cli("devices", "remove", device_id).returncode == 1


@pytest.mark.integration
def test_devices_add_refuses_a_reserved_id_with_the_reason() -> None:
    added = _cli("devices", "add", "gateway-1", "--domain", "waste")
    assert added.returncode == 1
    assert "422" in added.stderr and "reserved" in added.stderr


@pytest.mark.integration
def test_devices_import_reports_a_reserved_id_as_that_rows_error(tmp_path: Path) -> None:
    good = f"cli-{uuid.uuid4().hex[:8]}"
    csv_file = tmp_path / "bins.csv"
    csv_file.write_text(f"id,domain\nadmin,waste\n{good},waste\n")
    try:
        imported = _cli("devices", "import", str(csv_file))
        assert imported.returncode == 1
        assert "reserved" in imported.stdout + imported.stderr
        assert good in _cli("devices", "list").stdout
    finally:
        _cli("devices", "remove", good)


@pytest.mark.integration
def test_status_lists_every_component_with_pid_and_port() -> None:
    out = _cli("status").stdout
    for name in ("postgres", "kafka", "mosquitto", "gateway", "storage", "api", "energy"):
        line = next(line for line in out.splitlines() if line.startswith(name + " "))
        assert " up " in line, line
        assert line.split()[2].isdigit(), line
    assert any(line.startswith("mqtt broker: Mosquitto 2.") for line in out.splitlines()), out


# A valid profile's one reading (services/gateway/ingest/profile.py).
FILL = {"metric": "fill_pct", "field": "d"}


@pytest.fixture
def profile_name(stack: Stack) -> Iterator[str]:
    """A waste profile of the test's own (the gateway ships others), deleted afterwards."""
    name = f"cli-{uuid.uuid4().hex[:10]}"
    with psycopg.connect(stack.database_url(), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO device_profiles (name, domain, definition) VALUES (%s, 'waste', %s)",
            (name, Jsonb({"name": name, "domain": "waste", "readings": [FILL]})),
        )
    yield name
    with psycopg.connect(stack.database_url(), autocommit=True) as conn:
        conn.execute("DELETE FROM device_profiles WHERE name = %s", (name,))


@pytest.mark.integration
def test_a_lorawan_device_is_added_by_deveui_and_profile(profile_name: str) -> None:
    eui = secrets.token_hex(8)
    added = _cli("devices", "add", "--dev-eui", eui.upper(), "--profile", profile_name)
    assert added.returncode == 0, added.stderr
    body = json.loads(added.stdout)
    assert body["mqtt"] is None
    assert (body["device"]["id"], body["device"]["domain"]) == (f"eui-{eui}", "waste")
    line = next(li for li in _cli("devices", "list").stdout.splitlines() if f"eui-{eui}" in li)
    assert profile_name in line and eui in line
    assert profile_name in _cli("profiles", "list").stdout
    changed = _cli("devices", "set", f"eui-{eui}", "--metadata", '{"bin_depth_mm": 1200}')
    assert changed.returncode == 0, changed.stderr
    assert json.loads(changed.stdout)["metadata"] == {"bin_depth_mm": 1200}
    assert _cli("devices", "remove", f"eui-{eui}", "--erase").returncode == 0


@pytest.mark.integration
def test_an_http_integration_is_added_listed_tested_and_removed() -> None:
    integration_id = f"cli-{uuid.uuid4().hex[:8]}"
    added = _cli(
        "integrations", "add", integration_id, "--kind", "chirpstack", "--transport", "http"
    )
    assert added.returncode == 0, added.stderr
    created = json.loads(added.stdout)
    assert created["http_secret"] and created["ingest_path"].startswith("/v1/ingest/chirpstack/")
    try:
        listed = _cli("integrations", "list")
        assert listed.returncode == 0, listed.stderr
        assert integration_id in listed.stdout
        assert created["http_secret"] not in listed.stdout
        tested = _cli("integrations", "test", integration_id)
        assert tested.returncode == 0, tested.stderr
        assert tested.stdout.startswith("ok:")
    finally:
        assert _cli("integrations", "remove", integration_id).returncode == 0
    assert integration_id not in _cli("integrations", "list").stdout
    assert _cli("integrations", "remove", integration_id).returncode == 1


@pytest.mark.integration
def test_a_codec_file_is_uploaded_and_listed(tmp_path: Path, stack: Stack) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    script = tmp_path / "codec.js"
    script.write_text(
        "function decodeUplink(input) { return {data: {distance: input.bytes[0]}}; }\n"
    )
    try:
        done = _cli("codecs", "import", str(script), "--name", name)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["name"] == name
        line = next(li for li in _cli("codecs", "list").stdout.splitlines() if name in li)
        assert line.split()[1] == "1"
    finally:
        with psycopg.connect(stack.database_url(), autocommit=True) as conn:
            conn.execute("DELETE FROM codecs WHERE name = %s", (name,))


# ---- unit: the requests each command makes, against a fake API -----------------------------


class FakeApi:
    """Records requests; answers from `routes[(method, path)]` = (status, json body)."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], tuple[int, Any]] = {}
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        status, body = self.routes.get((request.method, request.url.path), (404, {"detail": "?"}))
        return httpx.Response(status, json=body) if status != 204 else httpx.Response(204)

    def sent(self) -> Any:
        return json.loads(self.requests[-1].content)


@pytest.fixture
def fake_api(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeApi:
    fake = FakeApi()

    def client(*, timeout: float = 30) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(fake), base_url="http://api.test")

    monkeypatch.setattr(cli_module, "_api", client)
    # No stack.env there: nothing of the real stack's settings leaks into the process.
    monkeypatch.setenv("TOWNPULSE_RUN_DIR", str(tmp_path))
    return fake


Run = Callable[..., Any]


@pytest.fixture
def run() -> Run:
    def invoke(*args: str, env: dict[str, str] | None = None) -> Any:
        return CliRunner().invoke(cli_module.app, list(args), env=env)

    return invoke


@pytest.mark.unit
def test_devices_add_sends_only_what_was_given(fake_api: FakeApi, run: Run) -> None:
    device = {"device": {"id": "eui-24e124126b316584"}, "mqtt": None}
    fake_api.routes[("POST", "/v1/devices")] = (201, device)
    result = run("devices", "add", "--dev-eui", "24E124126B316584", "--profile", "em310")
    assert result.exit_code == 0, result.output
    assert fake_api.sent() == {"dev_eui": "24E124126B316584", "profile": "em310"}
    assert json.loads(result.output) == device


@pytest.mark.unit
def test_devices_set_refuses_metadata_that_is_not_a_json_object(
    fake_api: FakeApi, run: Run
) -> None:
    result = run("devices", "set", "bin-1", "--metadata", "[1, 2]")
    assert result.exit_code != 0 and "JSON object" in result.output
    assert run("devices", "set", "bin-1").exit_code != 0  # nothing to change


@pytest.mark.unit
def test_an_api_refusal_exits_1_with_its_reason(fake_api: FakeApi, run: Run) -> None:
    fake_api.routes[("POST", "/v1/devices")] = (422, {"detail": "unknown profile 'x'"})
    result = run("devices", "add", "--dev-eui", "24e124126b316584", "--profile", "x")
    assert result.exit_code == 1
    assert "error 422" in result.output and "unknown profile 'x'" in result.output


@pytest.mark.unit
def test_integrations_add_reads_the_ca_file_and_the_password_from_the_environment(
    fake_api: FakeApi, run: Run, tmp_path: Path
) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    fake_api.routes[("POST", "/v1/integrations")] = (201, {"id": "town-cs"})
    result = run(
        "integrations",
        "add",
        "town-cs",
        "--kind",
        "chirpstack",
        "--mqtt-host",
        "cs.town.example",
        "--mqtt-port",
        "8883",
        "--mqtt-tls",
        "--mqtt-username",
        "townpulse",
        "--ca-file",
        str(ca),
        "--application",
        "0b1c",
        env={"TOWNPULSE_INTEGRATION_MQTT_PASSWORD": "s3cret-from-env"},
    )
    assert result.exit_code == 0, result.output
    assert fake_api.sent() == {
        "id": "town-cs",
        "kind": "chirpstack",
        "transport": "mqtt",
        "mqtt_host": "cs.town.example",
        "mqtt_port": 8883,
        "mqtt_tls": True,
        "mqtt_username": "townpulse",
        "mqtt_password": "s3cret-from-env",
        "ca_certificate": ca.read_text(),
        "application": "0b1c",
    }


@pytest.mark.unit
def test_integrations_list_shows_state_counts_and_errors(fake_api: FakeApi, run: Run) -> None:
    status = {
        "connected": False,
        "last_uplink_at": "2026-12-07T08:00:00Z",
        "last_error": "connection refused",
        "last_error_at": "2026-12-07T08:05:00Z",
        "uplinks_last_hour": 42,
        "errors_last_hour": 3,
    }
    fake_api.routes[("GET", "/v1/integrations")] = (
        200,
        [
            {
                "id": "cs",
                "kind": "chirpstack",
                "transport": "mqtt",
                "enabled": True,
                "status": status,
            },
            {
                "id": "tts",
                "kind": "tts",
                "transport": "http",
                "enabled": True,
                "ingest_path": "/v1/ingest/tts/tts",
                "status": {**status, "last_error": None, "errors_last_hour": 0},
            },
        ],
    )
    result = run("integrations", "list")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    cs = next(line for line in lines if line.startswith("cs "))
    assert "disconnected" in cs and cs.split()[-2:] == ["42", "3"]
    assert "last error (2026-12-07T08:05:00Z): connection refused" in result.output
    tts = next(line for line in lines if line.startswith("tts "))
    assert "http push" in tts
    assert "<API_URL>/v1/ingest/tts/tts" in result.output


@pytest.mark.unit
def test_a_failed_integration_test_exits_1(fake_api: FakeApi, run: Run) -> None:
    fake_api.routes[("POST", "/v1/integrations/cs/test")] = (
        200,
        {"ok": False, "detail": "TLS: certificate verify failed"},
    )
    result = run("integrations", "test", "cs")
    assert result.exit_code == 1
    assert "failed: TLS: certificate verify failed" in result.output


@pytest.mark.unit
def test_codecs_import_names_a_repository_path_or_uploads_a_file(
    fake_api: FakeApi, run: Run, tmp_path: Path
) -> None:
    fake_api.routes[("POST", "/v1/codecs/import")] = (201, {"name": "em310-udl", "version": 1})
    fake_api.routes[("POST", "/v1/codecs")] = (201, {"name": "my-bin", "version": 3})
    assert run("codecs", "import", "milesight-iot/em310-udl").exit_code == 0
    assert fake_api.sent() == {"path": "milesight-iot/em310-udl"}

    script = tmp_path / "My-Bin.js"
    script.write_text("function decodeUplink(input) { return {data: {}}; }")
    examples = tmp_path / "examples.json"
    examples.write_text('[{"f_port": 85, "bytes": [1], "output": {"data": {}}}]')
    result = run("codecs", "import", str(script), "--examples", str(examples))
    assert result.exit_code == 0, result.output
    assert fake_api.sent() == {
        "name": "my-bin",
        "script": script.read_text(),
        "examples": [{"f_port": 85, "bytes": [1], "output": {"data": {}}}],
    }


@pytest.mark.unit
def test_codecs_and_profiles_lists(fake_api: FakeApi, run: Run) -> None:
    fake_api.routes[("GET", "/v1/codecs")] = (
        200,
        [{"name": "em310-udl", "version": 2, "sha256": "ab" * 32, "source": "repo", "examples": 4}],
    )
    fake_api.routes[("GET", "/v1/profiles")] = (
        200,
        [{"name": "em310-bin", "domain": "waste", "codec": "em310-udl", "shipped": True}],
    )
    codecs = run("codecs", "list")
    assert codecs.exit_code == 0, codecs.output
    assert codecs.output.splitlines()[1].split() == ["em310-udl", "2", "repo", "4", "ab" * 8]
    profiles = run("profiles", "list")
    assert profiles.output.splitlines()[1].split() == ["em310-bin", "waste", "em310-udl", "yes"]


@pytest.mark.unit
def test_report_asks_for_the_period_and_saves_the_pdf(
    fake_api: FakeApi, run: Run, tmp_path: Path
) -> None:
    made = {"id": "rp_2026-11-01_2026-12-01_en", "sha256": "ab", "pdf_url": "/v1/reports/x/pdf"}
    fake_api.routes[("POST", "/v1/reports")] = (201, made)
    fake_api.routes[("GET", "/v1/reports/x/pdf")] = (200, "%PDF-1.4")
    out = tmp_path / "r.pdf"
    result = run(
        "report", "--from", "2026-11-01", "--to", "2026-12-01", "--lang", "en", "--out", str(out)
    )
    assert result.exit_code == 0, result.output
    assert json.loads(fake_api.requests[0].content) == {
        "start": "2026-11-01",
        "end": "2026-12-01",
        "lang": "en",
    }
    assert out.read_bytes() == b'"%PDF-1.4"'  # the fake answers JSON: the bytes as sent
    assert "sha256 ab" in result.output


@pytest.mark.unit
def test_report_refused_exits_1_with_the_reason(fake_api: FakeApi, run: Run) -> None:
    fake_api.routes[("POST", "/v1/reports")] = (422, {"detail": "start must be before end"})
    result = run("report", "--from", "2026-11-01", "--to", "2026-11-01")
    assert result.exit_code == 1 and "start must be before end" in result.output
