"""The operator API over HTTPS on the real stack: its certificate from the stack's CA verifies,
the console's pages carry HSTS there (and not over the loopback's plain HTTP), plain HTTP and
old or CBC ciphers are refused on the HTTPS port."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

pytestmark = pytest.mark.integration


@pytest.fixture
def https(stack_env: dict[str, str], admin_key: str) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=stack_env["API_HTTPS_URL"],
        verify=ssl.create_default_context(cafile=stack_env["API_CA_FILE"]),
        headers={"Authorization": f"Bearer {admin_key}"},
        timeout=30,
    ) as client:
        yield client


def test_the_api_answers_over_https_verified_with_the_stacks_ca(https: httpx.Client) -> None:
    assert https.get("/v1/devices", params={"limit": 1}).status_code == 200
    # The proxy's routes too.
    assert https.get("/v1/waste/bins").status_code == 200


def test_the_console_over_https_carries_hsts(https: httpx.Client, stack_env) -> None:
    page = https.get("/signin")
    assert page.status_code == 200
    assert "max-age=" in page.headers["strict-transport-security"]
    # Over plain HTTP (loopback only) a browser would ignore it: not sent.
    plain = httpx.get(stack_env["API_URL"] + "/signin", timeout=30)
    assert "strict-transport-security" not in plain.headers


def test_a_client_without_the_ca_refuses_the_certificate(stack_env: dict[str, str]) -> None:
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(stack_env["API_HTTPS_URL"] + "/healthz", timeout=30)


def test_plain_http_on_the_https_port_is_refused(stack_env: dict[str, str]) -> None:
    port = urlsplit(stack_env["API_HTTPS_URL"]).port
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=30)


@pytest.mark.parametrize(
    ("version", "ciphers"),
    [
        (ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA"),
        (ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA384"),
    ],
)
def test_cbc_ciphers_are_refused(stack_env: dict[str, str], version, ciphers: str) -> None:
    context = ssl.create_default_context(cafile=stack_env["API_CA_FILE"])
    context.minimum_version = context.maximum_version = version
    context.set_ciphers(ciphers)
    with pytest.raises(httpx.ConnectError):
        httpx.get(stack_env["API_HTTPS_URL"] + "/healthz", verify=context, timeout=30)


def test_tls_1_2_with_an_aead_cipher_is_accepted(stack_env: dict[str, str]) -> None:
    context = ssl.create_default_context(cafile=stack_env["API_CA_FILE"])
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256")
    r = httpx.get(stack_env["API_HTTPS_URL"] + "/healthz", verify=context, timeout=30)
    assert r.status_code == 200
