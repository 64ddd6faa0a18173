"""From an uplink to a batch of readings: which device, duplicates and replays, decoding, mapping.

The order matters: the device is found first (an unknown DevEUI is dead-lettered and listed as
heard, not registered), then the uplink is checked against the ones already seen (a second
delivery of the same uplink is dropped, a replayed older frame is dead-lettered), then its bytes
are decoded by the device profile's codec unless the network server already decoded them, and
the profile turns the decoded fields into readings.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from prometheus_client import Counter

from services.gateway.ingest.codec import CodecPool
from services.gateway.ingest.profile import CounterStore, Profile, map_fields
from services.gateway.ingest.rejection import Reason, Rejection
from services.gateway.ingest.uplink import Uplink
from shared.schemas import Reading, ReadingBatch, UplinkMeta
from shared.topics import Domain

log = logging.getLogger(__name__)

# Both kinds of second delivery the gateway drops: an uplink it took already (SeenUplinks), and
# a message whose readings Kafka already confirmed (`readings_key`); `source` is "mqtt" (the
# town's broker) or the network server's integration.
DUPLICATES = Counter(
    "townpulse_gateway_duplicate_uplinks_total",
    "Messages delivered again and dropped, their uplink or readings already taken",
    ["source"],
)
DECODED = Counter(
    "townpulse_gateway_codec_decodes_total", "Uplinks decoded by TownPulse's codec sandbox"
)


RSSI_RANGE = (-200.0, 50.0)  # dBm
SNR_RANGE = (-50.0, 50.0)  # dB


class Duplicate(Exception):
    """This uplink was already taken: acknowledge it, produce nothing."""


@dataclass(frozen=True, slots=True)
class StoredCodec:
    name: str
    version: int
    script: str


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    id: str
    domain: Domain
    profile: str | None = None
    dev_eui: str | None = None
    external_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, row: Any) -> DeviceInfo:
        return cls(
            id=str(row["id"]),
            domain=Domain(row["domain"]),
            profile=row["profile"],
            dev_eui=row["dev_eui"],
            external_id=row["external_id"],
            metadata=row["metadata"] if isinstance(row["metadata"], dict) else {},
        )

    @property
    def keys(self) -> tuple[str, ...]:
        """How senders other than TownPulse's own topics name this device."""
        return tuple(k for k in (self.dev_eui, self.external_id) if k)


class Devices(Protocol):
    """The registered devices (services/gateway/registry.py holds them in memory)."""

    async def by_key(self, key: str) -> DeviceInfo | None: ...


class Catalogue(Protocol):
    """Profiles and codecs, as the database holds them (cached by the adapter)."""

    async def profile(self, name: str) -> Profile | None: ...

    async def codec(self, name: str) -> StoredCodec | None: ...


class Heard(Protocol):
    async def heard(self, uplink: Uplink, *, source: str) -> None: ...


class Counters(CounterStore, Protocol):
    async def recall(self, device_id: str, metrics: tuple[str, ...]) -> None:
        """Make the previous totals of these metrics known (after a restart: from storage)."""

    def restore(self, device_id: str, metric: str, value: float | None) -> None:
        """Put a total back as it was (None: unknown again)."""


K = TypeVar("K", bound=Hashable)


