"""Apache Kafka (KRaft, one node) from the jars deploy/kafka/pom.xml fetched."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from collections.abc import Callable

from townpulse.stack.config import DEPLOY, KAFKA_LIB, StackError, StackSettings
from townpulse.stack.processes import Processes, wait_port

NAME = "kafka"


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

    def start(self) -> None:
        if self.p.pid(NAME):
            return
        if not KAFKA_LIB.is_dir():
            raise StackError(f"Kafka jars missing in {KAFKA_LIB}: run `make install`")
        # Kafka runs as the stack's own user: its data (every reading) and its configuration
        # are nobody else's to read.
        (self.p.run / "data").mkdir(parents=True, exist_ok=True)
        data = self.p.private_dir(self.p.run / "data" / "kafka")
        props = self.p.private_dir(self.p.run / "kafka") / "server.properties"
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
        java = shutil.which("java") or "java"
        classpath = f"{KAFKA_LIB}/*"
        log4j = f"-Dlog4j2.configurationFile={DEPLOY / 'kafka' / 'log4j2.yaml'}"
        if not (data / "meta.properties").exists():
            cluster_id = new_cluster_id()
            subprocess.run(
                [
                    java,
                    log4j,
                    "-cp",
                    classpath,
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
        self.p.spawn(
            NAME,
            [
                java,
                f"-Xmx{self.s.kafka_heap}",
                *self.s.kafka_jvm_options.split(),
                "-Djava.awt.headless=true",
                log4j,
                "-cp",
                classpath,
                "kafka.Kafka",
                str(props),
            ],
            marker=str(props),
        )
        wait_port(self.s.kafka_port, timeout=self.s.start_timeout_s, what="kafka")

    def stop(self) -> None:
        self.p.stop(NAME, timeout=60)
