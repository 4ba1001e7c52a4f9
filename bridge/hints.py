"""Type hints that declare a host function's guest signature.

Scalars are `Annotated` ints and floats, so a type checker sees plain `int`/`float`::

    def add(a: i32, b: i32) -> i32: ...

Guest arrays are numpy arrays with a marker saying their direction and element count; the dtype comes
from the `NDArray` hint::

    def scale(xs: Annotated[NDArray[np.float32], InOut("n")], n: u32, k: f32) -> None: ...

The count is a parameter name, an arithmetic expression of parameter names (`"rows * cols"`), an int,
or a callable whose parameter names are the function's scalar parameters. Each array (and `Ptr`)
takes one guest pointer; `Utf8` takes a (pointer, byte length) pair. `usize` and pointers are u32 on
wasm32 guests and u64 on wasm64 guests, so one declaration serves both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

ScalarKind = Literal["i32", "u32", "i64", "u64", "f32", "f64", "usize"]
MemoryRef = str | int | None
Count = int | str | Callable[..., int]


@dataclass(frozen=True)
class Scalar:
    """A wasm scalar. `usize` is the guest's pointer width, unsigned."""

    kind: ScalarKind


i32 = Annotated[int, Scalar("i32")]
u32 = Annotated[int, Scalar("u32")]
i64 = Annotated[int, Scalar("i64")]
u64 = Annotated[int, Scalar("u64")]
f32 = Annotated[float, Scalar("f32")]
f64 = Annotated[float, Scalar("f64")]
usize = Annotated[int, Scalar("usize")]


@dataclass(frozen=True)
class Array:
    """A guest array: one pointer parameter, viewed as a numpy array of `count` elements.

    `memory` names the guest memory it lies in (export/import name or index); None means the
    default memory. `dtype` overrides the dtype taken from the `NDArray[...]` hint. `ctype` names the
    element type in generated C headers (default: from the dtype, e.g. `float`, `uint32_t`).
    """

    count: Count
    memory: MemoryRef = None
    dtype: Any = None
    writable: bool = False
    ctype: str | None = None


def In(count: Count, *, memory: MemoryRef = None, dtype: Any = None, ctype: str | None = None) -> Array:
    """An input array: a read-only view."""
    return Array(count, memory, dtype, writable=False, ctype=ctype)


def Out(count: Count, *, memory: MemoryRef = None, dtype: Any = None, ctype: str | None = None) -> Array:
    """An output array: a writable view the function fills."""
    return Array(count, memory, dtype, writable=True, ctype=ctype)


def InOut(count: Count, *, memory: MemoryRef = None, dtype: Any = None, ctype: str | None = None) -> Array:
    """An array read and written in place."""
    return Array(count, memory, dtype, writable=True, ctype=ctype)


@dataclass(frozen=True)
class Text:
    """A UTF-8 string passed as (pointer, byte length); the function receives a `str`."""

    memory: MemoryRef = None


@dataclass(frozen=True)
class Pointer:
    """A raw guest address, unsigned, for use with `Context.view` (the escape hatch).

    `ctype` is the pointer's C type in generated headers (default `void *`).
    """

    memory: MemoryRef = None
    ctype: str = "void *"


Utf8 = Annotated[str, Text()]
Ptr = Annotated[int, Pointer()]
