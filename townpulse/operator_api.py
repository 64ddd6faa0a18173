"""The operator API as the command line reaches it: the stack's addresses and the admin key
from `.run/stack.env`, one request, its JSON or a clean exit with the API's answer."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import typer

from townpulse.stack import Stack, read_env_file


def load_stack_env() -> dict[str, str]:
    """Values from `.run/stack.env`; the process environment wins."""
    run_dir = Path(os.environ.get("TOWNPULSE_RUN_DIR", Stack().run))
    try:
        env = read_env_file(run_dir / "stack.env")
    except PermissionError:
        # A systemd unit's unprivileged user (the simulator's): its unit's environment holds
        # what it needs, the file (root's, 0600) is not for it.
        env = {}
    for k, v in env.items():
        os.environ.setdefault(k, v)
    return {**env, **{k: os.environ[k] for k in env if k in os.environ}}


def client(*, timeout: float = 30) -> httpx.Client:
    env = load_stack_env()
    if "API_URL" not in env:
        raise typer.BadParameter("no stack.env: run `townpulse up` first (or set API_URL)")
    key = Path(env["ADMIN_API_KEY_FILE"]).read_text().strip()
    return httpx.Client(
        base_url=env["API_URL"], headers={"Authorization": f"Bearer {key}"}, timeout=timeout
    )


def call(
    method: str,
    path: str,
    *,
    ok: tuple[int, ...] = (200,),
    connect: Callable[[], httpx.Client] = client,
    **kwargs: Any,
) -> Any:
    """One request to the operator API: its JSON body (None for 204), or exit 1 with the
    API's answer on stderr."""
    with connect() as api:
        r = api.request(method, path, **kwargs)
    if r.status_code not in ok:
        typer.echo(f"error {r.status_code}: {r.text}", err=True)
        raise typer.Exit(1)
    return None if r.status_code == 204 else r.json()
