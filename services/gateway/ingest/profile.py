"""Device profiles: how a device's decoded fields become TownPulse readings.

A profile is defined once and shared by every device of a model. Its JSON definition names the
profile, its domain and (for raw LoRaWAN bytes) its codec, and lists the readings to make:

    {"name": "milesight-iot-em310-udl", "domain": "waste", "codec": "milesight-iot-em310-udl",
     "description": "...",
     "readings": [
       {"metric": "fill_pct", "field": "distance", "op": "fill_from_distance",
        "depth_mm": {"device": "bin_depth_mm", "default": 1000}},
       {"metric": "battery_pct", "field": "battery"}]}

`field` is a dotted path into the decoded object ("line_1.total_in", "ENERGY.Total",
"regions.0.count"). Each reading has an `op` (default `copy`):

- `copy`: the number, times `scale`, plus `offset` (units: Wh -> kWh is `"scale": 0.001`).
- `product`: the number times every factor of `by` (power from current: `"by": [voltage, pf]`).
- `bool`: true -> 1, false -> 0 (a parking bay's `occupied`).
- `enum`: a string through `values` (`{"on": 1, "off": 0}` for a lighting circuit).
- `fill_from_distance`: a bin's fill % from the sensor's distance to the surface (mm, after
  `scale`): 100 * (depth - (distance - mount)) / depth, clipped to 0..100, where `depth_mm` is the
  bin's depth from its full line to its bottom and `mount_mm` (default 0) how far above the full
  line the sensor sits.
- `delta`: the increase of a cumulative counter since the device's previous uplink, times
  `scale` (kWh per pulse). The raw count is also stored as its own metric (`total_metric`), so the
  previous count survives a restart. A count lower than the previous one is the counter wrapping
  at `modulus` when the previous count was in the upper half of the counter's range, else the
  counter starting again from zero (a device reset): the interval then counts from zero. The
  first count seen gives no interval, only the total.

A factor (`scale`, `by`, `depth_mm`, `mount_mm`) is a number, a per-device setting taken from the
device's metadata with a default (`{"device": "kwh_per_pulse", "default": 0.001}`), or another
decoded field (`{"field": "voltage"}`); `scale` may be a list of factors, multiplied.

A field absent from an uplink (or null: a codec's "no value") is skipped: devices send different
frames. A present field of the wrong type, or a value outside its metric's physical range, refuses
the whole uplink. A profile may carry `examples` of its own (`{"f_port": 85, "bytes": "<hex>"}`):
frames its codec decodes at validation, for fields the codec's official examples never show.
"""

from __future__ import annotations

import json
import math
import re
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

from services.gateway.ingest.rejection import Reason, Rejection
from shared import domains
from shared.domains import DomainManifest, ManifestError
from shared.schemas import Reading
from shared.topics import Domain

PROFILES_DIR = Path(__file__).resolve().parent.parent / "profiles"
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
DEVICE_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
MAX_READINGS = 64
MAX_EXAMPLES = 16
MAX_FACTORS = 4
MAX_ENUM_VALUES = 32
MAX_PATH_CHARS = 128
MAX_PATH_SEGMENTS = 8
MAX_DESCRIPTION_CHARS = 2000
MAX_EXAMPLE_BYTES = 256  # a LoRaWAN payload is at most 242 bytes
OPS = ("copy", "product", "bool", "enum", "fill_from_distance", "delta")


@dataclass(frozen=True, slots=True)
class MetricSpec:
    unit: str | None
    lo: float  # the physical range: a value outside it is a sensor or mapping fault
    hi: float


