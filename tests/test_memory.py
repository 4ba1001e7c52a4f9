"""GuestMemory.view against real wasmtime memories: the one place guest pointers are checked."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge import BoundsError, Guest

PAGE = 65536


def fill_module(pages: int, is64: bool) -> bytes:
    """A guest whose `fill(ptr, n, seed)` writes byte (seed + 7*i) & 255 at ptr+i."""
    a = "i64" if is64 else "i32"
    wrap = "(i32.wrap_i64 (local.get $i))" if is64 else "(local.get $i)"
    return f"""
    (module
      (memory (export "memory") {a} {pages})
      (memory (export "scratch") 1)
      (func (export "fill") (param $p {a}) (param $n {a}) (param $seed i32) (local $i {a})
        (block $done (loop $next
          (br_if $done ({a}.ge_u (local.get $i) (local.get $n)))
          (i32.store8 ({a}.add (local.get $p) (local.get $i))
                      (i32.add (local.get $seed) (i32.mul {wrap} (i32.const 7))))
          (local.set $i ({a}.add (local.get $i) ({a}.const 1)))
          (br $next))))
      (func (export "grow") (param $pages {a}) (result {a}) (memory.grow (local.get $pages))))
    """.encode()


def pattern(seed: int, n: int) -> np.ndarray:
    return ((seed + 7 * np.arange(n, dtype=np.int64)) & 255).astype(np.uint8)


# Memories of several sizes, including none at all and, for memory64, more than 4 GiB. Pages beyond
# the ones a test writes are never touched, so the large memory costs address space, not RAM.
SIZES_32 = [0, 1, 3, 17]
SIZES_64 = [0, 2, 65536 + 2]
GUESTS: dict[tuple[int, bool], Guest] = {}


def guest(pages: int, is64: bool) -> Guest:
    key = (pages, is64)
    if key not in GUESTS:
        GUESTS[key] = Guest(fill_module(pages, is64))
    return GUESTS[key]


DTYPES = [np.uint8, np.int8, np.int16, np.uint16, np.int32, np.uint32, np.float32, np.int64, np.float64]


def interesting_pointers(limit: int) -> st.SearchStrategy[int]:
    edges = [0, 1, 2**31 - 8, 2**31 - 1, 2**31, 2**31 + 1, 2**32 - 64, 2**32 - 16, 2**32 - 1]
    if limit > 2**32:
        edges += [2**32, 2**32 + 1, 2**32 + PAGE, 2**33, 2**63, 2**64 - 16, 2**64 - 1]
    return st.one_of(
        st.sampled_from(edges),
        st.integers(0, limit - 1),
        st.sampled_from(edges).flatmap(lambda e: st.integers(max(0, e - 4096), min(limit - 1, e + 4096))),
    )


def near_end(pages: int, limit: int) -> st.SearchStrategy[int]:
    size = pages * PAGE
    return st.integers(max(0, size - 4096), min(limit - 1, size + 64))


def check_view(g: Guest, ptr: int, count: int, dtype: type, seed: int) -> None:
    mem = g.memory
    size = mem.size
    dt = np.dtype(dtype)
    unsigned = ptr & mem.pointer_mask
    inside = unsigned + count * dt.itemsize <= size
    if inside:
        nbytes = count * dt.itemsize
        # The guest writes the first and last 512 bytes of the range (all of a short one); the
        # view must show exactly those bytes at both ends.
        edge = min(nbytes, 512)
        g.call("fill", unsigned, edge, seed)
        g.call("fill", unsigned + nbytes - edge, edge, seed ^ 0x55)
        view = mem.view(ptr, count, dtype)
        assert view.shape == (count,)
        assert view.dtype == dt
        raw = view.view(np.uint8)
        assert raw[nbytes - edge :].tobytes() == pattern(seed ^ 0x55, edge).tobytes()
        if nbytes >= 2 * edge:
            assert raw[:edge].tobytes() == pattern(seed, edge).tobytes()
    else:
        with pytest.raises(BoundsError) as info:
            mem.view(ptr, count, dtype, function="probe", parameter="data")
        err = info.value
        assert err.pointer == unsigned and err.length == count * dt.itemsize and err.memory_size == size
        text = str(err)
        assert "`probe`" in text and "`data`" in text and f"{unsigned:#x}" in text and f"{size} bytes" in text


@settings(max_examples=1500, deadline=None)
@given(
    pages=st.sampled_from(SIZES_32),
    data=st.data(),
    count=st.one_of(st.integers(0, 64), st.integers(0, 2**33)),
    dtype=st.sampled_from(DTYPES),
    seed=st.integers(0, 255),
    as_signed=st.booleans(),
)
def test_view32_exactly_when_inside(
    pages: int, data: st.DataObject, count: int, dtype: type, seed: int, as_signed: bool
) -> None:
    limit = 2**32
    ptr = data.draw(st.one_of(interesting_pointers(limit), near_end(pages, limit)))
    if as_signed and ptr >= 2**31:
        ptr -= 2**32  # how wasmtime-py hands an i32 of 0x80000000 or more to Python
    check_view(guest(pages, False), ptr, count, dtype, seed)


@settings(max_examples=1500, deadline=None)
@given(
    pages=st.sampled_from(SIZES_64),
    data=st.data(),
    count=st.one_of(st.integers(0, 64), st.integers(0, 2**40)),
    dtype=st.sampled_from(DTYPES),
    seed=st.integers(0, 255),
)
def test_view64_exactly_when_inside(
    pages: int, data: st.DataObject, count: int, dtype: type, seed: int
) -> None:
    limit = 2**64
    ptr = data.draw(st.one_of(interesting_pointers(limit), near_end(pages, limit)))
    check_view(guest(pages, True), ptr, count, dtype, seed)


def test_zero_length_view_at_end_is_allowed() -> None:
    mem = guest(1, False).memory
    assert mem.view(PAGE, 0).shape == (0,)
    with pytest.raises(BoundsError):
        mem.view(PAGE + 1, 0)
    with pytest.raises(BoundsError):
        mem.view(PAGE, 1)


def test_negative_count_is_refused() -> None:
    with pytest.raises(BoundsError, match="negative element count"):
        guest(1, False).memory.view(0, -1)


def test_views_are_zero_copy_and_writable() -> None:
    g = guest(1, False)
    mem = g.memory
    view = mem.view(100, 4, np.uint32)
    view[:] = [1, 2, 3, 0xDEADBEEF]
    assert mem.read(100, 16) == np.array([1, 2, 3, 0xDEADBEEF], "<u4").tobytes()
    assert not mem.view(100, 4, np.uint32, writable=False).flags.writeable


def test_any_memory_of_the_instance() -> None:
    g = guest(1, False)
    scratch = g.memory_for("scratch")
    assert scratch.name == "scratch" and scratch.index == 1 and scratch.size == PAGE
    assert g.memory_for(1) is scratch
    with pytest.raises(BoundsError, match="memory `scratch`"):
        scratch.view(PAGE - 2, 4)


def test_growth_keeps_the_base_and_extends_the_range() -> None:
    g = Guest(fill_module(1, False))
    mem = g.memory
    before = mem.view(PAGE - 4, 4)
    with pytest.raises(BoundsError):
        mem.view(PAGE, 4)
    assert g.call("grow", 3) == 1
    after = mem.view(PAGE, 4)
    after[:] = 9
    before[:] = 7  # still points into the same, unmoved memory
    assert mem.read(PAGE - 4, 8) == bytes([7] * 4 + [9] * 4)
