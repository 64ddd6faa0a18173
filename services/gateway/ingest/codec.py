"""Vendors' TTN-format uplink codecs, run in QuickJS with a CPU-time and a memory limit per call.

A codec is JavaScript that defines `decodeUplink(input)` (The Things Stack's formatter API, which
ChirpStack v4 shares): `input.bytes` (the payload as byte values), `input.fPort`, `input.recvTime`
(a Date), returning `{data, warnings, errors}`. Each codec version gets its own QuickJS runtime,
never shared with another codec: a codec's globals (TTN scripts create implicit ones) can leak
nothing into another's.

What a codec can reach: the ECMAScript built-ins and nothing else. The `quickjs` binding adds no
host objects (no `std`/`os` module, no `require`, `console`, `fetch`, timers), and nothing of
Python is exposed to a context. What it cannot do to the gateway, and why:

- Run forever: QuickJS polls the CPU-time limit (`clock()`, the process's CPU time) at loop back
  edges and calls; the interrupt cannot be caught by the script. The poll happens every 10,000
  back edges, so a loop whose every turn is one long native call (`indexOf` over a string of
  megabytes) overshoots the limit by that factor: the memory limit bounds the size of such a
  call, not the overshoot. Only a separate process with a wall-clock deadline bounds that case.
- Exhaust memory: the runtime's allocator refuses past the limit; the error surfaces as
  `InternalError: out of memory`, or as a bare `null` when even that error could not be made.
- Recurse without end: QuickJS checks its stack (256 KiB here) in every JavaScript call.
- Crash the process through engine bugs of the embedded QuickJS (2021-03-27, what the `quickjs`
  package ships): its native `JSON.stringify` recurses with no stack check (a 100,000-deep object
  segfaults the process), `Array.isArray` recurses through nested Proxies, and regular
  expressions run with no interrupt check (catastrophic backtracking never returns). So before
  any codec code runs, `Proxy` is removed, `JSON.stringify` is replaced by a serialiser written in
  JavaScript (depth-limited, its recursion checked like any JavaScript call), and, unless
  `allow_regexp`, every way into the regexp matcher (`exec`, `test`, the `Symbol.match/
  matchAll/replace/search/split` methods that `String.prototype` delegates to) throws. The
  codec's result is serialised by the same JavaScript code, never by the native one.

A context interrupted, out of memory or out of stack may be left unusable: it is rebuilt from the
script before the next call.
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import quickjs
import yaml

from services.gateway.ingest.rejection import Reason, Rejection

MAX_SCRIPT_BYTES = 256 * 1024
DEFAULT_TIME_LIMIT_S = 0.1
DEFAULT_MEMORY_LIMIT_BYTES = 32 * 2**20
DEFAULT_MAX_OUTPUT_BYTES = 64 * 1024
# QuickJS's own default. Deep enough for any decoder (a few frames); the recursion a runaway codec
# reaches within it is far from the C stack of any thread (Python's threads get 8 MiB on Linux).
MAX_STACK_BYTES = 256 * 1024
# Decoded objects are a few levels deep (vs121: data.regions[i].count); the limit keeps the
# serialiser shallow and a cycle from looping.
MAX_OUTPUT_DEPTH = 32
MAX_DETAIL_CHARS = 300
_BYTE_TEXT = tuple(str(b) for b in range(256))
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")

# Runs in each fresh context before the codec's script, so the script finds the safe versions in
# place. It returns the function Python calls: input as JSON text, output as JSON text prefixed
# with "=" (or "!" and why the result cannot be serialised). Built-ins it needs are captured
# first: a codec may replace the globals, but cannot reach into this closure.
_PRELUDE = r"""
(function (allowRegexp, maxDepth) {
  "use strict";
  var G = globalThis;
  var nativeStringify = JSON.stringify, parse = JSON.parse, MakeDate = Date;
  var isArray = Array.isArray, keys = Object.keys, apply = Reflect.apply;
  var isFinite_ = isFinite, String_ = String, TypeError_ = TypeError;
  var Number_ = Number, Boolean_ = Boolean;
  var floor = Math.floor, min = Math.min, create = Object.create;
  var getPrototypeOf = Object.getPrototypeOf, ObjectProto = Object.prototype;
  var ArrayProto = Array.prototype;
  // Most strings a codec returns are short and plain: quoted without the (slower) native call.
  function quote(text) {
    var n = text.length;
    if (n > 64) return nativeStringify(text);
    for (var i = 0; i < n; i++) {
      var c = text.charCodeAt(i);
      if (c < 0x20 || c === 0x22 || c === 0x5c || (c >= 0xd800 && c <= 0xdfff)) {
        return nativeStringify(text);
      }
    }
    return '"' + text + '"';
  }
  // Keys repeat from one uplink to the next: quoting each once saves a native call per field.
  var quotedKeys = create(null), quotedCount = 0;
  function quoteKey(name) {
    var q = quotedKeys[name];
    if (q === undefined) {
      q = nativeStringify(name);
      if (quotedCount < 4096) { quotedKeys[name] = q; quotedCount++; }
    }
    return q;
  }
  // What the serialiser refuses: private to this closure, so a codec cannot forge it.
  function OutputError(message) { this.message = message; }

  delete G.Proxy;

  if (!allowRegexp) {
    var refuse = function () {
      throw new TypeError_("regular expressions are disabled in TownPulse codecs");
    };
    var proto = RegExp.prototype;
    var names = ["exec", "test"];
    var symbols = [Symbol.match, Symbol.matchAll, Symbol.replace, Symbol.search, Symbol.split];
    var fixed = {value: refuse, writable: false, configurable: false};
    for (var i = 0; i < names.length; i++) Object.defineProperty(proto, names[i], fixed);
    for (var j = 0; j < symbols.length; j++) Object.defineProperty(proto, symbols[j], fixed);
  }

  // JSON.stringify's algorithm (toJSON, replacer function or key list, indent), in JavaScript.
  function serialise(value, replacer, space, depthLimit, maxChars) {
    var allow = null, gap = "";
    if (isArray(replacer)) {
      allow = create(null);
      for (var k = 0; k < replacer.length; k++) {
        var item = replacer[k];
        if (typeof item === "string" || typeof item === "number") allow[String_(item)] = true;
      }
      replacer = null;
    } else if (typeof replacer !== "function") {
      replacer = null;
    }
    if (typeof space === "number") {
      var n = min(10, floor(space));
      for (var s = 0; s < n; s++) gap += " ";
    } else if (typeof space === "string") {
      gap = space.slice(0, 10);
    }
    var colon = gap ? ": " : ":";

    // `v` is holder[key], already read (once: a getter runs once, as in the native version).
    function str(v, key, holder, depth, indent) {
      if ((typeof v === "object" && v !== null) || typeof v === "bigint") {
        var toJSON = v.toJSON;
        if (typeof toJSON === "function") v = apply(toJSON, v, [key]);
      }
      if (replacer !== null) v = apply(replacer, holder, [key, v]);
      switch (typeof v) {
        case "string": return quote(v);
        case "number": return isFinite_(v) ? "" + v : "null";
        case "boolean": return v ? "true" : "false";
        case "bigint": throw new OutputError("a BigInt cannot be serialised in JSON");
        case "object":
          if (v === null) return "null";
          var proto = getPrototypeOf(v);
          if (proto !== ObjectProto && proto !== ArrayProto && proto !== null) {
            if (v instanceof Number_) return str(Number_(v), key, {}, depth, indent);
            if (v instanceof String_) return quote(String_(v));
            if (v instanceof Boolean_) return v.valueOf() ? "true" : "false";
          }
          break;
        default:
          return undefined;  // undefined, a function, a symbol: left out
      }
      if (depth >= depthLimit) {
        throw new OutputError("nested deeper than " + depthLimit + " levels (or circular)");
      }
      var inner = gap ? indent + gap : "", text = "", first = true, i, part;
      var open = gap ? "\n" + inner : "", close = gap ? "\n" + indent : "";
      if (isArray(v)) {
        var len = v.length;
        for (i = 0; i < len; i++) {
          part = str(v[i], "" + i, v, depth + 1, inner);
          text += (first ? open : "," + open) + (part === undefined ? "null" : part);
          first = false;
          if (text.length > maxChars) throw new OutputError("output larger than " + maxChars);
        }
        return first ? "[]" : "[" + text + close + "]";
      }
      var names = keys(v);
      for (i = 0; i < names.length; i++) {
        var name = names[i];
        if (allow !== null && !allow[name]) continue;
        var value = v[name];
        // Plain numbers and strings inline: most of a codec's output, and a call saved each.
        if (replacer === null && typeof value === "number") {
          part = isFinite_(value) ? "" + value : "null";
        } else if (replacer === null && typeof value === "string") {
          part = quote(value);
        } else {
          part = str(value, name, v, depth + 1, inner);
          if (part === undefined) continue;
        }
        text += (first ? open : "," + open) + quoteKey(name) + colon + part;
        first = false;
        if (text.length > maxChars) throw new OutputError("output larger than " + maxChars);
      }
      return first ? "{}" : "{" + text + close + "}";
    }

    var text = str(value, "", {"": value}, 0, "");
    if (text !== undefined && text.length > maxChars) {
      throw new OutputError("output larger than " + maxChars);
    }
    return text;
  }

  var stringify = function stringify(value, replacer, space) {
    try {
      return serialise(value, replacer, space, 64, 1 / 0);
    } catch (e) {
      if (e instanceof OutputError) throw new TypeError_(e.message);
      throw e;
    }
  };
  Object.defineProperty(JSON, "stringify", {value: stringify, writable: true, configurable: true});

  return function run(inputJson, maxChars) {
    var raw = parse(inputJson);
    var input = {bytes: raw.bytes, fPort: raw.fPort, recvTime: new MakeDate(raw.recvTime)};
    var decode = G.decodeUplink;
    if (typeof decode !== "function") return "!decodeUplink is no longer a function";
    var result = decode(input);
    try {
      var text = serialise(result, null, null, maxDepth, maxChars);
    } catch (e) {
      // Only the serialiser's own refusals are an output problem; anything else (a getter or
      // toJSON that threw, memory, the stack) is the codec's.
      if (e instanceof OutputError) return "!" + e.message;
      throw e;
    }
    return text === undefined ? "!decodeUplink returned nothing" : "=" + text;
  };
})
"""


@dataclass(frozen=True, slots=True)
class Decoded:
    """What a codec made of one uplink: its `data` object and any warnings it gave."""

    data: dict[str, Any]
    warnings: tuple[str, ...] = ()


def _first_line(text: str) -> str:
    line = text.strip().split("\n", 1)[0].strip()
    return line[:MAX_DETAIL_CHARS]


def _classify(exc: quickjs.JSException) -> Rejection:
    """A QuickJS failure as a dead-letter reason (the exception text is all the binding gives)."""
    message = _first_line(str(exc))
    if isinstance(exc, quickjs.StackOverflow):
        return Rejection(Reason.CODEC_MEMORY, f"stack overflow: {message}")
    if message == "InternalError: interrupted":
        return Rejection(Reason.CODEC_TIMEOUT, "over its CPU-time limit")
    if message.startswith("InternalError: out of memory"):
        return Rejection(Reason.CODEC_MEMORY, "over its memory limit")
    if message == "null":
        # QuickJS throws a bare null when it cannot even allocate the out-of-memory error (a
        # codec's own `throw null` looks the same).
        return Rejection(Reason.CODEC_MEMORY, "over its memory limit (or the codec threw null)")
    return Rejection(Reason.CODEC_ERROR, message or "the codec threw")


def _must_rebuild(rejection: Rejection) -> bool:
    return rejection.reason in (Reason.CODEC_TIMEOUT, Reason.CODEC_MEMORY)


class CodecSandbox:
    """One codec version in its own QuickJS context, loaded once, called for every uplink.

    Not re-entrant: QuickJS contexts must not be used by two threads at once, so calls are
    serialised by a lock (the binding releases the GIL while JavaScript runs).
    """

    def __init__(
        self,
        script: str,
        *,
        time_limit_s: float = DEFAULT_TIME_LIMIT_S,
        memory_limit_bytes: int = DEFAULT_MEMORY_LIMIT_BYTES,
        max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
        allow_regexp: bool = False,
    ) -> None:
        if not isinstance(script, str):
            raise TypeError("script must be a str")
        if len(script.encode("utf-8", "surrogatepass")) > MAX_SCRIPT_BYTES:
            raise Rejection(Reason.CODEC_ERROR, f"script larger than {MAX_SCRIPT_BYTES} bytes")
        if "\x00" in script:
            # The binding passes the script as a C string: it would end at the NUL.
            raise Rejection(Reason.CODEC_ERROR, "script contains a NUL character")
        self.script = script
        self.time_limit_s = time_limit_s
        self.memory_limit_bytes = memory_limit_bytes
        self.max_output_bytes = max_output_bytes
        self.allow_regexp = allow_regexp
        self._lock = threading.Lock()
        self._context, self._run = self._load()

    def _load(self) -> tuple[quickjs.Context, quickjs.Object]:
        context = quickjs.Context()
        context.set_time_limit(self.time_limit_s)
        context.set_memory_limit(self.memory_limit_bytes)
        context.set_max_stack_size(MAX_STACK_BYTES)
        try:
            factory = context.eval(_PRELUDE)
            run = factory(self.allow_regexp, MAX_OUTPUT_DEPTH)
        except quickjs.JSException as exc:  # pragma: no cover - our own code, fixed text
            raise RuntimeError(f"codec prelude failed: {exc}") from exc
        try:
            # A plain script, not a module: TTN codecs assign undeclared globals (sloppy mode).
            context.eval(self.script)
            kind = context.eval("typeof decodeUplink")
        except quickjs.JSException as exc:
            rejection = _classify(exc)
            if rejection.reason is Reason.CODEC_ERROR:
                rejection = Rejection(
                    Reason.CODEC_ERROR, f"script does not load: {rejection.detail}"
                )
            raise rejection from None
        if kind != "function":
            raise Rejection(Reason.CODEC_ERROR, "the script defines no decodeUplink function")
        if not isinstance(run, quickjs.Object):  # pragma: no cover - our own prelude
            raise RuntimeError("codec prelude returned no function")
        return context, run

    def decode(self, payload: bytes, *, f_port: int, recv_time: datetime) -> Decoded:
        """Run `decodeUplink` on one uplink; Rejection (CODEC_*) when it cannot be used."""
        if recv_time.tzinfo is None:
            raise ValueError("recv_time must be timezone-aware")
        # JSON text, parsed inside the context: nothing of Python crosses into JavaScript.
        text = (
            '{"bytes":['
            + ",".join([_BYTE_TEXT[b] for b in payload])
            + f'],"fPort":{int(f_port)},"recvTime":{math.floor(recv_time.timestamp() * 1000)}}}'
        )
        with self._lock:
            try:
                out = self._run(text, self.max_output_bytes)
            except quickjs.JSException as exc:
                rejection = _classify(exc)
                if _must_rebuild(rejection) or rejection.detail.startswith("(Failed obtaining"):
                    self._context, self._run = self._load()
                raise rejection from None
            except UnicodeDecodeError:
                # A lone surrogate in a string: not UTF-8 once it leaves QuickJS.
                raise Rejection(Reason.CODEC_OUTPUT, "output is not valid Unicode") from None
        return _result(out, self.max_output_bytes)

    def memory_bytes(self) -> int:
        """Memory the context holds now (QuickJS's own count)."""
        with self._lock:
            return int(self._context.memory()["memory_used_size"])


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "a string" if isinstance(value, str) else "an array"


def _result(out: object, max_output_bytes: int) -> Decoded:
    if not isinstance(out, str) or not out:  # pragma: no cover - the prelude returns text
        raise Rejection(Reason.CODEC_OUTPUT, "no output")
    if out[0] == "!":
        raise Rejection(Reason.CODEC_OUTPUT, out[1 : 1 + MAX_DETAIL_CHARS])
    body = out[1:]
    if len(body.encode()) > max_output_bytes:
        raise Rejection(Reason.CODEC_OUTPUT, f"output larger than {max_output_bytes} bytes")
    try:
        result = json.loads(body)
    except (ValueError, RecursionError):
        # Only if the codec replaced a built-in the serialiser's quoting relies on
        # (String.prototype.charCodeAt): what it breaks is its own output, refused here.
        raise Rejection(Reason.CODEC_OUTPUT, "output is not JSON") from None
    if not isinstance(result, dict):
        raise Rejection(
            Reason.CODEC_OUTPUT, f"decodeUplink returned {_kind(result)}, not an object"
        )
    errors = result.get("errors")
    if errors:
        if isinstance(errors, list):
            detail = "; ".join(e if isinstance(e, str) else json.dumps(e) for e in errors)
        else:
            detail = errors if isinstance(errors, str) else json.dumps(errors)
        raise Rejection(Reason.CODEC_ERROR, detail[:MAX_DETAIL_CHARS])
    data = result.get("data")
    if not isinstance(data, dict):
        raise Rejection(Reason.CODEC_OUTPUT, "decodeUplink returned no `data` object")
    warnings = result.get("warnings") or []
    if not isinstance(warnings, list):
        warnings = [warnings]
    return Decoded(
        data=data,
        warnings=tuple(
            (w if isinstance(w, str) else json.dumps(w))[:MAX_DETAIL_CHARS] for w in warnings
        ),
    )


class CodecPool:
    """Loaded codecs by (name, version), least recently used dropped past `max_codecs`.

    A version's script never changes, so a cached context is reused for every uplink of every
    device using that codec. A script that fails to load is cached as its rejection too: every
    uplink would otherwise pay its load (up to the time limit) again.
    """

    def __init__(
        self,
        max_codecs: int = 256,
        *,
        time_limit_s: float = DEFAULT_TIME_LIMIT_S,
        memory_limit_bytes: int = DEFAULT_MEMORY_LIMIT_BYTES,
        max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
        allow_regexp: bool = False,
    ) -> None:
        if max_codecs < 1:
            raise ValueError("max_codecs must be >= 1")
        self.max_codecs = max_codecs
        self._limits: dict[str, Any] = {
            "time_limit_s": time_limit_s,
            "memory_limit_bytes": memory_limit_bytes,
            "max_output_bytes": max_output_bytes,
            "allow_regexp": allow_regexp,
        }
        self._loaded: OrderedDict[tuple[str, int], CodecSandbox | tuple[str, Rejection]] = (
            OrderedDict()
        )
        self._lock = threading.Lock()

    def get(self, name: str, version: int, script: str) -> CodecSandbox:
        key = (name, version)
        with self._lock:
            entry = self._loaded.get(key)
            if entry is not None:
                self._loaded.move_to_end(key)
        if entry is not None:
            if isinstance(entry, CodecSandbox):
                if entry.script is script or entry.script == script:
                    return entry
            elif entry[0] is script or entry[0] == script:
                raise entry[1]
        loaded: CodecSandbox | tuple[str, Rejection]
        try:
            loaded = self.fresh(script)
        except Rejection as exc:
            loaded = (script, exc)
        with self._lock:
            self._loaded[key] = loaded
            self._loaded.move_to_end(key)
            while len(self._loaded) > self.max_codecs:
                self._loaded.popitem(last=False)
        if isinstance(loaded, tuple):
            raise loaded[1]
        return loaded

    def fresh(self, script: str) -> CodecSandbox:
        """A sandbox of its own for this script, with the pool's limits (not cached)."""
        return CodecSandbox(script, **self._limits)

    def check(self, script: str) -> None:
        """Rejection if the script does not load (syntax, no decodeUplink, limits)."""
        self.fresh(script)

    def forget(self, name: str) -> None:
        with self._lock:
            for key in [k for k in self._loaded if k[0] == name]:
                del self._loaded[key]

    def __len__(self) -> int:
        return len(self._loaded)


# ---- the local copy of The Things Network's Device Repository ----------------------------------

REPOSITORY_PATH_RE = re.compile(r"^([a-z0-9-]+)/([a-z0-9][a-z0-9.-]*)$")
FILE_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*\.js$")
MAX_EXAMPLES = 100


@dataclass(frozen=True, slots=True)
class CodecExample:
    """One of a codec's official test vectors: input bytes and fPort, the expected result
    (`{"data": {...}}`, or `{"errors": [...]}` for a vector that must fail)."""

    f_port: int
    bytes: bytes
    output: dict[str, Any]

    def to_doc(self) -> dict[str, Any]:
        """As the codecs table stores it."""
        return {"f_port": self.f_port, "bytes": list(self.bytes), "output": self.output}

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> CodecExample:
        return cls(f_port=int(doc["f_port"]), bytes=bytes(doc["bytes"]), output=dict(doc["output"]))


@dataclass(frozen=True, slots=True)
class RepositoryCodec:
    name: str  # TownPulse's name for it: "<vendor>-<codec base>", e.g. milesight-iot-em310-udl
    path: str  # "<vendor>/<codec base>", e.g. milesight-iot/em310-udl
    script: str
    examples: tuple[CodecExample, ...]


def repository_codec_name(path: str) -> str:
    """`milesight-iot/em310-udl` -> `milesight-iot-em310-udl` (a codec name TownPulse accepts)."""
    match = REPOSITORY_PATH_RE.match(path)
    if match is None:
        raise ValueError(f"not a repository codec path: {path!r}")
    name = f"{match[1]}-{match[2]}"[:64].rstrip(".-_")
    if not NAME_RE.match(name):  # pragma: no cover - the path pattern implies the name pattern
        raise ValueError(f"cannot name codec {path!r}")
    return name


def _split(path: str) -> tuple[str, str]:
    match = REPOSITORY_PATH_RE.match(path)
    if match is None or ".." in path:
        raise ValueError(f"not a repository codec path (vendor/codec, lower case): {path!r}")
    return match[1], match[2]


def _json_clean(value: Any) -> Any:
    """YAML's extras (dates, sets) as the JSON a codec would give: text."""
    return json.loads(json.dumps(value, default=str))


def _example(item: Any, where: str) -> CodecExample:
    if not isinstance(item, dict):
        raise ValueError(f"{where}: not a mapping")
    raw_input, output = item.get("input"), item.get("output")
    if not isinstance(raw_input, dict) or not isinstance(output, dict):
        raise ValueError(f"{where}: needs input and output mappings")
    f_port, raw = raw_input.get("fPort"), raw_input.get("bytes")
    if isinstance(f_port, bool) or not isinstance(f_port, int) or not 0 <= f_port <= 255:
        raise ValueError(f"{where}: fPort must be 0..255")
    if not isinstance(raw, list) or not all(
        isinstance(b, int) and not isinstance(b, bool) and 0 <= b <= 255 for b in raw
    ):
        raise ValueError(f"{where}: bytes must be a list of 0..255")
    return CodecExample(f_port=f_port, bytes=bytes(raw), output=_json_clean(output))


def load_repository_codec(root: Path, path: str) -> RepositoryCodec:
    """A codec of the local Device Repository copy by "<vendor>/<codec base>": its script (named
    by `uplinkDecoder.fileName` in `vendor/<vendor>/<base>-codec.yaml`) and its examples.

    ValueError for a path or a codec yaml that is not usable, OSError if a file is missing.
    """
    vendor, base = _split(path)
    folder = (root / "vendor" / vendor).resolve()
    vendors = (root / "vendor").resolve()
    if folder.parent != vendors:  # a symlinked vendor folder pointing elsewhere
        raise ValueError(f"{path!r}: vendor folder outside the repository")
    doc = yaml.safe_load((folder / f"{base}-codec.yaml").read_text(encoding="utf-8"))
    decoder = doc.get("uplinkDecoder") if isinstance(doc, dict) else None
    if not isinstance(decoder, dict):
        raise ValueError(f"{path!r}: the codec yaml has no uplinkDecoder")
    file_name = decoder.get("fileName")
    if not isinstance(file_name, str) or not FILE_NAME_RE.match(file_name):
        raise ValueError(f"{path!r}: uplinkDecoder.fileName is not a script in the vendor folder")
    script_path = (folder / file_name).resolve()
    if script_path.parent != folder:
        raise ValueError(f"{path!r}: the script is outside the vendor folder")
    raw = script_path.read_bytes()
    if len(raw) > MAX_SCRIPT_BYTES:
        raise ValueError(f"{path!r}: script larger than {MAX_SCRIPT_BYTES} bytes")
    # Bytes decoded as they are (CRLF kept): the stored script hashes like the repository file.
    script = raw.decode("utf-8")
    items = decoder.get("examples") or []
    if not isinstance(items, list) or len(items) > MAX_EXAMPLES:
        raise ValueError(f"{path!r}: uplinkDecoder.examples must be a list (<= {MAX_EXAMPLES})")
    examples = tuple(_example(item, f"{path} example {i + 1}") for i, item in enumerate(items))
    return RepositoryCodec(
        name=repository_codec_name(path), path=path, script=script, examples=examples
    )


def list_repository_codecs(root: Path) -> list[str]:
    """Every "<vendor>/<codec base>" of the copy whose codec yaml has an uplink decoder."""
    found = []
    for yaml_path in sorted((root / "vendor").glob("*/*-codec.yaml")):
        path = f"{yaml_path.parent.name}/{yaml_path.name.removesuffix('-codec.yaml')}"
        if not REPOSITORY_PATH_RE.match(path) or ".." in path:
            continue
        try:
            # A cheap look, not a parse: the full repository holds about a thousand of these.
            if "uplinkDecoder" in yaml_path.read_text(encoding="utf-8"):
                found.append(path)
        except (OSError, UnicodeDecodeError):
            continue
    return found
