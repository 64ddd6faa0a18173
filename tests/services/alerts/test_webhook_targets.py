"""Webhook targets: forbidden addresses refused at creation (422) and again at connect time.

The stack under test allow-lists 127.0.0.1/32 only (`make test` sets
TOWNPULSE_WEBHOOK_ALLOWED_NETWORKS), for the tests' own receiver: every other loopback address,
and every private, link-local or metadata address, must still be refused.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from services.alerts.adapters import sender
from services.alerts.domain.targets import (
    ForbiddenTarget,
    IPNetwork,
    check_literal,
    forbidden_reason,
    literal_address,
)
from testing.webhook_receiver import WebhookReceiver

FORBIDDEN_URLS = [
    "http://127.0.0.2:15432/",
    "http://localhost:18000/v1/api-keys",
    "http://app.localhost/",
    "http://169.254.169.254/latest/meta-data/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://0x7f000002/",  # 127.0.0.2 in hex
    "http://2130706434/",  # 127.0.0.2 as one integer
    "http://0177.0.0.2/",  # octal
    "http://127.2/",  # 127.0.0.2, short form
    "http://[::ffff:127.0.0.2]/",  # IPv4-mapped
    "http://[::ffff:10.0.0.1]/",
    "http://[64:ff9b::a00:1]/",  # NAT64 of 10.0.0.1
    "http://[::1]/",
    "http://0.0.0.0/",
    "http://[::]/",
    "http://10.1.2.3/",
    "http://172.16.0.1/",
    "http://192.168.1.1/",
    "http://100.64.0.1/",  # carrier-grade NAT
    "http://224.0.0.1/",
]


@pytest.mark.unit
@pytest.mark.parametrize("url", FORBIDDEN_URLS)
def test_forbidden_literals_are_refused_without_an_allow_list(url: str) -> None:
    host = urlsplit(url).hostname or ""
    with pytest.raises(ForbiddenTarget, match="webhook target refused"):
        check_literal(host)


@pytest.mark.unit
@pytest.mark.parametrize("host", ["93.184.215.14", "hooks.example.org", "[2606:4700::1111]"])
def test_public_addresses_and_names_pass_the_literal_check(host: str) -> None:
    check_literal(host)


@pytest.mark.unit
def test_an_allow_list_opens_exactly_its_networks() -> None:
    allowed = [ipaddress.ip_network("127.0.0.1/32")]
    assert forbidden_reason(ipaddress.ip_address("127.0.0.1"), allowed=allowed) is None
    assert forbidden_reason(ipaddress.ip_address("::ffff:127.0.0.1"), allowed=allowed) is None
    assert forbidden_reason(ipaddress.ip_address("127.0.0.2"), allowed=allowed) is not None


@pytest.mark.unit
def test_odd_encodings_decode_as_libc_does() -> None:
    assert str(literal_address("0x7f.1")) == "127.0.0.1"
    assert str(literal_address("017700000001")) == "127.0.0.1"


@pytest.mark.integration
# localhost is 127.0.0.1, which the test stack allow-lists (the unit tests cover it).
@pytest.mark.parametrize("url", [u for u in FORBIDDEN_URLS if "localhost" not in u])
def test_the_api_refuses_forbidden_targets_with_422(api: httpx.Client, url: str) -> None:
    r = api.post("/v1/webhooks", json={"url": url})
    assert r.status_code == 422, r.text
    # 0177.0.0.2 (octal) is refused before the target check: httpx, which sends, cannot parse it.
    assert "webhook target refused" in r.text or "Invalid IPv4 address" in r.text


@pytest.mark.integration
def test_a_patch_cannot_move_a_webhook_to_a_forbidden_target(api: httpx.Client) -> None:
    r = api.post("/v1/webhooks", json={"url": "https://hooks.example.org/x", "enabled": False})
    assert r.status_code == 201, r.text
    sub_id = r.json()["id"]
    try:
        r = api.patch(f"/v1/webhooks/{sub_id}", json={"url": "http://169.254.169.254/"})
        assert r.status_code == 422, r.text
        assert api.get(f"/v1/webhooks/{sub_id}").json()["url"] == "https://hooks.example.org/x"
    finally:
        api.delete(f"/v1/webhooks/{sub_id}")


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver(secret="whsec_" + "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=")
    r.listen()
    yield r
    r.close()


async def _send(url: str, allowed: list[IPNetwork]) -> sender.AttemptResult:
    async with httpx.AsyncClient(trust_env=False) as client:
        return await sender.send(
            client,
            url=url,
            msg_id="msg_target_test",
            body='{"type":"test"}',
            secrets=["whsec_MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="],
            timeout_s=5,
            max_response_bytes=1024,
            allowed_networks=allowed,
        )


@pytest.mark.integration
async def test_a_host_name_is_resolved_and_checked_when_the_delivery_connects(
    receiver: WebhookReceiver,
) -> None:
    # "localhost" stands for any name whose DNS answer is (now) a loopback address: the
    # sender resolves it itself and refuses before connecting.
    url = f"http://localhost:{receiver.port}/hooks"
    result = await _send(url, allowed=[])
    assert result.status_code is None
    assert result.error is not None and "target refused" in result.error, result.error
    assert receiver.count() == 0


@pytest.mark.integration
async def test_an_allowed_name_is_delivered_to_the_checked_address_with_its_host_header(
    receiver: WebhookReceiver,
) -> None:
    url = f"http://localhost:{receiver.port}/hooks"
    # ::1 too, for machines where localhost also resolves to it: every answer is checked.
    result = await _send(
        url, allowed=[ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("::1/128")]
    )
    assert result.status_code == 200, result.error
    assert receiver.requests[0].verified
    assert receiver.requests[0].headers["host"] == f"localhost:{receiver.port}"
