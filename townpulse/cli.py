"""`townpulse`: run the local stack, manage devices, simulate a town."""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from townpulse import operator_api
from townpulse.stack import Stack, StackError

app = typer.Typer(help="TownPulse: a small town's sensor platform.", no_args_is_help=True)
devices = typer.Typer(help="Register, list and remove devices (through the operator API).")
app.add_typer(devices, name="devices")
integrations = typer.Typer(
    help="Network servers (ChirpStack, The Things Stack) and brokers TownPulse hears sensors "
    "through.",
    no_args_is_help=True,
)
app.add_typer(integrations, name="integrations")
codecs = typer.Typer(help="Vendors' payload decoders (TTN codec format).", no_args_is_help=True)
app.add_typer(codecs, name="codecs")
profiles = typer.Typer(help="Device profiles: decoded fields to metrics.", no_args_is_help=True)
app.add_typer(profiles, name="profiles")
backup = typer.Typer(
    help="Encrypted backups of the database and the stack's files (docs/operations.md).",
    no_args_is_help=True,
)
app.add_typer(backup, name="backup")


_load_stack_env = operator_api.load_stack_env
_api = operator_api.client


def _call(method: str, path: str, *, ok: tuple[int, ...] = (200,), **kwargs: Any) -> Any:
    # `_api` looked up at each call: the CLI's tests put a fake API in its place.
    return operator_api.call(method, path, ok=ok, connect=lambda: _api(), **kwargs)


def _echo_json(body: Any) -> None:
    typer.echo(json.dumps(body, indent=2))


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
        from townpulse.simulator.town import build_town

        town = build_town(energy=0, traffic=0)
        lat, lon = town.depot
        os.environ.setdefault("TOWNPULSE_DEPOT", f"{lat},{lon}")
        # ... and its plans are compared with its own fixed schedule (docs/report.md).
        os.environ.setdefault("TOWNPULSE_FIXED_VISITS_PER_WEEK", str(town.fixed_visits_per_week))
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
    typer.echo(
        f"Over HTTPS: {stack.services.api_url(https=True)}/ (the stack's CA: {stack.ca_cert_file})"
    )


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
    # How many gateway instances get an MQTT identity (`gateway-1`...).
    gateways: int = 1
    # Each service role's password (docker-compose: one .env variable each), as JSON:
    # {"townpulse_api": "...", ...}.
    role_passwords: dict[str, SecretStr] = {}


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
        gateways=s.gateways,
        role_passwords={k: v.get_secret_value() for k, v in s.role_passwords.items()},
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


@app.command()
def report(
    start: Annotated[str, typer.Option("--from", help="first day, YYYY-MM-DD (town's calendar)")],
    end: Annotated[str, typer.Option("--to", help="day after the last, YYYY-MM-DD (excluded)")],
    lang: Annotated[str, typer.Option("--lang", help="fr or en")] = "fr",
    out: Annotated[
        Path | None, typer.Option("--out", help="where to write the PDF (default: its id)")
    ] = None,
) -> None:
    """Make (or fetch the archived) report of a period and save its PDF (docs/report.md)."""
    made = _call(
        "POST", "/v1/reports", ok=(200, 201), json={"start": start, "end": end, "lang": lang}
    )
    # Making a year's report takes seconds of the API's CPU: a generous wait.
    with _api(timeout=300) as api:
        r = api.get(made["pdf_url"])
    if r.status_code != 200:
        typer.echo(f"error {r.status_code}: {r.text}", err=True)
        raise typer.Exit(1)
    path = out or Path(f"townpulse-{made['id']}.pdf")
    path.write_bytes(r.content)
    typer.echo(f"{path} ({len(r.content)} bytes, sha256 {made['sha256']})")


