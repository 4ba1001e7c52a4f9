"""Beyond 4 GiB: memory64 guests, host-created memories, multi-memory, feature detection, memory caps."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import numpy as np
import pytest
import wasmtime
from numpy.typing import NDArray

from bridge import BoundsError, Guest, HostFunctions, In, LinkError, Out, u32
from bridge._seam import make_engine
from bridge.cli import _load_hosts
from bridge.limits import GiB, HostMemory, parse_size
from bridge.toolchain import Target

from .conftest import GUESTS, ROOT, build_c, run_cli, run_cli_process


def can_reserve(n_bytes: int) -> bool:
    """Whether this host lets a store map a memory64 of n_bytes (address space, not RAM)."""
    try:
        store = wasmtime.Store(make_engine())
        wasmtime.Memory(store, wasmtime.MemoryType(wasmtime.Limits(n_bytes // 65536, None), is_64=True))
    except wasmtime.WasmtimeError:
        return False
    return True


bigmem = pytest.mark.skipif(not can_reserve(7 * GiB), reason="cannot reserve 7 GiB of address space here")

PEAK_RSS_SCRIPT = """
import sys
from bridge import Guest
from bridge.cli import _load_hosts
guest = Guest(sys.argv[1], hosts=_load_hosts(sys.argv[2]))
code = guest.run()
peak = next(line for line in open("/proc/self/status") if line.startswith("VmHWM"))
print("peak-rss-kib", int(peak.split()[1]), flush=True)
sys.exit(code)
"""


@bigmem
def test_wasm64_guest_past_6_gib_with_pointers_above_4_gib() -> None:
    wasm = build_c("bigmem", "wasm64")
    ran = subprocess.run(
        [sys.executable, "-c", PEAK_RSS_SCRIPT, str(wasm), str(GUESTS / "bigmem_host.py")],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stdout + ran.stderr
    lines = ran.stdout.splitlines()
    size = int(lines[0].split()[1])
    assert size > 6 * GiB
    assert lines[1:6] == ["ok 0x0", "ok 0xffffffff", "ok 0x100000000", "ok 0x100000001", f"ok {size - 1:#x}"]
    peak_kib = int(lines[6].split()[1])
    # Memory is touched sparsely: the whole process, interpreter included, stays far below 6 GiB.
    assert peak_kib < 512 * 1024, f"peak RSS {peak_kib} KiB"


def sum_fill_host() -> HostFunctions:
    return _load_hosts(str(GUESTS / "bigmem_host.py"))[0]


IMPORTS_MEMORY64 = """
(module
  (import "env" "memory" (memory i64 1))
  (import "env" "sum_and_fill" (func $sum (param i64 i64 i32) (result i64)))
  (func $_start (export "_start")
    ;; write 3 bytes at 5 GiB, let the host sum and overwrite them, check one
    (i64.store8 (i64.const 5368709120) (i64.const 7))
    (i64.store8 (i64.const 5368709121) (i64.const 8))
    (i64.store8 (i64.const 5368709122) (i64.const 9))
    (if (i64.ne (call $sum (i64.const 5368709120) (i64.const 3) (i32.const 1)) (i64.const 24))
      (then unreachable))
    (if (i32.ne (i32.load8_u (i64.const 5368709121)) (i32.const 1)) (then unreachable))))
"""

IMPORTS_MEMORY32 = """
(module
  (import "env" "memory" (memory 2))
  (func $_start (export "_start") (i32.store (i32.const 131068) (i32.const 1))))
