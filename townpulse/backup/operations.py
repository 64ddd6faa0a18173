"""Back up, verify, restore and upgrade the stack (`townpulse backup|restore|upgrade`).

A backup is a pgBackRest backup of PostgreSQL (full or differential; WAL is archived all the
time by PostgreSQL itself) and a files archive (townpulse/backup/archive.py) named after it, in
`TOWNPULSE_BACKUP_DIR`. Each run writes a report beside them and `<run_dir>/backup-status.json`,
which the early warnings read.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from townpulse.backup import archive
from townpulse.stack import INFRA, SERVICES, Stack, StackError
from townpulse.stack.pgbackrest import PASSPHRASE

Kind = Literal["full", "diff", "incr"]
KINDS: dict[str, Kind] = {"full": "full", "diff": "diff", "incr": "incr"}
# A full backup a week (the rest differentials): older than this, the next automatic one is full.
FULL_EVERY = timedelta(days=7) - timedelta(hours=2)
STATUS_FILE = "backup-status.json"
UPGRADE_FILE = "upgrade.json"
# Settings worth keeping for a new machine; anything that looks like a secret stays out (the
# secrets that matter are in the run directory's secrets folder, packed on their own).
_SECRET_WORDS = ("PASSWORD", "SECRET", "TOKEN", "KEY", "PASSPHRASE", "DATABASE_URL")


class BackupError(RuntimeError):
    pass


class RestoreRefused(BackupError):
    pass


@dataclass(frozen=True)
class Layout:
    """Where things go in a backup directory."""

    root: Path

    @property
    def files(self) -> Path:
        return self.root / "files"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    def files_archive(self, label: str) -> Path:
        return self.files / f"{label}.tpfiles"

    def report(self, label: str) -> Path:
        return self.reports / f"{label}.json"


def _now() -> datetime:
    return datetime.now(UTC)


def _write_json(path: Path, value: dict[str, Any], *, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        json.dump(value, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


# ---- what is packed ---------------------------------------------------------------------------


def _members(stack: Stack) -> list[archive.Member]:
    out: list[archive.Member] = []
    if stack.secrets_dir.is_dir():
        out += [
            archive.Member(p, f"run/secrets/{p.name}")
            for p in sorted(stack.secrets_dir.iterdir())
            if p.is_file() and p.name != PASSPHRASE
        ]
    tls = stack.ca_cert_file.parent
    if tls.is_dir():
        out += [
            archive.Member(p, f"run/tls/{p.name}") for p in sorted(tls.iterdir()) if p.is_file()
        ]
    if stack.admin_key_file.is_file():
        out.append(archive.Member(stack.admin_key_file, "run/admin-api-key"))
    mosquitto = stack.procs.data_dir("mosquitto", "mosquitto")
    # Its configuration and server certificate are made again at start from the settings.
    out += [
        archive.Member(p, f"mosquitto/{p.name}")
        for p in sorted(mosquitto.iterdir())
        if p.is_file() and p.name != "mosquitto.conf"
    ]
    return out


def _settings_env() -> str:
    lines = [
        f"{k}={v}"
        for k, v in sorted(os.environ.items())
        if k.startswith("TOWNPULSE_") and not any(w in k for w in _SECRET_WORDS)
    ]
    return "\n".join(lines) + "\n"


def kafka_cluster_id(stack: Stack) -> str | None:
    meta = stack.run / "data" / "kafka" / "meta.properties"
    if not meta.exists():
        return None
    for line in meta.read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "cluster.id":
            return value.strip()
    return None


def _revisions(url: str) -> list[str]:
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT version_num FROM alembic_version ORDER BY 1").fetchall()
    return [r[0] for r in rows]


# ---- backup ------------------------------------------------------------------------------------


def _auto_kind(backups: list[dict[str, Any]]) -> Kind:
    fulls = [b for b in backups if b.get("type") == "full"]
    if not fulls:
        return "full"
    last = datetime.fromtimestamp(fulls[-1]["timestamp"]["stop"], UTC)
    return "full" if _now() - last >= FULL_EVERY else "diff"


def run_backup(stack: Stack, *, kind: Kind | None = None) -> dict[str, Any]:
    """One backup (full, diff, or chosen: full weekly, else diff), verified; its report.

    Writes `<run_dir>/backup-status.json` whatever happens (ok false with the error on failure).
    """
    started = time.monotonic()
    backrest = stack.postgres.backrest
    layout = Layout(stack.s.backup_dir)
    passphrase, _ = backrest.passphrase()
    chosen: Kind = kind or "full"
    report: dict[str, Any] = {"repository": str(stack.s.backup_dir)}
    try:
        if not stack.pid("postgres"):
            raise BackupError("PostgreSQL is not running: `townpulse up` first")
        backrest.write_config()
        backrest.ensure_stanza()
        chosen = kind or _auto_kind(backrest.info())
        backrest.run("backup", f"--type={chosen}")
        newest = backrest.info()[-1]
        label = newest["label"]
        # pgBackRest makes a full backup of a differential asked with no full to refer to.
        chosen = KINDS.get(newest.get("type", chosen), chosen)
        layout.files.mkdir(parents=True, exist_ok=True)
        os.chmod(layout.files, 0o700)
        manifest = {
            "label": label,
            "created_at": _now().isoformat(),
            "host": socket.gethostname(),
            "run_dir": str(stack.run),
            "kafka_cluster_id": kafka_cluster_id(stack),
            "migrations": _revisions(stack.superuser_url("townpulse")),
        }
        env_file = stack.run / "settings.env"
        env_file.write_text(_settings_env())
        members = [*_members(stack), archive.Member(env_file, "settings.env")]
        files_size = archive.write(layout.files_archive(label), members, manifest, passphrase)
        pruned = _prune_files(layout, {b["label"] for b in backrest.info()})
        verification = verify(stack, labels=[label])
        report |= {
            "label": label,
            "kind": chosen,
            "ok": True,
            "database_size_bytes": newest["info"]["size"],
            "repository_bytes": newest["info"]["repository"]["delta"],
            "files_bytes": files_size,
            "size_bytes": int(newest["info"]["repository"]["delta"]) + files_size,
            "verified": verification["ok"],
            "verification": verification,
            "pruned_files_archives": pruned,
        }
    except (StackError, BackupError, archive.ArchiveError, OSError) as exc:
        report |= {"kind": chosen, "ok": False, "error": str(exc), "size_bytes": 0}
        report.setdefault("verified", False)
    report["duration_s"] = round(time.monotonic() - started, 2)
    report["finished_at"] = _now().isoformat()
    if "label" in report:
        _write_json(layout.report(report["label"]), report)
    # The early warnings' contract: exactly these keys.
    _write_json(
        stack.run / STATUS_FILE,
        {
            "finished_at": report["finished_at"],
            "ok": bool(report["ok"]),
            "kind": report["kind"],
            "size_bytes": int(report["size_bytes"]),
            "duration_s": float(report["duration_s"]),
            "verified": bool(report["verified"]),
            "repository": report["repository"],
        },
    )
    return report


def _prune_files(layout: Layout, kept: set[str]) -> list[str]:
    """Files archives whose database backup pgBackRest's retention expired go too."""
    gone = []
    for path in sorted(layout.files.glob("*.tpfiles")):
        if path.stem not in kept:
            path.unlink()
            layout.report(path.stem).unlink(missing_ok=True)
            gone.append(path.stem)
    return gone


