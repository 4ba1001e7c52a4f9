"""Scratch buffers reused across calls, so steady-state decoding allocates nothing new.

Three tiers, by size: small (up to 64 KiB), medium (up to 4 MiB) and large. A request is rounded up
within its tier (powers of two; whole MiB for large) so that the same shapes come back to the same
buffers. The counters say how well that works: hits, misses and bytes reused per tier.
"""

from __future__ import annotations

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


@dataclass
class BufferPool:
    """float32 scratch buffers: `take(n)` a buffer of at least n floats, `give` it back when done."""

    stats: dict[str, TierStats] = field(default_factory=lambda: {name: TierStats() for name, _ in TIERS})
    _free: dict[int, list[NDArray[np.float32]]] = field(default_factory=dict)

    @staticmethod
    def _tier(nbytes: int) -> tuple[str, int]:
        for name, limit in TIERS:
            if limit is None:
                return name, -(-nbytes // (1 << 20)) * (1 << 20)
            if nbytes <= limit:
                return name, max(64, 1 << (nbytes - 1).bit_length())
        raise AssertionError("unreachable")

    def take(self, n_floats: int) -> NDArray[np.float32]:
        """A buffer of exactly n_floats (a view of a pooled allocation), contents undefined."""
        name, size = self._tier(n_floats * 4)
        free = self._free.get(size)
        stats = self.stats[name]
        if free:
            buffer = free.pop()
            stats.hits += 1
            stats.bytes_reused += size
        else:
            buffer = np.empty(size // 4, np.float32)  # (size/4,)
            stats.misses += 1
            stats.bytes_allocated += size
        return buffer[:n_floats]

    def give(self, view: NDArray[np.float32]) -> None:
        """Returns a buffer from `take` to the pool."""
        whole = view.base if isinstance(view.base, np.ndarray) else view
        self._free.setdefault(whole.nbytes, []).append(whole)

    def summary(self) -> str:
        parts = []
        for name, s in self.stats.items():
            parts.append(f"{name} {s.hits} hits/{s.misses} misses, {s.bytes_reused / 2**20:.1f} MiB reused")
        return "; ".join(parts)