_COUNT_MAX = float(2**64)
_METRICS: dict[str, MetricSpec] = {
    # Energy. energy_kwh is the energy of the interval ending at the reading's time (what the
    # energy service learns from); the *_total metrics are meters' raw cumulative counts.
    "energy_kwh": MetricSpec("kWh", 0.0, 1e6),
    "energy_total_kwh": MetricSpec("kWh", 0.0, 1e12),
    "energy_total_wh": MetricSpec("Wh", 0.0, 1e15),
    "charge_total_ah": MetricSpec("Ah", 0.0, 1e12),
    "pulse_count": MetricSpec("count", 0.0, _COUNT_MAX),
    "power_w": MetricSpec("W", -1e7, 1e7),  # negative: exported (solar)
    "current_a": MetricSpec("A", 0.0, 1e5),
    "voltage_v": MetricSpec("V", 0.0, 1e5),
    "power_factor": MetricSpec(None, -1.0, 1.0),
    # Waste.
    "fill_pct": MetricSpec("%", 0.0, 100.0),
    "distance_mm": MetricSpec("mm", 0.0, 1e5),
    "tilted": MetricSpec(None, 0.0, 1.0),
    # Traffic: vehicles and people are counts in the interval ending at the reading's time.
    "vehicles": MetricSpec("count", 0.0, 1e6),
    "vehicles_total": MetricSpec("count", 0.0, _COUNT_MAX),
    "speed_kmh": MetricSpec("km/h", 0.0, 400.0),
    "people": MetricSpec("count", 0.0, 1e6),  # people in (line counters: crossings inwards)
    "people_out": MetricSpec("count", 0.0, 1e6),
    "people_in_total": MetricSpec("count", 0.0, _COUNT_MAX),
    "people_out_total": MetricSpec("count", 0.0, _COUNT_MAX),
    "people_present": MetricSpec("count", 0.0, 1e5),  # seen at once (occupancy cameras)
    "occupied": MetricSpec(None, 0.0, 1.0),
    # Any device. (A metric only one domain's devices send is in its manifest.)
    "temperature_c": MetricSpec("°C", -80.0, 200.0),
    "humidity_pct": MetricSpec("%", 0.0, 100.0),
    "battery_pct": MetricSpec("%", 0.0, 100.0),
    "battery_v": MetricSpec("V", 0.0, 100.0),
    "rssi_dbm": MetricSpec("dBm", -200.0, 50.0),
    "snr_db": MetricSpec("dB", -50.0, 50.0),
}


def with_domain_metrics(
    common: Mapping[str, MetricSpec], manifests: Iterable[DomainManifest]
) -> dict[str, MetricSpec]:
    """The gateway's metrics and those only one domain has (its manifest's `metrics`). A
    domain may not redefine one of the gateway's (its unit or range would change for every
    device)."""
    merged = dict(common)
    for manifest in manifests:
        for metric in manifest.metrics:
            if metric.name in merged:
                raise ManifestError(
                    f"{manifest.name}: metric {metric.name} is already the gateway's"
                    " (services/gateway/ingest/profile.py)"
                )
            merged[metric.name] = MetricSpec(metric.unit, metric.lo, metric.hi)
    return merged


METRICS: Mapping[str, MetricSpec] = MappingProxyType(
    with_domain_metrics(_METRICS, domains.registered())
)


class ProfileError(Exception):
    """A profile definition TownPulse refuses; the message is the reason (HTTP 422)."""


class CounterStore(Protocol):
    """The previous raw count of each cumulative counter, per device."""

    def previous(self, device_id: str, metric: str) -> float | None: ...

    def remember(self, device_id: str, metric: str, value: float) -> None: ...


class MemoryCounters:
    """Counts in memory, for tests and the "try it" box; the oldest device forgotten first."""

    def __init__(self, *, max_devices: int = 100_000) -> None:
        self._counts: OrderedDict[str, dict[str, float]] = OrderedDict()
        self._max = max_devices

    def previous(self, device_id: str, metric: str) -> float | None:
        return self._counts.get(device_id, {}).get(metric)

    def remember(self, device_id: str, metric: str, value: float) -> None:
        self._counts.setdefault(device_id, {})[metric] = value
        self._counts.move_to_end(device_id)
        if len(self._counts) > self._max:
            self._counts.popitem(last=False)


