"""Network servers' events as they send them, and what reached Kafka, for the ingest tests.

ChirpStack's events are built with its own message classes (PyPI `chirpstack-api`) and turned
into JSON by protobuf's JSON mapping, as ChirpStack's JSON marshaler does (camelCase names).
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml
from aiokafka import AIOKafkaConsumer, TopicPartition
from chirpstack_api import integration
from google.protobuf import json_format

from shared.topics import READINGS_PARTITIONS
from townpulse.stack import REPO

DEVICE_REPOSITORY = REPO.parent / "shared" / "data" / "lorawan-devices"


def chirpstack_uplink(
    *,
    dev_eui: str,
    application_id: str,
    f_cnt: int,
    time: datetime | None = None,
    data: bytes | None = None,
    decoded: dict[str, Any] | None = None,
    f_port: int = 85,
    dedup_id: str | None = None,
    rssi: int = -97,
    snr: float = 7.5,
    gateways: int = 1,
) -> bytes:
    event = integration.UplinkEvent()
    event.deduplication_id = dedup_id or str(uuid.uuid4())
    event.time.FromDatetime(time or datetime.now(UTC))
    event.device_info.tenant_id = "52f14cd4-c6f1-4fbd-8f87-4025e1d49242"
    event.device_info.tenant_name = "Town"
    event.device_info.application_id = application_id
    event.device_info.application_name = "bins"
    event.device_info.device_profile_name = "Milesight EM310-UDL"
    event.device_info.device_name = dev_eui
    event.device_info.dev_eui = dev_eui
    event.dev_addr = "01fb2c4a"
    event.dr = 5
    event.f_cnt = f_cnt
    event.f_port = f_port
    if data is not None:
        event.data = data
    if decoded is not None:
        event.object.update(decoded)
    for i in range(gateways):
        rx = event.rx_info.add()
        rx.gateway_id = f"0016c001ff10a23{i}"
        rx.uplink_id = 1000 + i
        rx.rssi = rssi - 3 * i
        rx.snr = snr - i
    event.tx_info.frequency = 868100000
    return json_format.MessageToJson(event).encode()


def chirpstack_topic(application_id: str, dev_eui: str) -> str:
    return f"application/{application_id}/device/{dev_eui}/event/up"


def tts_uplink(
    *,
    device_id: str,
    dev_eui: str,
    application_id: str,
    f_cnt: int,
    time: datetime | None = None,
    data: bytes | None = None,
    decoded: dict[str, Any] | None = None,
    f_port: int = 85,
    rssi: int = -101,
    snr: float = 6.0,
) -> bytes:
    """The Things Stack's uplink message (its MQTT `up` topic and webhooks send the same)."""
    at = (time or datetime.now(UTC)).isoformat().replace("+00:00", "Z")
    message: dict[str, Any] = {
        "f_port": f_port,
        "f_cnt": f_cnt,
        "rx_metadata": [
            {
                "gateway_ids": {"gateway_id": "town-hall", "eui": "B827EBFFFE61A2C4"},
                "time": at,
                "rssi": rssi,
                "channel_rssi": rssi,
                "snr": snr,
                "received_at": at,
            }
        ],
        "settings": {"data_rate": {"lora": {"bandwidth": 125000, "spreading_factor": 7}}},
        "received_at": at,
        "consumed_airtime": "0.061696s",
    }
    if data is not None:
        message["frm_payload"] = base64.b64encode(data).decode()
    if decoded is not None:
        message["decoded_payload"] = decoded
    return json.dumps(
        {
            "end_device_ids": {
                "device_id": device_id,
                "application_ids": {"application_id": application_id},
                "dev_eui": dev_eui.upper(),
                "dev_addr": "260B1234",
            },
            "correlation_ids": [f"as:up:{uuid.uuid4().hex}"],
            "received_at": at,
            "uplink_message": message,
        }
    ).encode()


def codec_examples(path: str) -> list[dict[str, Any]]:
    """The official examples of a codec in the local Device Repository copy."""
    vendor, base = path.split("/")
    doc = yaml.safe_load((DEVICE_REPOSITORY / "vendor" / vendor / f"{base}-codec.yaml").read_text())
    return list(doc["uplinkDecoder"]["examples"])


def example_bytes(path: str, index: int = 0) -> tuple[int, bytes]:
    example = codec_examples(path)[index]["input"]
    return int(example["fPort"]), bytes(example["bytes"])


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """Where each partition of a readings topic ends now: what a test reads from afterwards."""

    async def run() -> dict[int, int]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            tps = [TopicPartition(topic, p) for p in range(READINGS_PARTITIONS)]
            return {tp.partition: o for tp, o in (await consumer.end_offsets(tps)).items()}
        finally:
            await consumer.stop()

    return asyncio.run(run())


def records_for(
    bootstrap: str,
    topic: str,
    key: str,
    *,
    since: dict[int, int] | None = None,
    within_s: float = 60.0,
) -> list[bytes]:
    """Every record with this key on a readings topic (from `since`, else from the start): what
    a consumer sees before any database key could hide a double."""

    async def run() -> list[bytes]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        await consumer.start()
        found: list[bytes] = []
        try:
            # The readings topics are made with this many partitions (townpulse bootstrap).
            tps = [TopicPartition(topic, p) for p in range(READINGS_PARTITIONS)]
            consumer.assign(tps)
            for tp in tps:
                if since is None:
                    await consumer.seek_to_beginning(tp)
                else:
                    consumer.seek(tp, since.get(tp.partition, 0))
            ends = await consumer.end_offsets(tps)
            deadline = asyncio.get_running_loop().time() + within_s
            while asyncio.get_running_loop().time() < deadline:
                if all([await consumer.position(tp) >= end for tp, end in ends.items()]):
                    return found
                batch = await consumer.getmany(timeout_ms=200, max_records=5000)
                for records in batch.values():
                    found += [r.value for r in records if r.key == key.encode() and r.value]
        finally:
            await consumer.stop()
        raise AssertionError(f"{topic} not read to its end within {within_s} s")

    return asyncio.run(run())


def install_codec(api: httpx.Client, path: str) -> dict[str, Any]:
    r = api.post("/v1/codecs/import", json={"path": path})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def repository_available() -> Path:
    assert DEVICE_REPOSITORY.is_dir(), f"{DEVICE_REPOSITORY}: the shared data are missing"
    return DEVICE_REPOSITORY
