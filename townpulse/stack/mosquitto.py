"""Mosquitto with the dynamic-security plugin, a loopback listener and a TLS listener."""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import socket
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from townpulse.stack.config import (
    DEPLOY,
    DYNSEC_PLUGIN_CANDIDATES,
    StackError,
    StackSettings,
    is_loopback,
)
from townpulse.stack.processes import Keeping, Launch, Processes, wait_port, wait_until

NAME = "mosquitto"
# Kept running like the services (townpulse/keeper.py). SIGTERM: Mosquitto saves its
# persistence file (queued messages, sessions) and exits.
KEEPING = Keeping(max_delay_s=10)
# Written once the retained messages of an older broker are cleared (Mosquitto._sweep_retained).
RETAIN_SWEPT = "retained-swept"
# How long the empty messages that clear retained ones may wait in a stored session.
_SWEEP_EXPIRY_S = 1
log = logging.getLogger("townpulse.stack")


def clear_retained(sock: Path) -> int:
    """Delete every retained message of the broker listening on `sock` (anonymous, all
    allowed); returns how many there were."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    retained: list[str] = []
    marker = f"townpulse/sweep/{uuid.uuid4().hex}"
    done = threading.Event()

    def on_message(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        if msg.topic == marker:
            done.set()
        elif msg.retain and msg.payload:
            retained.append(msg.topic)

    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"townpulse-sweep-{uuid.uuid4().hex[:8]}",
        protocol=mqtt.MQTTv5,
        transport="unix",
    )
    client.on_message = on_message
    client.connect(str(sock))
    client.loop_start()
    try:
        # The broker queues the stored retained messages when it takes the subscription,
        # before it reads the marker published after it: the marker comes back last.
        client.subscribe("#", qos=1)
        client.publish(marker, b"1", qos=1).wait_for_publish(30)
        if not done.wait(60):
            raise StackError("the broker did not hand over its retained messages")
        expiry = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        expiry.MessageExpiryInterval = _SWEEP_EXPIRY_S
        for topic in retained:
            client.publish(topic, b"", qos=1, retain=True, properties=expiry).wait_for_publish(30)
        if retained:
            # The stored sessions' copies of the empty messages expire meanwhile.
            time.sleep(_SWEEP_EXPIRY_S + 0.5)
    finally:
        client.loop_stop()
        client.disconnect()
    return len(retained)


@dataclass(frozen=True)
class Install:
    broker: Path
    ctrl: Path
    dynsec_plugin: Path

    def version(self) -> str:
        """The broker's version, e.g. "2.1.2" (its help text begins with it)."""
        out = subprocess.run(
            [str(self.broker), "-h"], capture_output=True, text=True, check=False
        ).stdout
        first = out.splitlines()[0] if out else ""
        return first.removeprefix("mosquitto version ").strip() or "unknown"


def find_install(settings: StackSettings) -> Install:
    """The broker the stack runs: the one deploy/build-mosquitto.sh built, else the machine's.

    The machine's (Debian 12: 2.0.11) works the same, but its dynamic-security plugin rewrites
    its file after every command: registering devices in bulk slows down as devices add up.
    """
    prefix = settings.mosquitto_prefix
    own = Install(
        broker=prefix / "sbin" / "mosquitto",
        ctrl=prefix / "bin" / "mosquitto_ctrl",
        dynsec_plugin=prefix / "lib" / "mosquitto_dynamic_security.so",
    )
    if all(p.exists() for p in (own.broker, own.ctrl, own.dynsec_plugin)):
        return own
    broker = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    ctrl = shutil.which("mosquitto_ctrl")
    plugin = next((p for p in DYNSEC_PLUGIN_CANDIDATES if p.exists()), None)
    if not Path(broker).exists() or ctrl is None or plugin is None:
        raise StackError(
            f"no Mosquitto broker with its dynamic security plugin in {prefix} or on this"
            " machine: run `make install`"
        )
    return Install(broker=Path(broker), ctrl=Path(ctrl), dynsec_plugin=plugin)


def _autosave(settings: StackSettings) -> str:
    if settings.mqtt_autosave_changes is not None:
        return f"autosave_on_changes true\nautosave_interval {settings.mqtt_autosave_changes}"
    return f"autosave_on_changes false\nautosave_interval {settings.mqtt_autosave_s}"


def render_config(settings: StackSettings, **paths: Path) -> str:
    """The broker's configuration: deploy/mosquitto/mosquitto.conf.tmpl with the settings and
    paths (data_dir, dynsec_plugin, cafile, certfile, keyfile) filled in."""
    return (
        (DEPLOY / "mosquitto" / "mosquitto.conf.tmpl")
        .read_text()
        .format(
            port=settings.mqtt_port,
            plain_bind=settings.mqtt_plain_bind,
            tls_port=settings.mqtts_port,
            bind=settings.mqtt_bind,
            autosave=_autosave(settings),
            **paths,
        )
    )