@dataclass(frozen=True, slots=True)
class Factor:
    """A number in a reading's arithmetic: a constant, a device setting, or a decoded field."""

    constant: float | None = None
    device: str | None = None  # metadata key
    default: float | None = None  # when the device has no such setting
    field: str | None = None


@dataclass(frozen=True, slots=True)
class ReadingSpec:
    metric: str
    field: str
    op: str = "copy"
    scale: tuple[Factor, ...] = ()  # copy, delta, fill_from_distance; product's `by`
    offset: float = 0.0  # copy
    values: Mapping[str, float] | None = None  # enum
    depth: Factor | None = None  # fill_from_distance
    mount: Factor | None = None  # fill_from_distance
    total_metric: str | None = None  # delta
    modulus: float | None = None  # delta

    def fields(self) -> tuple[str, ...]:
        """Every decoded field this reading reads."""
        factors = (*self.scale, self.depth, self.mount)
        return (self.field, *(f.field for f in factors if f is not None and f.field))


@dataclass(frozen=True, slots=True)
class ProfileExample:
    """A frame of the profile's own: bytes its codec decodes, or (no codec) a decoded object."""

    f_port: int | None = None
    payload: bytes | None = None
    data: Mapping[str, Any] | None = None
    description: str = ""


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    domain: Domain
    codec: str | None
    readings: tuple[ReadingSpec, ...]
    description: str = ""
    examples: tuple[ProfileExample, ...] = ()

    @property
    def counter_metrics(self) -> tuple[str, ...]:
        """The metrics holding raw cumulative counts (the previous one is needed per device)."""
        return tuple(r.total_metric for r in self.readings if r.total_metric)

    @property
    def metrics(self) -> tuple[str, ...]:
        """Every metric this profile can produce."""
        out: list[str] = []
        for r in self.readings:
            out.append(r.metric)
            if r.total_metric:
                out.append(r.total_metric)
        return tuple(out)


# ---- parsing ------------------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _finite(value: Any) -> float | None:
    """The value as a float if it is a finite number (not a boolean), else None."""
    if not _is_number(value):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int beyond float's range
        return None
    return number if math.isfinite(number) else None


def _number(value: Any, where: str) -> float:
    number = _finite(value)
    if number is None:
        raise ProfileError(f"{where}: must be a finite number")
    return number


def _keys(doc: Mapping[str, Any], allowed: Iterable[str], where: str) -> None:
    unknown = sorted(set(doc) - set(allowed))
    if unknown:
        raise ProfileError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}")


def _path(value: Any, where: str) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_PATH_CHARS:
        raise ProfileError(f"{where}: a field path (1..{MAX_PATH_CHARS} characters) is needed")
    segments = value.split(".")
    if len(segments) > MAX_PATH_SEGMENTS or not all(segments) or not value.isprintable():
        raise ProfileError(f"{where}: {value!r} is not a dotted field path")
    return value


def _metric(value: Any, where: str) -> str:
    if not isinstance(value, str) or value not in METRICS:
        raise ProfileError(
            f"{where}: unknown metric {value!r} (known: {', '.join(sorted(METRICS))})"
        )
    return value


def _factor(value: Any, where: str) -> Factor:
    if _is_number(value):
        return Factor(constant=_number(value, where))
    if isinstance(value, Mapping):
        if "device" in value:
            _keys(value, ("device", "default"), where)
            key = value["device"]
            if not isinstance(key, str) or not DEVICE_KEY_RE.match(key):
                raise ProfileError(f"{where}: device setting {key!r} is not a metadata key")
            if "default" not in value:
                raise ProfileError(f"{where}: device setting {key!r} needs a default")
            return Factor(device=key, default=_number(value["default"], f"{where}.default"))
        if "field" in value:
            _keys(value, ("field",), where)
            return Factor(field=_path(value["field"], f"{where}.field"))
    raise ProfileError(
        f'{where}: a number, {{"device": "<key>", "default": <number>}} or {{"field": "<path>"}}'
    )


