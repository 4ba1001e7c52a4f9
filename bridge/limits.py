"""Memory sizes: parsing `8GiB`, host-created memories for guests that import one, growth caps.

A memory's index type is part of its type: a wasm32 module cannot import a 64-bit memory, and wasmtime
refuses the link. So a host-created memory follows the guest's import (i32 or i64 index), and a request
that the guest's index type cannot honour (more than 4 GiB for a wasm32 guest, or an explicitly 64-bit
memory for an i32 import) is refused with the index type the guest would need.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import wasmtime

from .errors import LinkError
from .wasmfile import MemoryInfo

PAGE = 65536
GiB = 1 << 30
MEMORY32_LIMIT = 4 * GiB  # 65536 pages of 64 KiB: all an i32 index can address
# Default cap on each guest memory's growth: wasm32 guests stop at their 4 GiB anyway.
DEFAULT_MAX_MEMORY = 16 * GiB
# The address space reserved for each memory (bridge._seam.make_engine); no cap may exceed it.
MAX_MEMORY_LIMIT = 64 * GiB

_UNITS = {
    "": 1, "b": 1,
    "k": 1 << 10, "kib": 1 << 10, "kb": 10**3,
    "m": 1 << 20, "mib": 1 << 20, "mb": 10**6,
    "g": 1 << 30, "gib": 1 << 30, "gb": 10**9,
    "t": 1 << 40, "tib": 1 << 40, "tb": 10**12,
}  # fmt: skip


def parse_size(text: str) -> int:
    """Bytes from "65536", "64KiB", "512MiB", "8GiB", "1.5G" (binary units; KB/MB/GB are decimal).

    Raises ValueError with the accepted forms when the text is not a size.
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    unit = match.group(2).lower() if match else ""
    if not match or unit not in _UNITS:
        raise ValueError(f"{text!r} is not a size; write bytes or a number with KiB, MiB, GiB or TiB")
    return int(float(match.group(1)) * _UNITS[unit])


def format_bytes(n: int) -> str:
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << (shift - 10)) == 0:
            return f"{n / (1 << shift):g} {unit}"
    return f"{n} bytes"


def pages(n_bytes: int) -> int:
    """Whole 64 KiB pages holding n_bytes (rounded up)."""
    return -(-n_bytes // PAGE)


@dataclass(frozen=True)
class HostMemory:
    """A memory the host creates for a guest that imports one.

    `minimum`/`maximum` are bytes (rounded up to whole 64 KiB pages); None takes the guest's own
    declared limits. `is64` None follows the guest's import; True or False insists on that index type.
    """

    minimum: int | None = None
    maximum: int | None = None
    is64: bool | None = None

    @classmethod
    def parse(cls, spec: str) -> HostMemory:
        """From the CLI's MIN[:MAX], e.g. "8GiB:16GiB". Raises ValueError for a bad spec."""
        low, sep, high = spec.partition(":")
        minimum = parse_size(low)
        maximum = parse_size(high) if sep else None
        if maximum is not None and maximum < minimum:
            raise ValueError(f"{spec!r}: the maximum is below the minimum")
        return cls(minimum, maximum)

    def create(self, store: wasmtime.Store, wanted: MemoryInfo, origin: str) -> wasmtime.Memory:
        """The memory for import `wanted`. Raises LinkError when it cannot satisfy the import."""
        assert wanted.imported_as is not None
        name = ".".join(wanted.imported_as)
        index = "i64 (a 64-bit memory, as wasm64 guests use)" if wanted.is64 else "i32 (a 32-bit memory)"
        if wanted.shared:
            raise LinkError(f"{origin}: guest imports `{name}` as a shared memory; bridge runs no threads")
        if self.is64 is not None and self.is64 != wanted.is64:
            offered = "an i64 (64-bit)" if self.is64 else "an i32 (32-bit)"
            raise LinkError(
                f"{origin}: guest imports `{name}` with index type {index}, but the host offers {offered} "
                "memory; a memory's index type is part of its type"
            )
        low = pages(self.minimum) if self.minimum is not None else wanted.minimum
        high = pages(self.maximum) if self.maximum is not None else wanted.maximum
        if not wanted.is64 and max(low, high or 0) * PAGE > MEMORY32_LIMIT:
            asked = format_bytes(max(low, high or 0) * PAGE)
            raise LinkError(
                f"{origin}: guest imports `{name}` with index type {index}, which addresses at most 4 GiB, "
                f"but {asked} was asked for; a memory beyond 4 GiB needs a wasm64 guest with an i64 memory "
                "(bridge build --target wasm64)"
            )
        if low < wanted.minimum:
            raise LinkError(
                f"{origin}: guest imports `{name}` needing at least {format_bytes(wanted.minimum * PAGE)}, "
                f"but the host memory is {format_bytes(low * PAGE)}"
            )
        if wanted.maximum is not None and (high is None or high > wanted.maximum):
            raise LinkError(
                f"{origin}: guest imports `{name}` with a maximum of {format_bytes(wanted.maximum * PAGE)}; "
                "give the host memory a maximum no larger than that"
            )
        ty = wasmtime.MemoryType(wasmtime.Limits(low, high), is_64=wanted.is64)
        try:
            return wasmtime.Memory(store, ty)
        except wasmtime.WasmtimeError as exc:
            raise LinkError(f"{origin}: cannot create a {format_bytes(low * PAGE)} memory: {exc}") from None
