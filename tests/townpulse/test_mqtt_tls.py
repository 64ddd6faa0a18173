"""MQTT over TLS with the stack's own CA, end to end (TLS 1.2+, ECDHE AEAD suites only); plain MQTT
only on loopback."""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest

from tests.support import count_readings, wait_for
from townpulse import tls

pytestmark = pytest.mark.integration

# An MQTT 3.1.1 CONNECT with client id "x": what a plaintext client sends first.
PLAIN_CONNECT = bytes([0x10, 13, 0, 4, *b"MQTT", 4, 2, 0, 30, 0, 1, *b"x"])


@pytest.fixture
def registered(api: httpx.Client) -> Iterator[dict]:
    device_id = f"tls-{uuid.uuid4().hex[:10]}"
    r = api.post("/v1/devices", json={"id": device_id, "domain": "waste"})
    assert r.status_code == 201, r.text
    yield r.json()
    api.delete(f"/v1/devices/{device_id}")


def _tls_client(creds: dict, ca_file: Path) -> mqtt.Client:
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=creds["username"],
        protocol=mqtt.MQTTv311,
    )
    client.username_pw_set(creds["username"], creds["password"])
    # Verifies the broker's certificate against the CA and its name against the host.
    client.tls_set(ca_certs=str(ca_file))
    return client


def test_registration_hands_out_the_ca_and_a_device_publishes_over_tls(
    api: httpx.Client, registered: dict, stack_env: dict[str, str], tmp_path: Path
) -> None:
    creds = registered["mqtt"]
    assert creds["tls_port"] == int(stack_env["MQTTS_PORT"])
    assert creds["ca_certificate"].startswith("-----BEGIN CERTIFICATE-----")
    assert creds["ca_certificate"] == Path(stack_env["MQTT_CA_FILE"]).read_text()
    ca_file = tmp_path / "ca.crt"
    ca_file.write_text(creds["ca_certificate"])

    client = _tls_client(creds, ca_file)
    assert client.connect("localhost", creds["tls_port"], keepalive=30) == 0
    client.loop_start()
    try:
        wait_for(client.is_connected, timeout=10, what="MQTT over TLS")
        payload = json.dumps({"ts": datetime.now(UTC).isoformat(), "fill_pct": 33})
        client.publish(creds["topic"], payload, qos=1).wait_for_publish(10)
    finally:
        client.loop_stop()
        client.disconnect()
    device_id = registered["device"]["id"]
    wait_for(lambda: count_readings(api, device_id) == 1, timeout=60, what="the TLS reading")


def test_a_broker_not_signed_by_the_ca_is_refused(registered: dict, tmp_path: Path) -> None:
    other_ca = tmp_path / "other-ca.crt"
    tls.ensure_ca(cert_path=other_ca, key_path=tmp_path / "other-ca.key")
    # The standard library's handshake rather than paho's: paho leaks the socket when the
    # handshake fails, which pytest reports as an unraisable exception.
    context = ssl.create_default_context(cafile=str(other_ca))
    port = registered["mqtt"]["tls_port"]
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        context.wrap_socket(raw, server_hostname="localhost")
    # The stack's own CA passes the same handshake.
    context = ssl.create_default_context(cadata=registered["mqtt"]["ca_certificate"])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        context.wrap_socket(raw, server_hostname="localhost").close()


def test_the_tls_listener_does_not_speak_plain_mqtt(stack_env: dict[str, str]) -> None:
    with socket.create_connection(("127.0.0.1", int(stack_env["MQTTS_PORT"])), timeout=5) as s:
        s.sendall(PLAIN_CONNECT)
        reply = b""
        with contextlib.suppress(ConnectionResetError, TimeoutError):
            reply = s.recv(16)
    # 0x20 would be a CONNACK: the broker answered MQTT in clear.
    assert not reply.startswith(b"\x20")


def _non_loopback_ipv4() -> str | None:
    """This machine's address on its default route (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))
        except OSError:
            return None
        address: str = s.getsockname()[0]
    return None if address.startswith("127.") else address


def test_plain_mqtt_is_refused_off_loopback(stack_env: dict[str, str]) -> None:
    address = _non_loopback_ipv4()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to try")
    port = int(stack_env["MQTT_PORT"])
    # Listening, on loopback (the services' connection)...
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass
    # ...and on nothing else.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((address, port), timeout=5).close()


def _handshake(stack_env: dict[str, str], context: ssl.SSLContext) -> ssl.SSLSocket:
    ca = Path(stack_env["MQTT_CA_FILE"])
    context.load_verify_locations(cafile=str(ca))
    raw = socket.create_connection(("127.0.0.1", int(stack_env["MQTTS_PORT"])), timeout=5)
    try:
        return context.wrap_socket(raw, server_hostname="localhost")
    except BaseException:
        raw.close()
        raise


def _tls12(ciphers: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_2
    # OpenSSL's security level 0: the client offers what it is told to, old suites too.
    context.set_ciphers(f"{ciphers}:@SECLEVEL=0")
    return context


@pytest.mark.parametrize(
    "suite",
    [
        "ECDHE-ECDSA-AES128-SHA",  # CBC with SHA-1
        "ECDHE-ECDSA-AES256-SHA384",  # CBC
        "AES128-GCM-SHA256",  # no forward secrecy
    ],
)
def test_tls_1_2_suites_without_aead_or_forward_secrecy_are_refused(
    stack_env: dict[str, str], suite: str
) -> None:
    with pytest.raises(ssl.SSLError):
        _handshake(stack_env, _tls12(suite)).close()


@pytest.mark.parametrize(
    "suite", ["ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305"]
)
def test_tls_1_2_ecdhe_aead_suites_are_accepted(stack_env: dict[str, str], suite: str) -> None:
    with _handshake(stack_env, _tls12(suite)) as tls_socket:
        assert tls_socket.version() == "TLSv1.2"
        assert tls_socket.cipher()[0] == suite


def test_tls_1_3_is_what_a_modern_client_gets(stack_env: dict[str, str]) -> None:
    with _handshake(stack_env, ssl.create_default_context()) as tls_socket:
        assert tls_socket.version() == "TLSv1.3"
        assert tls_socket.cipher()[0] in (
            "TLS_AES_128_GCM_SHA256",
            "TLS_AES_256_GCM_SHA384",
            "TLS_CHACHA20_POLY1305_SHA256",
        )