"""


@bigmem
def test_host_created_64bit_memory_beyond_4_gib(tmp_path: Path) -> None:
    wat = tmp_path / "imports64.wat"
    wat.write_text(IMPORTS_MEMORY64)
    host = str(GUESTS / "bigmem_host.py")
    ran = run_cli("run", str(wat), "--host", host, "--memory", "8GiB:16GiB")
    assert ran.returncode == 0, ran.stderr
    # The guest's own declared minimum (64 KiB) is too small for an address at 5 GiB.
    small = run_cli("run", str(wat), "--host", host)
    assert small.returncode == 1 and "memory_out_of_bounds" in small.stderr
    guest = Guest(wat.read_bytes(), hosts=[sum_fill_host()], memory=HostMemory(8 * GiB, 16 * GiB))
    assert guest.memory.is64 and guest.memory.size == 8 * GiB and guest.memory.name == "env.memory"
    assert guest.run() == 0
    assert guest.memory.view(5 * GiB, 3).tolist() == [1, 1, 1]


def test_wasm32_guest_importing_a_memory_gets_a_32bit_one(tmp_path: Path) -> None:
    wat = tmp_path / "imports32.wat"
    wat.write_text(IMPORTS_MEMORY32)
    assert run_cli("run", str(wat)).returncode == 0
    assert run_cli("run", str(wat), "--memory", "1MiB:2MiB").returncode == 0
    guest = Guest(wat.read_bytes(), memory=HostMemory(1 << 20))
    assert not guest.memory.is64 and guest.memory.size == 1 << 20
    too_big = run_cli("run", str(wat), "--memory", "8GiB")
    assert too_big.returncode == 1
    assert "index type i32" in too_big.stderr and "needs a wasm64 guest with an i64 memory" in too_big.stderr
    assert "Traceback" not in too_big.stderr
    with pytest.raises(LinkError, match=r"index type i32 .*but the host offers an i64 \(64-bit\) memory"):
        Guest(wat.read_bytes(), memory=HostMemory(1 << 20, is64=True))
    with pytest.raises(LinkError, match="needing at least 128 KiB"):
        Guest(wat.read_bytes(), memory=HostMemory(65536))


def test_memory_sizes_parse() -> None:
    assert parse_size("8GiB") == 8 * GiB and parse_size("64KiB") == 65536
    assert parse_size("1.5G") == 3 * GiB // 2
    assert parse_size("65536") == 65536 and parse_size("2MB") == 2_000_000
    with pytest.raises(ValueError, match="not a size"):
        parse_size("lots")
    assert HostMemory.parse("8GiB:16GiB") == HostMemory(8 * GiB, 16 * GiB)
    with pytest.raises(ValueError, match="below the minimum"):
        HostMemory.parse("2GiB:1GiB")


# --- multi-memory ------------------------------------------------------------------------------------

MULTI_MEMORY = """
(module
  (import "env" "project" (func $project (param i32 i32 i64 i32)))
  (memory $weights (export "weights") 1)
  (memory $activations (export "activations") 1)
  (memory $kv (export "kv") i64 2)
  (func $run (export "run") (param $w i32) (param $x i32) (param $out i64) (param $n i32)
    (call $project (local.get $w) (local.get $x) (local.get $out) (local.get $n))))
