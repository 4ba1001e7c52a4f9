"""Typed host functions called by real guests: signatures, conversions, errors, overlap rules."""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from bridge import (
    BoundsError,
    Context,
    DeclarationError,
    Guest,
    GuestTrap,
    HandleError,
    HostError,
    HostFunctions,
    In,
    InOut,
    LinkError,
    Out,
    Ptr,
    Utf8,
    f32,
    f64,
    i32,
    i64,
    u32,
    u64,
    usize,
)

F32s = NDArray[np.float32]
U8s = NDArray[np.uint8]


def forwarding_guest(
    imports: dict[str, tuple[list[str], list[str]]], *, is64: bool = False, pages: int = 1
) -> bytes:
    """A guest that imports each env.NAME and re-exports it as call_NAME, forwarding its arguments."""
    parts = ["(module"]
    for name, (params, results) in imports.items():
        ps = " ".join(params)
        rs = f"(result {' '.join(results)})" if results else ""
        parts.append(f'(import "env" "{name}" (func ${name} (param {ps}) {rs}))')
    parts.append(f'(memory (export "memory") {"i64 " if is64 else ""}{pages})')
    for name, (params, results) in imports.items():
        ps = " ".join(params)
        rs = f"(result {' '.join(results)})" if results else ""
        gets = " ".join(f"(local.get {i})" for i in range(len(params)))
        parts.append(f'(func $call_{name} (export "call_{name}") (param {ps}) {rs} (call ${name} {gets}))')
    parts.append(")")
    return "\n".join(parts).encode()


def test_scalars_round_trip_with_their_signedness() -> None:
    host = HostFunctions()
    seen: dict[str, Any] = {}

    @host.function
    def scalars(a: i32, b: u32, c: i64, d: u64, e: f32, f: f64, g: usize) -> u32:
        seen.update(a=a, b=b, c=c, d=d, e=e, f=f, g=g)
        return 0xFFFFFFFF

    g = Guest(
        forwarding_guest({"scalars": (["i32", "i32", "i64", "i64", "f32", "f64", "i32"], ["i32"])}),
        hosts=[host],
    )
    result = g.call("call_scalars", -5, 0xFFFFFFFE, -7, 2**64 - 3, 1.5, 2.25, 0x80000000)
    assert seen == dict(a=-5, b=0xFFFFFFFE, c=-7, d=2**64 - 3, e=1.5, f=2.25, g=0x80000000)
    assert result == -1  # u32 0xffffffff as the wasm i32 it is


def test_usize_follows_the_guest_pointer_width() -> None:
    host = HostFunctions()

    @host.function
    def size_of(n: usize) -> usize:
        return n + 1

    g32 = Guest(forwarding_guest({"size_of": (["i32"], ["i32"])}), hosts=[host])
    g64 = Guest(forwarding_guest({"size_of": (["i64"], ["i64"])}, is64=True), hosts=[host])
    assert g32.call("call_size_of", 41) == 42
    assert g64.call("call_size_of", 2**40) == 2**40 + 1
    with pytest.raises(LinkError, match=r"host declares `env.size_of \(i64\) -> i64`"):
        Guest(forwarding_guest({"size_of": (["i32"], ["i32"])}, is64=True), hosts=[host])


