"""Apache Kafka (KRaft, one node) from the jars deploy/kafka/pom.xml fetched."""

from __future__ import annotations

import base64
import os
import pwd
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from townpulse.stack.config import DEPLOY, KAFKA_LIB, StackError, StackSettings
from townpulse.stack.processes import Keeping, Launch, Processes, wait_port

NAME = "kafka"
# Kafka exits for good when its log directory fails (a full disk): its keeper starts it again,
# every 10 s at most, until the disk has room. 60 s to stop: it flushes and closes every
# partition's log first.
KEEPING = Keeping(stop_timeout_s=60, max_delay_s=10)
_CLASSPATH = f"{KAFKA_LIB}/*"


def _java() -> str:
    return shutil.which("java") or "java"


def _log4j() -> str:
    return f"-Dlog4j2.configurationFile={DEPLOY / 'kafka' / 'log4j2.yaml'}"


def new_cluster_id(random_bytes: Callable[[int], bytes] = os.urandom) -> str:
    """A KRaft cluster id that `kafka-storage format -t` can take as an argument.

    One random id in 64 starts with "-", which the tool's argument parser reads as an
    unknown option (a CI run failed on one); Kafka's own Uuid.randomUuid() draws again
    in that case, and so do we.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(random_bytes(16)).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


class Kafka:
    def __init__(self, procs: Processes, settings: StackSettings) -> None:
        self.p = procs
        self.s = settings

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.s.kafka_port}"

    @property
    def data_dir(self) -> Path:
        return self.p.run / "data" / "kafka"

    @property
    def properties(self) -> Path:
        return self.p.run / "kafka" / "server.properties"

    def prepare(self, *, owner: str | None = None) -> None:
        """Its configuration and, once, its formatted log directory; `owner` (the systemd
        units' `townpulse` user) gets the directory, which the local stack's Kafka, run by the
        stack's own user, does not need."""
        if not KAFKA_LIB.is_dir():
            raise StackError(f"Kafka jars missing in {KAFKA_LIB}: run `make install`")
        # Kafka runs as the stack's own user (or the units' `townpulse`): its data (every
        # reading) and its configuration are nobody else's to read.
        (self.p.run / "data").mkdir(parents=True, exist_ok=True)
        data = self.p.private_dir(self.data_dir)
        props = self.properties
        self.p.private_dir(props.parent)
        props.write_text(
            (DEPLOY / "kafka" / "server.properties.tmpl")
            .read_text()
            .format(
                host="127.0.0.1",
                port=self.s.kafka_port,
                controller_port=self.s.kafka_controller_port,
                data_dir=data,
            )
        )
        if not (data / "meta.properties").exists():
            cluster_id = new_cluster_id()
            subprocess.run(
                [
                    _java(),
                    _log4j(),
                    "-cp",
                    _CLASSPATH,
                    "kafka.tools.StorageTool",
                    "format",
                    "-t",
                    cluster_id,
                    "-c",
                    str(props),
                ],
                check=True,
                capture_output=True,
            )
        if owner is not None:
            pw = pwd.getpwnam(owner)
            for path in (data, *data.rglob("*"), props.parent, props):
                os.chown(path, pw.pw_uid, pw.pw_gid)
            os.chmod(data, 0o700)

    def launch(self) -> Launch:
        """The broker's command line (local stack and systemd)."""
        props = self.properties
        return Launch(
            argv=[
                _java(),
                f"-Xmx{self.s.kafka_heap}",
                *self.s.kafka_jvm_options.split(),
                "-Djava.awt.headless=true",
                _log4j(),
                "-cp",
                _CLASSPATH,
                "kafka.Kafka",
                str(props),
            ],
            marker=str(props),
        )

    def start(self) -> None:
        if self.p.pid(NAME):
            return
        self.prepare()
        self.p.keep(NAME, self.launch(), KEEPING)
        self.wait_ready()

    def wait_ready(self) -> None:
        wait_port(self.s.kafka_port, timeout=self.s.start_timeout_s, what="kafka")

    def stop(self) -> None:
        self.p.stop_kept(NAME, KEEPING)
