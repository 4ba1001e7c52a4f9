"""Memory sizes: parsing `8GiB`, host-created memories for guests that import one, growth caps.

A memory's index type is part of its type: a wasm32 module cannot import a 64-bit memory, and wasmtime
refuses the link. So a host-created memory follows the guest's import (i32 or i64 index), and a request
that the guest's index type cannot honour (more than 4 GiB for a wasm32 guest, or an explicitly 64-bit
memory for an i32 import) is refused with the index type the guest would need.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal

from .errors import LinkError
from .wasmfile import MemoryInfo

PAGE = 65536
GiB = 1 << 30
MEMORY32_LIMIT = 4 * GiB  # 65536 pages of 64 KiB: all an i32 index can address
# Default cap on each guest memory's growth: wasm32 guests stop at their 4 GiB anyway.
DEFAULT_MAX_MEMORY = 16 * GiB
# The address space reserved for each memory (bridge._seam.make_engine); no cap may exceed it.
MAX_MEMORY_LIMIT = 64 * GiB
# Table elements: wasmtime keeps a pointer-sized slot per element, so a table of N elements costs the
# host about 8*N bytes. The cap is also no more than max_memory // 8, so --max-memory bounds tables too.
TABLE_ELEMENT_BYTES = 8
DEFAULT_MAX_TABLE_ELEMENTS = 10_000_000
# How many instances, tables and memories one guest's store may create.
DEFAULT_MAX_INSTANCES = 16
DEFAULT_MAX_TABLES = 4
DEFAULT_MAX_MEMORIES = 8
# Host-side state a guest causes (realm contexts and their KV caches, per-call scratch), per guest.
DEFAULT_MAX_HOST_MEMORY = 2 * GiB

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
    match = re.fullmatch(r"\s*(\d{1,30}(?:\.\d{1,30})?)\s*([a-zA-Z]*)\s*", text)
    unit = match.group(2).lower() if match else ""
    if not match or unit not in _UNITS:
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise ValueError(f"{shown!r} is not a size; write bytes or a number with KiB, MiB, GiB or TiB")
    # Decimal, not float: the pattern admits only plain decimals, and no size overflows to infinity.
    return int(Decimal(match.group(1)) * _UNITS[unit])


def parse_seconds(text: str) -> float:
    """Seconds from "2", "0.5", "1.5s", "2m" or "100ms". Raises ValueError when not a positive time."""
    match = re.fullmatch(r"\s*(\d{1,12}(?:\.\d{1,9})?)\s*(ms|s|m|h|)\s*", text)
    if not match:
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise ValueError(f"{shown!r} is not a time; write seconds, e.g. 2, 0.5, 30s, 5m or 250ms")
    seconds = float(match.group(1)) * {"ms": 1e-3, "s": 1.0, "": 1.0, "m": 60.0, "h": 3600.0}[match.group(2)]
    if not 0 < seconds < math.inf:
        raise ValueError(f"{text!r}: the time must be above 0")
    return seconds


def format_bytes(n: int, *, exact: bool = False) -> str:
    """A byte count for people: in the largest binary unit it fills, when that unit shows it exactly to
    the thousandth; with `exact`, always the bytes, with that unit beside them.

    >>> format_bytes(65536), format_bytes(1536 << 20), format_bytes(1000)
    ('64 KiB', '1.5 GiB', '1000 bytes')
    >>> format_bytes(100_000, exact=True)
    '100000 bytes (97.6562 KiB)'
    """
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            if exact:
                return f"{n} bytes ({n / (1 << shift):.6g} {unit})"
            if n % (1 << (shift - 10)) == 0:
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

    >>> from bridge import Guest
    >>> wat = b'''(module (import "env" "memory" (memory 1))
    ...   (func (export "pages") (result i32) (memory.size)))'''
    >>> with Guest(wat, memory=HostMemory(minimum=1 << 20)) as guest:  # 1 MiB instead of the guest's 64 KiB
    ...     print(guest.call("pages"), guest.memory)
    16 <GuestMemory 'env.memory' i32 1048576 bytes>
    >>> Guest(wat, memory=HostMemory.parse("8GiB"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    bridge.errors.LinkError: <bytes>: ... index type i32 (a 32-bit memory), which addresses at most 4 GiB, ...
    """

    minimum: int | None = None
    maximum: int | None = None
    is64: bool | None = None

    @classmethod
    def parse(cls, spec: str) -> HostMemory:
        """From the CLI's MIN[:MAX], e.g. "8GiB:16GiB". Raises ValueError for a bad spec.

        >>> HostMemory.parse("1MiB:4MiB")
        HostMemory(minimum=1048576, maximum=4194304, is64=None)
        """
        low, sep, high = spec.partition(":")
        minimum = parse_size(low)
        maximum = parse_size(high) if sep else None
        if maximum is not None and maximum < minimum:
            raise ValueError(f"{spec!r}: the maximum is below the minimum")
        return cls(minimum, maximum)

    def plan(self, wanted: MemoryInfo, origin: str) -> tuple[int, int | None, bool]:
        """(minimum pages, maximum pages or None, is64) of the memory for import `wanted`.

        Raises LinkError when no such memory can satisfy the import.
        """
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
        return low, high, wanted.is64


@dataclass(frozen=True)
class Limits:
    """Every bound on one guest, as plain data (the seam applies them). Defaults are the CLI's.

    * `timeout`: wall-clock seconds for each top-level call (the whole run for `bridge run`); None: none.
    * `fuel`: a deterministic instruction budget for the guest's life; None: unmetered.
    * `max_memory`: bytes each memory may grow to; `memory.grow` returns -1 past it.
    * `max_table_elements`: elements per table (and no more than max_memory // 8, what they cost).
    * `max_instances`, `max_tables`, `max_memories`: how many the guest's store may create.
    * `max_host_memory`: host-side state the guest may hold through host functions (KV caches...).

    Raises ValueError for a bound out of range.

    >>> limits = Limits(timeout=5, fuel=10**9)
    >>> (limits.timeout, limits.fuel, format_bytes(limits.max_memory))
    (5, 1000000000, '16 GiB')
    """

    timeout: float | None = None
    fuel: int | None = None
    max_memory: int = DEFAULT_MAX_MEMORY
    max_table_elements: int = DEFAULT_MAX_TABLE_ELEMENTS
    max_instances: int = DEFAULT_MAX_INSTANCES
    max_tables: int = DEFAULT_MAX_TABLES
    max_memories: int = DEFAULT_MAX_MEMORIES
    max_host_memory: int = DEFAULT_MAX_HOST_MEMORY

    def __post_init__(self) -> None:
        if not 0 < self.max_memory <= MAX_MEMORY_LIMIT:
            raise ValueError(f"max_memory must be between 1 byte and {format_bytes(MAX_MEMORY_LIMIT)}")
        if self.timeout is not None and not 0 < self.timeout < math.inf:
            raise ValueError("timeout must be a positive number of seconds")
        if self.fuel is not None and not 0 < self.fuel < 1 << 63:
            raise ValueError("fuel must be between 1 and 2**63 - 1")
        for name in ("max_table_elements", "max_instances", "max_tables", "max_memories", "max_host_memory"):
            value = getattr(self, name)
            if not 0 <= value < 1 << 62:
                raise ValueError(f"{name} must be 0 or more")

    @property
    def table_elements(self) -> int:
        """The per-table element cap the store applies: --max-memory bounds tables too."""
        return min(self.max_table_elements, self.max_memory // TABLE_ELEMENT_BYTES)
