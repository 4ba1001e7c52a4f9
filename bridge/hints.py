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
    """An input array: a read-only view.

    Its count may be an expression of the integer parameters:

    >>> import numpy as np
    >>> from typing import Annotated
    >>> from numpy.typing import NDArray
    >>> from bridge import Guest, HostFunctions, f64, u32
    >>> host = HostFunctions()
    >>> @host.function
    ... def trace(m: Annotated[NDArray[np.float64], In("n * n")], n: u32) -> f64:
    ...     return float(m.reshape(n, n).trace())
    >>> guest = Guest(b'''(module (import "env" "trace" (func $trace (param i32 i32) (result f64)))
    ...   (memory (export "memory") 1)
    ...   (func (export "trace2") (param i32) (result f64) (call $trace (local.get 0) (i32.const 2))))''',
    ...   hosts=[host])
    >>> guest.memory.view(64, 4, np.float64)[:] = [1, 2, 3, 4]  # the 2x2 matrix [[1, 2], [3, 4]]
    >>> guest.call("trace2", 64)
    5.0
    >>> guest.close()
    """
    return Array(count, memory, dtype, writable=False, ctype=ctype)


def Out(count: Count, *, memory: MemoryRef = None, dtype: Any = None, ctype: str | None = None) -> Array:
    """An output array: a writable view the function fills.

    >>> import numpy as np
    >>> from typing import Annotated
    >>> from numpy.typing import NDArray
    >>> from bridge import Guest, HostFunctions, u32
    >>> host = HostFunctions()
    >>> @host.function
    ... def squares(out: Annotated[NDArray[np.int32], Out("n")], n: u32) -> None:
    ...     out[:] = np.arange(n) ** 2  # written straight into guest memory
    >>> guest = Guest(b'''(module (import "env" "squares" (func $squares (param i32 i32)))
    ...   (memory (export "memory") 1)
    ...   (func (export "fill") (param i32 i32) (call $squares (local.get 0) (local.get 1))))''',
    ...   hosts=[host])
    >>> guest.call("fill", 1024, 5)
    >>> guest.memory.view(1024, 5, np.int32).tolist()
    [0, 1, 4, 9, 16]
    >>> guest.close()
    """
    return Array(count, memory, dtype, writable=True, ctype=ctype)


def InOut(count: Count, *, memory: MemoryRef = None, dtype: Any = None, ctype: str | None = None) -> Array:
    """An array read and written in place.

    >>> import numpy as np
    >>> from typing import Annotated
    >>> from numpy.typing import NDArray
    >>> from bridge import Guest, HostFunctions, f32, u32
    >>> host = HostFunctions()
    >>> @host.function
    ... def scale(xs: Annotated[NDArray[np.float32], InOut("n")], n: u32, k: f32) -> None:
    ...     xs *= k
    >>> guest = Guest(b'''(module (import "env" "scale" (func $scale (param i32 i32 f32)))
    ...   (memory (export "memory") 1)
    ...   (func (export "scale") (param i32 i32 f32)
    ...     (call $scale (local.get 0) (local.get 1) (local.get 2))))''', hosts=[host])
    >>> guest.memory.view(0, 3, np.float32)[:] = [1, 2, 3]
    >>> guest.call("scale", 0, 3, 0.5)
    >>> guest.memory.view(0, 3, np.float32).tolist()
    [0.5, 1.0, 1.5]
    >>> guest.close()
    """
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
