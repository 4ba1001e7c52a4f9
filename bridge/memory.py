"""Guest linear memory as zero-copy numpy views: the one place where guest pointers are checked.

Every pointer and length a guest hands the host goes through `GuestMemory.view`. It reads the pointer as
unsigned at the guest's pointer width (wasmtime-py hands an i32 of 0x80000000 or more to Python as a
negative int), checks the whole byte range against the memory's current size, and only then builds a
numpy view. `wasmtime.Memory.read`/`write` are never given a guest pointer: they clamp a bad slice and
read a negative offset as "from the end".

Views are valid for the duration of the host call that made them. The engine is configured so that a
memory's base address never moves (see `bridge._seam.make_engine`), so a view stays valid even when the
memory grows during the call; memories never shrink.
"""

from __future__ import annotations

import ctypes
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from .errors import BoundsError
from .limits import format_bytes

if TYPE_CHECKING:
    from ._seam import MemoryAccess

_U8 = np.dtype(np.uint8)


def _zero() -> int:
    return 0


class GuestMemory:
    """One linear memory of one guest instance.

    `name` is how messages and host declarations refer to it (its export or import name, else
    "memory[i]"); `index` is its index in the module's memory index space.

    >>> from bridge import Guest
    >>> guest = Guest(b'(module (memory (export "memory") 1 4))')  # 1 page now, at most 4
    >>> memory = guest.memory
    >>> memory
    <GuestMemory 'memory' i32 65536 bytes>
    >>> memory.write(100, "héllo".encode())
    >>> memory.read_str(100, 6), memory.read(100, 3)
    ('héllo', b'h\xc3\xa9')
    >>> memory.grow(1), memory.pages, memory.size  # grow returns the previous size in pages
    (1, 2, 131072)
    >>> memory.grow(8)
    Traceback (most recent call last):
    bridge.errors.LinkError: memory cannot grow by 8 pages: it has 2 and its maximum is 4
    >>> memory.read(131070, 4)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    bridge.errors.BoundsError: range is outside guest memory: pointer 0x1fffe, length 4 bytes, ...
    >>> guest.close()
    """

    def __init__(self, access: MemoryAccess, name: str, index: int = 0) -> None:
        self._access = access
        self._size, self._base = access.size, access.base
        self.name = name
        self.index = index
        self.is64: bool = access.is64
        self.pointer_bits = 64 if self.is64 else 32
        self.pointer_mask = (1 << self.pointer_bits) - 1
        self.page_size: int = access.page_size
        # The full-memory byte array, rebuilt only when the size changes.
        self._full: npt.NDArray[np.uint8] = np.empty(0, np.uint8)
        self._full_size = -1

    def release(self) -> None:
        """Forgets the memory (its guest is closed): every later view raises BoundsError."""
        self._full, self._full_size = np.empty(0, np.uint8), -1
        self._size = self._base = _zero

    @property
    def size(self) -> int:
        """Current size in bytes."""
        return self._size()

    @property
    def pages(self) -> int:
        return self.size // self.page_size

    def grow(self, pages: int) -> int:
        """Grows the memory by `pages`; returns the previous size in pages.

        Raises LinkError when the memory's maximum or the store's limit forbids it.
        """
        return self._access.grow(pages)

    def _bytes(self, size: int) -> npt.NDArray[np.uint8]:
        if size != self._full_size:
            if size == 0:
                self._full = np.empty(0, np.uint8)
            else:
                buffer = (ctypes.c_ubyte * size).from_address(self._base())
                self._full = np.ctypeslib.as_array(buffer)
            self._full_size = size
        return self._full

    def view(
        self,
        ptr: int,
        count: int,
        dtype: npt.DTypeLike = np.uint8,
        *,
        function: str | None = None,
        parameter: str | None = None,
        writable: bool = True,
    ) -> npt.NDArray[np.generic]:
        """A zero-copy view of `count` elements of `dtype` at guest address `ptr`.

        `ptr` is read as unsigned at the guest's pointer width. A zero-length view at `ptr == size` is
        allowed. `function` and `parameter` only name the culprit in the error.

        Raises BoundsError when any byte of the range lies outside the memory, or `count` is negative.

        >>> from bridge import Guest
        >>> guest = Guest(b'(module (memory (export "memory") 1))')
        >>> words = guest.memory.view(16, 4, np.uint32)
        >>> words[:] = [1, 2, 3, 4]
        >>> guest.memory.view(16, 8).tolist()  # the same bytes, zero-copy
        [1, 0, 0, 0, 2, 0, 0, 0]
        >>> guest.memory.view(65530, 16, function="f", parameter="p")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        bridge.errors.BoundsError: host function `f`, parameter `p`: range is outside guest memory: ...
        >>> guest.close()
        """
        dt = dtype if isinstance(dtype, np.dtype) else np.dtype(dtype)
        ptr &= self.pointer_mask
        nbytes = count * dt.itemsize
        size = self._size()
        if count < 0 or ptr > size or nbytes > size - ptr:
            raise self._bounds_error(ptr, nbytes, size, function, parameter, count)
        full = self._full if size == self._full_size else self._bytes(size)
        raw = full[ptr : ptr + nbytes]
        out = raw if dt is _U8 else raw.view(dt)
        if not writable:
            out.flags.writeable = False
        return out

    def _bounds_error(
        self, ptr: int, nbytes: int, size: int, function: str | None, parameter: str | None, count: int
    ) -> BoundsError:
        where = ""
        if function is not None:
            where = f"host function `{function}`"
            if parameter is not None:
                where += f", parameter `{parameter}`"
            where += ": "
        what = f"negative element count {count}" if count < 0 else "range is outside guest memory"
        message = (
            f"{where}{what}: pointer {ptr:#x}, length {nbytes} bytes, "
            f"but memory `{self.name}` is {format_bytes(size, exact=True)}"
        )
        return BoundsError(
            message, function=function, parameter=parameter, pointer=ptr, length=nbytes, memory_size=size
        )

    def read(self, ptr: int, length: int) -> bytes:
        """A copy of `length` bytes at `ptr`. Raises BoundsError when out of range."""
        return self.view(ptr, length).tobytes()

    def write(self, ptr: int, data: bytes | bytearray | memoryview) -> None:
        """Copies `data` to `ptr`. Raises BoundsError when out of range."""
        self.view(ptr, len(data))[:] = np.frombuffer(data, np.uint8)

    def read_str(self, ptr: int, length: int) -> str:
        """UTF-8 text at `ptr`. Raises BoundsError when out of range, UnicodeDecodeError when not UTF-8."""
        return self.view(ptr, length).tobytes().decode("utf-8")

    def __repr__(self) -> str:
        kind = "i64" if self.is64 else "i32"
        return f"<GuestMemory {self.name!r} {kind} {self.size} bytes>"