"""

F32s = NDArray[np.float32]


def multi_memory_host() -> HostFunctions:
    host = HostFunctions()

    @host.function
    def project(
        w: Annotated[F32s, In("n", memory="weights")],
        x: Annotated[F32s, In("n", memory=1)],  # activations, by index
        out: Annotated[F32s, Out("n", memory="kv")],
        n: u32,
    ) -> None:
        out[:] = w * x

    return host


def test_multi_memory_reads_one_memory_and_writes_another() -> None:
    guest = Guest(MULTI_MEMORY.encode(), hosts=[multi_memory_host()])
    weights, activations, kv = (guest.memory_for(n) for n in ("weights", "activations", "kv"))
    assert (weights.index, activations.index, kv.index) == (0, 1, 2) and kv.is64 and not weights.is64
    weights.view(64, 4, np.float32)[:] = [1, 2, 3, 4]
    activations.view(128, 4, np.float32)[:] = [10, 20, 30, 40]
    guest.call("run", 64, 128, 70000, 4)
    assert kv.view(70000, 4, np.float32).tolist() == [10, 40, 90, 160]
    # The same addresses in the other memories were not touched.
    assert not weights.view(70000 % 65536, 16).any() and not activations.view(4464, 16).any()
    # Bounds are per memory: kv has two pages, weights and activations one.
    with pytest.raises(BoundsError, match=r"parameter `w`.*memory `weights` is 65536 bytes"):
        guest.call("run", 65536 - 8, 0, 0, 4)
    with pytest.raises(BoundsError, match=r"parameter `x`.*memory `activations` is 65536 bytes"):
        guest.call("run", 0, 65536 - 4, 0, 4)
    with pytest.raises(BoundsError, match=r"parameter `out`.*memory `kv` is 131072 bytes"):
        guest.call("run", 0, 0, 131072 - 8, 4)
    guest.call("run", 0, 0, 131072 - 16, 4)  # the last 16 bytes of kv are inside


# --- caps ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["wasm32", "wasm64"])
def test_exceeding_max_memory_fails_growth_and_the_host_goes_on(target: Target) -> None:
    ran = run_cli("run", str(GUESTS / "oom.c"), "--target", target, "--max-memory", "64MiB")
    assert ran.returncode == 12
    assert "oom: out of memory after" in ran.stderr
    assert "at its 64 MiB cap (--max-memory); memory.grow fails past the cap" in ran.stderr
    assert "Traceback" not in ran.stderr
    oom = Guest(build_c("oom", target), max_memory=64 << 20, stderr=str(ROOT / ".pytest-oom.log"))
    assert oom.run() == 12 and oom.memory.size <= 64 << 20
    oom.close()
    (ROOT / ".pytest-oom.log").unlink()
    # Same process, next guest: all is well.
    hello = run_cli("run", "examples/hello", "--target", target)
    assert hello.returncode == 0 and hello.stdout.startswith("sum of 1..10 = 55")


@pytest.mark.parametrize("value", ["0", "100TiB", "lots"])
def test_bad_max_memory_is_a_usage_error(value: str) -> None:
    ran = run_cli("run", "examples/hello", "--max-memory", value)
    assert ran.returncode == 1 and "--max-memory" in ran.stderr and "Traceback" not in ran.stderr


def test_max_memory_default_is_stated_in_help() -> None:
    assert "default: 16 GiB" in run_cli("run", "--help").stdout.replace("\n", " ").replace("  ", " ")


# --- features --------------------------------------------------------------------------------------------


def test_features_lists_the_engine(tmp_path: Path) -> None:
    ran = run_cli("features")
    assert ran.returncode == 0
    expected = [
        "memory64 yes",
        "multi-memory yes",
        "simd yes",
        "relaxed-simd yes",
        "threads no",
        "bulk-memory yes",
    ]
    for line in expected:
        assert line in " ".join(ran.stdout.split())


def test_features_of_the_wasm64_paris_build(tmp_path: Path) -> None:
    wasm = tmp_path / "paris64.wasm"
    assert run_cli("build", "examples/paris/paris.c", "-o", str(wasm), "--target", "wasm64").returncode == 0
    text = run_cli("features", str(wasm))
    assert text.returncode == 0
    assert "[0] i64 memory" in text.stdout and "uses: memory64" in text.stdout
    assert "this host can run it: yes" in text.stdout
    data = json.loads(run_cli("features", str(wasm), "--json").stdout)
    assert data["module"]["memories"][0]["index_type"] == "i64" and data["module"]["can_run"]
    assert "env.realm_forward_layer (i32, i32, i64, i32, i32) -> i32" in data["module"]["imports"]


def test_features_says_what_a_module_lacks(tmp_path: Path) -> None:
    wat = tmp_path / "threads.wat"
    wat.write_text('(module (import "env" "nope" (func)) (memory 1 1 shared) '
                   '(func (result i32) (i32.atomic.load (i32.const 0))))')  # fmt: skip
    data = json.loads(run_cli("features", str(wat), "--json").stdout)["module"]
    assert data["uses"] == ["threads"] and not data["can_run"]
    assert any("threads" in p for p in data["problems"]) and any("env.nope" in p for p in data["problems"])
    multi = tmp_path / "multi.wat"
    multi.write_text(MULTI_MEMORY)
    data = json.loads(run_cli("features", str(multi), "--json").stdout)["module"]
    assert set(data["uses"]) == {"memory64", "multi-memory"}
    assert [m["index_type"] for m in data["memories"]] == ["i32", "i32", "i64"]


# --- the wasm64 C runtime (guest/libc64): stdin, sin/cos/tan, %a, and what it refuses clearly -------

LIBC64_PROBE = r"""
#include <math.h>
#include <stdio.h>
int main(void) {
    char line[64];
    while (fgets(line, sizeof line, stdin)) printf("read: %s", line);
    double xs[] = {0.5, 1.0, -2.0, 3.14159265358979, 10.0, 100.0, 12345.678, 1e6};
    for (int i = 0; i < 8; i++) printf("%a %a %a %a\n", xs[i], sin(xs[i]), cos(xs[i]), tan(xs[i]));
    printf("%a %.3a %A %a\n", 0.1, 0.1, -2.5, 0.0);
    return 0;
}
"""


def test_libc64_reads_stdin_computes_trig_and_prints_hex_floats(tmp_path: Path) -> None:
    import math

    source = tmp_path / "probe.c"
    source.write_text(LIBC64_PROBE)
    (tmp_path / "in.txt").write_text("alpha\nbeta\n")
    ran = run_cli("run", str(source), "--target", "wasm64", "--stdin", str(tmp_path / "in.txt"))
    assert ran.returncode == 0, ran.stderr
    lines = ran.stdout.splitlines()
    assert lines[:2] == ["read: alpha", "read: beta"]
    for line in lines[2:10]:
        x, s, c, t = (float.fromhex(v) for v in line.split())
        for got, want in ((s, math.sin(x)), (c, math.cos(x)), (t, math.tan(x))):
            assert abs(got - want) <= 2 * math.ulp(want), (x, got, want)  # within 2 ulp
    assert lines[10] == "0x1.999999999999ap-4 0x1.99ap-4 -0X1.4P+1 0x0p+0"
    piped = run_cli_process("run", str(source), "--target", "wasm64", stdin="typed\n")
    assert piped.stdout.startswith("read: typed\n0x1p-1 ")
    nothing = run_cli("run", str(source), "--target", "wasm64", "--stdin", "null")
    assert nothing.stdout.startswith("0x1p-1 ")


def test_libc64_refuses_files_and_directories_clearly(tmp_path: Path) -> None:
    source = tmp_path / "files.c"
    source.write_text('#include <stdio.h>\nint main(void) { FILE *f = fopen("x", "r"); return f != 0; }\n')
    built = run_cli("build", str(source), "-o", str(tmp_path / "f.wasm"), "--target", "wasm64")
    assert (
        built.returncode == 1 and "'fopen' is unavailable: wasm64 guests have no file system" in built.stderr
    )
    hello = tmp_path / "hello.c"
    hello.write_text('#include <stdio.h>\nint main(void) { puts("hi"); return 0; }\n')
    ran = run_cli("run", str(hello), "--target", "wasm64", "--dir", str(tmp_path))
    assert ran.returncode == 1 and "a wasm64 guest has no file system" in ran.stderr and "--dir" in ran.stderr
