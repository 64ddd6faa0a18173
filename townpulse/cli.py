"""`townpulse`: run the local stack, manage devices, simulate a town."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Annotated

import httpx
import typer
from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from townpulse.stack import Stack, StackError, read_env_file

app = typer.Typer(help="TownPulse: a small town's sensor platform.", no_args_is_help=True)
devices = typer.Typer(help="Register, list and remove devices (through the operator API).")
app.add_typer(devices, name="devices")


def _load_stack_env() -> dict[str, str]:
    """Values from `.run/stack.env`; the process environment wins."""
    run_dir = Path(os.environ.get("TOWNPULSE_RUN_DIR", Stack().run))
    env = read_env_file(run_dir / "stack.env")
    for k, v in env.items():
        os.environ.setdefault(k, v)
    return {**env, **{k: os.environ[k] for k in env if k in os.environ}}


def _api(*, timeout: float = 30) -> httpx.Client:
    env = _load_stack_env()
    if "API_URL" not in env:
        raise typer.BadParameter("no stack.env: run `townpulse up` first (or set API_URL)")
    key = Path(env["ADMIN_API_KEY_FILE"]).read_text().strip()
    return httpx.Client(
        base_url=env["API_URL"], headers={"Authorization": f"Bearer {key}"}, timeout=timeout
    )


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s")
    # Subcommands read their defaults (API_URL, MQTT_HOST...) from the environment.
    _load_stack_env()


@app.command()
def up(
    sim: Annotated[bool, typer.Option(envvar="SIM", help="Start the town simulator too.")] = True,
) -> None:
    """Start PostgreSQL, Kafka, Mosquitto and every service; wait until all are healthy."""
    stack = Stack()
    if sim:
        # The simulated town's trucks leave from its depot, unless the town configured its own.
        from townpulse.simulator import build_town

        lat, lon = build_town(energy=0, waste=0, traffic=0).depot
        os.environ.setdefault("TOWNPULSE_DEPOT", f"{lat},{lon}")
    try:
        stack.up()
        if sim:
            stack.start_simulator()
    except StackError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    _print_status(stack)
    typer.echo(f"\nEverything is listed in {stack.stack_env_file}")
    typer.echo(f"Admin API key: {stack.admin_key_file}")
    typer.echo(f"Console: http://127.0.0.1:{stack.s.api_port}/ (sign in with the admin API key)")


class BootstrapSettings(BaseSettings):
    """What `townpulse bootstrap` needs when it runs outside the local stack (docker-compose)."""

    model_config = SettingsConfigDict(env_prefix="TOWNPULSE_", extra="ignore")

    database_url: SecretStr
    kafka_bootstrap: str
    mqtt_host: str
    mqtt_port: int = 1883
    mqtt_admin_password: SecretStr
    mqtt_gateway_password: SecretStr
    admin_api_key_file: Path


@app.command()
def bootstrap() -> None:
    """Migrations, Kafka topics, MQTT identities, first admin key (from TOWNPULSE_* variables)."""
    from townpulse import bootstrap as steps

    s = BootstrapSettings()  # type: ignore[call-arg]
    created = steps.run_all(
        database_url=s.database_url.get_secret_value(),
        kafka_bootstrap=s.kafka_bootstrap,
        mqtt_host=s.mqtt_host,
        mqtt_port=s.mqtt_port,
        mqtt_admin_password=s.mqtt_admin_password.get_secret_value(),
        mqtt_gateway_password=s.mqtt_gateway_password.get_secret_value(),
        admin_key_file=s.admin_api_key_file,
    )
    if created:
        typer.echo(f"Admin API key created: {s.admin_api_key_file} (mode 0600)")


@app.command()
def down() -> None:
    """Stop everything the stack started (data is kept)."""
    Stack().down()


@app.command()
def restart(service: Annotated[str, typer.Argument(help="gateway, storage, api, ...")]) -> None:
    """Stop one service (by its pid) and start it again with the current code."""
    stack = Stack()
    try:
        stack.restart(service)
    except (StackError, StopIteration) as exc:
        typer.echo(f"error: cannot restart {service!r}: {exc}", err=True)
        raise typer.Exit(1) from exc


@app.command()
def status() -> None:
    """Each component: up/down, pid, port."""
    _print_status(Stack())


def _print_status(stack: Stack) -> None:
    typer.echo(f"{'component':<12} {'state':<20} {'pid':>8}  {'port':<6} restarts")
    for row in stack.status():
        typer.echo(
            f"{row['name']!s:<12} {row['state']!s:<20} {row['pid'] or '-'!s:>8}  "
            f"{row['port'] or '-'!s:<6} {row.get('restarts', '-')}"
        )
    typer.echo(f"\nstorage backend: {stack.storage_backend()}")
    typer.echo(f"mqtt broker: {stack.mqtt_broker()}")


@app.command()
def logs(
    component: Annotated[str | None, typer.Argument(help="Only this component.")] = None,
    lines: Annotated[int, typer.Option("--lines", "-n")] = 40,
) -> None:
    """The last lines of each component's log."""
    stack = Stack()
    for path in sorted(stack.logs.glob("*.log")):
        if component and path.stem != component:
            continue
        typer.echo(f"==> {path} <==")
        typer.echo("\n".join(path.read_text(errors="replace").splitlines()[-lines:]))


