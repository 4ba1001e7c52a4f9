"""Real C guests, built with the ziglang toolchain for wasm32 and wasm64, calling host functions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge import BoundsError, BuildError, Guest, toolchain
from bridge.cli import _load_hosts

from .conftest import GUESTS, ROOT, build_c, run_cli

TARGETS = ["wasm32", "wasm64"]


def checksum_hosts() -> list:  # type: ignore[type-arg]
    return _load_hosts(str(GUESTS / "checksum_host.py"))


@pytest.fixture(scope="module", params=TARGETS)
def probe(request: pytest.FixtureRequest) -> Guest:
    return Guest(build_c("probe", request.param), hosts=checksum_hosts(), argv=["probe"])


def test_probe_main_runs(probe: Guest, capfd: pytest.CaptureFixture[str]) -> None:
    assert probe.run() == 0
    assert capfd.readouterr().out == "10\n"


def test_modules_have_the_pointer_width_of_their_target() -> None:
    assert not Guest(build_c("probe", "wasm32"), hosts=checksum_hosts()).module.is64
    g64 = Guest(build_c("probe", "wasm64"), hosts=checksum_hosts())
    assert g64.module.is64 and g64.memory.is64 and g64.memory.pointer_bits == 64


@settings(max_examples=1000, deadline=None)
@given(
    ptr=st.one_of(
        st.integers(0, 2**17),
        st.integers(0, 2**32 - 1),
        st.sampled_from([2**31 - 1, 2**31, 2**32 - 64, 0xFFFFFFF0, 2**32 - 1]),
    ),
    n=st.one_of(st.integers(0, 4096), st.integers(0, 2**32 - 1), st.sampled_from([64, 2**31, 2**32 - 1])),
)
def test_fuzzed_pointers_from_a_real_guest(probe: Guest, ptr: int, n: int) -> None:
    size = probe.memory.size
    if ptr + n <= size:
        expected = int(probe.memory.view(ptr, n).sum(dtype=np.uint64))
        assert probe.call("probe", ptr, n) == expected
    else:
        with pytest.raises(BoundsError) as info:
            probe.call("probe", ptr, n)
        assert info.value.pointer == ptr and info.value.length == n and info.value.memory_size == size
        assert "probe" in info.value.frames
    # The host and the instance survive every case.
    assert probe.call("probe", 0, 0) == 0


@settings(max_examples=300, deadline=None)
@given(
    ptr=st.one_of(st.integers(0, 2**64 - 1), st.sampled_from([2**32, 2**32 + 1, 2**63, 2**64 - 16])),
    n=st.one_of(st.integers(0, 2**64 - 1), st.integers(0, 64)),
)
def test_fuzzed_64bit_pointers_from_a_real_guest(ptr: int, n: int) -> None:
    g = WASM64_PROBE.setdefault("g", Guest(build_c("probe", "wasm64"), hosts=checksum_hosts()))
    if ptr + n <= g.memory.size:
        assert g.call("probe", ptr, n) == int(g.memory.view(ptr, n).sum(dtype=np.uint64))
    else:
        with pytest.raises(BoundsError, match=f"pointer {ptr:#x}, length {n} bytes"):
            g.call("probe", ptr, n)


WASM64_PROBE: dict[str, Guest] = {}


def test_build_rejects_an_unknown_target(tmp_path: object) -> None:
    with pytest.raises(BuildError, match="unknown target"):
        toolchain.build([GUESTS / "probe.c"], "out.wasm", target="wasm16")  # type: ignore[arg-type]


def test_a_calls_output_has_reached_its_sink_when_the_call_returns() -> None:
    """Captured output is not left in the pipe: each call's bytes are in the stream when it returns (even
    more than a pipe holds), and a character split across two writes reaches a text stream whole."""
    import io

    writer = rb"""(module
      (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 4)
      (data (i32.const 0) "\10\00\00\00\01\00\00\00")  ;; iovec {16, 1}: the first byte of "\c3\a9"
      (data (i32.const 8) "\11\00\00\00\01\00\00\00")  ;; iovec {17, 1}: the second
      (data (i32.const 16) "\c3\a9")
      (data (i32.const 32) "\00\01\00\00\00\00\03\00")  ;; iovec {256, 196608}: 192 KiB of zeros
      (func (export "half") (param $which i32)
        (drop (call $write
          (i32.const 1) (i32.mul (local.get $which) (i32.const 8)) (i32.const 1) (i32.const 48))))
      (func (export "big") (drop (call $write (i32.const 1) (i32.const 32) (i32.const 1) (i32.const 48)))))"""
    text, binary = io.StringIO(), io.BytesIO()
    with Guest(writer, stdout=text) as guest:
        guest.call("half", 0)
        assert text.getvalue() == ""  # half a character waits for the rest
        guest.call("half", 1)
        assert text.getvalue() == "\u00e9"
    with Guest(writer, stdout=binary) as guest:
        for calls in range(1, 4):
            guest.call("big")
            assert len(binary.getvalue()) == calls * 196608


def test_output_into_file_like_objects() -> None:
    """stdout and stderr may be binary or text file-like objects, as well as paths and functions."""
    import io
    import runpy

    from bridge import toolchain

    hello = runpy.run_path(str(ROOT / "examples" / "hello" / "host.py"))["host"]
    wasm = toolchain.build_cached([ROOT / "examples" / "hello" / "hello.c"])
    binary, text = io.BytesIO(), io.StringIO()
    with Guest(wasm, hosts=[hello], stdout=binary, stderr=text) as guest:
        assert guest.run() == 0
    assert binary.getvalue() == b"sum of 1..10 = 55\nreversed: 10 9 8 7 6 5 4 3 2 1\n"
    assert text.getvalue() == ""
    with Guest(wasm, hosts=[hello], stdout=text) as guest:
        guest.run()
    assert text.getvalue().startswith("sum of 1..10 = 55\n")


ZIG_GUEST = """
const bridge = @import("bridge");
pub fn main() !u8 {
    var buf: [64]u8 = undefined;
    bridge.print(bridge.stdout, "{d} arguments, 64-bit: {}\\n", .{ bridge.argCount(), bridge.is64 });
    var i: usize = 1;
    while (i < bridge.argCount()) : (i += 1) {
        const arg = bridge.arg(i, &buf) orelse return error.ArgumentTooLong;
        if (std.mem.eql(u8, arg, "panic")) {
            const xs = [_]u8{ 1, 2, 3 };
            bridge.print(bridge.stdout, "{d}\\n", .{xs[i + 4]});
        }
        bridge.print(bridge.stdout, "[{s}]", .{arg});
    }
    const n = bridge.read(&buf) orelse return error.ReadFailed;
    bridge.print(bridge.stdout, "\\nstdin: {s}", .{buf[0..n]});
    return @intCast(bridge.argCount());
}
const std = @import("std");
"""


@pytest.mark.parametrize("target", ["wasm32", "wasm64"])
def test_zig_guests_have_the_same_runtime_on_both_targets(tmp_path: Path, target: str) -> None:
    """bridge.zig: output, arguments, stdin and exit status through WASI on wasm32 and bridge's runtime ABI
    on wasm64; on wasm64 an error from main and a panic are reported as Zig's own start code does."""
    source, stdin = tmp_path / "args.zig", tmp_path / "stdin.txt"
    source.write_text(ZIG_GUEST)
    stdin.write_text("héllo\n")
    wasm = tmp_path / "args.wasm"
    assert run_cli("build", str(source), "-O", "1", "--target", target, "-o", str(wasm)).returncode == 0
    ran = run_cli("run", str(wasm), "--stdin", str(stdin), "--", "one", "two words")
    assert (ran.returncode, ran.stdout) == (
        3,
        f"3 arguments, 64-bit: {str(target == 'wasm64').lower()}\n[one][two words]\nstdin: héllo\n",
    )
    too_long = run_cli("run", str(wasm), "--", "x" * 100)
    assert too_long.returncode == 1 and "error: ArgumentTooLong" in too_long.stderr
    panicked = run_cli("run", str(wasm), "--", "panic")
    assert panicked.returncode == 1 and "index out of bounds: index 5, len 3" in panicked.stderr