class Mosquitto:
    def __init__(self, procs: Processes, settings: StackSettings) -> None:
        self.p = procs
        self.s = settings

    @property
    def ca_cert_file(self) -> Path:
        return self.p.run / "tls" / "ca.crt"

    def prepare(self) -> None:
        """Its dynamic-security file (once), its configuration and its TLS files."""
        install = find_install(self.s)
        data = self.p.data_dir("mosquitto", "mosquitto")
        dynsec = data / "dynamic-security.json"
        if not dynsec.exists():
            subprocess.run(
                [
                    str(install.ctrl),
                    "dynsec",
                    "init",
                    str(dynsec),
                    "admin",
                    self.p.secret("mqtt-admin"),
                ],
                check=True,
                capture_output=True,
            )
            pw = pwd.getpwnam("mosquitto")
            os.chown(dynsec, pw.pw_uid, pw.pw_gid)
            os.chmod(dynsec, 0o600)
        if not (data / RETAIN_SWEPT).exists():
            self._sweep_retained(install, data)
        if not is_loopback(self.s.mqtt_plain_bind):
            log.warning(
                "plain MQTT listens on %s (TOWNPULSE_MQTT_PLAIN_OFF_LOOPBACK): device passwords"
                " cross that network in clear",
                self.s.mqtt_plain_bind,
            )
        self._conf(data).write_text(
            render_config(
                self.s, data_dir=data, dynsec_plugin=install.dynsec_plugin, **self._tls(data)
            )
        )

    def launch(self) -> Launch:
        """The broker's command line. Started as root (the local stack), mosquitto drops to the
        `mosquitto` user, which owns its data; the systemd unit starts it as that user."""
        conf = self._conf(self.p.data_dir("mosquitto", "mosquitto", create=False))
        return Launch(argv=[str(find_install(self.s).broker), "-c", str(conf)], marker=str(conf))

    def start(self) -> None:
        if self.p.pid(NAME):
            return
        self.prepare()
        self.p.keep(NAME, self.launch(), KEEPING)
        self.wait_ready()

    def wait_ready(self) -> None:
        wait_port(self.s.mqtt_port, timeout=self.s.start_timeout_s, what="mosquitto")
        wait_port(self.s.mqtts_port, timeout=self.s.start_timeout_s, what="mosquitto (TLS)")

    def _sweep_retained(self, install: Install, data: Path) -> None:
        """Clear the retained messages an older broker kept (before `retain_available false`),
        once: the broker keeps delivering those it has stored to every new subscription.

        It runs the broker on its persistence alone, reachable through a socket in its own
        directory only, and publishes an empty retained message on every retained topic:
        the one way MQTT has to delete one. Those empty messages also queue for the
        gateway's stored session, as ordinary messages: they expire after a second, and the
        sweep outlives them before the real broker starts.
        """
        if (data / "mosquitto.db").exists():
            sock = data / "sweep.sock"
            conf = data / "sweep.conf"
            conf.write_text(
                f"listener 0 {sock}\nallow_anonymous true\npersistence true\n"
                f"persistence_location {data}/\nmax_queued_messages 0\nlog_dest stdout\n"
            )
            self.p.spawn(
                "mosquitto-sweep", [str(install.broker), "-c", str(conf)], marker=str(conf)
            )
            try:
                wait_until(sock.exists, timeout=self.s.start_timeout_s, what="mosquitto (sweep)")
                cleared = clear_retained(sock)
            finally:
                # SIGTERM: the broker saves its state, without the cleared messages.
                self.p.stop("mosquitto-sweep")
                conf.unlink(missing_ok=True)
            if cleared:
                log.warning("cleared %d retained messages left by an older broker", cleared)
        (data / RETAIN_SWEPT).touch()

    @staticmethod
    def _conf(data: Path) -> Path:
        return data / "mosquitto.conf"

    def describe(self) -> str:
        """Which broker the stack runs (`up`, `status`): its version and where it lives."""
        try:
            install = find_install(self.s)
        except StackError as exc:
            return str(exc)
        return f"Mosquitto {install.version()} ({install.broker})"

    def stop(self) -> None:
        self.p.stop_kept(NAME, KEEPING)

    def _tls(self, data: Path) -> dict[str, Path]:
        """The CA (made once) and a broker certificate for the names devices may dial."""
        from townpulse import tls

        hosts = ["localhost", "127.0.0.1", socket.gethostname(), *self.s.mqtt_tls_hosts]
        if self.s.mqtt_bind not in ("0.0.0.0", "::"):  # noqa: S104 - comparing, not binding
            hosts.append(self.s.mqtt_bind)
        files = tls.ensure_server_cert(
            ca_cert_path=self.ca_cert_file,
            ca_key_path=self.p.secrets_dir / "mqtt-ca.key",
            out_dir=data / "tls",
            hosts=hosts,
        )
        # Mosquitto reads them after dropping to its own user.
        pw = pwd.getpwnam("mosquitto")
        for path in (files.server_cert.parent, files.server_cert, files.server_key):
            os.chown(path, pw.pw_uid, pw.pw_gid)
        os.chmod(self.ca_cert_file.parent, 0o755)  # noqa: S103 - the CA certificate is public
        return {
            "cafile": files.ca_cert,
            "certfile": files.server_cert,
            "keyfile": files.server_key,
        }
