"""One-time, idempotent set-up steps run by `townpulse up` once the infrastructure is up."""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from shared import db
from shared.auth import key_id_of, key_matches, new_api_key
from shared.mqtt_admin import DynSecClient
from shared.topics import ALERTS_TOPIC, DEADLETTER_TOPIC, READINGS_PARTITIONS, all_topics


def migrate(database_url: str) -> None:
    db.migrate(database_url)


def ensure_topics(bootstrap: str) -> None:
    asyncio.run(_ensure_topics(bootstrap))


async def _ensure_topics(bootstrap: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = []
        for name in all_topics():
            if name in existing:
                continue
            # Dead letters and alerts are low-volume; their order across devices does not matter.
            partitions = 1 if name in (DEADLETTER_TOPIC, ALERTS_TOPIC) else READINGS_PARTITIONS
            wanted.append(NewTopic(name=name, num_partitions=partitions, replication_factor=1))
        if wanted:
            # Another `up` may have created them in between.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(wanted)
    finally:
        await admin.close()


def ensure_mqtt_identities(
    *, host: str, port: int, admin_password: str, gateway_password: str, gateways: int = 1
) -> None:
    """Deny by default, the gateways' identities, and every client bound to its client id
    (also repairs identities tampered with, and binds devices registered by older versions)."""
    client = DynSecClient(host=host, port=port, username="admin", password=admin_password)
    client.connect()
    try:
        client.lock_down_defaults()
        client.ensure_gateways(instances=gateways, password=gateway_password)
    finally:
        client.close()


def ensure_role_passwords(database_url: str, passwords: dict[str, str]) -> None:
    """Give each service's role (created without a password by migration 0009) its password.

    A role missing from the cluster is created as the migration creates it: roles live in the
    cluster, not in a database, so a database restored from a dump (which holds the grants, not
    the roles) into a new cluster needs them before its grants can be restored.
    """
    import psycopg
    from psycopg import sql

    with psycopg.connect(database_url, autocommit=True) as conn:
        for role, password in passwords.items():
            if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                conn.execute(
                    sql.SQL(
                        "CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT"
                        " NOREPLICATION NOBYPASSRLS"
                    ).format(sql.Identifier(role))
                )
            conn.execute(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                    sql.Identifier(role), sql.Literal(password)
                )
            )


def ensure_admin_key(database_url: str, key_file: Path) -> bool:
    """Create an admin API key unless the file holds one that is valid; returns True if created."""
    import psycopg

    with psycopg.connect(database_url) as conn:
        if key_file.exists():
            token = key_file.read_text().strip()
            row = conn.execute(
                "SELECT key_hash FROM api_keys "
                "WHERE id = %s AND role = 'admin' AND revoked_at IS NULL",
                (key_id_of(token) or "",),
            ).fetchone()
            if row and key_matches(token, bytes(row[0])):
                return False
        key = new_api_key()
        conn.execute(
            "INSERT INTO api_keys (id, name, role, key_hash) "
            "VALUES (%s, 'bootstrap admin', 'admin', %s)",
            (key.key_id, key.key_hash),
        )
        tmp = key_file.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(key.token + "\n")
        os.replace(tmp, key_file)
        conn.commit()
    return True


def run_all(
    *,
    database_url: str,
    kafka_bootstrap: str,
    mqtt_host: str,
    mqtt_port: int,
    mqtt_admin_password: str,
    mqtt_gateway_password: str,
    admin_key_file: Path,
    gateways: int = 1,
    role_passwords: dict[str, str],
) -> bool:
    """Every step, in order; returns True if a new admin API key was written."""
    migrate(database_url)
    ensure_role_passwords(database_url, role_passwords)
    ensure_topics(kafka_bootstrap)
    ensure_mqtt_identities(
        host=mqtt_host,
        port=mqtt_port,
        admin_password=mqtt_admin_password,
        gateway_password=mqtt_gateway_password,
        gateways=gateways,
    )
    return ensure_admin_key(database_url, admin_key_file)
