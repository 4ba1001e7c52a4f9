"""Property tests for your own host functions: hostile pointers, lengths and counts from hypothesis.

`fuzz_host_functions(registry)` builds, for every function of a `HostFunctions` registry, a small guest
that imports it (on wasm32 and on wasm64) and calls it with arguments hypothesis draws: pointers in
range, at the memory's end, past it and near 2**32 or 2**64; counts of 0, small, the memory's size and
huge. For each call it checks bridge's promises:

- a call whose declared ranges (arrays and texts, with the lengths their count parameters give) reach
  outside the guest's memory traps, naming the function and an out-of-range parameter, and changes no
  byte of memory;
- a call within range writes no byte outside its writable arrays (`Out`, `InOut`) — unless the function
  views memory itself (`Context.view`), whose ranges bridge cannot know.

A function is free to raise for arguments it dislikes (the guest traps with its message); such calls are
counted, not failed. Failures raise AssertionError with hypothesis's smallest example.

>>> from typing import Annotated
>>> from numpy.typing import NDArray
>>> from bridge import In, i64, u32
>>> host = HostFunctions()
>>> @host.function
... def total(xs: Annotated[NDArray[np.int32], In("n")], n: u32) -> i64:
...     return int(xs.sum())
>>> report = fuzz_host_functions(host, max_examples=50)
>>> report["total"]["wasm64"]["calls"]
50
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

try:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
except ImportError as exc:  # a dev dependency: the fuzzing needs it, bridge itself does not
    raise ImportError("bridge.testing needs hypothesis: pip install hypothesis") from exc

from .errors import GuestTrap
from .guest import Guest
from .host import HostFunction, HostFunctions
from .limits import PAGE

__all__ = ["counts", "fuzz_host_functions", "pointers"]

MEMORY_PAGES = 2  # each fuzzing guest's memory: 128 KiB, fixed


def pointers(memory_size: int, bits: int) -> st.SearchStrategy[int]:
    """Guest pointers worth trying against a memory of `memory_size` bytes: inside, at its end, just past
    it, anywhere, and near the top of the address space (where 32-bit sums would wrap).

    Draw them in a property test of your own pointer arithmetic, here a bounds check written as C would
    write it, in uint32_t; hypothesis finds the pointer and count whose sum wraps past the check:

    >>> from hypothesis import given, settings
    >>> from bridge.testing import counts, pointers
    >>> def fits(ptr, n, size):  # ptr + n <= size, in uint32_t arithmetic
    ...     return (ptr + n) % 2**32 <= size
    >>> @settings(max_examples=200, database=None, derandomize=True)
    ... @given(ptr=pointers(65536, bits=32), n=counts(65536, bits=32))
    ... def test_fits_means_inside(ptr, n):
    ...     if fits(ptr, n, 65536):
    ...         assert ptr + n <= 65536, f"{ptr} + {n} passed the check"
    >>> test_fits_means_inside()  # the numbers depend on hypothesis's version  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    AssertionError: ... + ... passed the check
    ...
    """
    top = (1 << bits) - 1
    return st.one_of(
        st.integers(0, memory_size - 1),
        st.integers(max(0, memory_size - 64), memory_size + 64),
        st.integers(0, top),
        st.integers(top - 64, top),
        st.sampled_from([0, 1, memory_size, 1 << 31, (1 << 31) - 1]),
    )


def counts(memory_size: int, bits: int) -> st.SearchStrategy[int]:
    """Lengths and counts worth trying: none, a few, up to the memory's size, and huge ones that overflow
    a byte count.

    Draw them in a property test of your own size arithmetic, here an element count turned into bytes
    as C would do it, in uint32_t; hypothesis finds a count that wraps:

    >>> from hypothesis import given, settings
    >>> from bridge.testing import counts
    >>> def byte_length(n):  # n int32 elements, in uint32_t arithmetic
    ...     return n * 4 % 2**32
    >>> @settings(max_examples=200, database=None, derandomize=True)
    ... @given(n=counts(65536, bits=32))
    ... def test_byte_length(n):
    ...     assert byte_length(n) == 4 * n, f"{n} elements make {byte_length(n)} bytes"
    >>> test_byte_length()  # the numbers depend on hypothesis's version  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    AssertionError: ... elements make ... bytes
    ...
    """
    top = (1 << bits) - 1
    return st.one_of(
        st.integers(0, 16),
        st.integers(0, memory_size),
        st.integers(memory_size - 8, memory_size + 8),
        st.integers(top - 16, top),
        st.sampled_from([1 << 30, 1 << 31, (1 << 32) - 1]).filter(lambda n: n <= top),
    )


def fuzz_host_functions(
    registry: HostFunctions,
    *,
    targets: Sequence[str] = ("wasm32", "wasm64"),
    max_examples: int = 100,
    functions: Sequence[str] | None = None,
) -> dict[str, dict[str, dict[str, int]]]:
    """Fuzzes every function of `registry` (or those named in `functions`) on each target; returns
    {function: {target: {"calls", "returned", "trapped_out_of_range", "raised"}}}. Raises AssertionError
    when bridge lets an out-of-range call through, traps without naming the function and parameter, or
    lets a call change memory outside its writable arrays.

    >>> from typing import Annotated
    >>> import numpy as np
    >>> from numpy.typing import NDArray
    >>> from bridge import HostFunctions, In, Out, usize
    >>> from bridge.testing import fuzz_host_functions
    >>> host = HostFunctions()
    >>> @host.function
    ... def reverse(src: Annotated[NDArray[np.int32], In("n")], dst: Annotated[NDArray[np.int32], Out("n")],
    ...             n: usize) -> None:
    ...     dst[:] = src[::-1]
    >>> report = fuzz_host_functions(host, targets=["wasm32"], max_examples=40)
    >>> tally = report["reverse"]["wasm32"]
    >>> tally["calls"], tally["calls"] == tally["returned"] + tally["trapped_out_of_range"] + tally["raised"]
    (40, True)
    """
    report: dict[str, dict[str, dict[str, int]]] = {}
    for hf in registry:
        if functions is not None and hf.name not in functions:
            continue
        if any(p.memory is not None for p in hf.params if p.role in ("array", "text", "pointer")):
            continue  # named memories: the fuzzing guest has only a default one
        report[hf.name] = {
            target: _fuzz_one(registry, hf, target == "wasm64", max_examples) for target in targets
        }
    return report


def _wat(hf: HostFunction, is64: bool) -> tuple[str, list[str]]:
    """A guest importing hf whose export `call` forwards its arguments; and hf's wasm parameter types."""
    params, results = hf.wasm_signature(lambda ref: is64)
    p = " ".join(params)
    r = f"(result {' '.join(results)})" if results else ""
    forward = " ".join(f"(local.get {i})" for i in range(len(params)))
    memory = f'(memory (export "memory") {"i64 " if is64 else ""}{MEMORY_PAGES} {MEMORY_PAGES})'
    imported = f"{_wat_string(hf.module)} {_wat_string(hf.name)}"
    wat = (
        f"(module (import {imported} (func $f (param {p}) {r})) {memory} "
        f'(func (export "call") (param {p}) {r} (call $f {forward})))'
    )
    return wat, list(params)