@app.command("tls")
def tls_files(
    out_dir: Annotated[Path, typer.Argument(help="Where ca.crt, server.crt, server.key go.")],
    ca_key: Annotated[Path, typer.Option(help="The CA's private key (made if missing).")],
    host: Annotated[list[str], typer.Option(help="A name clients dial (repeatable).")],
    owner_uid: Annotated[
        int | None, typer.Option(help="Give server.key to this uid (the server's user).")
    ] = None,
    ca_cert: Annotated[
        Path | None,
        typer.Option(help="The CA's certificate, if not OUT_DIR/ca.crt (a second server's)."),
    ] = None,
) -> None:
    """Make the stack's CA (once) and a server certificate signed by it: the MQTT broker's and
    the operator API's (docker-compose's tls-init and api-tls-init)."""
    from townpulse import tls

    files = tls.ensure_server_cert(
        ca_cert_path=ca_cert or out_dir / "ca.crt", ca_key_path=ca_key, out_dir=out_dir, hosts=host
    )
    if owner_uid is not None:
        for path in (files.server_cert, files.server_key):
            os.chown(path, owner_uid, owner_uid)
    typer.echo(f"CA certificate (give it to devices): {files.ca_cert}")


@devices.command("add")
def devices_add(
    device_id: Annotated[
        str | None,
        typer.Argument(help="Unique id, e.g. bin-017 (default: eui-<DevEUI> or the external id)"),
    ] = None,
    domain: Annotated[
        str | None, typer.Option(help="energy, waste or traffic (default: the profile's)")
    ] = None,
    name: Annotated[str | None, typer.Option()] = None,
    lat: Annotated[float | None, typer.Option()] = None,
    lon: Annotated[float | None, typer.Option()] = None,
    dev_eui: Annotated[
        str | None, typer.Option(help="LoRaWAN DevEUI (16 hex digits): heard via a network server")
    ] = None,
    external_id: Annotated[
        str | None, typer.Option(help="The id its vendor's cloud or its own JSON names it by")
    ] = None,
    profile: Annotated[
        str | None, typer.Option(help="Device profile (`townpulse profiles list`)")
    ] = None,
    metadata: Annotated[
        str | None,
        typer.Option(help="Its settings as JSON, e.g. '{\"bin_depth_mm\": 1200}'"),
    ] = None,
) -> None:
    """Register a device and print its MQTT credentials (shown once; none with a DevEUI)."""
    given = {
        "id": device_id,
        "domain": domain,
        "name": name,
        "dev_eui": dev_eui,
        "external_id": external_id,
        "profile": profile,
    }
    body: dict[str, object] = {k: v for k, v in given.items() if v is not None}
    if lat is not None and lon is not None:
        body["location"] = {"lat": lat, "lon": lon}
    if metadata is not None:
        body["metadata"] = _json_object(metadata, "--metadata")
    _echo_json(_call("POST", "/v1/devices", ok=(201,), json=body))


@devices.command("set")
def devices_set(
    device_id: str,
    name: Annotated[str | None, typer.Option()] = None,
    metadata: Annotated[
        str | None,
        typer.Option(help="Its settings as JSON, replacing the old: '{\"bin_depth_mm\": 1200}'"),
    ] = None,
    profile: Annotated[str | None, typer.Option(help="Another profile of its domain")] = None,
) -> None:
    """Change a device's name, settings or profile; the gateway applies them to its next uplink."""
    body: dict[str, object] = {}
    if name is not None:
        body["name"] = name
    if metadata is not None:
        body["metadata"] = _json_object(metadata, "--metadata")
    if profile is not None:
        body["profile"] = profile
    if not body:
        raise typer.BadParameter("nothing to change: give --name, --metadata or --profile")
    _echo_json(_call("PATCH", f"/v1/devices/{device_id}", json=body))


