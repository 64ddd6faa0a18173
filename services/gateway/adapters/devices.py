"""The device registry's SQL (services/gateway/registry.py): registered devices by id or by the
key a network server names them with, every device at once, and the channel their changes are
notified on (migration 0006); LISTEN for the integrations' channel too."""

from __future__ import annotations

from typing import Any, Literal

from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row

CHANNEL = "townpulse_devices"

_COLUMNS = "id, domain, profile, dev_eui, external_id, metadata"
_LOOKUP: dict[str, str] = {
    "id": f"SELECT {_COLUMNS} FROM devices WHERE id = %(k)s AND deleted_at IS NULL",  # noqa: S608
    "key": f"SELECT {_COLUMNS} FROM devices"  # noqa: S608
    " WHERE (dev_eui = %(k)s OR external_id = %(k)s) AND deleted_at IS NULL",
}

Lookup = Literal["id", "key"]


async def find_device(
    conn: AsyncConnection[Any], kind: Lookup, value: str
) -> dict[str, Any] | None:
    """A registered device (not deleted) by its TownPulse id (``id``), or by its DevEUI or
    external id (``key``)."""
    cur = await conn.cursor(row_factory=dict_row).execute(_LOOKUP[kind], {"k": value})
    return await cur.fetchone()


async def listen_and_load(conn: AsyncConnection[Any]) -> list[dict[str, Any]]:
    """LISTEN to the devices' changes on `conn` (autocommit), then every registered device: a
    change made while loading is notified afterwards."""
    await listen(conn, CHANNEL)
    cur = await conn.cursor(row_factory=dict_row).execute(
        f"SELECT {_COLUMNS} FROM devices WHERE deleted_at IS NULL"  # noqa: S608
    )
    return list(await cur.fetchall())


async def listen(conn: AsyncConnection[Any], channel: str) -> None:
    """Notifications on `channel` come to `conn` (autocommit) from now on."""
    await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