def list_backups(
    stack: Stack, *, backup_dir: Path | None = None, passphrase: str | None = None
) -> list[dict[str, Any]]:
    """Every backup in the repository, oldest first: label, kind, times, sizes, files archive.
    Another machine's backup directory needs its passphrase."""
    layout = Layout(backup_dir or stack.s.backup_dir)
    backrest = stack.postgres.backrest
    config = None
    if backup_dir is not None:
        config = backrest.write_config(
            backup_dir=backup_dir,
            path=backrest.home / "pgbackrest-restore.conf",
            passphrase=passphrase,
        )
    rows = []
    for b in backrest.info(config=config):
        files = layout.files_archive(b["label"])
        rows.append(
            {
                "label": b["label"],
                "kind": b["type"],
                "started_at": datetime.fromtimestamp(b["timestamp"]["start"], UTC).isoformat(),
                "finished_at": datetime.fromtimestamp(b["timestamp"]["stop"], UTC).isoformat(),
                "database_bytes": b["info"]["size"],
                "repository_bytes": b["info"]["repository"]["delta"],
                "files_archive": files.name if files.exists() else None,
            }
        )
    return rows


def verify(stack: Stack, *, labels: list[str] | None = None) -> dict[str, Any]:
    """pgBackRest's `check` (WAL reaches the repository now) and `verify` (every file of the
    repository against its checksum), and each files archive decrypted and read."""
    backrest = stack.postgres.backrest
    layout = Layout(stack.s.backup_dir)
    passphrase, _ = backrest.passphrase()
    result: dict[str, Any] = {"ok": True}
    for step in ("check", "verify"):
        try:
            backrest.run(step)
            result[step] = "ok"
        except StackError as exc:
            result[step], result["ok"] = str(exc), False
    wanted = labels or [p.stem for p in sorted(layout.files.glob("*.tpfiles"))]
    files: dict[str, str] = {}
    for label in wanted:
        try:
            archive.read(layout.files_archive(label), passphrase)
            files[label] = "ok"
        except (archive.ArchiveError, OSError) as exc:
            files[label], result["ok"] = str(exc), False
    result["files_archives"] = files
    return result


