"""bridge.testing: the property tests users run on their own host functions, run here on ours."""

from __future__ import annotations

import runpy
from typing import Annotated, Any

import numpy as np
import pytest
from numpy.typing import NDArray

from bridge import Context, GuestMemory, HostFunctions, InOut, Out, Utf8, i32, u32, usize
from bridge.testing import fuzz_host_functions

from .conftest import ROOT

hello: HostFunctions = runpy.run_path(str(ROOT / "examples" / "hello" / "host.py"))["host"]


def test_the_hello_host_functions_keep_every_promise() -> None:
    report = fuzz_host_functions(hello, max_examples=150)
    assert set(report) == {"sum_i32", "reverse_i32"}
    for name, targets in report.items():
        for target in ("wasm32", "wasm64"):
            tally = targets[target]
            assert tally["calls"] == 150, (name, target)
            # hypothesis reaches both sides: calls within memory and calls past it
            assert tally["returned"] > 0 and tally["trapped_out_of_range"] > 0, (name, target, tally)


def test_texts_inouts_and_scalars_of_every_width() -> None:
    host = HostFunctions()

    @host.function
    def shout(text: Utf8, out: Annotated[NDArray[np.uint8], Out("cap")], cap: u32) -> i32:
        data = text.upper().encode()[:cap]
        out[: len(data)] = np.frombuffer(data, np.uint8)
        return len(data)

    @host.function
    def scale(xs: Annotated[NDArray[np.float32], InOut("n")], n: usize, by: i32) -> None:
        xs *= np.float32(by)

    report = fuzz_host_functions(host, max_examples=60)
    assert report["shout"]["wasm32"]["calls"] == 60 and report["scale"]["wasm64"]["calls"] == 60


def test_any_import_name_wasm_allows() -> None:
    host = HostFunctions(module='my "host" é')

    @host.function(name='copy-bytes.v2 \\ "quoted" ñ')
    def copy(
        dst: Annotated[NDArray[np.uint8], Out("n")], src: Annotated[NDArray[np.uint8], InOut("n")], n: u32
    ) -> None:
        dst[:] = src

    (name,) = fuzz_host_functions(host, max_examples=20)
    assert name == 'copy-bytes.v2 \\ "quoted" ñ'


def test_it_catches_a_missing_bounds_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the one bounds check clamped instead of raising, out-of-range calls return: a failure."""
    real = GuestMemory.view

    def clamped(self: GuestMemory, ptr: int, count: int, dtype: Any = np.uint8, **kw: Any) -> Any:
        size = self.size
        dt = np.dtype(dtype)
        ptr = min(ptr & self.pointer_mask, size)
        count = max(0, min(count, (size - ptr) // dt.itemsize))
        return real(self, ptr, count, dt, **kw)

    monkeypatch.setattr(GuestMemory, "view", clamped)
    with pytest.raises(AssertionError, match="reach outside memory"):
        fuzz_host_functions(hello, targets=["wasm32"], max_examples=100, functions=["sum_i32"])


def test_it_catches_a_write_outside_the_declared_range(monkeypatch: pytest.MonkeyPatch) -> None:
    """With writable views 4 bytes longer than declared, a function filling its output writes past it."""
    host = HostFunctions()

    @host.function
    def fill(out: Annotated[NDArray[np.uint8], Out("n")], n: u32) -> None:
        out[:] = 7

    real = GuestMemory.view

    def longer(self: GuestMemory, ptr: int, count: int, dtype: Any = np.uint8, **kw: Any) -> Any:
        grown = (
            count + 4
            if kw.get("writable", True) and (ptr & self.pointer_mask) + count + 4 <= self.size
            else count
        )
        return real(self, ptr, grown, dtype, **kw)

    assert fuzz_host_functions(host, targets=["wasm32"], max_examples=50)["fill"]["wasm32"]["returned"] > 0
    monkeypatch.setattr(GuestMemory, "view", longer)
    with pytest.raises(AssertionError, match="outside its writable arrays"):
        fuzz_host_functions(host, targets=["wasm32"], max_examples=100)


def test_functions_that_view_memory_themselves_are_checked_for_bounds() -> None:
    host = HostFunctions()

    @host.function
    def peek(ctx: Context, ptr: u32, n: u32) -> u32:
        return int(ctx.view(ptr, n, np.uint8, parameter="ptr").sum())

    report = fuzz_host_functions(host, max_examples=40)
    assert report["peek"]["wasm32"]["calls"] == 40 and report["peek"]["wasm64"]["calls"] == 40
