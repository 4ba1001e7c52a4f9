"""A llama-family model read from GGUF, run with numpy: the readable reference implementation.

Config (hyper-parameters), Weights (quantized, memory-mapped from the file, never copied or expanded
whole) and KVContext (per-context KV cache) follow llama2.c's split. `forward_layer` reads top to bottom,
one step per line.

Weights stay as the file's quantized rows; `matmul` dequantizes a bounded block of rows at a time, so
the float32 working set is a few MB whatever the model size.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
import numpy as np
from numpy.typing import NDArray

from ..errors import BridgeError
from . import native
from .pool import BufferPool
from .quants import UnsupportedQuantError, dequantize, quant_type
from .tokenizer import Tokenizer, TokenizerError

F32 = NDArray[np.float32]
# Rows of a weight matrix dequantized at once: bounds matmul's float32 temporary to ~8 MB.
_MATMUL_BLOCK_ELEMENTS = 2 << 20
SUPPORTED_ARCHITECTURES = ("llama",)


class _Reader(gguf.GGUFReader):
    """gguf's reader, slicing a plain ndarray view of its memory map instead of the np.memmap itself.

    Every np.memmap slice runs Python-level __array_finalize__; with a 49k-token vocabulary that was
    most of the load time (about 7 s, now under 1 s). The views still point into the mapped file.
    """

    _plain: NDArray[np.uint8] | None = None

    def _get(self, offset: int, dtype: Any, count: int = 1, override_order: Any = None) -> NDArray[Any]:
        if self._plain is None:
            self._plain = self.data.view(np.ndarray)
        count = int(count)
        dt = np.dtype(dtype)
        arr = self._plain[offset : offset + dt.itemsize * count].view(dt)[:count]
        order = self.byte_order if override_order is None else override_order
        swapped: NDArray[Any] = arr if order == "I" else arr.view(arr.dtype.newbyteorder(order))
        return swapped


class ModelError(BridgeError):
    """A model file that is not a usable GGUF, or a model this host cannot run."""


class RealmError(BridgeError):
    """An invalid request on an open model or context (bad layer, position, token id...).

    `code` is the realm ABI's negative error code for it.
    """

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


EINVAL, EBADF, ENOENT, ENOMEM = -1, -2, -3, -4


@dataclass(frozen=True)
class Config:
    arch: str
    n_vocab: int
    n_embd: int
    n_layer: int
    n_head: int
    n_head_kv: int
    n_ff: int
    n_ctx_train: int
    head_dim: int
    rope_dim: int
    rope_theta: float
    rms_eps: float
    bos_id: int
    eos_id: int


class Tensor:
    """A weight as stored in the file: `rows` rows of `cols` elements, quantized row by row.

    `raw` is a read-only view of the memory-mapped file: (rows, row_bytes) uint8.
    """

    def __init__(
        self, name: str, qtype: gguf.GGMLQuantizationType, shape: tuple[int, ...], raw: NDArray[np.uint8]
    ):
        self.name = name
        self.qtype = qtype
        self.shape = shape  # ggml order: shape[0] is the row length
        self.cols = int(shape[0])
        self.rows = int(np.prod(shape[1:], dtype=np.int64)) if len(shape) > 1 else 1
        self.raw = raw.reshape(self.rows, -1)

    @property
    def n_elements(self) -> int:
        return self.rows * self.cols

    def dequantize_rows(self, start: int = 0, stop: int | None = None) -> F32:
        """Rows [start, stop) as float32: (stop - start, cols)."""
        return dequantize(self.raw[start:stop], self.qtype)

    def take_rows(self, rows: NDArray[np.intp]) -> F32:
        """The given rows as float32: (len(rows), cols)."""
        return dequantize(self.raw[rows], self.qtype)

    def vector(self) -> F32:
        """A 1-D tensor (norm weights): (cols,)."""
        return self.dequantize_rows().reshape(-1)


def to_f16(x: F32) -> F32:
    """x rounded to float16 and back, as ggml stores f16 tensors."""
    rounded: F32 = x.astype(np.float16).astype(np.float32)
    return rounded


def matmul(x: F32, w: Tensor) -> F32:
    """x (n, cols) @ w.T -> (n, rows), on the native kernels when chosen and they know w's type.

    The numpy reference dequantizes a bounded block of w's rows at a time.
    """
    started = time.perf_counter()
    try:
        if native.kernels() == "native" and native.supports(w.qtype):
            return native.matmul(x, w.raw, w.qtype, w.rows, w.cols)
        return _matmul_numpy(x, w)
    finally:
        KERNEL_TIME.seconds += time.perf_counter() - started


def _matmul_numpy(x: F32, w: Tensor) -> F32:
    step = max(1, _MATMUL_BLOCK_ELEMENTS // w.cols)
    if step >= w.rows:
        whole: F32 = x @ w.dequantize_rows().T  # (n, rows)
        return whole
    out = np.empty((w.rows, x.shape[0]), np.float32)  # (rows, n): each block fills contiguous rows
    for start in range(0, w.rows, step):
        block = w.dequantize_rows(start, start + step)  # (step, cols)
        # Writing into contiguous rows keeps numpy on its BLAS path (a strided `out` is not).
        np.matmul(block, x.T, out=out[start : start + block.shape[0]])
    result: F32 = out.T.copy()  # (n, rows)
    return result


class _KernelTime:
    """Seconds spent in matmul (both paths), for `bridge bench`'s time shares."""

    seconds = 0.0


