"""The native kernels (kernels.c through cffi) and the choice between them and the numpy reference.

The extension is compiled when bridge is installed. `kernels()` says which path matmul uses:
"native" when the extension loaded, else "numpy"; `use("numpy")` or `use("native")` forces one
(`--kernels` on the command line).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

try:
    from .. import _native  # type: ignore[attr-defined]
except ImportError as exc:  # not built: numpy only
    _native = None
    _IMPORT_ERROR: str | None = str(exc)
else:
    _IMPORT_ERROR = None

Kernels = Literal["numpy", "native"]
_choice: Kernels = "native" if _native is not None else "numpy"
MAX_THREADS = 256


def default_threads() -> int:
    """The cores this process may run on (its CPU affinity), which is what the kernels use by default."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def parse_threads(text: str, source: str) -> int:
    """A thread count from 1 to MAX_THREADS. Raises ValueError naming `source` for anything else."""
    value = text.strip()
    if not value.isdigit() or not 0 < int(value) <= MAX_THREADS:
        raise ValueError(f"{source}={text[:40]!r} is not a thread count from 1 to {MAX_THREADS}")
    return int(value)


def _threads_from_env(text: str | None) -> int:
    """BRIDGE_THREADS when set to 1..256; empty or unset means every core this process may use.

    An unusable value is reported once on stderr and ignored, rather than failing every import.
    """
    if text is None or not text.strip():
        return default_threads()
    try:
        return parse_threads(text, "BRIDGE_THREADS")
    except ValueError as exc:
        import sys

        print(f"bridge: {exc}; using {default_threads()} (every core this process may use)", file=sys.stderr)
        return default_threads()


# The kernels' thread count: --threads, else BRIDGE_THREADS, else the process's cores.
THREADS = _threads_from_env(os.environ.get("BRIDGE_THREADS"))


def set_threads(n: int) -> None:
    """Sets the kernels' thread count (`--threads`). Raises ValueError outside 1..MAX_THREADS."""
    global THREADS
    if not 0 < n <= MAX_THREADS:
        raise ValueError(f"threads must be from 1 to {MAX_THREADS}, not {n}")
    THREADS = n


CPU_LEVELS = {0: "portable", 1: "avx2", 2: "avx512"}


def available() -> bool:
    return _native is not None


def kernels() -> Kernels:
    return _choice


def use(name: str) -> None:
    """Forces the numpy or the native path. Raises ValueError when native was not built."""
    global _choice
    if name not in ("numpy", "native"):
        raise ValueError(f"kernels must be numpy or native, not {name!r}")
    if name == "native" and _native is None:
        raise ValueError(
            f"the native kernels are not built ({_IMPORT_ERROR}); reinstall bridge with a C compiler"
        )
    _choice = name  # type: ignore[assignment]


def cpu_path() -> str:
    """The SIMD path the native kernels run on: avx512, avx2 or portable."""
    return CPU_LEVELS[_native.lib.bridge_cpu_level()] if _native is not None else "none"


def cap_cpu_path(path: str) -> None:
    """Keeps the hand-written SIMD paths at or below `path` (avx512, avx2, portable): `bench --cpu` and the
    tests measure and check each path this way. Raises ValueError for another name, and when this CPU
    cannot run `path`."""
    levels = {name: level for level, name in CPU_LEVELS.items()}
    if path not in levels:
        raise ValueError(f"the CPU path must be one of {', '.join(levels)}, not {path!r}")
    if _native is None:
        raise ValueError("the native kernels are not built")
    have = int(_native.lib.bridge_cpu_level())
    if levels[path] > have:
        raise ValueError(f"this CPU cannot run the {path} path (it has {CPU_LEVELS[have]})")
    _native.lib.bridge_cap_cpu_level(levels[path])


def active_cpu_path() -> str:
    """The SIMD path the kernels use now: cpu_path(), or lower when capped."""
    return CPU_LEVELS[int(_native.lib.bridge_active_cpu_level())] if _native is not None else "none"


def scratch_grows() -> int:
    """How many times a thread's kernel scratch has grown (0 without the native kernels). Steady decoding
    reuses it, so this stays put."""
    return int(_native.lib.bridge_scratch_grows()) if _native is not None else 0


def supports(qtype: int) -> bool:
    return _native is not None and bool(_native.lib.bridge_supports(int(qtype)))


def runs(qtype: int) -> bool:
    """Whether products with weights of this type run natively now: the one place that chooses between
    the native kernels and the numpy reference (the path chosen, and a kernel for the type)."""
    return _choice == "native" and supports(qtype)


def matmul(
    x: NDArray[np.float32], raw: NDArray[np.uint8], qtype: int, rows: int, cols: int
) -> NDArray[np.float32]:
    """x (n, cols) @ W.T -> (n, rows), W being `rows` quantized rows in `raw` (rows, row_bytes)."""
    assert _native is not None
    ffi, lib = _native.ffi, _native.lib
    x = np.ascontiguousarray(x, dtype=np.float32)  # (n, cols)
    raw = np.ascontiguousarray(raw)  # (rows, row_bytes), the file's bytes
    n = x.shape[0]
    out = np.empty((n, rows), np.float32)  # (n, rows)
    status = lib.bridge_matmul(
        ffi.from_buffer("uint8_t[]", raw),
        int(qtype),
        rows,
        cols,
        ffi.from_buffer("float[]", x),
        n,
        ffi.from_buffer("float[]", out),
        THREADS,
    )
    if status != 0:
        raise RuntimeError(f"native matmul failed with status {status}")
    return out


