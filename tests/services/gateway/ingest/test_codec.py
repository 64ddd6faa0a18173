"""Unit tests for `ingest.codec`: vendors' codecs in the QuickJS sandbox, and the local Device
Repository copy they are imported from."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.gateway.ingest.codec import (
    MAX_SCRIPT_BYTES,
    CodecExample,
    CodecPool,
    CodecSandbox,
    list_repository_codecs,
    load_repository_codec,
    repository_codec_name,
)
from services.gateway.ingest.rejection import Reason, Rejection

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[4]
REPOSITORY = Path(
    os.environ.get(
        "TOWNPULSE_DEVICE_REPOSITORY", REPO.parent / "shared" / "data" / "lorawan-devices"
    )
)
TS = datetime(2026, 12, 7, 10, 0, 0, 250000, tzinfo=UTC)
EM310_BYTES = bytes([0x01, 0x75, 0x5C, 0x03, 0x82, 0x44, 0x08, 0x04, 0x00, 0x01])
EM310_DATA = {"battery": 92, "distance": 2116, "tilt": "tilt"}

# fPort 1 decodes honestly; the other fPorts misbehave, so one sandbox shows both the fault and
# that the next call still works.
FAULTY = """
function decodeUplink(input) {
  switch (input.fPort) {
    case 2: while (true) {}
    case 3: var s = "x"; while (true) { s = s + s; }
    case 4: var a = []; while (true) { a.push(new Array(10000).fill(input.fPort)); }
    case 5: throw new Error("boom at byte " + input.bytes[0]);
    case 6: return {errors: ["unknown frame", "bad length"]};
    case 7: return {data: {blob: "x".repeat(100000)}};
    case 8: function deep(n) { return deep(n + 1) + 1; } return {data: {n: deep(0)}};
    case 9: var o = {}; o.self = o; return {data: o};
    case 10: return {data: {big: 10n}};
    case 11: return {warnings: ["no data"]};
    case 12: return {data: [1, 2]};
    case 13: return 42;
    case 14: return undefined;
    case 15: throw "a bare string";
  }
  return {data: {first: input.bytes[0], port: input.fPort}};
}
"""


def _em310_script() -> str:
    return load_repository_codec(REPOSITORY, "milesight-iot/em310-udl").script


def _decode(sandbox: CodecSandbox, f_port: int, payload: bytes = b"\x07") -> dict[str, object]:
    return sandbox.decode(payload, f_port=f_port, recv_time=TS).data


def _rejected(sandbox: CodecSandbox, f_port: int) -> Rejection:
    with pytest.raises(Rejection) as caught:
        sandbox.decode(b"\x07", f_port=f_port, recv_time=TS)
    return caught.value


def test_a_vendor_codec_decodes_its_example() -> None:
    sandbox = CodecSandbox(_em310_script())
    decoded = sandbox.decode(EM310_BYTES, f_port=85, recv_time=TS)
    assert decoded.data == EM310_DATA
    assert decoded.warnings == ()
    # The context is kept: the same answer again.
    assert sandbox.decode(EM310_BYTES, f_port=85, recv_time=TS).data == EM310_DATA


def test_the_input_is_what_ttn_passes() -> None:
    sandbox = CodecSandbox(
        """
        function decodeUplink(input) {
          return {data: {bytes: input.bytes, isArray: Array.isArray(input.bytes),
                         port: input.fPort, isDate: input.recvTime instanceof Date,
                         time: input.recvTime.toISOString(), keys: Object.keys(input)}};
        }
        """
    )
    assert _decode(sandbox, 85, bytes([0, 255, 16])) == {
        "bytes": [0, 255, 16],
        "isArray": True,
        "port": 85,
        "isDate": True,
        "time": "2026-12-07T10:00:00.250Z",
        "keys": ["bytes", "fPort", "recvTime"],
    }
    with pytest.raises(ValueError, match="timezone"):
        sandbox.decode(b"", f_port=1, recv_time=datetime(2026, 1, 1))  # noqa: DTZ001


def test_an_endless_loop_is_cut_off_and_the_codec_still_works() -> None:
    sandbox = CodecSandbox(FAULTY, time_limit_s=0.05)
    assert _rejected(sandbox, 2).reason is Reason.CODEC_TIMEOUT
    assert _decode(sandbox, 1) == {"first": 7, "port": 1}
    assert _rejected(sandbox, 2).reason is Reason.CODEC_TIMEOUT


@pytest.mark.parametrize("f_port", [3, 4], ids=["string-doubling", "array-growing"])
def test_allocating_without_end_is_cut_off_and_the_codec_still_works(f_port: int) -> None:
    sandbox = CodecSandbox(FAULTY, memory_limit_bytes=8 * 2**20, time_limit_s=2.0)
    rejection = _rejected(sandbox, f_port)
    assert rejection.reason is Reason.CODEC_MEMORY, rejection
    assert _decode(sandbox, 1) == {"first": 7, "port": 1}


def test_a_codec_that_throws() -> None:
    sandbox = CodecSandbox(FAULTY)
    rejection = _rejected(sandbox, 5)
    assert rejection == Rejection(Reason.CODEC_ERROR, "Error: boom at byte 7")
    assert _rejected(sandbox, 15) == Rejection(Reason.CODEC_ERROR, "a bare string")
    assert _decode(sandbox, 1) == {"first": 7, "port": 1}


def test_a_codecs_own_errors() -> None:
    sandbox = CodecSandbox(FAULTY)
    assert _rejected(sandbox, 6) == Rejection(Reason.CODEC_ERROR, "unknown frame; bad length")
    assert _decode(sandbox, 1) == {"first": 7, "port": 1}


def test_a_huge_output_is_refused() -> None:
    sandbox = CodecSandbox(FAULTY, max_output_bytes=64 * 1024)
    rejection = _rejected(sandbox, 7)
    assert rejection.reason is Reason.CODEC_OUTPUT
    assert "larger than" in rejection.detail
    assert _decode(sandbox, 1) == {"first": 7, "port": 1}


def test_endless_recursion_is_cut_off() -> None:
    sandbox = CodecSandbox(FAULTY)
    rejection = _rejected(sandbox, 8)
    assert rejection.reason is Reason.CODEC_MEMORY
    assert "stack overflow" in rejection.detail
    assert _decode(sandbox, 1) == {"first": 7, "port": 1}


@pytest.mark.parametrize(
    ("f_port", "detail"),
    [
        (9, "circular"),
        (10, "BigInt"),
        (11, "no `data` object"),
        (12, "no `data` object"),
        (13, "returned a number, not an object"),
        (14, "returned nothing"),
    ],
)
def test_outputs_that_are_not_a_data_object(f_port: int, detail: str) -> None:
    sandbox = CodecSandbox(FAULTY)
    rejection = _rejected(sandbox, f_port)
    assert rejection.reason is Reason.CODEC_OUTPUT
    assert detail in rejection.detail
    assert _decode(sandbox, 1) == {"first": 7, "port": 1}


def test_warnings_non_finite_numbers_and_dates_come_out_as_json() -> None:
    sandbox = CodecSandbox(
        """
        function decodeUplink(input) {
          return {data: {nan: NaN, inf: -Infinity, when: new Date(0), gone: undefined,
                         f: function () {}, list: [undefined, 1.5, "é\\n\\"q\\""]},
                  warnings: ["low battery", 3]};
        }
        """
    )
    decoded = sandbox.decode(b"", f_port=1, recv_time=TS)
    assert decoded.data == {
        "nan": None,
        "inf": None,
        "when": "1970-01-01T00:00:00.000Z",
        "list": [None, 1.5, 'é\n"q"'],
    }
    assert decoded.warnings == ("low battery", "3")


def test_json_stringify_inside_a_codec_behaves_like_the_native_one() -> None:
    value = {"a": [1, {"b": None, "c": "x"}], "d": 2.5, "e": {}, "f": [], "g": True}
    sandbox = CodecSandbox(
        "var v = " + json.dumps(value) + ";\n"
        """
        function decodeUplink(input) {
          return {data: {
            plain: JSON.stringify(v),
            indented: JSON.stringify(v, null, 2),
            picked: JSON.stringify(v, ["a", "d"]),
            replaced: JSON.stringify(v, function (k, x) { return k === "d" ? undefined : x; }),
            top: JSON.stringify("s"), nothing: typeof JSON.stringify(undefined),
            parsed: JSON.parse(JSON.stringify(v)).a[1].c,
          }};
        }
        """
    )
    data = _decode(sandbox, 1)
    assert data["plain"] == json.dumps(value, separators=(",", ":"))
    assert data["indented"] == json.dumps(value, indent=2)
    assert data["picked"] == json.dumps({"a": [1, {}], "d": 2.5}, separators=(",", ":"))
    assert json.loads(str(data["replaced"])) == {k: v for k, v in value.items() if k != "d"}
    assert data["top"] == '"s"'
    assert data["nothing"] == "undefined"
    assert data["parsed"] == "x"


def test_no_host_objects() -> None:
    sandbox = CodecSandbox(
        """
        function decodeUplink(input) {
          var names = ["require", "process", "std", "os", "fetch", "console", "print",
                       "setTimeout", "XMLHttpRequest", "WebAssembly", "Proxy", "scriptArgs"];
          var out = {};
          for (var i = 0; i < names.length; i++) out[names[i]] = typeof globalThis[names[i]];
          return {data: out};
        }
        """
    )
    assert set(_decode(sandbox, 1).values()) == {"undefined"}


def test_codecs_share_nothing() -> None:
    a = CodecSandbox(
        "function decodeUplink(i) { calls = (typeof calls === 'number' ? calls : 0) + 1;"
        " Array.prototype.marker = 'a'; return {data: {calls: calls}}; }"
    )
    b = CodecSandbox(
        "function decodeUplink(i) { return {data: {calls: typeof calls,"
        " marker: typeof [].marker}}; }"
    )
    assert _decode(a, 1) == {"calls": 1}
    # The implicit global stays in a's context (kept per codec) ...
    assert _decode(a, 1) == {"calls": 2}
    # ... and never reaches b's.
    assert _decode(b, 1) == {"calls": "undefined", "marker": "undefined"}


def test_a_plain_script_may_create_implicit_globals() -> None:
    sandbox = CodecSandbox(
        "table = [10, 20];\nfunction decodeUplink(input) { for (i = 0; i < 1; i++) {}"
        " return {data: {v: table[input.bytes[0]], i: i}}; }"
    )
    assert _decode(sandbox, 1, b"\x01") == {"v": 20, "i": 1}


@pytest.mark.parametrize(
    ("script", "reason", "detail"),
    [
        ("function decodeUplink(input) { return {data: {}};", Reason.CODEC_ERROR, "SyntaxError"),
        ("function decoder(input) { return {}; }", Reason.CODEC_ERROR, "no decodeUplink"),
        ("var decodeUplink = 42;", Reason.CODEC_ERROR, "no decodeUplink"),
        ("throw new Error('at load');", Reason.CODEC_ERROR, "at load"),
        ("while (true) {}", Reason.CODEC_TIMEOUT, "time limit"),
        ("//" + "x" * MAX_SCRIPT_BYTES, Reason.CODEC_ERROR, "larger than"),
        ("function decodeUplink() {}\x00", Reason.CODEC_ERROR, "NUL"),
    ],
    ids=["syntax", "no-function", "not-a-function", "throws", "loops", "too-large", "nul"],
)
def test_a_script_that_cannot_be_a_codec_is_refused(
    script: str, reason: Reason, detail: str
) -> None:
    with pytest.raises(Rejection) as caught:
        CodecSandbox(script, time_limit_s=0.05)
    assert caught.value.reason is reason
    assert detail in caught.value.detail


def test_regular_expressions_are_refused_unless_allowed() -> None:
    script = (
        "function decodeUplink(i) {"
        " return {data: {m: /b+/.test('abbc'), r: 'a-b'.replace(/-/g, '+')}}; }"
    )
    rejection = _rejected(CodecSandbox(script), 1)
    assert rejection == Rejection(
        Reason.CODEC_ERROR, "TypeError: regular expressions are disabled in TownPulse codecs"
    )
    assert _decode(CodecSandbox(script, allow_regexp=True), 1) == {"m": True, "r": "a+b"}


# Each of these crashed or hung the process with the QuickJS the `quickjs` package embeds. Run in
# a child process: if a guard is missing, this test fails instead of taking pytest down.
ENGINE_FAULTS = {
    "deep-json-stringify": "var o = {}; for (var i = 0; i < 200000; i++) o = {a: o};"
    " return {data: {s: JSON.stringify(o).length}};",
    "deep-output": "var o = {}; for (var i = 0; i < 200000; i++) o = {a: o}; return {data: o};",
    "deep-toJSON": "var o = {}; for (var i = 0; i < 200000; i++) o = {a: o};"
    " return {data: {toJSON: function () { return o; }}};",
    "nested-proxies": "var p = []; for (var i = 0; i < 200000; i++) p = new Proxy(p, {});"
    " return {data: {a: Array.isArray(p)}};",
    "catastrophic-regexp": "return {data: {m: /(a+)+$/.test('" + "a" * 36 + "!')}};",
    "regexp-own-exec": "var r = /(a+)+$/; Object.defineProperty(r, 'exec', {value: null});"
    " return {data: {m: r.test('" + "a" * 41 + "!')}};",
    "string-match": "return {data: {m: '" + "a" * 38 + "!'.match(/(a+)+$/)}};",
}

CHILD = textwrap.dedent(
    """
    import json, sys
    from datetime import UTC, datetime
    from services.gateway.ingest.codec import CodecSandbox
    from services.gateway.ingest.rejection import Rejection
    out = {}
    for name, body in json.loads(sys.stdin.read()).items():
        sandbox = CodecSandbox("function decodeUplink(input) {" + body + "}")
        try:
            sandbox.decode(b"", f_port=1, recv_time=datetime.now(UTC))
            out[name] = "decoded"
        except Rejection as exc:
            out[name] = exc.reason.value
    print(json.dumps(out))
    """
)


def test_engine_bugs_cannot_crash_or_hang_the_process() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILD],
        input=json.dumps(ENGINE_FAULTS),
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(done.stdout)
    assert results == {
        "deep-json-stringify": "codec_error",  # TypeError: nested deeper than 64 levels
        "deep-output": "codec_output",
        "deep-toJSON": "codec_output",
        "nested-proxies": "codec_error",  # Proxy is not defined
        "catastrophic-regexp": "codec_error",
        "regexp-own-exec": "codec_error",
        "string-match": "codec_error",
    }


# ---- the pool ------------------------------------------------------------------------------------


def test_the_pool_keeps_one_sandbox_per_version_and_forgets_the_oldest() -> None:
    pool = CodecPool(max_codecs=2)
    script = _em310_script()
    first = pool.get("em310", 1, script)
    assert pool.get("em310", 1, script) is first
    second = pool.get("em310", 2, script)
    assert second is not first
    pool.get("other", 1, script)
    assert len(pool) == 2
    assert pool.get("em310", 2, script) is second  # used recently: kept
    assert pool.get("em310", 1, script) is not first  # the oldest: loaded again
    assert first.decode(EM310_BYTES, f_port=85, recv_time=TS).data == EM310_DATA


def test_the_pool_remembers_a_script_that_does_not_load() -> None:
    pool = CodecPool(time_limit_s=0.05)
    with pytest.raises(Rejection) as first:
        pool.get("broken", 1, "while (true) {}")
    with pytest.raises(Rejection) as again:
        pool.get("broken", 1, "while (true) {}")
    assert again.value is first.value  # not loaded (and timed out) a second time
    assert first.value.reason is Reason.CODEC_TIMEOUT


def test_the_pool_passes_its_limits_and_checks_scripts() -> None:
    pool = CodecPool(max_output_bytes=100)
    sandbox = pool.fresh(FAULTY)
    assert sandbox.max_output_bytes == 100
    assert pool.fresh(FAULTY) is not sandbox
    pool.check(_em310_script())
    with pytest.raises(Rejection):
        pool.check("function nothing() {}")


# ---- the Device Repository copy -----------------------------------------------------------------


def test_repository_codecs_are_listed_and_loaded() -> None:
    paths = list_repository_codecs(REPOSITORY)
    assert "milesight-iot/em310-udl" in paths and "nwave/nps405" in paths
    codec = load_repository_codec(REPOSITORY, "milesight-iot/em310-udl")
    assert codec.name == "milesight-iot-em310-udl"
    assert codec.path == "milesight-iot/em310-udl"
    assert codec.examples == (
        CodecExample(f_port=85, bytes=EM310_BYTES, output={"data": EM310_DATA}),
    )
    assert CodecExample.from_doc(codec.examples[0].to_doc()) == codec.examples[0]
    # The script is the file as it is: CRLF line endings kept.
    assert "\r\n" in load_repository_codec(REPOSITORY, "milesight-iot/ws558").script
    nwave = load_repository_codec(REPOSITORY, "nwave/nps405")
    assert nwave.name == "nwave-nps405" and len(nwave.examples) == 4


@pytest.mark.parametrize(
    "path",
    [
        "../milesight-iot/em310-udl",
        "milesight-iot/..",
        "milesight-iot/../x",
        "Milesight/em310",
        "milesight-iot",
        "milesight-iot/em310-udl/x",
        "/etc/passwd",
        "a/.hidden",
    ],
)
def test_repository_paths_cannot_leave_the_repository(path: str) -> None:
    with pytest.raises(ValueError):
        load_repository_codec(REPOSITORY, path)


def test_a_repository_codec_naming_a_script_elsewhere_is_refused(tmp_path: Path) -> None:
    vendor = tmp_path / "vendor" / "acme"
    vendor.mkdir(parents=True)
    (tmp_path / "secret.js").write_text("function decodeUplink() {}")
    (vendor / "bad-codec.yaml").write_text("uplinkDecoder:\n  fileName: ../../secret.js\n")
    (vendor / "none-codec.yaml").write_text("downlinkEncoder:\n  fileName: none.js\n")
    (vendor / "ok.js").write_text("function decodeUplink(i) { return {data: {}}; }")
    (vendor / "ok-codec.yaml").write_text(
        "uplinkDecoder:\n  fileName: ok.js\n  examples:\n"
        "    - input: {fPort: 1, bytes: [0x01]}\n      output: {data: {}}\n"
    )
    with pytest.raises(ValueError, match="fileName"):
        load_repository_codec(tmp_path, "acme/bad")
    with pytest.raises(ValueError, match="no uplinkDecoder"):
        load_repository_codec(tmp_path, "acme/none")
    with pytest.raises(FileNotFoundError):
        load_repository_codec(tmp_path, "acme/missing")
    assert list_repository_codecs(tmp_path) == ["acme/bad", "acme/ok"]
    assert load_repository_codec(tmp_path, "acme/ok").examples[0].bytes == b"\x01"
    assert repository_codec_name("acme/ok") == "acme-ok"