def _wat_string(text: str) -> str:
    """`text` as a WAT string: printable ASCII as is, every other byte of its UTF-8 as `\\hh`."""
    escaped = (chr(b) if 32 <= b < 127 and b not in b'"\\' else f"\\{b:02x}" for b in text.encode())
    return f'"{"".join(escaped)}"'


def _slots(hf: HostFunction) -> list[tuple[str, str, int]]:
    """(parameter name, role, first wasm slot) of each parameter that takes wasm slots."""
    out: list[tuple[str, str, int]] = []
    slot = 0
    for p in hf.params:
        if p.role == "context":
            continue
        out.append((p.name, p.role, slot))
        slot += 2 if p.role == "text" else 1
    return out


def _fuzz_one(registry: HostFunctions, hf: HostFunction, is64: bool, max_examples: int) -> dict[str, int]:
    wat, wasm_params = _wat(hf, is64)
    guest = Guest(wat.encode(), hosts=[registry], argv=["fuzz"])
    size = MEMORY_PAGES * PAGE
    bits = 64 if is64 else 32
    slots = _slots(hf)
    views_itself = any(p.role in ("pointer", "context") for p in hf.params)
    texts = [p.name for p in hf.params if p.role == "text"]
    tally = {"calls": 0, "returned": 0, "trapped_out_of_range": 0, "raised": 0}

    def value(kind: str, role: str) -> st.SearchStrategy[Any]:
        """A draw for one wasm parameter: a pointer for pointer roles, else a count or any integer."""
        if kind in ("f32", "f64"):
            return st.floats(allow_nan=False, width=32 if kind == "f32" else 64)
        width = 32 if kind == "i32" else 64
        if role in ("array", "text", "pointer"):
            return pointers(size, min(width, bits))
        return counts(size, width) | st.integers(0, (1 << width) - 1)

    def ranges(v: list[int]) -> list[tuple[str, int, int, bool]]:
        """(parameter, start, byte length, writable) of each declared range for the unsigned args v."""
        found = []
        for p in hf.params:
            if p.role == "array":
                assert p.array is not None and p.dtype is not None
                slot = next(s for n, _, s in slots if n == p.name)
                found.append((p.name, v[slot], hf._counts[p.name](v) * p.dtype.itemsize, p.array.writable))
            elif p.role == "text":
                slot = next(s for n, _, s in slots if n == p.name)
                found.append((p.name, v[slot], v[slot + 1], False))
        return found

    @settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        v: list[int] = []
        for name, role, slot in slots:
            kinds = wasm_params[slot : slot + (2 if role == "text" else 1)]
            for i, kind in enumerate(kinds):
                v.append(data.draw(value(kind, "scalar" if i else role), label=f"{name}[{i}]"))
        memory = guest.memory
        canary = np.frombuffer(np.random.default_rng(len(v)).bytes(size), np.uint8)
        memory.view(0, size, np.uint8)[:] = canary
        declared = ranges(v)
        outside = [name for name, start, length, _ in declared if length < 0 or start + length > size]
        args = [_signed(x, kind) for x, kind in zip(v, wasm_params, strict=True)]
        tally["calls"] += 1
        try:
            guest.call("call", *args)
        except GuestTrap as exc:
            after = memory.view(0, size, np.uint8)
            message = str(exc)
            if outside:
                tally["trapped_out_of_range"] += 1
                # bridge checks parameters in order: an earlier text that is not UTF-8 may be named first
                named = [n for n in [*outside, *texts] if f"`{n}`" in message]
                assert hf.name in message and named, (
                    f"{hf.name}: out-of-range {outside} trapped without naming them: {message}"
                )
                assert np.array_equal(after, canary), f"{hf.name}: memory changed by a call that trapped"
                return
            tally["raised"] += 1
        else:
            assert not outside, f"{hf.name}: {outside} reach outside memory with {v}, yet the call returned"
            tally["returned"] += 1
        if views_itself:
            return
        after = memory.view(0, size, np.uint8)
        allowed = np.zeros(size, bool)
        for _, start, length, writable in declared:
            if writable:
                allowed[start : start + length] = True
        changed = np.flatnonzero((after != canary) & ~allowed)
        assert changed.size == 0, f"{hf.name}: wrote byte {int(changed[0])} outside its writable arrays ({v})"

    try:
        check()
    finally:
        guest.close()
    return tally


def _signed(x: int, kind: str) -> int | float:
    """An unsigned draw as the signed value wasmtime takes for an i32/i64 parameter."""
    if kind == "i32":
        return x - (1 << 32) if x >= 1 << 31 else x
    if kind == "i64":
        return x - (1 << 64) if x >= 1 << 63 else x
    return x
