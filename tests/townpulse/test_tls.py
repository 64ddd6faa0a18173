"""The stack's CA and broker certificate (pure file work, no broker)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509

from townpulse import tls

pytestmark = pytest.mark.unit


def _names(path: Path) -> set[str]:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(n.value) for n in san}


def test_the_ca_is_kept_and_the_server_certificate_follows_the_names(tmp_path: Path) -> None:
    ca_cert, ca_key = tmp_path / "ca.crt", tmp_path / "secret" / "ca.key"
    first = tls.ensure_server_cert(
        ca_cert_path=ca_cert, ca_key_path=ca_key, out_dir=tmp_path, hosts=["localhost", "127.0.0.1"]
    )
    assert _names(first.server_cert) == {"localhost", "127.0.0.1"}
    assert ca_key.stat().st_mode & 0o777 == 0o600
    assert first.server_key.stat().st_mode & 0o777 == 0o600
    ca_pem, server_pem = ca_cert.read_bytes(), first.server_cert.read_bytes()

    again = tls.ensure_server_cert(
        ca_cert_path=ca_cert, ca_key_path=ca_key, out_dir=tmp_path, hosts=["127.0.0.1", "localhost"]
    )
    assert again.server_cert.read_bytes() == server_pem  # same names: not re-issued

    renamed = tls.ensure_server_cert(
        ca_cert_path=ca_cert, ca_key_path=ca_key, out_dir=tmp_path, hosts=["mqtt.town.example"]
    )
    assert _names(renamed.server_cert) == {"mqtt.town.example"}
    # Devices keep trusting the same CA, which signed the new certificate.
    assert ca_cert.read_bytes() == ca_pem
    ca = x509.load_pem_x509_certificate(ca_pem)
    server = x509.load_pem_x509_certificate(renamed.server_cert.read_bytes())
    server.verify_directly_issued_by(ca)


def test_the_cli_issues_a_second_servers_certificate_from_the_same_ca(tmp_path: Path) -> None:
    """docker-compose's api-tls-init: the API's certificate, signed by the broker's CA."""
    from typer.testing import CliRunner

    from townpulse.cli import app

    key = tmp_path / "secrets" / "ca.key"
    runner = CliRunner()
    broker = runner.invoke(app, ["tls", str(tmp_path), "--ca-key", str(key), "--host", "mqtt"])
    assert broker.exit_code == 0, broker.output
    ca_pem, key_pem = (tmp_path / "ca.crt").read_bytes(), key.read_bytes()
    args = ["tls", str(tmp_path / "api"), "--ca-cert", str(tmp_path / "ca.crt")]
    api = runner.invoke(app, [*args, "--ca-key", str(key), "--host", "api.town.example"])
    assert api.exit_code == 0, api.output
    assert (tmp_path / "ca.crt").read_bytes() == ca_pem
    assert key.read_bytes() == key_pem
    assert not (tmp_path / "api" / "ca.crt").exists()
    issued = x509.load_pem_x509_certificate((tmp_path / "api" / "server.crt").read_bytes())
    issued.verify_directly_issued_by(x509.load_pem_x509_certificate(ca_pem))
    assert _names(tmp_path / "api" / "server.crt") == {"api.town.example"}
