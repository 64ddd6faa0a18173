"""schemathesis over every service's OpenAPI document, against the running stack.

For each operation: the documented examples, schemathesis' coverage cases (boundaries, wrong
types, missing fields) and property-based fuzzing, with an admin key so that requests reach
the routes' own logic. Checks: no 5xx, and every documented response matches its schema.

Bounded for CI: `FUZZ_MAX_EXAMPLES` (15 by default) per operation and phase, a fixed seed so a
failure reproduces. The stateful phase is off: chaining responses into requests would let it
revoke other tests' keys or delete their devices. Whatever the run created (keys, devices,
rules, webhooks, publications) is removed afterwards, found through the audit log.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from shared.auth import key_id_of
from townpulse.stack import SERVICES

pytestmark = pytest.mark.integration

MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "15"))
SEED = int(os.environ.get("FUZZ_SEED", "20261201"))
CONFIG = Path(__file__).with_name("schemathesis.toml")
# Every service of the stack, the domains' from their manifests.
FUZZED = tuple(s.name for s in SERVICES)

# What undoes each successful creation the run made, by audit action.
UNDO = {
    "create_api_key": "/v1/api-keys/{}",
    "register_device": "/v1/devices/{}",
    "create_rule": "/v1/alert-rules/{}",
    "create_webhook": "/v1/webhooks/{}",
    "publish_dataset": "/v1/open-data/datasets/{}",
    "save_profile": "/v1/profiles/{}",
}


@pytest.fixture(scope="module")
def fuzz_key(api: httpx.Client) -> Iterator[str]:
    """An admin key of the run's own, so its audit entries tell what it created."""
    started = datetime.now(UTC)
    r = api.post("/v1/api-keys", json={"name": "schemathesis", "role": "admin"})
    assert r.status_code == 201, r.text
    key = r.json()["key"]
    yield key
    made: list[tuple[str, str]] = []
    params: dict[str, object] = {
        "key_id": key_id_of(key),
        "outcome": "ok",
        "start": started.isoformat(),
        "limit": 1000,
    }
    # The suite's own admin key survived the run (the run cannot learn other keys' ids).
    assert api.get("/v1/api-keys").status_code == 200
    while page := api.get("/v1/audit", params=params).json():
        made += [(e["action"], e["target"]) for e in page if e["action"] in UNDO]
        made += [
            ("register_device", device_id)
            for e in page
            if e["action"] == "register_devices"
            for device_id in e["detail"].get("created_ids", [])
        ]
        params["before_id"] = page[-1]["id"]
    for action, target in made:
        api.delete(UNDO[action].format(target))
    api.delete(f"/v1/api-keys/{r.json()['id']}")


@pytest.fixture(scope="module")
def api(stack_env: dict[str, str], admin_key: str) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=stack_env["API_URL"], headers={"Authorization": f"Bearer {admin_key}"}, timeout=30
    ) as client:
        yield client


@pytest.mark.parametrize("service", FUZZED)
def test_no_server_error_and_no_schema_violation(
    service: str, service_urls: dict[str, str], fuzz_key: str, tmp_path: Path
) -> None:
    base = service_urls[service]
    # The key works: the run reaches the routes' logic, not only the Gate's 401.
    assert httpx.get(f"{base}/openapi.json", timeout=30).status_code == 200
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "--config-file",
            str(CONFIG),
            "run",
            f"{base}/openapi.json",
            "--header",
            f"Authorization: Bearer {fuzz_key}",
            "--max-examples",
            str(MAX_EXAMPLES),
            "--seed",
            str(SEED),
            # Nothing kept between runs: a run depends on the seed only.
            "--generation-database",
            "none",
            "--phases",
            "examples,coverage,fuzzing",
            "--checks",
            "not_a_server_error,response_schema_conformance",
            "--request-timeout",
            "30",
            "--no-color",
        ],
        # schemathesis keeps a cache of crashes in its working directory: not in the repo.
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    summary = result.stdout[-6000:]
    assert result.returncode == 0, summary
    assert " passed" in summary, summary
