"""Benchmarks that print figures (`python -m bridge bench ...`).

`hostcall`: µs per guest->host call of a typed host function with three array parameters (two inputs,
one output, each bounds-checked and viewed through numpy), against a raw wasmtime-py host function with
the same wasm signature that touches no memory. Both run in one process, interleaved run by run, and
the medians are compared.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Annotated

import numpy as np
import wasmtime
from numpy.typing import NDArray

from . import _seam
from .guest import Guest
from .hints import In, Out, i32, usize
from .host import HostFunctions

# The guest calls env.f(a, b, out, n) `calls` times in a loop, with 16-float arrays.
_LOOP_WAT = """
(module
  (import "env" "f" (func $f (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "loop") (param $calls i32) (result i32) (local $acc i32)
    (block $done
      (loop $next
        (br_if $done (i32.eqz (local.get $calls)))
        (local.set $acc (i32.add (local.get $acc)
          (call $f (i32.const 0) (i32.const 64) (i32.const 128) (i32.const 16))))
        (local.set $calls (i32.sub (local.get $calls) (i32.const 1)))
        (br $next)))
    (local.get $acc)))
"""


@dataclass
class HostcallResult:
    calls: int
    runs: int
    typed_us: list[float]
    raw_us: list[float]

    @property
    def typed_median(self) -> float:
        return statistics.median(self.typed_us)

    @property
    def raw_median(self) -> float:
        return statistics.median(self.raw_us)

    @property
    def ratio(self) -> float:
        return self.typed_median / self.raw_median


def _typed_registry() -> HostFunctions:
    host = HostFunctions()

    @host.function
    def f(
        a: Annotated[NDArray[np.float32], In("n")],
        b: Annotated[NDArray[np.float32], In("n")],
        out: Annotated[NDArray[np.float32], Out("n")],
        n: usize,
    ) -> i32:
        return 0

    return host


def hostcall(calls: int = 20000, runs: int = 7) -> HostcallResult:
    """Measures both variants `runs` times, interleaved; returns µs per call of every run."""
    engine = _seam.make_engine()
    module = wasmtime.Module(engine, _LOOP_WAT)
    typed = Guest(wasmtime.wat2wasm(_LOOP_WAT), hosts=[_typed_registry()])
    typed_loop = typed.func("loop")

    raw_store = wasmtime.Store(engine)
    i32_t = wasmtime.ValType.i32()
    raw_f = wasmtime.Func(raw_store, wasmtime.FuncType([i32_t] * 4, [i32_t]), lambda a, b, out, n: 0)
    raw_instance = wasmtime.Instance(raw_store, module, [raw_f])
    raw_loop = raw_instance.exports(raw_store)["loop"]
    assert isinstance(raw_loop, wasmtime.Func)

    def timed(fn: wasmtime.Func, store: wasmtime.Store) -> float:
        start = time.perf_counter()
        fn(store, calls)
        return (time.perf_counter() - start) / calls * 1e6

    # Warm-up: first calls bind the typed path and fault in pages.
    timed(typed_loop, typed.store)
    timed(raw_loop, raw_store)
    typed_us, raw_us = [], []
    for _ in range(runs):
        typed_us.append(timed(typed_loop, typed.store))
        raw_us.append(timed(raw_loop, raw_store))
    typed.close()
    return HostcallResult(calls, runs, typed_us, raw_us)


def format_hostcall(r: HostcallResult) -> str:
    lines = [
        f"host call benchmark: {r.runs} interleaved runs of {r.calls} calls each",
        f"  {'variant':<44} {'median µs/call':>15} {'range':>17}",
        f"  {'typed (3 arrays: 2 In + 1 Out, checked views)':<44} {r.typed_median:>15.3f} "
        f"{min(r.typed_us):>8.3f}-{max(r.typed_us):<8.3f}",
        f"  {'raw wasmtime-py Func (no memory access)':<44} {r.raw_median:>15.3f} "
        f"{min(r.raw_us):>8.3f}-{max(r.raw_us):<8.3f}",
        f"  typed / raw = {r.ratio:.2f}x (target: <= 1.5x)",
    ]
    return "\n".join(lines)


def to_json(r: HostcallResult) -> str:
    data = asdict(r)
    data.update(typed_median_us=r.typed_median, raw_median_us=r.raw_median, ratio=r.ratio)
    return json.dumps(data, indent=2)
