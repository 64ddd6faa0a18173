from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import Field, SecretStr

from services.gateway.ingest.rejection import Limits
from shared.settings import ServiceSettings


class GatewaySettings(ServiceSettings):
    http_port: int = 18101
    instance: str = "gateway-1"
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    # Empty: the instance name (gateway-1...), which is also its client id: the broker binds
    # each gateway's identity to its own client id (shared/mqtt_admin.py).
    mqtt_username: str = ""
    mqtt_password: SecretStr = SecretStr("")
    # Empty: one gateway with a plain subscription. A group name: gateways of that group split the
    # devices' messages ($share/<group>/...). Mosquitto (2.0.11 and 2.1.2 alike) does not
    # restore a shared subscription of an offline session after its own restart, so messages
    # published before the gateways reconnect are lost (checked by hand on both; a plain
    # subscription keeps them, tests/services/gateway/test_mqtt_source.py); use a group only
    # when one gateway cannot keep up, and know that a broker restart may lose readings.
    share_group: str = ""
    # Seconds without traffic before paho pings the broker, and without an answer before it drops
    # the connection. Longer than MQTT's usual 30-60 s: a broker working through a backlog reads
    # one packet per client per pass and saves its state after each pass (autosave), so the
    # gateway's PINGREQ waits behind up to `max_inflight_messages` PUBACKs; a lapse then drops
    # the connection and with it every PUBACK not yet read, and the broker sends the whole
    # backlog again (docs/performance.md). A dead broker is still noticed by the socket.
    mqtt_keepalive_s: int = Field(default=120, ge=10, le=3600)
    # QoS 0 messages waiting to be routed, at most; more are dropped and counted
    # (townpulse_gateway_qos0_dropped_total; services/gateway/intake.py says why only QoS 0).
    # A couple of seconds of the gateway's rate (docs/performance.md): a burst passes, a flood
    # while Kafka or the database is away does not eat the memory (up to 64 KiB each).
    qos0_queue_max: int = Field(default=5000, ge=1, le=1_000_000)
    # Limits on what a device may send (documented in the README).
    max_payload_bytes: int = 64 * 1024
    max_records: int = 1000
    max_age_s: int = 7 * 24 * 3600
    max_future_s: int = 300
    # Unknown ids are cached briefly, so a misconfigured device cannot hammer the database, while
    # a device registered just now is accepted within seconds.
    unknown_device_ttl_s: float = 5.0
    # Operators' routes (integrations, codecs, profiles) and the HTTP ingest share the pool with
    # routing; routing holds at most two connections at a time.
    db_pool_size: int = Field(default=6, ge=2, le=50)
    # A vendor's codec runs in QuickJS with these limits per call: one EM310-UDL decode takes
    # about 7 us, so 50 ms is thousands of times what an honest codec needs, and short enough
    # that a looping one holds the gateway's loop for no longer than a slow database answer.
    codec_time_limit_s: float = Field(default=0.05, gt=0, le=1)
    codec_memory_limit_bytes: int = Field(default=16 * 2**20, ge=2**20, le=256 * 2**20)
    # A local copy of The Things Network's Device Repository (vendor/<vendor>/<codec>.js and
    # their codec yaml), from which an admin imports codecs by name.
    device_repository: Path | None = None
    # Whether this instance subscribes to the network servers' brokers. With several gateways
    # exactly one must (each would take every uplink otherwise); all serve the HTTP ingest.
    integrations: bool = True
    # How long, and for how many messages, the gateway remembers the readings Kafka confirmed,
    # to drop a broker's redelivery or a device's resend of them (services/gateway/app.py).
    # Redeliveries come when a connection is back: ten minutes covers a broker or gateway
    # outage of that long; 300,000 is ten minutes at 500 msg/s, the rate of the benchmarks
    # (about 50 MB). Past either bound a redelivery is produced again, and stored once.
    dedup_window_s: float = Field(default=600, ge=0, le=24 * 3600)
    dedup_max_messages: int = Field(default=300_000, ge=0, le=10_000_000)
    # At start, the records of the last `dedup_seed_s` on the readings topics are remembered as
    # confirmed: a gateway killed before its PUBACKs reached the broker gets those messages
    # again. They were produced just before it died, so three minutes covers a restart by the
    # keeper or systemd (at most 30 s of back-off) with room to spare, for about 2 s of
    # reading at 500 msg/s; a gateway down for longer produces such a redelivery again
    # (stored once). Seeding gives up after `dedup_seed_timeout_s` rather than keep the
    # gateway from starting.
    dedup_seed_s: float = Field(default=180, ge=0, le=3600)
    dedup_seed_timeout_s: float = Field(default=30, gt=0, le=600)
    # How long an HTTP push waits for Kafka before answering 503. Under ChirpStack's HTTP
    # integration's own 5 s timeout, so that it sees and logs the 503 rather than a time-out.
    ingest_kafka_timeout_s: float = Field(default=4, gt=0, le=120)

    def limits(self) -> Limits:
        return Limits(
            max_bytes=self.max_payload_bytes,
            max_records=self.max_records,
            max_age=timedelta(seconds=self.max_age_s),
            max_future=timedelta(seconds=self.max_future_s),
        )