@app.command("tls")
def tls_files(
    out_dir: Annotated[Path, typer.Argument(help="Where ca.crt, server.crt, server.key go.")],
    ca_key: Annotated[Path, typer.Option(help="The CA's private key (made if missing).")],
    host: Annotated[list[str], typer.Option(help="A name devices dial (repeatable).")],
    owner_uid: Annotated[
        int | None, typer.Option(help="Give server.key to this uid (the broker's user).")
    ] = None,
) -> None:
    """Make the MQTT broker's CA (once) and server certificate (docker-compose's tls-init)."""
    from townpulse import tls

    files = tls.ensure_server_cert(
        ca_cert_path=out_dir / "ca.crt", ca_key_path=ca_key, out_dir=out_dir, hosts=host
    )
    if owner_uid is not None:
        for path in (files.server_cert, files.server_key):
            os.chown(path, owner_uid, owner_uid)
    typer.echo(f"CA certificate (give it to devices): {files.ca_cert}")


@devices.command("add")
def devices_add(
    device_id: Annotated[str, typer.Argument(help="Unique id, e.g. bin-017")],
    domain: Annotated[str, typer.Option(help="energy, waste or traffic")],
    name: Annotated[str | None, typer.Option()] = None,
    lat: Annotated[float | None, typer.Option()] = None,
    lon: Annotated[float | None, typer.Option()] = None,
) -> None:
    """Register a device and print its MQTT credentials (shown once)."""
    body: dict[str, object] = {"id": device_id, "domain": domain, "name": name}
    if lat is not None and lon is not None:
        body["location"] = {"lat": lat, "lon": lon}
    with _api() as api:
        r = api.post("/v1/devices", json=body)
    if r.status_code != 201:
        typer.echo(f"error {r.status_code}: {r.text}", err=True)
        raise typer.Exit(1)
    typer.echo(json.dumps(r.json(), indent=2))


@devices.command("list")
def devices_list() -> None:
    """List registered devices."""
    page = 1000
    with _api() as api:
        offset, total = 0, 1
        while offset < total:
            r = api.get("/v1/devices", params={"limit": page, "offset": offset})
            r.raise_for_status()
            body = r.json()
            for d in body["items"]:
                typer.echo(f"{d['id']:<24} {d['domain']:<8} {d.get('name') or ''}")
            total, offset = body["total"], offset + page


@devices.command("remove")
def devices_remove(
    device_id: str,
    erase: Annotated[bool, typer.Option(help="Also erase every row that names it.")] = False,
    aggregates: Annotated[
        bool, typer.Option(help="With --erase: erase its aggregates too (else anonymised).")
    ] = False,
) -> None:
    """Remove a device and revoke its MQTT access (its readings are kept unless --erase)."""
    params = {"erase": "true", "aggregates": str(aggregates).lower()} if erase else {}
    with _api() as api:
        r = api.delete(f"/v1/devices/{device_id}", params=params)
    if r.status_code not in (200, 204):
        typer.echo(f"error {r.status_code}: {r.text}", err=True)
        raise typer.Exit(1)
    if r.status_code == 200:
        typer.echo(json.dumps(r.json(), indent=2))


@devices.command("import")
def devices_import(
    csv_file: Annotated[
        Path, typer.Argument(help="CSV with a header row: id,domain,name,lat,lon[,metadata]")
    ],
    out: Annotated[
        Path | None,
        typer.Option(help="Where new credentials go (mode 0600); default FILE.credentials.csv"),
    ] = None,
    chunk: Annotated[int, typer.Option(min=1, max=10_000, help="Rows per request.")] = 500,
) -> None:
    """Register every device of a CSV file; new credentials (shown once) go to --out."""
    from townpulse import device_import

    out = out or csv_file.with_suffix(".credentials.csv")
    try:
        header, rows = device_import.read_csv(csv_file)
    except (OSError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    # Generous: the broker takes a few seconds per hundred devices once it holds thousands.
    with _api(timeout=600) as api:
        try:
            summary = device_import.import_rows(api, header=header, rows=rows, out=out, chunk=chunk)
        except device_import.ImportFailed as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from exc
    for line in summary.errors:
        typer.echo(line, err=True)
    typer.echo(
        f"{summary.created} created, {summary.exists} already registered, "
        f"{len(summary.errors)} errors; new credentials in {out}"
    )
    if summary.errors:
        raise typer.Exit(1)


def _mount_commands() -> None:
    from townpulse.evaluate import evaluate
    from townpulse.simulator.cli import simulate

    app.command("simulate", help="Register and run a simulated town's devices.")(simulate)
    app.command("evaluate", help="Check the models on a town's own history (a CSV).")(evaluate)


_mount_commands()