def _factors(value: Any, where: str) -> tuple[Factor, ...]:
    items = value if isinstance(value, list) else [value]
    if not 1 <= len(items) <= MAX_FACTORS:
        raise ProfileError(f"{where}: 1 to {MAX_FACTORS} factors")
    return tuple(_factor(item, f"{where}[{i}]") for i, item in enumerate(items))


_OP_KEYS = {
    "copy": ("scale", "offset"),
    "product": ("by",),
    "bool": (),
    "enum": ("values",),
    "fill_from_distance": ("depth_mm", "mount_mm", "scale"),
    "delta": ("total_metric", "scale", "modulus"),
}


def _reading(doc: Any, where: str) -> ReadingSpec:
    if not isinstance(doc, Mapping):
        raise ProfileError(f"{where}: must be an object")
    op = doc.get("op", "copy")
    if op not in OPS:
        raise ProfileError(f"{where}: unknown op {op!r} (known: {', '.join(OPS)})")
    _keys(doc, ("metric", "field", "op", *_OP_KEYS[op]), where)
    metric = _metric(doc.get("metric"), f"{where}.metric")
    field = _path(doc.get("field"), f"{where}.field")
    scale = _factors(doc["scale"], f"{where}.scale") if "scale" in doc else ()
    if op == "copy":
        offset = _number(doc.get("offset", 0), f"{where}.offset")
        return ReadingSpec(metric=metric, field=field, scale=scale, offset=offset)
    if op == "product":
        if "by" not in doc:
            raise ProfileError(f"{where}: product needs `by` (the factors)")
        return ReadingSpec(metric=metric, field=field, op=op, scale=_factors(doc["by"], where))
    if op == "bool":
        return ReadingSpec(metric=metric, field=field, op=op)
    if op == "enum":
        values = doc.get("values")
        if not isinstance(values, Mapping) or not 1 <= len(values) <= MAX_ENUM_VALUES:
            raise ProfileError(f"{where}.values: an object of 1..{MAX_ENUM_VALUES} strings")
        table = {str(k): _number(v, f"{where}.values[{k!r}]") for k, v in values.items()}
        return ReadingSpec(metric=metric, field=field, op=op, values=MappingProxyType(table))
    if op == "fill_from_distance":
        if "depth_mm" not in doc:
            raise ProfileError(f"{where}: fill_from_distance needs depth_mm")
        depth = _factor(doc["depth_mm"], f"{where}.depth_mm")
        mount = _factor(doc["mount_mm"], f"{where}.mount_mm") if "mount_mm" in doc else None
        return ReadingSpec(metric=metric, field=field, op=op, scale=scale, depth=depth, mount=mount)
    # delta
    total = _metric(doc.get("total_metric"), f"{where}.total_metric")
    modulus = None
    if "modulus" in doc:
        modulus = _number(doc["modulus"], f"{where}.modulus")
        if modulus <= 0:
            raise ProfileError(f"{where}.modulus: must be > 0")
    return ReadingSpec(
        metric=metric, field=field, op=op, scale=scale, total_metric=total, modulus=modulus
    )


def _example(doc: Any, where: str, *, has_codec: bool) -> ProfileExample:
    if not isinstance(doc, Mapping):
        raise ProfileError(f"{where}: must be an object")
    description = doc.get("description", "")
    if not isinstance(description, str) or len(description) > MAX_DESCRIPTION_CHARS:
        raise ProfileError(f"{where}.description: text of at most {MAX_DESCRIPTION_CHARS}")
    if has_codec:
        _keys(doc, ("description", "f_port", "bytes"), where)
        f_port = doc.get("f_port")
        if not isinstance(f_port, int) or isinstance(f_port, bool) or not 0 <= f_port <= 255:
            raise ProfileError(f"{where}.f_port: 0..255")
        raw = doc.get("bytes")
        try:
            payload = bytes.fromhex(raw) if isinstance(raw, str) else None
        except ValueError:
            payload = None
        if payload is None or not 0 < len(payload) <= MAX_EXAMPLE_BYTES:
            raise ProfileError(f"{where}.bytes: hex text of 1..{MAX_EXAMPLE_BYTES} bytes")
        return ProfileExample(f_port=f_port, payload=payload, description=description)
    # Without a codec, the device's own JSON is what the profile reads.
    _keys(doc, ("description", "data"), where)
    data = doc.get("data")
    if not isinstance(data, Mapping) or len(json.dumps(data)) > 64 * 1024:
        raise ProfileError(f"{where}.data: the device's decoded object (at most 64 KiB)")
    return ProfileExample(data=data, description=description)


