"""Scratch buffers reused across calls, so steady-state decoding allocates nothing new.

Three tiers, by size: small (up to 64 KiB), medium (up to 4 MiB) and large. A request is rounded up
within its tier (powers of two; whole MiB for large) so that the same shapes come back to the same
buffers. The counters say how well that works: hits, misses and bytes reused per tier.

A pool given `max_bytes` keeps what it holds (buffers lent out and kept for reuse) within that bound by
dropping the least recently returned buffers first; `clear` drops them all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

TIERS = (("small", 64 << 10), ("medium", 4 << 20), ("large", None))


@dataclass
class TierStats:
    hits: int = 0
    misses: int = 0
    bytes_reused: int = 0
    bytes_allocated: int = 0
    bytes_dropped: int = 0  # kept buffers let go to stay within max_bytes, or by clear()


@dataclass
class BufferPool:
    """float32 scratch buffers: `take(n)` a buffer of at least n floats, `give` it back when done.

    With `max_bytes`, the buffers lent out and kept together stay within it, as long as what is lent
    out at once does (a context lends one buffer at a time).
    """

    max_bytes: int | None = None
    stats: dict[str, TierStats] = field(default_factory=lambda: {name: TierStats() for name, _ in TIERS})
    _free: list[NDArray[np.float32]] = field(default_factory=list)  # least recently returned first
    _held: int = 0  # bytes of every allocation not yet dropped: lent out or kept

    @staticmethod
    def _tier(nbytes: int) -> tuple[str, int]:
        for name, limit in TIERS:
            if limit is None:
                return name, -(-nbytes // (1 << 20)) * (1 << 20)
            if nbytes <= limit:
                return name, max(64, 1 << (nbytes - 1).bit_length())
        raise AssertionError("unreachable")

    @classmethod
    def allocation_bytes(cls, n_floats: int) -> int:
        """The bytes `take(n_floats)` allocates when it has nothing to reuse (its size rounded up)."""
        return cls._tier(n_floats * 4)[1]

    @property
    def held_bytes(self) -> int:
        """Bytes this pool holds: buffers lent out and buffers kept for reuse."""
        return self._held

    def take(self, n_floats: int) -> NDArray[np.float32]:
        """A buffer of exactly n_floats (a view of a pooled allocation), contents undefined."""
        name, size = self._tier(n_floats * 4)
        stats = self.stats[name]
        for i in range(len(self._free) - 1, -1, -1):
            if self._free[i].nbytes == size:
                buffer = self._free.pop(i)
                stats.hits += 1
                stats.bytes_reused += size
                return buffer[:n_floats]
        self._drop_until(size)
        buffer = np.empty(size // 4, np.float32)  # (size/4,)
        self._held += size
        stats.misses += 1
        stats.bytes_allocated += size
        return buffer[:n_floats]

    def give(self, view: NDArray[np.float32]) -> None:
        """Returns a buffer from `take` to the pool."""
        whole = view.base if isinstance(view.base, np.ndarray) else view
        self._free.append(whole)
        self._drop_until(0)

    def clear(self) -> None:
        """Drops every kept buffer (buffers lent out stay the borrower's until given back)."""
        while self._free:
            self._drop(self._free.pop())

    def _drop_until(self, extra: int) -> None:
        """Drops kept buffers, least recently returned first, until `extra` more bytes fit max_bytes."""
        while self._free and self.max_bytes is not None and self._held + extra > self.max_bytes:
            self._drop(self._free.pop(0))

    def _drop(self, buffer: NDArray[np.float32]) -> None:
        self._held -= buffer.nbytes
        self.stats[self._tier(buffer.nbytes)[0]].bytes_dropped += buffer.nbytes


def format_tiers(stats: Mapping[str, TierStats]) -> str:
    """Pool counters per tier, for `--stats`."""
    return "; ".join(
        f"{name} {s.hits} hits/{s.misses} misses, {s.bytes_reused / 2**20:.1f} MiB reused"
        for name, s in stats.items()
    )
