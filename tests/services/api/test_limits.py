"""Limits on the real stack: failed keys throttled per source and per key id (429 with
Retry-After) while good keys keep working, a flood of made-up keys that cannot starve the good
requests, and public downloads capped without blocking the operators.

Sources other than this machine are made with X-Forwarded-For, which the API takes from a proxy
on loopback (uvicorn's forwarded_allow_ips), as from a reverse proxy in front of it: random
addresses of the documentation prefix, so no two tests share a throttled source, and this
machine's own address (the other tests') is never throttled.
"""

from __future__ import annotations

import secrets
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from shared.auth import key_id_of

pytestmark = pytest.mark.integration


def _source() -> str:
    """An address of the documentation prefix (2001:db8::/32) that no other test uses."""
    return f"2001:db8:{secrets.token_hex(2)}:{secrets.token_hex(2)}::{secrets.token_hex(2)}"


def _made_up_key() -> str:
    return f"tp_{secrets.token_hex(6)}_{secrets.token_urlsafe(24)}"


def test_thirty_bad_keys_from_one_source_get_429_while_a_good_key_works(
    api: httpx.Client, stack_env: dict[str, str]
) -> None:
    source = _source()
    codes = []
    with httpx.Client(base_url=stack_env["API_URL"], timeout=30) as attacker:
        for _ in range(30):
            r = attacker.get(
                "/v1/devices",
                headers={"X-Forwarded-For": source, "Authorization": f"Bearer {_made_up_key()}"},
            )
            codes.append(r.status_code)
            # The good key, from this machine, between every two bad ones.
            assert api.get("/v1/devices", params={"limit": 1}).status_code == 200
        # The default allowance: 20 failures a minute per source.
        assert codes == [401] * 20 + [429] * 10, codes
        refused = attacker.get(
            "/v1/devices",
            headers={"X-Forwarded-For": source, "Authorization": f"Bearer {_made_up_key()}"},
        )
        assert refused.status_code == 429
        assert 0 < int(refused.headers["retry-after"]) <= 60
        # Throttled before its key is even read: even a good key from that source waits.
        admin = api.headers["Authorization"]
        r = attacker.get("/v1/devices", headers={"X-Forwarded-For": source, "Authorization": admin})
        assert r.status_code == 429


def test_wrong_secrets_for_one_key_id_get_429_from_any_source_but_the_right_key_works(
    api: httpx.Client, stack_env: dict[str, str], role_keys: dict[str, str]
) -> None:
    r = api.post("/v1/api-keys", json={"name": "limits-target", "role": "viewer"})
    assert r.status_code == 201, r.text
    key, key_id = r.json()["key"], r.json()["id"]
    assert key_id_of(key) == key_id
    try:
        codes = []
        with httpx.Client(base_url=stack_env["API_URL"], timeout=30) as attacker:
            for _ in range(25):
                # A new source each time: only the key id ties the attempts together.
                wrong = f"tp_{key_id}_{secrets.token_urlsafe(24)}"
                r = attacker.get(
                    "/v1/devices",
                    headers={"X-Forwarded-For": _source(), "Authorization": f"Bearer {wrong}"},
                )
                codes.append(r.status_code)
            assert codes == [401] * 20 + [429] * 5, codes
            assert "retry-after" in r.headers
            good = attacker.get("/v1/devices", headers={"Authorization": f"Bearer {key}"})
            assert good.status_code == 200
    finally:
        api.delete(f"/v1/api-keys/{key_id}")


def test_a_flood_of_made_up_keys_does_not_starve_good_requests(
    api: httpx.Client, stack_env: dict[str, str], admin_key: str
) -> None:
    """Before: each made-up key held one of the API's 10 pool connections for its lookup, and
    the good requests behind them got 500s."""
    pool = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    with httpx.Client(base_url=stack_env["API_URL"], timeout=30, limits=pool) as client:

        def bad(_: int) -> int:
            headers = {"X-Forwarded-For": _source(), "Authorization": f"Bearer {_made_up_key()}"}
            return client.get("/v1/devices", headers=headers).status_code

        def good(_: int) -> int:
            headers = {"Authorization": f"Bearer {admin_key}"}
            return client.get("/v1/devices", params={"limit": 1}, headers=headers).status_code

        with ThreadPoolExecutor(max_workers=32) as threads:
            flood = threads.map(bad, range(200))
            served = threads.map(good, range(20))
            bad_codes, good_codes = list(flood), list(served)
    assert set(bad_codes) <= {401, 429}, sorted(set(bad_codes))
    assert set(good_codes) == {200}, sorted(set(good_codes))


def test_made_up_keys_on_forwarded_routes_are_throttled_by_the_api_too(
    api: httpx.Client, stack_env: dict[str, str]
) -> None:
    source = _source()
    with httpx.Client(base_url=stack_env["API_URL"], timeout=30) as attacker:
        codes = [
            attacker.get(
                "/v1/waste/bins",
                headers={"X-Forwarded-For": source, "Authorization": f"Bearer {_made_up_key()}"},
            ).status_code
            for _ in range(30)
        ]
    assert codes == [401] * 20 + [429] * 10, codes
    assert api.get("/v1/waste/bins").status_code == 200


def test_an_open_data_flood_is_capped_without_blocking_operator_routes(
    stack_env: dict[str, str], admin_key: str
) -> None:
    pool = httpx.Limits(max_connections=48, max_keepalive_connections=48)
    with httpx.Client(base_url=stack_env["API_URL"], timeout=30, limits=pool) as client:

        def download(_: int) -> tuple[int, str | None]:
            r = client.get("/open-data/")
            return r.status_code, r.headers.get("retry-after")

        def operate(_: int) -> int:
            headers = {"Authorization": f"Bearer {admin_key}"}
            return client.get("/v1/devices", params={"limit": 1}, headers=headers).status_code

        with ThreadPoolExecutor(max_workers=48) as threads:
            flood = threads.map(download, range(150))
            served = threads.map(operate, range(20))
            answers, operator_codes = list(flood), list(served)
    assert set(operator_codes) == {200}
    assert {code for code, _ in answers} <= {200, 503}
    # A capped download is told when to come back.
    assert all(wait is not None for code, wait in answers if code == 503)


def test_a_new_key_works_at_once_on_the_forwarded_routes(api: httpx.Client, stack_env) -> None:
    """The domain services hold a copy of the keys too: one made a moment ago is read on its
    first use, however recently their copy was read."""
    made = []
    try:
        with httpx.Client(base_url=stack_env["API_URL"], timeout=30) as client:
            for _ in range(5):
                r = api.post("/v1/api-keys", json={"name": "limits-new", "role": "viewer"})
                assert r.status_code == 201, r.text
                made.append(r.json()["id"])
                headers = {"Authorization": f"Bearer {r.json()['key']}"}
                assert client.get("/v1/waste/bins", headers=headers).status_code == 200
                assert client.get("/v1/alerts", headers=headers).status_code == 200
    finally:
        for key_id in made:
            api.delete(f"/v1/api-keys/{key_id}")