def _json_object(text: str, option: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"{option}: not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise typer.BadParameter(f"{option}: a JSON object, e.g. '{{\"bin_depth_mm\": 1200}}'")
    return value


@devices.command("ingest-token")
def devices_ingest_token(device_id: str) -> None:
    """Issue a token for HTTP push (shown once); the device's earlier token stops working."""
    token = _call("POST", f"/v1/devices/{device_id}/ingest-token", ok=(201,))
    typer.echo(token["token"])
    typer.echo(
        f"POST it to /v1/ingest/devices/{device_id} as `Authorization: Bearer <token>`", err=True
    )


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
                heard_as = d.get("dev_eui") or d.get("external_id") or ""
                typer.echo(
                    f"{d['id']:<24} {d['domain']:<8} {d.get('profile') or '':<24} "
                    f"{heard_as:<20} {d.get('name') or ''}"
                )
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
        Path,
        typer.Argument(
            help="CSV with a header row: id,domain,name,lat,lon[,metadata,dev_eui,external_id,"
            "profile] (id may be left out with a dev_eui, domain with a profile)"
        ),
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
    if summary.without_credentials:
        typer.echo(
            f"{summary.without_credentials} devices with a DevEUI need none "
            "(their network server forwards their uplinks)"
        )
    if summary.errors:
        raise typer.Exit(1)


@integrations.command("add")
def integrations_add(
    integration_id: Annotated[str, typer.Argument(help="Lower-case id, e.g. town-chirpstack")],
    kind: Annotated[str, typer.Option(help="chirpstack, tts or mqtt_json")],
    transport: Annotated[
        str, typer.Option(help="mqtt (TownPulse subscribes) or http (the server posts)")
    ] = "mqtt",
    name: Annotated[str | None, typer.Option()] = None,
    mqtt_host: Annotated[str | None, typer.Option(help="The network server's broker")] = None,
    mqtt_port: Annotated[int | None, typer.Option()] = None,
    mqtt_tls: Annotated[bool, typer.Option(help="Connect with TLS")] = False,
    mqtt_username: Annotated[str | None, typer.Option()] = None,
    mqtt_password: Annotated[
        str | None,
        typer.Option(
            envvar="TOWNPULSE_INTEGRATION_MQTT_PASSWORD",
            help="Better from the environment than on the command line",
        ),
    ] = None,
    ca_file: Annotated[
        Path | None, typer.Option(help="PEM CA certificate of the broker's TLS certificate")
    ] = None,
    topic: Annotated[str | None, typer.Option(help="Topic filter (default: the kind's)")] = None,
    application: Annotated[
        str | None,
        typer.Option(help="ChirpStack application id, or TTS app@tenant: others are refused"),
    ] = None,
    profile: Annotated[str | None, typer.Option(help="mqtt_json: the devices' profile")] = None,
) -> None:
    """Add an integration; with --transport http, print the secret the server must send."""
    given: dict[str, object | None] = {
        "id": integration_id,
        "kind": kind,
        "transport": transport,
        "name": name,
        "mqtt_host": mqtt_host,
        "mqtt_port": mqtt_port,
        "mqtt_tls": mqtt_tls,
        "mqtt_username": mqtt_username,
        "mqtt_password": mqtt_password,
        "ca_certificate": ca_file.read_text() if ca_file is not None else None,
        "topic": topic,
        "application": application,
        "profile": profile,
    }
    body = {k: v for k, v in given.items() if v is not None}
    _echo_json(_call("POST", "/v1/integrations", ok=(201,), json=body))


@integrations.command("list")
def integrations_list() -> None:
    """Each integration: kind, transport, state, last uplink, uplinks and errors this hour."""
    typer.echo(
        f"{'id':<24} {'kind':<11} {'transport':<9} {'state':<12} {'last uplink':<25} "
        "uplinks/h errors/h"
    )
    for i in _call("GET", "/v1/integrations"):
        st = i.get("status") or {}
        state = _integration_state(i)
        typer.echo(
            f"{i['id']:<24} {i['kind']:<11} {i['transport']:<9} {state:<12} "
            f"{st.get('last_uplink_at') or '-':<25} {st.get('uplinks_last_hour', 0):>9} "
            f"{st.get('errors_last_hour', 0):>8}"
        )
        if st.get("last_error"):
            typer.echo(f"  last error ({st.get('last_error_at')}): {st['last_error']}")
        if i.get("ingest_path"):
            typer.echo(f"  the network server posts to: <API_URL>{i['ingest_path']}")


def _integration_state(integration: dict[str, Any]) -> str:
    if not integration.get("enabled", True):
        return "disabled"
    if integration["transport"] == "http":
        return "http push"  # nothing to connect to: the server posts
    connected = (integration.get("status") or {}).get("connected")
    return "connected" if connected else "disconnected"


@integrations.command("remove")
def integrations_remove(integration_id: str) -> None:
    """Remove an integration (TownPulse stops listening to it at once)."""
    _call("DELETE", f"/v1/integrations/{integration_id}", ok=(204,))


@integrations.command("test")
def integrations_test(integration_id: str) -> None:
    """Connect to the integration's broker with its settings (exit 1 if that fails)."""
    result = _call("POST", f"/v1/integrations/{integration_id}/test")
    typer.echo(f"{'ok' if result['ok'] else 'failed'}: {result['detail']}")
    if not result["ok"]:
        raise typer.Exit(1)


@codecs.command("import")
def codecs_import(
    path: Annotated[
        str,
        typer.Argument(
            help="A path in the Device Repository (vendor/device, e.g. milesight-iot/em310-udl), "
            "or a local .js file with decodeUplink()"
        ),
    ],
    name: Annotated[
        str | None, typer.Option(help="A .js file's codec name (default: the file's name)")
    ] = None,
    examples: Annotated[
        Path | None,
        typer.Option(help="A .js file's test vectors: JSON [{f_port, bytes, output}, ...]"),
    ] = None,
) -> None:
    """Add a codec (a new version if its name exists) and print it."""
    script = Path(path)
    if path.endswith(".js") and script.is_file():
        body: dict[str, object] = {
            "name": name or script.stem.lower(),
            "script": script.read_text(encoding="utf-8"),
        }
        if examples is not None:
            body["examples"] = json.loads(examples.read_text(encoding="utf-8"))
        _echo_json(_call("POST", "/v1/codecs", ok=(201,), json=body))
    else:
        _echo_json(_call("POST", "/v1/codecs/import", ok=(201,), json={"path": path}))


@codecs.command("list")
def codecs_list() -> None:
    """Every codec version: name, version, where it came from, test vectors, SHA-256."""
    typer.echo(f"{'name':<32} {'version':>7} {'source':<36} {'examples':>8}  sha256")
    for c in _call("GET", "/v1/codecs"):
        typer.echo(
            f"{c['name']:<32} {c['version']:>7} {c.get('source') or '':<36} "
            f"{c.get('examples', 0):>8}  {c['sha256'][:16]}"
        )


@profiles.command("list")
def profiles_list() -> None:
    """Every device profile: its domain, its codec, whether TownPulse ships it."""
    typer.echo(f"{'name':<32} {'domain':<8} {'codec':<32} shipped")
    for p in _call("GET", "/v1/profiles"):
        typer.echo(
            f"{p['name']:<32} {p['domain']:<8} {p.get('codec') or '-':<32} "
            f"{'yes' if p.get('shipped') else 'no'}"
        )


@backup.command("run")
def backup_run(
    kind: Annotated[
        str | None,
        typer.Option(help="full, diff or incr (default: full once a week, else diff)"),
    ] = None,
) -> None:
    """Back up now: the database (pgBackRest) and the files; verify; print the report."""
    from townpulse.backup import operations

    if kind is not None and kind not in operations.KINDS:
        raise typer.BadParameter("--kind: full, diff or incr")
    report = operations.run_backup(Stack(), kind=operations.KINDS[kind] if kind else None)
    _echo_json(report)
    if not report["ok"] or not report["verified"]:
        raise typer.Exit(1)


@backup.command("list")
def backup_list(
    from_dir: Annotated[
        Path | None, typer.Option("--from", help="Another backup directory (default: the stack's)")
    ] = None,
    passphrase_file: Annotated[
        Path | None,
        typer.Option(help="With --from: the file holding that backup's passphrase"),
    ] = None,
) -> None:
    """Every backup: label, kind, when, database and repository sizes, files archive."""
    from townpulse.backup import operations

    stack = Stack()
    passphrase = _passphrase(passphrase_file, stack) if from_dir is not None else None
    try:
        rows = operations.list_backups(stack, backup_dir=from_dir, passphrase=passphrase)
    except StackError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"{'label':<36} {'kind':<5} {'finished (UTC)':<26} {'db MB':>9} {'stored MB':>10}")
    for r in rows:
        typer.echo(
            f"{r['label']:<36} {r['kind']:<5} {r['finished_at']:<26} "
            f"{r['database_bytes'] / 1e6:>9.1f} {r['repository_bytes'] / 1e6:>10.1f}"
            f"{'' if r['files_archive'] else '  (no files archive)'}"
        )