def parse_profile(doc: Mapping[str, Any]) -> Profile:
    """A profile definition checked and parsed; ProfileError with the reason otherwise."""
    if not isinstance(doc, Mapping):
        raise ProfileError("a profile is a JSON object")
    _keys(doc, ("name", "domain", "codec", "description", "readings", "examples"), "profile")
    name = doc.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ProfileError(f"name {name!r}: lower-case letters, digits, '.', '_', '-' (<= 64)")
    try:
        domain = Domain(str(doc.get("domain")))
    except ValueError:
        known = ", ".join(d.value for d in Domain)
        raise ProfileError(f"domain {doc.get('domain')!r}: one of {known}") from None
    codec = doc.get("codec")
    if codec is not None and (not isinstance(codec, str) or not NAME_RE.match(codec)):
        raise ProfileError(f"codec {codec!r} is not a codec name")
    description = doc.get("description", "")
    if not isinstance(description, str) or len(description) > MAX_DESCRIPTION_CHARS:
        raise ProfileError(f"description: text of at most {MAX_DESCRIPTION_CHARS} characters")
    items = doc.get("readings")
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_READINGS:
        raise ProfileError(f"readings: a list of 1..{MAX_READINGS} readings")
    readings = tuple(_reading(item, f"readings[{i}]") for i, item in enumerate(items))
    seen: set[str] = set()
    for spec in readings:
        for metric in (spec.metric, spec.total_metric):
            if metric is None:
                continue
            if metric in seen:
                raise ProfileError(f"metric {metric!r} is made by two readings")
            seen.add(metric)
    raw_examples = doc.get("examples", [])
    if not isinstance(raw_examples, list) or len(raw_examples) > MAX_EXAMPLES:
        raise ProfileError(f"examples: a list of at most {MAX_EXAMPLES}")
    examples = tuple(
        _example(item, f"examples[{i}]", has_codec=codec is not None)
        for i, item in enumerate(raw_examples)
    )
    return Profile(
        name=name,
        domain=domain,
        codec=codec,
        readings=readings,
        description=description,
        examples=examples,
    )


# ---- checking against what the codec outputs ----------------------------------------------------


class Decoder(Protocol):
    """What decodes a profile's own example frames (a CodecSandbox)."""

    def decode(self, payload: bytes, *, f_port: int, recv_time: datetime) -> Any: ...


_MISSING = object()


class _NotAnObject(Exception):
    pass