def read_bandwidth(mib: int = 512, passes: int = 3) -> float:
    """Bytes per second the kernels' threads read from memory: the best of `passes` reads of a `mib` MiB
    buffer (much larger than any cache), in 64-byte lines on THREADS threads. 0 without the native
    kernels."""
    if _native is None:
        return 0.0
    import time

    buffer = np.ones(mib << 20, np.uint8)  # (bytes,), touched once so every page is there
    data = _native.ffi.from_buffer("uint8_t[]", buffer)
    best = float("inf")
    for _ in range(passes):
        started = time.perf_counter()
        _native.lib.bridge_read_memory(data, buffer.size, THREADS)
        best = min(best, time.perf_counter() - started)
    return buffer.size / best


def info() -> dict[str, Any]:
    return {"kernels": _choice, "native": available(), "cpu_path": active_cpu_path(), "threads": THREADS}


class Layer:
    """The cffi arguments of one transformer layer's fused native forward pass, made once per context.

    `tensors` are (raw rows, ggml type, rows, cols) for q, k, v, output, gate, up, down; the caches are
    this layer's (n_ctx, n_head_kv*head_dim) float16 slices and `rope_tables` its (n_ctx, rope_dim/2) cos
    and sin. What the model family adds (arch.Arch): `vectors`, float32 by name (VECTORS); `flags`
    rope_neox, window (the sliding window, 0 for none) and attn_scale; `gelu`, the table of
    model.gelu_table for a GeGLU FFN (None: SwiGLU).
    """

    VECTORS = ("q_bias", "k_bias", "v_bias", "q_norm", "k_norm", "post_attn_norm", "post_ffn_norm")

    def __init__(
        self,
        tensors: list[tuple[NDArray[np.uint8], int, int, int]],
        norms: tuple[NDArray[np.float32], NDArray[np.float32]],
        caches: tuple[NDArray[np.float16], NDArray[np.float16]],
        rope_tables: tuple[NDArray[np.float32], NDArray[np.float32]],
        dims: tuple[int, int, int, int, int, int],
        eps: float,
        vectors: dict[str, NDArray[np.float32]] | None = None,
        flags: dict[str, float] | None = None,
        gelu: NDArray[np.float32] | None = None,
    ) -> None:
        assert _native is not None
        ffi = _native.ffi
        self._keep: list[Any] = [tensors, norms, caches, rope_tables]  # the arrays behind the pointers
        self.arch = ffi.new("bridge_arch *")
        for name, value in (flags or {}).items():
            setattr(self.arch, name, value)
        for name, values in (vectors or {}).items():
            vector = ffi.from_buffer("float[]", np.ascontiguousarray(values, np.float32))
            self._keep.append(vector)
            setattr(self.arch, name, vector)
        if gelu is not None:
            table = ffi.from_buffer("float[]", np.ascontiguousarray(gelu, np.float32))
            self._keep.append(table)
            self.arch.gelu = table
        self.weights = ffi.new("bridge_weight[7]")
        for i, (raw, qtype, rows, cols) in enumerate(tensors):
            data = ffi.from_buffer("uint8_t[]", np.ascontiguousarray(raw))
            self._keep.append(data)
            self.weights[i].data = data
            self.weights[i].type = int(qtype)
            self.weights[i].rows = rows
            self.weights[i].cols = cols
        self.attn_norm, self.ffn_norm = (ffi.from_buffer("float[]", a) for a in norms)
        self.k_cache, self.v_cache = (ffi.from_buffer("uint16_t[]", c.view(np.uint16)) for c in caches)
        self.cos, self.sin = (ffi.from_buffer("float[]", t) for t in rope_tables)
        self.dims = dims  # n_embd, n_head, n_head_kv, head_dim, rope_dim, n_ff
        self.eps = eps

    @staticmethod
    def usable(types: list[int], head_dim: int) -> bool:
        return all(runs(t) for t in types) and head_dim <= 512

    def scratch_floats(self, n: int, end: int) -> int:
        assert _native is not None
        d, n_head, n_kv, head_dim, _, n_ff = self.dims
        return int(_native.lib.bridge_layer_scratch(n, end, d, n_head, n_kv, head_dim, n_ff))


def forward_batch(
    items: Sequence[tuple[Layer, NDArray[np.float32], int]], scratch: NDArray[np.float32]
) -> None:
    """One layer for several sequences at once: each item is (its context's Layer, x (n_i, n_embd), position).

    The Layers are the same model layer (their weights are the first one's); each keeps its own KV cache
    and RoPE tables. Each x is updated in place, with the same bits as running it alone.
    """
    assert _native is not None
    ffi, lib = _native.ffi, _native.lib
    first = items[0][0]
    d, n_head, n_kv, head_dim, rope_dim, n_ff = first.dims
    seqs = ffi.new("bridge_seq[]", len(items))
    for i, (layer, x, position) in enumerate(items):
        seqs[i].n = x.shape[0]
        seqs[i].position = position
        seqs[i].k_cache, seqs[i].v_cache = layer.k_cache, layer.v_cache
        seqs[i].cos_t, seqs[i].sin_t = layer.cos, layer.sin
    joined = items[0][1] if len(items) == 1 else np.concatenate([x for _, x, _ in items])  # (sum n_i, d)
    status = lib.bridge_layer_forward_batch(
        ffi.from_buffer("float[]", joined, require_writable=True),
        len(items),
        seqs,
        first.attn_norm,
        first.ffn_norm,
        first.weights,
        first.arch,
        d,
        n_head,
        n_kv,
        head_dim,
        rope_dim,
        n_ff,
        first.eps,
        ffi.from_buffer("float[]", scratch, require_writable=True),
        THREADS,
    )
    if status != 0:
        raise RuntimeError(f"native layer forward failed with status {status}")
    if len(items) > 1:
        start = 0
        for _, x, _ in items:
            x[:] = joined[start : start + x.shape[0]]
            start += x.shape[0]