class Recent(Generic[K]):
    """Keys taken lately, bounded by count and by age: the oldest are forgotten first.

    The one memory behind the duplicates the gateway drops: the uplinks it took (SeenUplinks)
    and the messages whose readings Kafka confirmed (the gateway's `confirmed`).

    >>> now = [0.0]
    >>> recent = Recent(max_keys=2, max_age_s=10, clock=lambda: now[0])
    >>> recent.add("a"); recent.add("b"); recent.add("c")
    >>> "a" in recent, "c" in recent
    (False, True)
    >>> now[0] = 11.0
    >>> "c" in recent, len(recent)
    (False, 0)
    """

    def __init__(
        self,
        *,
        max_keys: int,
        max_age_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._keys: OrderedDict[K, float] = OrderedDict()
        self._max = max_keys
        self._max_age = max_age_s
        self._clock = clock

    def __contains__(self, key: object) -> bool:
        self._expire()
        return key in self._keys

    def __len__(self) -> int:
        self._expire()
        return len(self._keys)

    def add(self, key: K) -> None:
        self._keys[key] = self._clock()
        self._keys.move_to_end(key)
        while len(self._keys) > self._max:
            self._keys.popitem(last=False)

    def discard(self, key: K) -> None:
        self._keys.pop(key, None)

    def _expire(self) -> None:
        if self._max_age is None:
            return
        horizon = self._clock() - self._max_age
        # Kept in the order they were added: the oldest are first.
        while self._keys:
            key, at = next(iter(self._keys.items()))
            if at >= horizon:
                return
            del self._keys[key]


def readings_key(batch: ReadingBatch) -> bytes:
    """A message's readings as one key: the device and each reading's (time, metric).

    A device's resend and a broker's redelivery bring the same readings, whatever the order.
    A 16-byte digest rather than the readings themselves: ten minutes at 500 msg/s is 300,000
    keys. The values are left out: storage's unique key is (device, metric, time) too.
    """
    digest = hashlib.blake2b(batch.device_id.encode(), digest_size=16)
    for ts, metric in sorted((r.ts.timestamp(), r.metric) for r in batch.readings):
        digest.update(f"\0{ts!r}\0{metric}".encode())
    return digest.digest()


class SeenUplinks:
    """The uplinks already taken, to drop a second delivery and refuse a replayed frame.

    A network server delivers an uplink again after its own reconnect, a webhook retry, or when
    two of its gateways heard it: the same deduplication id, or the same frame counter and time.
    A frame counter lower than the last one at a later time is the device's counter starting
    again (a rejoin), not a replay; one at an earlier time than the last uplink is a replay.
    Bounded: ids come from the network. After a restart the memory is empty; the gateway's
    memory of confirmed readings, seeded from Kafka at start, still drops a redelivery.
    """

    def __init__(self, *, max_keys: int = 200_000) -> None:
        self._keys: Recent[str] = Recent(max_keys=max_keys)
        self._last: OrderedDict[str, tuple[int, datetime]] = OrderedDict()
        self._max = max_keys

    def check(self, uplink: Uplink) -> None:
        key = uplink.dedup_key
        if key in self._keys:
            raise Duplicate(key)
        last = self._last.get(uplink.device_key)
        if uplink.f_cnt is not None and last is not None:
            last_cnt, last_time = last
            if uplink.f_cnt <= last_cnt and uplink.time < last_time:
                raise Rejection(
                    Reason.REPLAYED_FRAME,
                    f"frame counter {uplink.f_cnt} at {uplink.time.isoformat()} is behind "
                    f"{last_cnt} at {last_time.isoformat()}",
                )

    def forget(self, uplink: Uplink) -> None:
        self._keys.discard(uplink.dedup_key)

    def remember(self, uplink: Uplink) -> None:
        self._keys.add(uplink.dedup_key)
        if uplink.f_cnt is not None:
            last = self._last.get(uplink.device_key)
            if last is None or uplink.time >= last[1]:
                self._last[uplink.device_key] = (uplink.f_cnt, uplink.time)
                self._last.move_to_end(uplink.device_key)
                if len(self._last) > self._max:
                    self._last.popitem(last=False)


@dataclass(frozen=True, slots=True)
class Undo:
    mapper: UplinkMapper
    uplink: Uplink
    device_id: str
    before: dict[str, float | None]
    after: dict[str, float | None]

    def __call__(self) -> None:
        self.mapper.undo(self)


class UplinkMapper:
    def __init__(
        self,
        *,
        registry: Devices,
        catalogue: Catalogue,
        codecs: CodecPool,
        counters: Counters,
        heard: Heard,
        seen: SeenUplinks | None = None,
    ) -> None:
        self._registry = registry
        self._catalogue = catalogue
        self._codecs = codecs
        self._counters = counters
        self._heard = heard
        self.codecs = codecs
        self.seen = seen or SeenUplinks()

    async def device_for(self, uplink: Uplink, *, source: str) -> DeviceInfo:
        device = await self._registry.by_key(uplink.device_key)
        if device is None:
            await self._heard.heard(uplink, source=source)
            raise Rejection(Reason.UNKNOWN_DEVICE, f"{uplink.device_key!r} is not registered")
        return device

    async def to_batch(
        self,
        uplink: Uplink,
        *,
        source: str,
        received_at: datetime,
        device: DeviceInfo | None = None,
        profile_name: str | None = None,
    ) -> tuple[ReadingBatch, Undo]:
        """The uplink's readings, or Rejection / Duplicate.

        The uplink is remembered as taken at once: the MQTT path re-sends a routed record until
        Kafka has it, so a second delivery meanwhile is a duplicate. The HTTP path answers 503
        when Kafka does not take it, and must then undo this (the uplink forgotten, the counters
        as they were) so that the retry is taken and counts its interval again."""
        if device is None:
            device = await self.device_for(uplink, source=source)
        try:
            return await self._to_batch(
                uplink, device=device, received_at=received_at, profile_name=profile_name
            )
        except Rejection as exc:
            exc.device_id = device.id
            raise

    async def _to_batch(
        self,
        uplink: Uplink,
        *,
        device: DeviceInfo,
        received_at: datetime,
        profile_name: str | None,
    ) -> tuple[ReadingBatch, Undo]:
        self.seen.check(uplink)
        name = device.profile or profile_name
        profile = await self._catalogue.profile(name) if name else None
        if profile is None:
            raise Rejection(
                Reason.NO_PROFILE,
                f"device {device.id!r} has no profile" if not name else f"no profile {name!r}",
            )
        data, codec = await self._decode(uplink, profile)
        await self._counters.recall(device.id, profile.counter_metrics)
        before = {m: self._counters.previous(device.id, m) for m in profile.counter_metrics}
        try:
            readings: list[Reading] = map_fields(
                profile,
                data,
                device_id=device.id,
                ts=uplink.time,
                metadata=device.metadata,
                counters=self._counters,
            )
        except Rejection as exc:
            if exc.reason is Reason.NO_METRICS:
                # Bytes the codec made nothing of (or another frame type): say what it made.
                shown = ", ".join(sorted(data)[:20]) or "nothing"
                raise Rejection(
                    Reason.NO_METRICS,
                    f"profile {profile.name!r} maps no field of the decoded {{{shown}}}",
                ) from None
            raise
        rssi = _within(uplink.link.rssi, *RSSI_RANGE)
        snr = _within(uplink.link.snr, *SNR_RANGE)
        # The radio link as readings too, so a threshold rule can alert on a degrading link.
        if rssi is not None:
            readings.append(Reading(ts=uplink.time, metric="rssi_dbm", value=rssi, unit="dBm"))
        if snr is not None:
            readings.append(Reading(ts=uplink.time, metric="snr_db", value=snr, unit="dB"))
        self.seen.remember(uplink)
        after = {m: self._counters.previous(device.id, m) for m in profile.counter_metrics}
        undo = Undo(self, uplink, device.id, before, after)
        batch = ReadingBatch(
            device_id=device.id,
            domain=device.domain,
            received_at=received_at,
            readings=readings,
            uplink=UplinkMeta(
                ts=uplink.time,
                source=uplink.source,
                f_port=uplink.f_port,
                f_cnt=uplink.f_cnt,
                codec=codec.name if codec else None,
                codec_version=codec.version if codec else None,
                rssi=rssi,
                snr=snr,
                gateways=g if (g := uplink.link.gateways) is not None and 0 <= g <= 1000 else None,
            ),
        )
        return batch, undo

    def undo(self, undo: Undo) -> None:
        self.seen.forget(undo.uplink)
        for metric, value in undo.before.items():
            # Only if no later uplink of the device has moved the total on since.
            if self._counters.previous(undo.device_id, metric) == undo.after[metric]:
                self._counters.restore(undo.device_id, metric, value)

    async def _decode(
        self, uplink: Uplink, profile: Profile
    ) -> tuple[dict[str, Any], StoredCodec | None]:
        # The network server's own decoding is used when there is one: the town configured it
        # there, and decoding again would cost CPU for the same fields.
        if uplink.decoded is not None:
            return uplink.decoded, None
        if uplink.payload is None:
            raise Rejection(Reason.BAD_EVENT, "neither decoded fields nor payload bytes")
        if not profile.codec:
            raise Rejection(Reason.NO_CODEC, f"profile {profile.name!r} names no codec")
        codec = await self._catalogue.codec(profile.codec)
        if codec is None:
            raise Rejection(Reason.NO_CODEC, f"codec {profile.codec!r} is not installed")
        if uplink.f_port is None:
            raise Rejection(Reason.UNKNOWN_FPORT, "raw bytes without an fPort")
        sandbox = self._codecs.get(codec.name, codec.version, codec.script)
        decoded = sandbox.decode(uplink.payload, f_port=uplink.f_port, recv_time=uplink.time)
        DECODED.inc()
        return decoded.data, codec


def _within(value: float | None, lo: float, hi: float) -> float | None:
    # A network server's odd radio figure is not worth refusing the uplink's readings for.
    return value if value is not None and math.isfinite(value) and lo <= value <= hi else None