# ---- restore -----------------------------------------------------------------------------------


def _choose_files(layout: Layout, *, label: str | None, to_time: datetime | None) -> Path:
    archives = sorted(layout.files.glob("*.tpfiles"))
    if not archives:
        raise BackupError(f"no files archive in {layout.files}: is it a TownPulse backup?")
    if label is not None:
        path = layout.files_archive(label)
        if not path.exists():
            raise BackupError(f"no files archive for backup {label}")
        return path

    def finished(path: Path) -> datetime:
        report = layout.report(path.stem)
        if report.exists():
            return datetime.fromisoformat(json.loads(report.read_text())["finished_at"])
        return datetime.fromtimestamp(path.stat().st_mtime, UTC)

    dated = sorted(archives, key=finished)
    if to_time is None:
        return dated[-1]
    # The newest taken before the target; devices registered after it still have their rows
    # but not their MQTT credentials (docs/operations.md).
    before = [p for p in dated if finished(p) <= to_time]
    return before[-1] if before else dated[0]


def _live(stack: Stack) -> list[str]:
    names = [*INFRA, *(n for spec in SERVICES for n in stack.services.instances(spec))]
    return [n for n in names if stack.pid(n)]


def _empty_dir(path: Path) -> None:
    for child in path.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def _write_secret(path: Path, data: bytes, *, owner: str | None = None) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    if owner:
        pw = pwd.getpwnam(owner)
        os.chown(path, pw.pw_uid, pw.pw_gid)


