"""The hostile suite: real guests (tests/guests/hostile/) doing what a malicious or broken guest does.

Each case asserts the message, the exit code (through the CLI, in a fresh process), the host process's
peak memory where a case could make the host allocate, and that the host still runs the next guest
correctly afterwards. Every case runs on wasm32 and wasm64.

* out-of-bounds and wrapped pointers handed to typed host functions: the guest traps (BoundsError)
  with the host function, the parameter, the pointer in hex, the length in bytes and the memory size;
* realm handles that are forged, closed, double-freed, of the wrong kind or another instance's, and
  realm numbers out of range (layer, position, n_ctx, n_tokens, token ids, model names): the
  documented REALM_E* code, never a trap, and nothing written;
* host -> guest -> host re-entrant calls, and a recursion bomb that the stack bound must stop;
* host functions that raise: HostError naming the function, with the original as `__cause__`.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import subprocess
import sys
import tempfile
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any

import numpy as np
import pytest
from numpy.typing import NDArray

from bridge import (
    BoundsError,
    Context,
    Guest,
    GuestModule,
    GuestTrap,
    HostError,
    HostFunctions,
    InOut,
    i32,
    load_module,
)
from bridge.realm.abi import ERROR_CODES, MODEL_INFO_FIELDS, MODEL_INFO_SIZE, ModelStore, realm_functions
from bridge.toolchain import Target, build_cached

from .conftest import GUESTS, ROOT, build_c, run_cli
from .golden import synthetic

HOSTILE = GUESTS / "hostile"
TARGETS: list[Target] = ["wasm32", "wasm64"]
BITS = {"wasm32": 32, "wasm64": 64}

EINVAL = ERROR_CODES["REALM_EINVAL"]
EBADF = ERROR_CODES["REALM_EBADF"]
ENOENT = ERROR_CODES["REALM_ENOENT"]

# Bound on the peak RSS of a `python -m bridge run` process in these cases: Python, numpy, wasmtime
# and the synthetic model take 63-67 MiB (measured on wasm32 and wasm64, the recursion bomb included);
# a host that allocated or copied what a hostile length asks for (4 GiB and more here) would be far
# above it.
PEAK_RSS = 128 * 2**20

HELLO_OUTPUT = "sum of 1..10 = 55\nreversed: 10 9 8 7 6 5 4 3 2 1\n"


# --- helpers ----------------------------------------------------------------------------------------


@functools.cache
def host_module(path: Path) -> ModuleType:
    """A host file (like the CLI's --host FILE) imported once for in-process runs."""
    spec = importlib.util.spec_from_file_location(f"_hostile_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def host_registry(path: Path) -> HostFunctions:
    registry = host_module(path).host
    assert isinstance(registry, HostFunctions)
    return registry


@functools.cache
def hostile_wasm(name: str, target: Target) -> Path:
    """tests/guests/hostile/NAME.c built for `target` (into the session's build cache)."""
    return build_c(f"hostile/{name}", target)


@functools.cache
def hostile_module(name: str, target: Target) -> GuestModule:
    return load_module(hostile_wasm(name, target))


# `python -m bridge ARGS` that records its own peak RSS (Linux's VmHWM) on the way out. Not the
# child's ru_maxrss: Linux starts it at the parent's peak (the exec'ing process still had the parent's
# memory), so it would measure pytest.
MEASURED_MAIN = """
import atexit, os, runpy, sys

def record_peak():
    with open("/proc/self/status") as status:
        peak_kib = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    with open(os.environ["HOSTILE_PEAK_FILE"], "w") as out:
        out.write(peak_kib)

atexit.register(record_peak)
sys.argv[0] = "bridge"
runpy.run_module("bridge", run_name="__main__", alter_sys=True)
"""


def run_measured(*args: str) -> tuple[subprocess.CompletedProcess[str], int]:
    """`run_cli(*args)`, plus the peak RSS of that process in bytes."""
    with tempfile.TemporaryDirectory() as tmp:
        peak_file = Path(tmp) / "peak"
        env = dict(os.environ, PYTHONPATH=str(ROOT), HOSTILE_PEAK_FILE=str(peak_file))
        ran = subprocess.run(
            [sys.executable, "-c", MEASURED_MAIN, *args],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=env,
            timeout=300,
        )
        assert peak_file.is_file(), f"the process did not exit normally ({ran.returncode}): {ran.stderr}"
        return ran, int(peak_file.read_text()) * 1024


def assert_one_paragraph(stderr: str, *parts: str) -> None:
    """The CLI's error report: `bridge: error: ...`, the wasm backtrace, no blank line, no traceback."""
    assert stderr.startswith("bridge: error: "), stderr
    assert "Traceback" not in stderr and "\n\n" not in stderr.strip(), stderr
    for line in stderr.strip().splitlines():
        assert re.fullmatch(r"bridge: .*|wasm backtrace:|  \d+: \S+", line), (
            f"stray line {line!r} in {stderr}"
        )
    for part in parts:
        assert part in stderr, f"{part!r} not in {stderr}"


HELLO = ROOT / "examples" / "hello"


@functools.cache
def hello_wasm(target: Target) -> Path:
    return build_cached([HELLO / "hello.c"], target=target)


@pytest.fixture
def next_guest(tmp_path: Path) -> Callable[[Target], None]:
    """Runs a known-good guest (examples/hello with its host.py) in this process and checks its
    output: after a hostile case, the host must still run the next guest correctly."""

    def check(target: Target) -> None:
        out = tmp_path / f"hello-{target}.txt"
        host = host_registry(HELLO / "host.py")
        with Guest(load_module(hello_wasm(target)), hosts=[host], argv=["hello"], stdout=out) as guest:
            assert guest.run() == 0
        assert out.read_text() == HELLO_OUTPUT

    return check


# --- out-of-bounds pointers -------------------------------------------------------------------------

OOB_HOST = HOSTILE / "oob_host.py"
OUTSIDE = "range is outside guest memory"


def oob(
    case: str,
    function: str,
    parameter: str,
    pointer: Callable[[int, int], int],
    length: Callable[[int], int],
    what: str = OUTSIDE,
) -> Any:
    """One case of the oob guest (its argument, and the test id): the host function and parameter
    the message must name, the pointer it must report given (memory size, pointer bits), the byte
    length given the pointer bits, and what is wrong."""
    return pytest.param(case, function, parameter, pointer, length, what, id=case)


OOB_CASES = [
    oob("past-end", "checksum", "data", lambda size, bits: size, lambda bits: 1),
    oob("straddle-end", "checksum", "data", lambda size, bits: size - 8, lambda bits: 16),
    # ptr + n wraps past 2**32 (2**64) to 16 in the guest's own arithmetic.
    oob("wrap", "checksum", "data", lambda size, bits: 2**bits - 16, lambda bits: 32),
    # 0x80000000 arrives in wasmtime-py as a negative i32 (0x8000000000000000 as a negative i64).
    oob("high-bit", "checksum", "data", lambda size, bits: 2 ** (bits - 1), lambda bits: 4),
    oob("pointer-minus-1", "checksum", "data", lambda size, bits: 2**bits - 1, lambda bits: 1),
    oob("huge-length", "checksum", "data", lambda size, bits: 16, lambda bits: 2**bits - 1),
    # n * sizeof(double) is 2**32 (2**64): 0 in the guest's size_t, but not to the host.
    oob("length-times-itemsize-overflow", "sum_f64", "xs", lambda size, bits: 64, lambda bits: 2**bits),
    # In("rows * cols") with u32 rows = cols = 0x10000: 2**32 elements (0 in u32 arithmetic), 8 bytes each.
    oob("count-expression-overflow", "sum_grid", "xs", lambda size, bits: 64, lambda bits: 2**35),
    oob("zero-length-past-end", "checksum", "data", lambda size, bits: size + 1, lambda bits: 0),
    oob("output-past-end", "fill", "dst", lambda size, bits: size - 4, lambda bits: 8),
    oob("ptr-via-ctx-view", "peek", "p", lambda size, bits: size - 2, lambda bits: 4),
    oob("negative-count", "head", "xs", lambda size, bits: 16, lambda bits: -1, "negative element count -1"),
    oob("utf8-past-end", "shout", "text", lambda size, bits: size - 2, lambda bits: 4),
]


def oob_message(function: str, parameter: str, what: str, pointer: int, length: int, size: int) -> str:
    return (
        f"host function `{function}`, parameter `{parameter}`: {what}: pointer {pointer:#x}, "
        f"length {length} bytes, but memory `memory` is {size} bytes"
    )


def printed_size(stdout: str, case: str) -> int:
    """The memory size the oob guest printed just before its hostile call (and nothing after it)."""
    found = re.fullmatch(rf"case {re.escape(case)}\nmemory (\d+)\n", stdout)
    assert found is not None, f"unexpected guest output {stdout!r}"
    return int(found.group(1))


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize(("case", "function", "parameter", "pointer", "length", "what"), OOB_CASES)
def test_oob_pointer_traps_in_process(
    tmp_path: Path,
    next_guest: Callable[[Target], None],
    target: Target,
    case: str,
    function: str,
    parameter: str,
    pointer: Callable[[int, int], int],
    length: Callable[[int], int],
    what: str,
) -> None:
    out = tmp_path / "out.txt"
    with Guest(
        hostile_module("oob", target), hosts=[host_registry(OOB_HOST)], argv=["oob", case], stdout=out
    ) as g:
        with pytest.raises(BoundsError) as info:
            g.run()
        size = printed_size(out.read_text(), case)
        assert g.memory.size == size
        if case == "output-past-end":  # the guest set the last 4 bytes to 0x11: the host wrote none of them
            assert g.memory.read(size - 4, 4) == b"\x11" * 4
    err = info.value
    bits = BITS[target]
    assert (err.function, err.parameter) == (function, parameter)
    assert (err.pointer, err.length, err.memory_size) == (pointer(size, bits), length(bits), size)
    assert err.message.startswith(
        oob_message(function, parameter, what, pointer(size, bits), length(bits), size)
    )
    assert err.frames and any("main" in frame for frame in err.frames)
    next_guest(target)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize(("case", "function", "parameter", "pointer", "length", "what"), OOB_CASES)
def test_oob_pointer_through_the_cli(
    target: Target,
    case: str,
    function: str,
    parameter: str,
    pointer: Callable[[int, int], int],
    length: Callable[[int], int],
    what: str,
) -> None:
    ran, peak = run_measured("run", str(hostile_wasm("oob", target)), "--host", str(OOB_HOST), "--", case)
    assert ran.returncode == 1, ran.stderr
    size = printed_size(ran.stdout, case)
    bits = BITS[target]
    expected = oob_message(function, parameter, what, pointer(size, bits), length(bits), size)
    assert_one_paragraph(ran.stderr, f"bridge: error: guest trapped: {expected}", "main")
    assert peak < PEAK_RSS, f"peak RSS {peak / 2**20:.0f} MiB"


@pytest.mark.parametrize("target", TARGETS)
def test_overlapping_output_traps(
    tmp_path: Path, next_guest: Callable[[Target], None], target: Target
) -> None:
    out = tmp_path / "out.txt"
    host = host_registry(OOB_HOST)
    with (
        Guest(hostile_module("oob", target), hosts=[host], argv=["oob", "overlap"], stdout=out) as g,
        pytest.raises(BoundsError) as info,
    ):
        g.run()
    printed_size(out.read_text(), "overlap")
    err = info.value
    # copy_u32(words, words + 1, 4): [p, p + 16) and [p + 4, p + 20)
    src = err.pointer - 4
    assert (err.function, err.parameter, err.length) == ("copy_u32", "dst", 16)
    assert err.message == (
        f"host function `copy_u32`: parameters `src` [{src:#x}, {src + 16:#x}) and `dst` [{src + 4:#x}, "
        f"{src + 20:#x}) overlap, and `copy_u32` does not allow an output to overlap another array"
    )
    ran = run_cli("run", str(hostile_wasm("oob", target)), "--host", str(OOB_HOST), "--", "overlap")
    assert ran.returncode == 1
    assert_one_paragraph(ran.stderr, f"bridge: error: guest trapped: {err.message}")
    next_guest(target)


@pytest.mark.parametrize("target", TARGETS)
def test_zero_length_at_exactly_the_end_is_allowed(tmp_path: Path, target: Target) -> None:
    out = tmp_path / "out.txt"
    host = host_registry(OOB_HOST)
    with Guest(
        hostile_module("oob", target), hosts=[host], argv=["oob", "zero-length-at-end"], stdout=out
    ) as g:
        assert g.run() == 0
    assert re.fullmatch(r"case zero-length-at-end\nmemory \d+\nchecksum 0\nhead 0\n", out.read_text())
    ran = run_cli(
        "run", str(hostile_wasm("oob", target)), "--host", str(OOB_HOST), "--", "zero-length-at-end"
    )
    assert ran.returncode == 0 and ran.stderr == ""
    assert ran.stdout == out.read_text()


# --- realm: handles and ranges ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def synthetic_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic.write(tmp_path_factory.mktemp("synthetic") / "synthetic.gguf")


@pytest.fixture(scope="module")
def realm(synthetic_gguf: Path) -> HostFunctions:
    """The realm ABI offering only the synthetic model (loaded once, shared by every instance)."""
    return realm_functions(ModelStore({"synthetic": synthetic_gguf}, progress=False))


HOSTILE_INT = 0x2F1C9A5B  # a fixed "random" handle number
CONTEXT_SIZE = 8
SETUP_TOKENS = 8


def write_text(g: Guest, data: bytes) -> int:
    g.memory.write(g.call("text_buffer"), data)
    return len(data)


RealmGuest = Callable[[Target], tuple[Guest, dict[str, int]]]


@pytest.fixture
def realm_guest(realm: HostFunctions) -> Iterator[RealmGuest]:
    """Opens realm_hostile instances (closed after the test): see `open_realm_guest`."""
    opened: list[Guest] = []

    def open_one(target: Target) -> tuple[Guest, dict[str, int]]:
        g, names = open_realm_guest(realm, target)
        opened.append(g)
        return g, names

    yield open_one
    for g in opened:
        g.close()


def open_realm_guest(realm: HostFunctions, target: Target) -> tuple[Guest, dict[str, int]]:
    """A realm_hostile instance with the synthetic model open (m), a context of 8 positions (c) and
    8 embedded tokens in its hidden buffer; with the numbers the cases refer to by name."""
    g = Guest(hostile_module("realm_hostile", target), hosts=[realm])
    m = g.call("open_model", write_text(g, b"synthetic"))
    assert m > 0
    assert g.call("model_info", m) == MODEL_INFO_SIZE
    info = {name: g.call("info_field", m, i) for i, name in enumerate(MODEL_INFO_FIELDS)}
    c = g.call("context_new", m, CONTEXT_SIZE)
    assert c > 0 and c != m
    assert g.call("embed", m, 1, SETUP_TOKENS) == SETUP_TOKENS * info["n_embd"]
    names = {
        "m": m,
        "c": c,
        "next": c + 1,  # a number this instance has not issued yet
        "last_id": info["n_vocab"] - 1,
        "n_ctx_train+1": info["n_ctx_train"] + 1,
        **info,
    }
    return g, names


Arg = int | str | bytes
Step = tuple[str, tuple[Arg, ...], "int | str"]


def run_steps(g: Guest, names: dict[str, int], steps: Sequence[Step]) -> None:
    """Calls each export with its arguments (a str is a name from `names`; bytes are written to the
    guest's text buffer and passed as their length) and checks its result: a number, or "handle" for
    any new handle. A call that fails must write nothing: the hidden buffer is compared around it."""
    for export, args, expected in steps:
        values = [
            names[a] if isinstance(a, str) else write_text(g, a) if isinstance(a, bytes) else a for a in args
        ]
        before = [g.call("hidden_bits", t) for t in range(SETUP_TOKENS)]
        got = g.call(export, *values)
        where = f"{export}{tuple(args)}"
        if expected == "handle":
            fresh = got > 0 and got not in (names["m"], names["c"])
            assert fresh, f"{where} returned {got}, not a new handle"
        else:
            want = names[expected] if isinstance(expected, str) else expected
            assert got == want, f"{where} returned {got}, expected {want}"
            if want < 0:
                assert [g.call("hidden_bits", t) for t in range(SETUP_TOKENS)] == before, f"{where} wrote"


def assert_instance_still_works(g: Guest, names: dict[str, int]) -> None:
    """After the hostile calls, the same instance still runs a whole forward pass."""
    m = g.call("open_model", write_text(g, b"synthetic"))
    assert m > 0
    c = g.call("context_new", m, CONTEXT_SIZE)
    assert c > 0
    assert g.call("embed", m, 1, 2) == 2 * names["n_embd"]
    for layer in range(names["n_layer"]):
        assert g.call("forward", c, layer, 2, 0) == 0
    assert g.call("logits", m) == names["n_vocab"]
    assert g.call("context_free", c) == 0


FORGED: list[int | str] = [0, -1, 2**31 - 1, -(2**31), HOSTILE_INT, "next"]

# Every realm function that takes a handle, called with a handle it should not accept.
HANDLE_TAKERS = [
    pytest.param(lambda h: ("model_info", (h,)), id="model_info_get"),
    pytest.param(lambda h: ("close_model", (h,)), id="model_close"),
    pytest.param(lambda h: ("meta", (h, b"general.architecture")), id="model_meta"),
    pytest.param(lambda h: ("tokenize", (h, b"hello")), id="tokenize"),
    pytest.param(lambda h: ("detokenize", (h, 1, 1)), id="detokenize"),
    pytest.param(lambda h: ("context_new", (h, CONTEXT_SIZE)), id="context_new"),
    pytest.param(lambda h: ("context_free", (h,)), id="context_free"),
    pytest.param(lambda h: ("embed", (h, 1, 1)), id="embed_tokens"),
    pytest.param(lambda h: ("forward", (h, 0, 1, 0)), id="forward_layer"),
    pytest.param(lambda h: ("logits", (h,)), id="compute_logits"),
    pytest.param(lambda h: ("tensor", (h, b"output_norm.weight")), id="get_tensor"),
]


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("call", HANDLE_TAKERS)
def test_forged_handles_are_ebadf(
    realm_guest: RealmGuest,
    next_guest: Callable[[Target], None],
    target: Target,
    call: Callable[[Arg], tuple[str, tuple[Arg, ...]]],
) -> None:
    g, names = realm_guest(target)
    run_steps(g, names, [(*call(h), EBADF) for h in FORGED])
    assert_instance_still_works(g, names)
    next_guest(target)


HANDLE_CASES = [
    pytest.param(
        [("close_model", ("m",), 0), ("model_info", ("m",), EBADF), ("context_new", ("m", 8), EBADF),
         ("embed", ("m", 1, 1), EBADF), ("logits", ("m",), EBADF), ("close_model", ("m",), EBADF)],
        id="closed-model",
    ),
    pytest.param(
        # realm.h: contexts made from a closed model stay usable.
        [("close_model", ("m",), 0), ("forward", ("c", 0, 1, 0), 0), ("forward", ("c", 1, 1, 0), 0)],
        id="closed-model-its-context-lives",
    ),
    pytest.param(
        [("context_free", ("c",), 0), ("context_free", ("c",), EBADF), ("forward", ("c", 0, 1, 0), EBADF)],
        id="double-freed-context",
    ),
    pytest.param(
        [("model_info", ("c",), EBADF), ("context_new", ("c", 8), EBADF), ("embed", ("c", 1, 1), EBADF),
         ("logits", ("c",), EBADF), ("close_model", ("c",), EBADF), ("context_free", ("c",), 0)],
        id="context-where-a-model-is-expected",
    ),
    pytest.param(
        [("forward", ("m", 0, 1, 0), EBADF), ("context_free", ("m",), EBADF),
         ("model_info", ("m",), MODEL_INFO_SIZE)],
        id="model-where-a-context-is-expected",
    ),
]  # fmt: skip


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("steps", HANDLE_CASES)
def test_stale_and_wrong_kind_handles(
    realm_guest: RealmGuest, next_guest: Callable[[Target], None], target: Target, steps: list[Step]
) -> None:
    g, names = realm_guest(target)
    run_steps(g, names, steps)
    assert_instance_still_works(g, names)
    next_guest(target)


@pytest.mark.parametrize("target", TARGETS)
def test_another_instances_handles_are_ebadf(
    realm: HostFunctions, realm_guest: RealmGuest, next_guest: Callable[[Target], None], target: Target
) -> None:
    b, b_names = realm_guest(target)  # issues m=1, c=2
    extra = b.call("context_new", b_names["m"], CONTEXT_SIZE)  # and 3
    a = Guest(hostile_module("realm_hostile", target), hosts=[realm])  # in the same process
    a_model = a.call("open_model", write_text(a, b"synthetic"))  # a issues only its model handle
    assert a_model == b_names["m"]  # the same number: handle numbers are per instance
    for handle in (b_names["c"], extra):  # b's contexts, never issued in a
        assert a.call("forward", handle, 0, 1, 0) == EBADF
        assert a.call("context_free", handle) == EBADF
        assert a.call("model_info", handle) == EBADF
    assert a.call("close_model", a_model) == 0
    # b's handles are untouched by all of that, its model (the same number a just closed) included.
    assert b.call("model_info", b_names["m"]) == MODEL_INFO_SIZE
    assert b.call("forward", b_names["c"], 0, 1, 0) == 0
    assert b.call("context_free", extra) == 0
    assert_instance_still_works(b, b_names)
    a.close()
    next_guest(target)


RANGE_CASES = [
    pytest.param([("forward", ("c", "n_layer", 1, 0), EINVAL)], id="layer-n_layer"),
    pytest.param([("forward", ("c", 2**32 - 1, 1, 0), EINVAL)], id="layer-u32-max"),
    pytest.param([("forward", ("c", 0, 1, 1), EINVAL)], id="position-gap-on-empty-context"),
    pytest.param([("forward", ("c", 0, 2, 0), 0), ("forward", ("c", 0, 1, 3), EINVAL)], id="position-gap"),
    pytest.param(
        [("forward", ("c", 0, 1, 0), 0), ("forward", ("c", 1, 1, 1), EINVAL)], id="gap-in-layer-1"
    ),
    pytest.param([("forward", ("c", 0, 1, CONTEXT_SIZE), EINVAL)], id="position-at-n_ctx"),
    pytest.param(
        [("forward", ("c", 0, 7, 0), 0), ("forward", ("c", 0, 2, 7), EINVAL), ("forward", ("c", 0, 1, 7), 0)],
        id="positions-straddle-n_ctx",
    ),
    pytest.param([("forward", ("c", 0, 1, 2**32 - 1), EINVAL)], id="position-u32-max"),
    pytest.param([("forward", ("c", 0, 0, 0), EINVAL)], id="n_tokens-0"),
    pytest.param([("context_new", ("m", 0), EINVAL)], id="n_ctx-0"),
    pytest.param([("context_new", ("m", "n_ctx_train+1"), EINVAL)], id="n_ctx-above-training"),
    pytest.param([("context_new", ("m", 2**32 - 1), EINVAL)], id="n_ctx-u32-max"),
    pytest.param([("context_new", ("m", "n_ctx_train"), "handle")], id="n_ctx-at-training-is-fine"),
    pytest.param([("embed", ("m", "n_vocab", 1), EINVAL)], id="embed-id-n_vocab"),
    pytest.param([("embed", ("m", 2**32 - 1, 1), EINVAL)], id="embed-id-u32-max"),
    pytest.param([("embed", ("m", 1, 0), EINVAL)], id="embed-n_ids-0"),
    pytest.param([("embed", ("m", "last_id", 1), "n_embd")], id="embed-last-id-is-fine"),
    pytest.param([("detokenize", ("m", "n_vocab", 1), EINVAL)], id="detokenize-id-n_vocab"),
    pytest.param([("detokenize", ("m", 2**32 - 1, 2), EINVAL)], id="detokenize-id-u32-max"),
    pytest.param([("tokenize", ("m", b"\xff\xfe"), EINVAL)], id="tokenize-invalid-utf8"),
    pytest.param([("meta", ("m", b"no.such.key"), ENOENT)], id="meta-unknown-key"),
    pytest.param([("tensor", ("m", b"no.such.tensor"), ENOENT)], id="tensor-unknown"),
]  # fmt: skip


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("steps", RANGE_CASES)
def test_out_of_range_numbers_return_the_documented_code(
    realm_guest: RealmGuest, next_guest: Callable[[Target], None], target: Target, steps: list[Step]
) -> None:
    g, names = realm_guest(target)
    run_steps(g, names, steps)
    assert_instance_still_works(g, names)
    next_guest(target)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize(
    "name",
    [
        pytest.param(b"no-such-model", id="unknown"),
        pytest.param(b"", id="empty"),
        pytest.param(b"SYNTHETIC", id="other-case"),
        pytest.param(b"synthetic\0", id="trailing-nul"),
        pytest.param(b"../synthetic", id="path"),
        pytest.param(b"\xff\xfesynthetic", id="invalid-utf8"),
    ],
)
def test_a_model_the_host_does_not_offer_is_enoent(
    realm_guest: RealmGuest,
    next_guest: Callable[[Target], None],
    capsys: pytest.CaptureFixture[str],
    target: Target,
    name: bytes,
) -> None:
    g, names = realm_guest(target)
    capsys.readouterr()
    run_steps(g, names, [("open_model", (name,), ENOENT)])
    asked = name.decode("utf-8", "replace")
    assert capsys.readouterr().err.startswith(
        f"realm: the guest asked for model {asked!r}, which this host does not offer (offered: synthetic"
    )
    assert_instance_still_works(g, names)
    next_guest(target)


@pytest.mark.parametrize("target", TARGETS)
def test_freed_contexts_release_their_memory(realm_guest: RealmGuest, target: Target) -> None:
    g, names = realm_guest(target)
    cycles = 300
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(cycles):
            c = g.call("context_new", names["m"], names["n_ctx_train"])
            assert c > 0
            assert g.call("context_free", c) == 0
        retained = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # One context of the synthetic model at its full n_ctx holds about 160 KiB (KV cache, RoPE
    # tables): new/free in a loop must not keep them (300 of them: 47 MiB, as bridge did before).
    assert retained < 2**20, f"{retained / 2**20:.1f} MiB kept after {cycles} new/free cycles"


REALM_CLI_EXPECTED = """\
open 1
context 2
info-forged-0 -2
info-forged-minus-1 -2
info-forged-max -2
info-context-handle -2
free-model-handle -2
forward-layer-out-of-range -1
forward-gap -1
forward-past-context -1
context-0 -1
context-huge -1
embed-bad-id -1
detokenize-bad-id -1
open-unknown -3
free 0
free-twice -2
close 0
info-closed -2
done
"""


@pytest.mark.parametrize("target", TARGETS)
def test_realm_errors_through_the_cli(synthetic_gguf: Path, target: Target) -> None:
    wasm = hostile_wasm("realm_hostile", target)
    ran, peak = run_measured("run", str(wasm), "--model", f"synthetic={synthetic_gguf}")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == REALM_CLI_EXPECTED
    # The only thing on stderr: the host saying which model it does not offer.
    assert re.fullmatch(
        r"realm: the guest asked for model 'no-such-model', which this host does not offer "
        r"\(offered: synthetic(, smollm2)?\)\n",
        ran.stderr,
    ), ran.stderr
    assert peak < PEAK_RSS, f"peak RSS {peak / 2**20:.0f} MiB"


# --- re-entrant host -> guest -> host calls ---------------------------------------------------------

REENTER_HOST = HOSTILE / "reenter_host.py"


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("depth", [1, 5, 40], ids=["depth-1", "depth-5", "depth-40"])
def test_reentrant_calls(next_guest: Callable[[Target], None], target: Target, depth: int) -> None:
    with Guest(hostile_module("reenter", target), hosts=[host_registry(REENTER_HOST)]) as g:
        # descend(d) -> enter -> descend(d - 1) -> ... -> leaf: 1000 at the bottom, + 1 per level.
        assert g.call("descend", depth) == 1000 + depth
        # Every level wrote the guest's trail through a view made before its nested call.
        assert g.call("trail_sum") == 1000 + depth
        assert g.call("descend", depth) == 1000 + depth  # and again, in the same instance
        assert g.call("trail_sum") == 2 * (1000 + depth)
    next_guest(target)


class DeepBug(Exception):
    """Raised by a host function at the bottom of a re-entrant chain."""


Trail = Annotated[NDArray[np.uint32], InOut(64)]


def failing_leaf() -> HostFunctions:
    """A registry whose `leaf` raises; listed after reenter_host's, it replaces that `leaf`."""
    host = HostFunctions()

    @host.function
    def leaf(trail: Trail, depth: i32) -> i32:
        raise DeepBug(f"no bottom at depth {depth}")

    return host


def catching_enter() -> HostFunctions:
    """A registry whose `enter` catches a trap in the guest it calls back, and returns -7 instead."""
    host = HostFunctions(state=dict)

    @host.function
    def enter(ctx: Context, trail: Trail, depth: i32) -> i32:
        try:
            return int(ctx.call("descend", depth - 1))
        except GuestTrap as trap:
            ctx.state.setdefault("caught", []).append((depth, trap))
            return -7

    return host


@pytest.mark.parametrize("target", TARGETS)
def test_a_raise_deep_in_reentrant_calls_reaches_the_caller(
    next_guest: Callable[[Target], None], target: Target
) -> None:
    with Guest(hostile_module("reenter", target), hosts=[host_registry(REENTER_HOST), failing_leaf()]) as g:
        with pytest.raises(HostError) as info:
            g.call("descend", 6)
        err = info.value
        assert err.function == "leaf"
        assert isinstance(err.__cause__, DeepBug) and err.original is err.__cause__
        assert err.message == "host function `leaf` raised DeepBug: no bottom at depth 0"
        assert err.frames[0] == "descend"
        assert g.call("trail_sum") == 0  # no level got past its nested call
    next_guest(target)


@pytest.mark.parametrize("target", TARGETS)
def test_a_host_function_may_catch_a_trap_in_its_callback(
    next_guest: Callable[[Target], None], target: Target
) -> None:
    catcher = catching_enter()
    hosts = [host_registry(REENTER_HOST), failing_leaf(), catcher]
    with Guest(hostile_module("reenter", target), hosts=hosts) as g:
        # descend(5) -> enter(5) -> ... -> enter(1) -> descend(0) -> leaf, which raises: enter(1)
        # catches the trap and returns -7, and every level above returns normally.
        assert g.call("descend", 5) == -7
        [(depth, trap)] = g.context(catcher).state["caught"]
        assert depth == 1 and isinstance(trap, HostError) and isinstance(trap.__cause__, DeepBug)
        # The instance carries on, and the trap left nothing pending behind: descend(0) calls the
        # raising leaf directly, which traps again, with its own exception.
        with pytest.raises(HostError, match="no bottom at depth 0") as info:
            g.call("descend", 0)
        assert info.value is not trap and isinstance(info.value.__cause__, DeepBug)
        assert g.call("descend", 5) == -7
    next_guest(target)


BOMB_SCRIPT = """
import importlib.util, sys
from bridge import Guest, GuestTrap, load_module

def registry(path):
    spec = importlib.util.spec_from_file_location("host_" + str(abs(hash(path))), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.host

reenter, reenter_host, hello, hello_host = sys.argv[1:]
guest = Guest(load_module(reenter), hosts=[registry(reenter_host)])
try:
    guest.call("descend", -1)
except GuestTrap as trap:
    print("trapped", type(trap).__name__, trap.trap_code, trap.message)
print("then descend(5) =", guest.call("descend", 5))
sys.stdout.flush()
code = Guest(load_module(hello), hosts=[registry(hello_host)], argv=["hello"]).run()
print("hello exit", code)
"""


@pytest.mark.parametrize("target", TARGETS)
def test_recursion_bomb_ends_in_a_clear_trap(target: Target) -> None:
    # Run where a crash cannot take pytest down: the CLI, then the API followed by a good guest.
    reenter = hostile_wasm("reenter", target)
    ran, peak = run_measured("run", str(reenter), "--host", str(REENTER_HOST), "--", "-1")
    assert ran.returncode == 1 and ran.stdout == ""
    assert_one_paragraph(ran.stderr, "bridge: error: guest trapped (stack_overflow): call stack exhausted\n")
    assert "descend" in ran.stderr
    assert peak < PEAK_RSS, f"peak RSS {peak / 2**20:.0f} MiB"

    args = [str(reenter), str(REENTER_HOST), str(hello_wasm(target)), str(HELLO / "host.py")]
    api = subprocess.run(
        [sys.executable, "-c", BOMB_SCRIPT, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        timeout=300,
    )
    assert api.returncode == 0, f"exit {api.returncode}: {api.stderr}"  # negative: killed by a signal
    assert api.stdout == (
        "trapped GuestTrap stack_overflow guest trapped (stack_overflow): call stack exhausted\n"
        f"then descend(5) = 1005\n{HELLO_OUTPUT}hello exit 0\n"
    )
    assert api.stderr == ""


# --- host functions that raise ----------------------------------------------------------------------

RAISES_HOST = HOSTILE / "raises_host.py"


def host_bug() -> type[BaseException]:
    bug = host_module(RAISES_HOST).HostBug
    assert isinstance(bug, type) and issubclass(bug, Exception)
    return bug


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize(
    ("kind", "exception", "message"),
    [
        pytest.param("0", lambda: ValueError, "raised ValueError: cannot explode 4 bytes", id="ValueError"),
        pytest.param("1", host_bug, "raised HostBug: checksum 10 looks wrong", id="custom-exception"),
    ],
)
def test_a_host_function_that_raises_traps_the_guest(
    tmp_path: Path,
    next_guest: Callable[[Target], None],
    target: Target,
    kind: str,
    exception: Callable[[], type[BaseException]],
    message: str,
) -> None:
    module, host = hostile_module("raises", target), host_registry(RAISES_HOST)
    calm = tmp_path / "calm.txt"
    with Guest(module, hosts=[host], argv=["raises", "2"], stdout=calm) as g:  # the control: no raise
        assert g.run() == 0
    assert calm.read_text() == "before\nexplode returned 10\n"

    out = tmp_path / "out.txt"
    with (
        Guest(module, hosts=[host], argv=["raises", kind], stdout=out) as g,
        pytest.raises(HostError) as info,
    ):
        g.run()
    assert out.read_text() == "before\n"
    err = info.value
    assert err.function == "explode"
    assert type(err.__cause__) is exception() and err.original is err.__cause__
    assert err.message == f"host function `explode` {message}"
    assert any("main" in frame for frame in err.frames)

    ran = run_cli("run", str(hostile_wasm("raises", target)), "--host", str(RAISES_HOST), "--", kind)
    assert ran.returncode == 1 and ran.stdout == "before\n"
    assert_one_paragraph(
        ran.stderr,
        f"bridge: error: host function `explode` {message}\n",
        "bridge: (run with --debug for the Python traceback of `explode`)",
    )
    next_guest(target)