def sum_reverse_host() -> HostFunctions:
    host = HostFunctions()

    @host.function
    def total(xs: Annotated[F32s, In("n")], n: usize) -> f64:
        assert not xs.flags.writeable
        return float(xs.sum())

    @host.function
    def rev(src: Annotated[F32s, In("n")], dst: Annotated[F32s, Out("n")], n: usize) -> None:
        dst[:] = src[::-1]

    @host.function
    def scale(xs: Annotated[F32s, InOut("rows * cols")], rows: u32, cols: u32, k: f32) -> None:
        xs *= k

    @host.function
    def head(xs: Annotated[F32s, In(4)]) -> f32:
        return float(xs[0])

    @host.function
    def by_callable(xs: Annotated[F32s, In(lambda n: n // 2)], n: u32) -> i32:
        return len(xs)

    return host


SUM_REVERSE_SIGS = {
    "total": (["i32", "i32"], ["f64"]),
    "rev": (["i32", "i32", "i32"], []),
    "scale": (["i32", "i32", "i32", "f32"], []),
    "head": (["i32"], ["f32"]),
    "by_callable": (["i32", "i32"], ["i32"]),
}


@pytest.mark.parametrize("is64", [False, True], ids=["wasm32", "wasm64"])
def test_arrays_in_out_inout_and_counts(is64: bool) -> None:
    sigs = SUM_REVERSE_SIGS
    if is64:  # pointers and usize become i64; u32 stays i32
        sigs = {
            "total": (["i64", "i64"], ["f64"]),
            "rev": (["i64", "i64", "i64"], []),
            "scale": (["i64", "i32", "i32", "f32"], []),
            "head": (["i64"], ["f32"]),
            "by_callable": (["i64", "i32"], ["i32"]),
        }
    g = Guest(forwarding_guest(sigs, is64=is64), hosts=[sum_reverse_host()])
    mem = g.memory
    mem.view(0, 6, np.float32)[:] = [1, 2, 3, 4, 5, 6]
    assert g.call("call_total", 0, 6) == 21.0
    g.call("call_rev", 0, 64, 6)
    assert mem.view(64, 6, np.float32).tolist() == [6, 5, 4, 3, 2, 1]
    g.call("call_scale", 0, 2, 3, 0.5)
    assert mem.view(0, 6, np.float32).tolist() == [0.5, 1, 1.5, 2, 2.5, 3]
    assert g.call("call_head", 4) == 1.0
    assert g.call("call_by_callable", 0, 9) == 4
    with pytest.raises(BoundsError, match=r"`head`, parameter `xs`.*pointer 0xfff4, length 16 bytes"):
        g.call("call_head", 0xFFF4)


def test_utf8_strings_and_invalid_utf8() -> None:
    host = HostFunctions()

    @host.function
    def shout(text: Utf8) -> i32:
        return len(text.upper())

    g = Guest(forwarding_guest({"shout": (["i32", "i32"], ["i32"])}), hosts=[host])
    g.memory.write(10, "héllo".encode())
    assert g.call("call_shout", 10, 6) == 5
    g.memory.write(10, b"\xff\xfe")
    with pytest.raises(GuestTrap, match="`shout`, parameter `text`: not valid UTF-8"):
        g.call("call_shout", 10, 2)
    with pytest.raises(BoundsError, match="pointer 0xffff, length 2 bytes"):
        g.call("call_shout", 0xFFFF, 2)


def test_context_state_handles_and_the_ptr_escape_hatch() -> None:
    host = HostFunctions(state=lambda: {"calls": 0})

    @host.function
    def open_thing(ctx: Context, value: i32) -> i32:
        ctx.state["calls"] += 1
        return ctx.handles.add([value])

    @host.function
    def read_thing(ctx: Context, handle: i32, out: Ptr) -> i32:
        try:
            thing = ctx.handles.get(handle, list)
        except HandleError:
            return -2
        ctx.view(out, 1, np.int32)[0] = thing[0]
        return 0

    sigs = {"open_thing": (["i32"], ["i32"]), "read_thing": (["i32", "i32"], ["i32"])}
    a = Guest(forwarding_guest(sigs), hosts=[host])
    b = Guest(forwarding_guest(sigs), hosts=[host])
    ha = a.call("call_open_thing", 11)
    assert a.call("call_read_thing", ha, 8) == 0
    assert a.memory.view(8, 1, np.int32)[0] == 11
    # b never opened anything: a's handle number means nothing there.
    assert b.call("call_read_thing", ha, 8) == -2
    with pytest.raises(BoundsError, match="pointer 0x10000, length 4 bytes"):
        a.call("call_read_thing", ha, 0x10000)


def test_raw_escape_hatch() -> None:
    host = HostFunctions()

    @host.raw("peek", ["usize", "u32"], ["i32"])
    def peek(ctx: Context, ptr: int, n: int) -> int:
        return int(ctx.view(ptr, n).sum())

    g = Guest(forwarding_guest({"peek": (["i32", "i32"], ["i32"])}), hosts=[host])
    g.memory.write(0, bytes([1, 2, 3]))
    assert g.call("call_peek", 0, 3) == 6
    with pytest.raises(BoundsError):
        g.call("call_peek", -1, 2)


def test_host_exception_traps_and_keeps_the_original() -> None:
    host = HostFunctions()

    class Oops(RuntimeError):
        pass

    @host.function
    def fail(x: i32) -> i32:
        raise Oops(f"bad {x}")

    g = Guest(forwarding_guest({"fail": (["i32"], ["i32"])}), hosts=[host])
    with pytest.raises(HostError) as info:
        g.call("call_fail", 3)
    assert isinstance(info.value.original, Oops)
    assert info.value.__cause__ is info.value.original
    assert "host function `fail` raised Oops: bad 3" in str(info.value)
    assert any("call_fail" in f for f in info.value.frames)


def test_bad_results_trap() -> None:
    host = HostFunctions()

    @host.function
    def too_big() -> i32:
        return 2**31

    @host.function
    def negative() -> u32:
        return -1

    @host.function
    def text() -> i32:
        return "7"  # type: ignore[return-value]

    @host.function
    def something() -> None:
        return 3  # type: ignore[return-value]

    signatures: dict[str, tuple[list[str], list[str]]] = {
        "too_big": ([], ["i32"]),
        "negative": ([], ["i32"]),
        "text": ([], ["i32"]),
        "something": ([], []),
    }
    g = Guest(forwarding_guest(signatures), hosts=[host])
    # reported as a wrong result, not as if the function had raised
    with pytest.raises(HostError, match=r"`too_big` returned a wrong value: it returned 2147483648, outside"):
        g.call("call_too_big")
    with pytest.raises(HostError, match="returned -1, outside the range of its declared u32"):
        g.call("call_negative")
    with pytest.raises(
        HostError, match=r"`text` returned a wrong value: it is declared to return i32, but returned str '7'"
    ):
        g.call("call_text")
    with pytest.raises(HostError, match="declared to return nothing, but returned int 3"):
        g.call("call_something")


def test_growth_during_a_host_call_keeps_views_valid() -> None:
    host = HostFunctions()

    @host.function
    def grow_then_write(ctx: Context, out: Annotated[U8s, Out(4)]) -> i32:
        before = ctx.memory.size
        ctx.call("grow", 100)
        assert ctx.memory.size == before + 100 * 65536
        out[:] = 42  # the view made before growth still writes to the guest's memory
        ctx.view(before + 10, 1)[0] = 7  # and the new pages are reachable
        return before

    wat = b"""(module
      (import "env" "grow_then_write" (func $g (param i32) (result i32)))
      (memory (export "memory") 1)
      (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
      (func (export "run") (result i32) (call $g (i32.const 100))))"""
    g = Guest(wat, hosts=[host])
    assert g.call("run") == 65536
    assert g.memory.read(100, 4) == b"\x2a" * 4
    assert g.memory.read(65536 + 10, 1) == b"\x07"


def test_guest_traps_carry_kind_and_backtrace() -> None:
    wat = b"""(module
      (memory (export "memory") 1)
      (func $inner (unreachable))
      (func $outer (export "outer") (call $inner))
      (func $recurse (export "recurse") (call $recurse))
      (func $oob (export "oob") (result i32) (i32.load (i32.const 70000))))"""
    g = Guest(wat)
    with pytest.raises(GuestTrap) as info:
        g.call("outer")
    assert info.value.trap_code == "unreachable"
    assert info.value.frames[:2] == ["inner", "outer"]
    with pytest.raises(GuestTrap) as info:
        g.call("recurse")
    assert info.value.trap_code == "stack_overflow"
    with pytest.raises(GuestTrap) as info:
        g.call("oob")
    assert info.value.trap_code == "memory_out_of_bounds"
    assert "oob" in str(info.value)


def test_link_errors_name_the_import_and_the_nearest_names() -> None:
    host = sum_reverse_host()
    wat = b"""(module
      (import "env" "totl" (func (param i32 i32) (result f64)))
      (import "env" "rev" (func (param i32 i32)))
      (memory (export "memory") 1))"""
    with pytest.raises(LinkError) as info:
        Guest(wat, hosts=[host])
    text = str(info.value)
    assert (
        "guest imports `env.totl (i32, i32) -> f64` and no host function has that name; nearest: env.total"
        in text
    )
    assert (
        "guest imports `env.rev (i32, i32) -> ()`, but the host declares `env.rev (i32, i32, i32) -> ()`"
        in text
    )
    without_memory = b"""(module (import "env" "total" (func (param i32 i32) (result f64))))"""
    with pytest.raises(LinkError) as info:
        Guest(without_memory, hosts=[host])
    assert str(info.value) == (
        "<bytes>: cannot link:\n  - host function `env.total`: the guest has no memory (default)"
    )


def test_declaration_errors_are_clear() -> None:
    host = HostFunctions()
    with pytest.raises(DeclarationError, match="names `m`, which is not an integer parameter"):

        @host.function
        def a(xs: Annotated[F32s, In("m")], n: u32) -> None: ...

    with pytest.raises(DeclarationError, match="has no type hint"):

        @host.function
        def b(x) -> None: ...  # type: ignore[no-untyped-def]

    with pytest.raises(DeclarationError, match="does not declare a guest type"):

        @host.function
        def c(x: int) -> None: ...

    with pytest.raises(DeclarationError, match="may only use parameter names"):

        @host.function
        def d(xs: Annotated[F32s, In("n ** 2")], n: u32) -> None: ...

    host.function(name="e")(lambda: None)
    with pytest.raises(DeclarationError, match="declared twice"):
        host.function(name="e")(lambda: None)


# --- properties -------------------------------------------------------------------------------------

PAGE = 65536


def overlap_host(allow: bool) -> HostFunctions:
    host = HostFunctions()

    @host.function(allow_overlap=allow)
    def copy(src: Annotated[U8s, In("n")], dst: Annotated[U8s, Out("n")], n: usize) -> None:
        dst[:] = src

    @host.function
    def fill(dst: Annotated[U8s, Out("n")], n: usize, value: u32) -> None:
        dst[:] = value

    return host


COPY_SIGS: dict[str, tuple[list[str], list[str]]] = {
    "copy": (["i32", "i32", "i32"], []),
    "fill": (["i32", "i32", "i32"], []),
}
STRICT = Guest(forwarding_guest(COPY_SIGS), hosts=[overlap_host(False)])
LENIENT = Guest(forwarding_guest(COPY_SIGS), hosts=[overlap_host(True)])


@settings(max_examples=1000, deadline=None)
@given(
    ptr=st.one_of(st.integers(0, PAGE + 16), st.integers(0, 2**32 - 1), st.sampled_from([2**31, 2**32 - 16])),
    n=st.one_of(st.integers(0, 300), st.integers(0, 2**32 - 1)),
    value=st.integers(1, 255),
)
def test_output_write_changes_nothing_outside_its_range(ptr: int, n: int, value: int) -> None:
    mem = STRICT.memory
    mem.view(0, PAGE)[:] = 0
    inside = ptr + n <= PAGE
    if inside:
        STRICT.call("call_fill", ptr, n, value)
    else:
        with pytest.raises(
            BoundsError, match=f"`fill`, parameter `dst`: range is outside guest memory: pointer {ptr:#x}"
        ):
            STRICT.call("call_fill", ptr, n, value)
    after = mem.view(0, PAGE)
    expected = np.zeros(PAGE, np.uint8)
    if inside:
        expected[ptr : ptr + n] = value
    assert np.array_equal(after, expected)


@settings(max_examples=1000, deadline=None)
@given(src=st.integers(0, 600), dst=st.integers(0, 600), n=st.integers(0, 300))
def test_overlap_is_rejected_or_allowed_per_function(src: int, dst: int, n: int) -> None:
    pattern = (np.arange(PAGE) * 13 % 251).astype(np.uint8)
    overlapping = n > 0 and src < dst + n and dst < src + n
    for g in (STRICT, LENIENT):
        g.memory.view(0, PAGE)[:] = pattern
    if overlapping:
        with pytest.raises(BoundsError, match="overlap"):
            STRICT.call("call_copy", src, dst, n)
        assert np.array_equal(STRICT.memory.view(0, PAGE), pattern)  # nothing was written
    else:
        STRICT.call("call_copy", src, dst, n)
    LENIENT.call("call_copy", src, dst, n)
    expected = pattern.copy()
    expected[dst : dst + n] = pattern[src : src + n]  # numpy copies through a temporary when they alias
    assert np.array_equal(LENIENT.memory.view(0, PAGE), expected)
    if not overlapping:
        assert np.array_equal(STRICT.memory.view(0, PAGE), expected)