@backup.command("verify")
def backup_verify() -> None:
    """Check that WAL reaches the repository, every stored file's checksum, every files archive."""
    from townpulse.backup import operations

    result = operations.verify(Stack())
    _echo_json(result)
    if not result["ok"]:
        raise typer.Exit(1)


def _passphrase(passphrase_file: Path | None, stack: Stack) -> str:
    if passphrase_file is not None:
        return passphrase_file.read_text().strip()
    if os.environ.get("TOWNPULSE_BACKUP_PASSPHRASE"):
        return os.environ["TOWNPULSE_BACKUP_PASSPHRASE"]
    own = stack.secrets_dir / "backup-passphrase"
    # A restored run directory's own is the backup's: what `restore --force` needs again.
    if own.exists():
        return own.read_text().strip()
    value: str = typer.prompt("Backup passphrase", hide_input=True)
    return value.strip()


@app.command()
def restore(
    from_dir: Annotated[Path, typer.Option("--from", help="The backup directory")],
    to_time: Annotated[
        datetime | None,
        typer.Option(
            "--to-time",
            formats=[
                "%Y-%m-%dT%H:%M:%S.%f%z",
                "%Y-%m-%dT%H:%M:%S%z",
                "%Y-%m-%d %H:%M:%S%z",
                "%Y-%m-%dT%H:%M:%S",
            ],
            help="Restore the database as it was at this moment (ISO 8601; UTC if no offset)",
        ),
    ] = None,
    passphrase_file: Annotated[
        Path | None,
        typer.Option(
            help="File holding the backup passphrase (else TOWNPULSE_BACKUP_PASSPHRASE,"
            " the run directory's own, or a prompt)"
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option(help="Replace the stack (stopped first) and data of this run directory")
    ] = False,
    start: Annotated[
        bool,
        typer.Option(
            help="Start the whole stack afterwards (--no-start: PostgreSQL only, to look)"
        ),
    ] = True,
) -> None:
    """Restore a backup into this run directory (TOWNPULSE_RUN_DIR) and start the stack."""
    from townpulse.backup import operations

    stack = Stack()
    if to_time is not None and to_time.tzinfo is None:
        to_time = to_time.replace(tzinfo=UTC)
    try:
        result = operations.restore(
            stack,
            from_dir=from_dir,
            passphrase=_passphrase(passphrase_file, stack),
            to_time=to_time,
            force=force,
            start=start,
        )
    except (operations.BackupError, StackError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    _echo_json(result)


@app.command()
def upgrade(
    rollback: Annotated[
        bool,
        typer.Option(
            help="Restore the backup the last upgrade took (after reinstalling the"
            " previous release)"
        ),
    ] = False,
) -> None:
    """Back up, apply the migrations and restart in order; roll back by itself on a failure."""
    from townpulse.backup import operations

    stack = Stack()
    try:
        result = operations.rollback(stack) if rollback else operations.upgrade(stack)
    except (operations.BackupError, StackError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    _echo_json(result)


def _mount_commands() -> None:
    from townpulse.evaluate import evaluate
    from townpulse.service.commands import app as service
    from townpulse.simulator.cli import simulate

    app.add_typer(service, name="service")
    app.command("simulate", help="Register and run a simulated town's devices.")(simulate)
    app.command("evaluate", help="Check the models on a town's own history (a CSV).")(evaluate)


_mount_commands()