KERNEL_TIME = _KernelTime()


def rmsnorm(x: F32, weight: F32, eps: float) -> F32:
    """x (n, d) normalised by its root mean square, times weight (d,) -> (n, d)."""
    ms = np.mean(x * x, axis=-1, keepdims=True)  # (n, 1)
    normed: F32 = (x / np.sqrt(ms + eps)).astype(np.float32) * weight  # (n, d)
    return normed


def silu(x: F32) -> F32:
    return (x / (1.0 + np.exp(-x))).astype(np.float32)


@dataclass
class LayerWeights:
    attn_norm: F32  # (n_embd,)
    wq: Tensor  # (n_head*head_dim, n_embd)
    wk: Tensor  # (n_head_kv*head_dim, n_embd)
    wv: Tensor  # (n_head_kv*head_dim, n_embd)
    wo: Tensor  # (n_embd, n_head*head_dim)
    ffn_norm: F32  # (n_embd,)
    w_gate: Tensor  # (n_ff, n_embd)
    w_up: Tensor  # (n_ff, n_embd)
    w_down: Tensor  # (n_embd, n_ff)


def _field_value(field: Any) -> Any:
    return field.contents()


def _meta_text(value: Any) -> str:
    """A metadata value as the realm ABI shows it: numbers in decimal, arrays as JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return json.dumps(list(value), ensure_ascii=False)
    if isinstance(value, float):
        return repr(value)
    return str(value)


class Model:
    """A loaded GGUF model: config, tokenizer, quantized weights. Shared by every guest instance.

    Raises ModelError from `open` when the file is not a usable GGUF or misses tensors.
    """

    def __init__(self, path: Path, reader: gguf.GGUFReader) -> None:
        self.path = path
        self.file_size = path.stat().st_size
        origin = str(path)
        self.meta: dict[str, Any] = {}
        for key, field in reader.fields.items():
            if key.startswith("GGUF."):
                continue
            try:
                self.meta[key] = _field_value(field)
            except Exception as exc:  # gguf raises assorted errors on corrupt fields
                raise ModelError(f"{origin}: metadata `{key}` is unreadable: {exc}") from None
        self.tensors = self._read_tensors(reader, origin)
        self.config = self._read_config(origin)
        try:
            self.tokenizer = Tokenizer.from_metadata(self.meta)
        except TokenizerError as exc:
            raise ModelError(f"{origin}: {exc}") from None
        self.layers = [self._layer(i, origin) for i in range(self.config.n_layer)]
        self.token_embd = self._tensor("token_embd.weight", origin, (self.config.n_embd, self.config.n_vocab))
        self.output_norm = self._tensor("output_norm.weight", origin, (self.config.n_embd,)).vector()
        # Tied output projection when the file has no separate output.weight.
        if "output.weight" in self.tensors:
            self.output = self._tensor("output.weight", origin, (self.config.n_embd, self.config.n_vocab))
        else:
            self.output = self.token_embd

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Model:
        p = Path(path)
        if not p.is_file():
            raise ModelError(f"{p}: no such model file")
        try:
            reader = _Reader(p)
        except (ValueError, IndexError, KeyError, OSError, TypeError) as exc:
            raise ModelError(f"{p}: not a usable GGUF file: {exc or type(exc).__name__}") from None
        return cls(p, reader)

    # --- loading ---------------------------------------------------------------------------------

    def _read_tensors(self, reader: gguf.GGUFReader, origin: str) -> dict[str, Tensor]:
        tensors: dict[str, Tensor] = {}
        for t in reader.tensors:
            if t.name in tensors:
                raise ModelError(f"{origin}: tensor `{t.name}` appears twice")
            shape = tuple(int(s) for s in t.shape)
            try:
                qt = quant_type(t.tensor_type)
            except UnsupportedQuantError as exc:
                # Only fail if the tensor is used; keep the message for then.
                tensors[t.name] = _Unsupported(t.name, str(exc))  # type: ignore[assignment]
                continue
            n = int(np.prod(shape, dtype=np.int64))
            expected = n // qt.block_size * qt.type_size
            raw = np.asarray(t.data).view(np.uint8).reshape(-1)
            if raw.size != expected:
                raise ModelError(
                    f"{origin}: tensor `{t.name}` has {raw.size} bytes of data, expected {expected} "
                    "(the file is truncated or corrupt)"
                )
            tensors[t.name] = Tensor(t.name, t.tensor_type, shape, raw)
        return tensors

    def _get(self, key: str, origin: str, kind: type = int) -> Any:
        if key not in self.meta:
            raise ModelError(f"{origin}: metadata `{key}` is missing")
        return kind(self.meta[key])

    def _read_config(self, origin: str) -> Config:
        arch = self.meta.get("general.architecture")
        if arch not in SUPPORTED_ARCHITECTURES:
            raise ModelError(
                f"{origin}: architecture {arch!r} is not supported "
                f"(supported: {', '.join(SUPPORTED_ARCHITECTURES)})"
            )
        a = str(arch)
        n_embd = self._get(f"{a}.embedding_length", origin)
        n_head = self._get(f"{a}.attention.head_count", origin)
        n_head_kv = int(self.meta.get(f"{a}.attention.head_count_kv", n_head))
        head_dim = int(self.meta.get(f"{a}.attention.key_length", n_embd // n_head))
        tokens = self.meta.get("tokenizer.ggml.tokens")
        n_vocab = int(self.meta.get(f"{a}.vocab_size", len(tokens) if tokens else 0))
        if n_head <= 0 or n_head_kv <= 0 or n_head % n_head_kv:
            raise ModelError(f"{origin}: head counts {n_head}/{n_head_kv} are not a valid grouping")
        return Config(
            arch=a,
            n_vocab=n_vocab,
            n_embd=n_embd,
            n_layer=self._get(f"{a}.block_count", origin),
            n_head=n_head,
            n_head_kv=n_head_kv,
            n_ff=self._get(f"{a}.feed_forward_length", origin),
            n_ctx_train=self._get(f"{a}.context_length", origin),
            head_dim=head_dim,
            rope_dim=int(self.meta.get(f"{a}.rope.dimension_count", head_dim)),
            rope_theta=float(self.meta.get(f"{a}.rope.freq_base", 10000.0)),
            rms_eps=float(self.meta.get(f"{a}.attention.layer_norm_rms_epsilon", 1e-5)),
            bos_id=int(self.meta.get("tokenizer.ggml.bos_token_id", 1)),
            eos_id=int(self.meta.get("tokenizer.ggml.eos_token_id", 2)),
        )

    def _tensor(self, name: str, origin: str, shape: tuple[int, ...]) -> Tensor:
        t = self.tensors.get(name)
        if t is None:
            raise ModelError(
                f"{origin}: tensor `{name}` is missing (not a complete {self.config.arch} model)"
            )
        if isinstance(t, _Unsupported):
            raise ModelError(f"{origin}: tensor `{name}`: {t.message}")
        if t.shape != shape:
            raise ModelError(f"{origin}: tensor `{name}` has shape {list(t.shape)}, expected {list(shape)}")
        return t

    def _layer(self, i: int, origin: str) -> LayerWeights:
        c = self.config
        q_dim, kv_dim = c.n_head * c.head_dim, c.n_head_kv * c.head_dim

        def t(name: str, *shape: int) -> Tensor:
            return self._tensor(f"blk.{i}.{name}.weight", origin, shape)

        return LayerWeights(
            attn_norm=t("attn_norm", c.n_embd).vector(),
            wq=t("attn_q", c.n_embd, q_dim),
            wk=t("attn_k", c.n_embd, kv_dim),
            wv=t("attn_v", c.n_embd, kv_dim),
            wo=t("attn_output", q_dim, c.n_embd),
            ffn_norm=t("ffn_norm", c.n_embd).vector(),
            w_gate=t("ffn_gate", c.n_embd, c.n_ff),
            w_up=t("ffn_up", c.n_embd, c.n_ff),
            w_down=t("ffn_down", c.n_ff, c.n_embd),
        )

    # --- the API the realm host functions adapt ---------------------------------------------------

    @property
    def name(self) -> str:
        return str(self.meta.get("general.name", self.path.stem))

    def meta_text(self, key: str) -> str | None:
        """A metadata value as text, or None when the key is absent."""
        return _meta_text(self.meta[key]) if key in self.meta else None

    def tokenize(self, text: str) -> list[int]:
        """Token ids, with the model's special tokens parsed in the text, as llama.cpp does."""
        return self.tokenizer.encode(text)

    def detokenize(self, ids: Sequence[int]) -> bytes:
        """The bytes the tokens stand for. Raises RealmError(EINVAL) for an id outside the vocabulary."""
        self.check_ids(ids)
        return self.tokenizer.decode(list(ids))

    def check_ids(self, ids: Sequence[int] | NDArray[np.integer[Any]]) -> None:
        bad = [int(i) for i in ids if not 0 <= int(i) < self.config.n_vocab]
        if bad:
            raise RealmError(
                f"token id {bad[0]} is outside the vocabulary (0..{self.config.n_vocab - 1})", EINVAL
            )

    def embed_tokens(self, ids: Sequence[int] | NDArray[np.integer[Any]]) -> F32:
        """Token embeddings: (len(ids), n_embd)."""
        self.check_ids(ids)
        return self.token_embd.take_rows(np.asarray(ids, dtype=np.intp))

    def compute_logits(self, hidden: F32) -> F32:
        """Final norm and output projection of one hidden vector (n_embd,) -> (n_vocab,)."""
        x = rmsnorm(hidden.reshape(1, -1).astype(np.float32), self.output_norm, self.config.rms_eps)  # (1, d)
        logits: F32 = matmul(x, self.output)[0]  # (n_vocab,)
        return logits

    def new_context(self, n_ctx: int) -> KVContext:
        """A KV cache for `n_ctx` positions. Raises RealmError(EINVAL) when n_ctx is 0 or too large."""
        if not 0 < n_ctx <= self.config.n_ctx_train:
            raise RealmError(f"n_ctx {n_ctx} is not in 1..{self.config.n_ctx_train}", EINVAL)
        return KVContext(self, n_ctx)

    def get_tensor(self, name: str) -> F32:
        """A tensor dequantized whole, flattened. Raises RealmError(ENOENT) for an unknown name."""
        t = self.tensors.get(name)
        if t is None or isinstance(t, _Unsupported):
            raise RealmError(f"no tensor named `{name}`", ENOENT)
        return t.dequantize_rows().reshape(-1)

    def tensor_size(self, name: str) -> int:
        t = self.tensors.get(name)
        if t is None or isinstance(t, _Unsupported):
            raise RealmError(f"no tensor named `{name}`", ENOENT)
        return t.n_elements

    def __repr__(self) -> str:
        c = self.config
        return f"<Model {self.name!r} {c.arch} {c.n_layer} layers, d={c.n_embd}, vocab={c.n_vocab}>"