def restore(
    stack: Stack,
    *,
    from_dir: Path,
    passphrase: str,
    to_time: datetime | None = None,
    label: str | None = None,
    force: bool = False,
    start: bool = True,
    reason: str = "restore",
) -> dict[str, Any]:
    """Restore PostgreSQL (to the newest WAL, to `to_time`, or to the end of backup `label`)
    and the files, into the stack's run directory; then start the stack unless `start` is
    false. Refuses a run directory with a running stack or with data, unless `force`."""
    started = time.monotonic()
    live = _live(stack)
    pg_data = stack.run / "data" / "postgres"
    has_data = (pg_data / "PG_VERSION").exists() or (
        stack.secrets_dir / "postgres-superuser"
    ).exists()
    if (live or has_data) and not force:
        what = f"a running stack ({', '.join(live)})" if live else "a stack's data"
        raise RestoreRefused(
            f"{stack.run} holds {what}: restore into a fresh run directory "
            "(TOWNPULSE_RUN_DIR), or add --force to replace it"
        )
    layout = Layout(from_dir)
    files_path = _choose_files(layout, label=label, to_time=to_time)
    files = archive.read(files_path, passphrase)
    manifest = archive.manifest_of(files)
    if live:
        stack.down()

    stack.run.mkdir(parents=True, exist_ok=True)
    os.chmod(stack.run, 0o711)  # noqa: S103 - as `up` does: daemons traverse, nobody lists
    # The same Kafka as the backup's, and no point in time: consumers resume from the offsets
    # the database holds, so the readings Kafka kept and the database had not are stored again.
    # Otherwise Kafka starts empty and the stored offsets, which name another log, are dropped.
    keep_kafka = to_time is None and kafka_cluster_id(stack) == manifest.get("kafka_cluster_id")
    if not keep_kafka and (stack.run / "data" / "kafka").exists():
        shutil.rmtree(stack.run / "data" / "kafka")

    # Files first: the database passwords in the secrets are the restored cluster's.
    stack.secrets_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(stack.secrets_dir, 0o700)
    _write_secret(stack.secrets_dir / PASSPHRASE, passphrase.encode() + b"\n")
    (stack.ca_cert_file.parent).mkdir(parents=True, exist_ok=True)
    mosquitto = stack.procs.data_dir("mosquitto", "mosquitto")
    _empty_dir(mosquitto)
    for name, data in files.items():
        top, _, rest = name.partition("/")
        if name == "run/admin-api-key":
            _write_secret(stack.admin_key_file, data)
        elif top == "run" and rest.startswith("secrets/"):
            _write_secret(stack.secrets_dir / Path(rest).name, data)
        elif top == "run" and rest.startswith("tls/"):
            target = stack.ca_cert_file.parent / Path(rest).name
            target.write_bytes(data)
        elif top == "mosquitto":
            _write_secret(mosquitto / Path(rest).name, data, owner="mosquitto")
    (stack.run / "settings.env.restored").write_bytes(files.get("settings.env", b""))

    # PostgreSQL, from the backup directory given (the stack archives to its own afterwards).
    pg_data = stack.postgres.data
    _empty_dir(pg_data)
    backrest = stack.postgres.backrest
    conf = backrest.write_config(
        backup_dir=from_dir, path=backrest.home / "pgbackrest-restore.conf", passphrase=passphrase
    )
    fetch = f'pgbackrest --config={conf} --stanza=townpulse archive-get %f "%p"'
    args = ["restore", f"--recovery-option=restore_command={fetch}"]
    if to_time is not None:
        when = to_time.astimezone(UTC).isoformat(sep=" ")
        args += ["--type=time", f"--target={when}", "--target-action=promote"]
    elif label is not None:
        args += [f"--set={label}", "--type=immediate", "--target-action=promote"]
    backrest.run(*args, config=conf)
    stack.postgres.start()
    _after_restore(
        stack,
        detail={
            "reason": reason,
            "from": str(from_dir),
            "to_time": to_time.isoformat() if to_time else None,
            "set": label,
            "files_archive": files_path.name,
            "backup_host": manifest.get("host"),
            "kafka": "kept" if keep_kafka else "new, stored offsets dropped",
        },
        reset_offsets=not keep_kafka,
    )
    if start:
        stack.up()
    return {
        "run_dir": str(stack.run),
        "files_archive": files_path.name,
        "kafka": "kept" if keep_kafka else "new",
        "duration_s": round(time.monotonic() - started, 2),
    }


def _resign_without_offsets(conn: Any, stack: Stack) -> None:
    """Checkpoints resume from offset 0 of the new Kafka: their HMAC covers the offset, so they
    are signed again here with the restored key (the run directory's, which the restore has
    just put back), or the domain services would refuse every model as tampered."""
    from shared.runtime.checkpoints import CheckpointKey

    key = CheckpointKey(stack.procs.secret("checkpoint-key").encode())
    rows = conn.execute(
        "SELECT group_id, device_id, model_version, state, state_mac, applied_offset"
        " FROM runtime_state"
    ).fetchall()
    for group_id, device_id, version, state, mac, applied in rows:
        # None for an unsigned or tampered state: its offset is reset all the same and the
        # services refuse it (with an alert), as they would have.
        new_mac = key.resign(
            group_id=group_id,
            device_id=device_id,
            model_version=version,
            applied=int(applied or 0),
            state=bytes(state),
            mac=bytes(mac) if mac is not None else None,
            new_applied=0,
        )
        conn.execute(
            "UPDATE runtime_state SET applied_offset = NULL,"
            " state_mac = coalesce(%s, state_mac)"
            " WHERE group_id = %s AND device_id = %s",
            (new_mac, group_id, device_id),
        )