def _resolve(data: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path, _MISSING if absent; _NotAnObject if a step is a scalar."""
    value: Any = data
    for segment in path.split("."):
        if isinstance(value, Mapping):
            value = value.get(segment, _MISSING)
        elif isinstance(value, list):
            if not (segment.isascii() and segment.isdigit()) or int(segment) >= len(value):
                return _MISSING
            value = value[int(segment)]
        else:
            raise _NotAnObject(segment)
        if value is _MISSING:
            return _MISSING
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if _is_number(value):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def _expects(spec: ReadingSpec, path: str) -> str:
    if path == spec.field and spec.op == "bool":
        return "a boolean"
    if path == spec.field and spec.op == "enum":
        return "a string"
    return "a number"


def check_against_examples(
    profile: Profile,
    outputs: Iterable[Mapping[str, Any]],
    *,
    sandbox: Decoder | None = None,
) -> None:
    """ProfileError if a reading reads a field that no example output holds (with a value of the
    type the reading needs), or an enum meets a string it has no number for.

    `outputs` are the codec's example outputs as its examples give them (`{"data": {...}}`);
    with a `sandbox` (the profile's codec), the profile's own example frames are decoded and
    added. A profile without a codec adds its own example objects as they are.
    """
    datas: list[Mapping[str, Any]] = []
    for output in outputs:
        data = output.get("data") if isinstance(output, Mapping) else None
        if isinstance(data, Mapping):
            datas.append(data)
    for i, example in enumerate(profile.examples):
        if example.data is not None:
            datas.append(example.data)
        elif sandbox is not None and example.payload is not None and example.f_port is not None:
            try:
                decoded = sandbox.decode(
                    example.payload, f_port=example.f_port, recv_time=datetime.now(UTC)
                )
            except Rejection as exc:
                raise ProfileError(
                    f"examples[{i}] does not decode: {exc.reason.value}: {exc.detail}"
                ) from None
            datas.append(decoded.data)
    for spec in profile.readings:
        for path in spec.fields():
            values = []
            for data in datas:
                try:
                    value = _resolve(data, path)
                except _NotAnObject:
                    continue
                if value is not _MISSING and value is not None:
                    values.append(value)
            where = f"reading {spec.metric!r}: field {path!r}"
            if not values:
                raise ProfileError(f"{where} never appears in the codec's examples")
            wanted = _expects(spec, path)
            if not any(_kind(v) == wanted for v in values):
                kinds = ", ".join(sorted({_kind(v) for v in values}))
                raise ProfileError(f"{where} is {kinds} in the examples; {spec.op} needs {wanted}")
            if path == spec.field and spec.values is not None:
                strange = sorted({v for v in values if isinstance(v, str)} - set(spec.values))
                if strange:
                    raise ProfileError(f"{where}: no number in `values` for {strange[0]!r}")


# ---- mapping ------------------------------------------------------------------------------------


def _value(data: Mapping[str, Any], path: str, *, metric: str) -> Any:
    try:
        value = _resolve(data, path)
    except _NotAnObject as exc:
        raise Rejection(
            Reason.FIELD_TYPE, f"{metric}: field {path!r} crosses a value at {str(exc)!r}"
        ) from None
    return None if value is _MISSING else value


def _as_number(value: Any, *, metric: str, path: str) -> float:
    if not _is_number(value):
        raise Rejection(
            Reason.FIELD_TYPE, f"{metric}: field {path!r} is {_kind(value)}, not a number"
        )
    try:
        return float(value)
    except OverflowError:
        raise Rejection(Reason.OUT_OF_RANGE, f"{metric}: field {path!r} is too large") from None


def _factor_value(
    factor: Factor, data: Mapping[str, Any], metadata: Mapping[str, Any], *, metric: str
) -> float | None:
    """The factor's number; None when it reads a field this uplink does not hold."""
    if factor.constant is not None:
        return factor.constant
    if factor.field is not None:
        value = _value(data, factor.field, metric=metric)
        return None if value is None else _as_number(value, metric=metric, path=factor.field)
    assert factor.device is not None and factor.default is not None
    setting = metadata.get(factor.device)
    if setting is None:
        return factor.default
    number = _finite(setting)
    if number is None:
        raise Rejection(
            Reason.FIELD_TYPE, f"{metric}: device setting {factor.device!r} is not a number"
        )
    return number


def _product(
    factors: tuple[Factor, ...],
    data: Mapping[str, Any],
    metadata: Mapping[str, Any],
    *,
    metric: str,
) -> float | None:
    result = 1.0
    for factor in factors:
        value = _factor_value(factor, data, metadata, metric=metric)
        if value is None:
            return None
        result *= value
    return result


def _checked(metric: str, value: float, ts: datetime) -> Reading:
    spec = METRICS[metric]
    if not math.isfinite(value) or not spec.lo <= value <= spec.hi:
        raise Rejection(
            Reason.OUT_OF_RANGE, f"{metric} = {value:g} is outside {spec.lo:g}..{spec.hi:g}"
        )
    return Reading(ts=ts, metric=metric, value=value, unit=spec.unit)


def _interval(count: float, previous: float, modulus: float | None) -> float:
    if count >= previous:
        return count - previous
    if modulus is not None and previous >= modulus / 2:
        return count + modulus - previous  # wrapped past the counter's top
    return count  # reset: counting from zero again


def map_fields(
    profile: Profile,
    data: Mapping[str, Any],
    *,
    device_id: str,
    ts: datetime,
    metadata: Mapping[str, Any],
    counters: CounterStore,
) -> list[Reading]:
    """The readings a profile makes of one decoded uplink.

    Rejection: FIELD_TYPE (a mapped field or a device setting of the wrong type), OUT_OF_RANGE
    (a value outside its metric's range), NO_METRICS (none of the profile's fields in it).
    Counts are remembered only once the whole uplink is mapped: a refused uplink leaves them as
    they were, so the next interval still holds what the refused one counted.
    """
    readings: list[Reading] = []
    counts: list[tuple[str, float]] = []
    for spec in profile.readings:
        metric = spec.metric
        raw = _value(data, spec.field, metric=metric)
        if raw is None:
            continue
        if spec.op == "bool":
            if not isinstance(raw, bool):
                raise Rejection(
                    Reason.FIELD_TYPE,
                    f"{metric}: field {spec.field!r} is {_kind(raw)}, not a boolean",
                )
            readings.append(_checked(metric, 1.0 if raw else 0.0, ts))
            continue
        if spec.op == "enum":
            assert spec.values is not None
            if not isinstance(raw, str) or raw not in spec.values:
                shown = raw if isinstance(raw, str) else _kind(raw)
                raise Rejection(
                    Reason.FIELD_TYPE,
                    f"{metric}: field {spec.field!r} is {shown!r}, not one of "
                    + ", ".join(spec.values),
                )
            readings.append(_checked(metric, spec.values[raw], ts))
            continue
        number = _as_number(raw, metric=metric, path=spec.field)
        scale = _product(spec.scale, data, metadata, metric=metric)
        if scale is None:
            continue
        if spec.op in ("copy", "product"):
            readings.append(_checked(metric, number * scale + spec.offset, ts))
        elif spec.op == "fill_from_distance":
            assert spec.depth is not None
            depth = _factor_value(spec.depth, data, metadata, metric=metric)
            mount = _factor_value(spec.mount, data, metadata, metric=metric) if spec.mount else 0.0
            if depth is None or mount is None:
                continue
            if depth <= 0:
                raise Rejection(Reason.OUT_OF_RANGE, f"{metric}: bin depth {depth:g} mm is not > 0")
            fill = 100.0 * (depth - (number * scale - mount)) / depth
            readings.append(_checked(metric, min(100.0, max(0.0, fill)), ts))
        else:  # delta
            assert spec.total_metric is not None
            total = spec.total_metric
            if number < 0 or (spec.modulus is not None and number >= spec.modulus):
                raise Rejection(
                    Reason.OUT_OF_RANGE, f"{total}: count {number:g} outside the counter's range"
                )
            previous = counters.previous(device_id, total)
            if previous is not None:
                interval = _interval(number, previous, spec.modulus)
                readings.append(_checked(metric, interval * scale, ts))
            readings.append(_checked(total, number, ts))
            counts.append((total, number))
    if not readings:
        wanted = sorted({path for spec in profile.readings for path in spec.fields()})
        raise Rejection(
            Reason.NO_METRICS,
            f"none of the profile's fields ({', '.join(wanted)}) in this uplink",
        )
    for total, number in counts:
        counters.remember(device_id, total, number)
    return readings


# ---- the profiles TownPulse ships --------------------------------------------------------------


def shipped_profiles() -> list[dict[str, Any]]:
    """The definitions in services/gateway/profiles/*.json, by file name."""
    out = []
    for path in sorted(PROFILES_DIR.glob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(doc, dict):
            raise ValueError(f"{path}: not a JSON object")
        out.append(doc)
    return out
