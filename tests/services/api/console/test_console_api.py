"""The endpoints only the console uses, against the running stack."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest

from tests.support import Publisher, RegisteredDevice, wait_for

pytestmark = pytest.mark.integration


def test_me_names_the_key_and_its_role(api: httpx.Client, admin_key: str) -> None:
    me = api.get("/v1/me").json()
    assert me == {"key_id": admin_key.split("_")[1], "role": "admin"}
    assert httpx.get(api.base_url.join("/v1/me")).status_code == 401


def test_the_browsers_icon_request_is_answered_without_a_key(api: httpx.Client) -> None:
    """Browsers ask every page's /favicon.ico, signed in or not: an icon, not a 401."""
    r = httpx.get(api.base_url.join("/favicon.ico"), follow_redirects=True)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("image/svg+xml") and b"<svg" in r.content


def test_device_search_shows_the_newest_reading(
    api: httpx.Client,
    device_factory: Callable[..., RegisteredDevice],
    publisher_factory: Callable[[RegisteredDevice], Publisher],
) -> None:
    device = device_factory("waste", prefix="con_sole")
    device_factory("waste", prefix="conxsole")

    def found(q: str) -> list[dict]:
        r = api.get("/v1/console/devices", params={"q": q, "domain": "waste"})
        assert r.status_code == 200, r.text
        return list(r.json()["items"])

    [row] = found(device.id)
    assert row["last_reading_at"] is None
    # '_' is a character here, not ILIKE's any-character wildcard: conxsole-... stays out.
    assert [d["id"] for d in found("con_sole")] == [device.id]

    ts = datetime.now(UTC).replace(microsecond=0)
    pub = publisher_factory(device)
    pub.publish(f'{{"ts":"{ts.isoformat().replace("+00:00", "Z")}","fill_pct":12.5}}')
    seen = wait_for(lambda: found(device.id)[0]["last_reading_at"], what="the reading")
    assert datetime.fromisoformat(seen) == ts


@pytest.mark.parametrize(
    "params",
    [{"q": ""}, {"q": "x" * 101}, {"limit": 0}, {"limit": 501}, {"offset": -1}, {"domain": "air"}],
)
def test_device_search_refuses_bad_input(api: httpx.Client, params: dict) -> None:
    r = api.get("/v1/console/devices", params=params)
    assert r.status_code == 422, r.text


def test_freshness_counts_devices_per_domain(
    api: httpx.Client, device_factory: Callable[..., RegisteredDevice]
) -> None:
    def traffic() -> dict:
        body = api.get("/v1/console/freshness").json()
        return next((i for i in body["items"] if i["domain"] == "traffic"), {"devices": 0})

    before = traffic()["devices"]
    device_factory("traffic")
    assert traffic()["devices"] == before + 1
    assert httpx.get(api.base_url.join("/v1/console/freshness")).status_code == 401