def _after_restore(stack: Stack, *, detail: dict[str, Any], reset_offsets: bool) -> None:
    import psycopg
    from psycopg.types.json import Jsonb

    with psycopg.connect(stack.superuser_url("townpulse")) as conn:
        if reset_offsets:
            # The models' checkpoints stay (they resume from them); the offsets they name were
            # in the old Kafka's log, and the new one starts at 0.
            conn.execute("DELETE FROM stream_offsets")
            _resign_without_offsets(conn, stack)
        conn.execute(
            "INSERT INTO audit_log (key_id, role, action, target, outcome, detail)"
            " VALUES (NULL, 'cli', %s, %s, 'ok', %s)",
            (
                f"stack.{detail['reason']}",
                detail.get("set") or detail["files_archive"],
                Jsonb(detail),
            ),
        )


# ---- upgrade -----------------------------------------------------------------------------------


def upgrade(stack: Stack) -> dict[str, Any]:
    """Stop the services, back up, migrate, start everything in order; on a failure, restore
    the pre-upgrade backup (and leave the services stopped: the new release's code is what
    failed). `rollback` restores it later on demand."""
    from shared import db

    stack.procs.stop("simulator")
    for spec in SERVICES:
        for name in reversed(stack.services.instances(spec)):
            stack.services.stop(name)
    stack.postgres.start()
    stack.kafka.start()
    stack.mosquitto.start()
    before = _revisions(stack.superuser_url("townpulse"))
    report = run_backup(stack, kind="diff")
    if not report["ok"]:
        stack.up()  # nothing changed: the services come back as they were
        raise BackupError(f"no upgrade without a backup: {report.get('error')}")
    state = {
        "label": report["label"],
        "backup_dir": str(stack.s.backup_dir),
        "revisions_before": before,
        "started_at": _now().isoformat(),
    }
    _write_json(stack.run / UPGRADE_FILE, state, mode=0o600)
    try:
        db.migrate(stack.database_url())
        stack.down()
        stack.up()
    except Exception as exc:
        rollback(stack, start=False, reason="upgrade-rollback")
        raise BackupError(
            f"upgrade failed ({exc}); the database is back as it was before (backup "
            f"{state['label']}). Reinstall the previous release, then `townpulse up`."
        ) from exc
    after = _revisions(stack.superuser_url("townpulse"))
    _audit(stack, action="stack.upgrade", target=state["label"], detail={**state, "after": after})
    return {**state, "revisions_after": after, "backup": report}


def rollback(stack: Stack, *, start: bool = True, reason: str = "rollback") -> dict[str, Any]:
    """Restore the backup the last upgrade took (its Kafka is kept: consumers replay from the
    offsets that backup holds)."""
    path = stack.run / UPGRADE_FILE
    if not path.exists():
        raise BackupError(f"no upgrade to roll back ({path} missing)")
    state = json.loads(path.read_text())
    passphrase, _ = stack.postgres.backrest.passphrase()
    result = restore(
        stack,
        from_dir=Path(state["backup_dir"]),
        passphrase=passphrase,
        label=state["label"],
        force=True,
        start=start,
        reason=reason,
    )
    return {**state, **result}


def _audit(stack: Stack, *, action: str, target: str, detail: dict[str, Any]) -> None:
    import psycopg
    from psycopg.types.json import Jsonb

    with psycopg.connect(stack.superuser_url("townpulse")) as conn:
        conn.execute(
            "INSERT INTO audit_log (key_id, role, action, target, outcome, detail)"
            " VALUES (NULL, 'cli', %s, %s, 'ok', %s)",
            (action, target, Jsonb(detail)),
        )