class _Unsupported:
    def __init__(self, name: str, message: str) -> None:
        self.name = name
        self.message = message


class KVContext:
    """A model's per-sequence state: the KV cache of every layer, up to n_ctx positions."""

    def __init__(self, model: Model, n_ctx: int) -> None:
        c = model.config
        self.model = model
        self.n_ctx = n_ctx
        kv_dim = c.n_head_kv * c.head_dim
        # np.zeros maps untouched pages lazily, so a long context costs memory only as it fills.
        # float16, as llama.cpp's default KV cache (and half the memory of float32).
        self.k = np.zeros((c.n_layer, n_ctx, kv_dim), np.float16)  # (n_layer, n_ctx, n_head_kv*head_dim)
        self.v = np.zeros((c.n_layer, n_ctx, kv_dim), np.float16)  # (n_layer, n_ctx, n_head_kv*head_dim)
        self.filled = [0] * c.n_layer  # positions of each layer's cache holding real keys
        self.pool = BufferPool()  # scratch for the native layers
        self._native: dict[int, native.Layer | None] = {}
        # RoPE tables, computed once: angle[p, i] = p * theta^(-2i/rope_dim).
        inv_freq = c.rope_theta ** (
            -np.arange(0, c.rope_dim, 2, dtype=np.float64) / c.rope_dim
        )  # (rope_dim/2,)
        angles = np.outer(np.arange(n_ctx, dtype=np.float64), inv_freq)  # (n_ctx, rope_dim/2)
        self.cos = np.cos(angles).astype(np.float32)  # (n_ctx, rope_dim/2)
        self.sin = np.sin(angles).astype(np.float32)  # (n_ctx, rope_dim/2)

    def rope(self, x: F32, n_heads: int, position: int) -> F32:
        """Rotates adjacent pairs (x[2i], x[2i+1]) of each head's first rope_dim dims (llama's layout).

        x: (n, n_heads*head_dim) -> same shape.
        """
        c = self.model.config
        n = x.shape[0]
        heads = x.reshape(n, n_heads, c.head_dim)  # (n, h, head_dim)
        rot = heads[:, :, : c.rope_dim].reshape(n, n_heads, c.rope_dim // 2, 2)  # (n, h, rope_dim/2, 2)
        cos = self.cos[position : position + n, None, :]  # (n, 1, rope_dim/2)
        sin = self.sin[position : position + n, None, :]  # (n, 1, rope_dim/2)
        x0, x1 = rot[..., 0], rot[..., 1]  # (n, h, rope_dim/2) each
        out = heads.copy()  # (n, h, head_dim)
        out_rot = out[:, :, : c.rope_dim].reshape(n, n_heads, c.rope_dim // 2, 2)
        out_rot[..., 0] = x0 * cos - x1 * sin
        out_rot[..., 1] = x0 * sin + x1 * cos
        out[:, :, : c.rope_dim] = out_rot.reshape(n, n_heads, c.rope_dim)
        rotated: F32 = out.reshape(n, n_heads * c.head_dim)
        return rotated

    def forward_layer(self, layer: int, hidden: F32, position: int) -> F32:
        """Runs transformer layer `layer` on hidden (n, n_embd) at positions position..position+n-1.

        Appends the tokens' keys and values to this context's cache and returns the new hidden
        states (n, n_embd). Raises RealmError(EINVAL) for a bad layer or position.
        """
        out: F32 = np.array(hidden, dtype=np.float32)  # (n, d), a copy
        self.forward_layer_inplace(layer, out, position)
        return out

    def _native_layer(self, layer: int) -> native.Layer | None:
        if native.kernels() != "native":
            return None
        if layer not in self._native:
            c, w = self.model.config, self.model.layers[layer]
            tensors = [w.wq, w.wk, w.wv, w.wo, w.w_gate, w.w_up, w.w_down]
            self._native[layer] = (
                native.Layer(
                    [(t.raw, t.qtype, t.rows, t.cols) for t in tensors],
                    (w.attn_norm, w.ffn_norm),
                    (self.k[layer], self.v[layer]),
                    (self.cos, self.sin),
                    (c.n_embd, c.n_head, c.n_head_kv, c.head_dim, c.rope_dim, c.n_ff),
                    c.rms_eps,
                )
                if native.Layer.usable([t.qtype for t in tensors], c.head_dim)
                else None
            )
        return self._native[layer]

    def forward_layer_inplace(self, layer: int, hidden: F32, position: int) -> None:
        """`forward_layer`, writing the new hidden states over `hidden` (n, n_embd).

        On the native kernels the whole layer is one C call working in pooled scratch memory.
        """
        self._check(layer, hidden.shape[0], position)
        fused = self._native_layer(layer)
        flags = hidden.flags
        if fused is not None and hidden.dtype == np.float32 and flags.c_contiguous and flags.writeable:
            n = hidden.shape[0]
            # Sized for the end position rounded up to 256, so decoding reuses one buffer for 256 steps.
            scratch = self.pool.take(
                fused.scratch_floats(n, min(self.n_ctx, -(-(position + n) // 256) * 256))
            )
            started = time.perf_counter()
            try:
                fused.forward(hidden, position, scratch)
            finally:
                KERNEL_TIME.seconds += time.perf_counter() - started
                self.pool.give(scratch)
            self.filled[layer] = position + n
            return
        hidden[:] = self._forward_layer_numpy(layer, hidden, position)

    def _check(self, layer: int, n: int, position: int) -> None:
        """Raises RealmError(EINVAL) for a bad layer, token count or position."""
        c = self.model.config
        if not 0 <= layer < c.n_layer:
            raise RealmError(f"layer {layer} is not in 0..{c.n_layer - 1}", EINVAL)
        if n == 0:
            raise RealmError("n_tokens is 0", EINVAL)
        if position + n > self.n_ctx:
            raise RealmError(
                f"positions {position}..{position + n - 1} exceed the context of {self.n_ctx}", EINVAL
            )
        if position > self.filled[layer]:
            raise RealmError(
                f"position {position} leaves a gap: layer {layer} holds {self.filled[layer]} positions",
                EINVAL,
            )

    def _forward_layer_numpy(self, layer: int, hidden: F32, position: int) -> F32:
        """The reference: hidden (n, n_embd) -> new hidden states (n, n_embd)."""
        c = self.model.config
        n = hidden.shape[0]
        w = self.model.layers[layer]
        hd, n_h, n_kv = c.head_dim, c.n_head, c.n_head_kv
        end = position + n
        x = hidden.astype(np.float32, copy=False)  # (n, d)

        # attention rmsnorm
        h = rmsnorm(x, w.attn_norm, c.rms_eps)  # (n, d)
        # q, k, v projections, then rotary position embedding on q and k
        q = self.rope(matmul(h, w.wq), n_h, position)  # (n, n_head*hd)
        k = self.rope(matmul(h, w.wk), n_kv, position)  # (n, n_kv*hd)
        v = matmul(h, w.wv)  # (n, n_kv*hd)
        # append to the KV cache
        self.k[layer, position:end] = k
        self.v[layer, position:end] = v
        self.filled[layer] = end
        keys = self.k[layer, :end].reshape(end, n_kv, hd).astype(np.float32)  # (end, n_kv, hd)
        values = self.v[layer, :end].reshape(end, n_kv, hd).astype(np.float32)  # (end, n_kv, hd)
        # grouped-query attention: query head j reads kv head j // (n_head / n_kv); like ggml's f16
        # dot products, q meets the f16 keys as f16
        group = n_h // n_kv
        qh = to_f16(q).reshape(n, n_kv, group, hd).transpose(1, 2, 0, 3)  # (n_kv, group, n, hd)
        scores = np.matmul(qh, keys.transpose(1, 2, 0)[:, None]) / np.float32(
            math.sqrt(hd)
        )  # (n_kv, group, n, end)
        # causal mask within the batch: token i (at position+i) sees positions <= position+i
        future = np.arange(end)[None, :] > (position + np.arange(n))[:, None]  # (n, end)
        scores = np.where(future, np.float32(-np.inf), scores)
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        scores /= scores.sum(axis=-1, keepdims=True)
        # the weights meet the f16 values as f16, again as ggml's f16 matmul does
        attn = np.matmul(to_f16(scores), values.transpose(1, 0, 2)[:, None])  # (n_kv, group, n, hd)
        attn = attn.transpose(2, 0, 1, 3).reshape(n, n_h * hd).astype(np.float32)  # (n, n_head*hd)
        # output projection and residual
        x = x + matmul(attn, w.wo)  # (n, d)
        # feed-forward rmsnorm, SwiGLU, residual
        h = rmsnorm(x, w.ffn_norm, c.rms_eps)  # (n, d)
        ff = silu(matmul(h, w.w_gate)) * matmul(h, w.w_up)  # (n, n_ff)
        return (x + matmul(ff, w.w_down)).astype(np.float32)  # (n, d)

    def forward(self, hidden: F32, position: int) -> F32:
        """All layers in order: hidden (n, n_embd) -> (n, n_embd)."""
        for layer in range(self.model.config.n_layer):
            hidden = self.forward_layer(layer, hidden, position)
        return hidden


def generate_greedy(
    model: Model, prompt_ids: Sequence[int], max_new: int, *, stop_at_eog: bool = True
) -> list[int]:
    """Greedy decoding with the pure-host API (no guest): the new token ids."""
    ctx = model.new_context(min(model.config.n_ctx_train, len(prompt_ids) + max_new + 1))
    hidden = ctx.forward(model.embed_tokens(prompt_ids), 0)
    logits = model.compute_logits(hidden[-1])
    out: list[int] = []
    pos = len(prompt_ids)
    for _ in range(max_new):
        token = int(np.argmax(logits))
        out.append(token)
        if stop_at_eog and model.tokenizer.is_eog(token):
            break
        hidden = ctx.forward(model.embed_tokens([token]), pos)
        logits = model.compute_logits(hidden[-1])
        pos += 1
    return out
