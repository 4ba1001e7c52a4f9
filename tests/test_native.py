"""The native kernels against the numpy reference, on random quantized blocks from hypothesis."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from bridge.realm import native
from bridge.realm.model import Model, Tensor, matmul
from bridge.realm.quants import dequantize

from .conftest import cpu_capped

T = gguf.GGMLQuantizationType
NATIVE = [
    T.F32, T.F16, T.BF16, T.Q8_0, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K
]  # fmt: skip
# Offsets of each block's f16 scale fields, which the generator keeps finite and moderate.
HALVES = {
    T.Q8_0: [0], T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2],
    T.Q2_K: [80, 82], T.Q3_K: [108], T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208],
}  # fmt: skip
# Tolerance: |native - reference| <= 1e-5 * sum_k |w_k x_k| + 1e-6 (float32 sums in another order).
RTOL = 1e-5

pytestmark = pytest.mark.skipif(not native.available(), reason="the native kernels are not built")


@st.composite
def weights(draw: st.DrawFn, t: T) -> tuple[NDArray[np.uint8], int, int]:
    """(raw rows (rows, row_bytes), rows, cols) of type t with finite, moderate values."""
    block, size = gguf.GGML_QUANT_SIZES[t]
    rows = draw(st.integers(1, 9))
    blocks = draw(st.integers(1, 4))
    cols = blocks * block
    if t in (T.F32, T.F16, T.BF16):
        values = draw(st.lists(st.floats(-4, 4, width=16), min_size=rows * cols, max_size=rows * cols))
        floats = np.array(values, dtype=np.float32)  # (rows * cols,)
        if t == T.BF16:  # the top halves of float32s: bfloat16, truncated
            raw = (floats.view(np.uint32) >> 16).astype(np.uint16).view(np.uint8).reshape(rows, -1)
        else:
            raw = floats.astype(np.float32 if t == T.F32 else np.float16).view(np.uint8).reshape(rows, -1)
        return raw, rows, cols
    data = draw(st.binary(min_size=rows * blocks * size, max_size=rows * blocks * size))
    raw = np.frombuffer(data, np.uint8).reshape(rows * blocks, size).copy()  # (rows*blocks, size)
    for offset in HALVES[t]:
        scales = draw(st.lists(st.floats(-2, 2, width=16), min_size=rows * blocks, max_size=rows * blocks))
        raw[:, offset : offset + 2] = np.array(scales, np.float16).view(np.uint8).reshape(-1, 2)
    return raw.reshape(rows, blocks * size), rows, cols


@pytest.fixture(params=["avx512", "avx2", "portable"])
def cpu_path(request: pytest.FixtureRequest) -> Iterator[str]:
    """Each native path this machine can run: the hand-written AVX-512 and AVX2 tiles, and the
    compiler-vectorised row kernels beneath them (capping the level does not touch those clones)."""
    with cpu_capped(request.param):
        yield request.param


@pytest.mark.parametrize("t", [pytest.param(t, id=t.name) for t in NATIVE])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_native_matmul_equals_the_numpy_reference(t: T, data: st.DataObject, cpu_path: str) -> None:
    raw, rows, cols = data.draw(weights(t))
    n = data.draw(st.integers(1, 9))  # past 8: the widest tile, then a remainder
    drawn = min(n, 4)  # rows past these are scaled copies: hypothesis draws at most so many values
    base = np.array(
        data.draw(st.lists(st.floats(-8, 8, width=32), min_size=drawn * cols, max_size=drawn * cols)),
        np.float32,
    ).reshape(drawn, cols)  # (drawn, cols)
    x = np.stack([base[i % drawn] * np.float32(1 - i / 16) for i in range(n)])  # (n, cols)
    w = dequantize(raw, t).astype(np.float64)  # (rows, cols), the reference's weights
    expected = x.astype(np.float64) @ w.T  # (n, rows)
    got = native.matmul(x, raw, t, rows, cols)
    bound = RTOL * (np.abs(x).astype(np.float64) @ np.abs(w).T) + 1e-6
    assert got.shape == (n, rows) and got.dtype == np.float32
    assert np.all(np.abs(got - expected) <= bound)


def test_model_matmul_uses_the_chosen_path() -> None:
    rng = np.random.default_rng(0)
    raw = gguf.quants.quantize(rng.standard_normal((64, 256)).astype(np.float32), T.Q8_0)
    w = Tensor("w", T.Q8_0, (256, 64), raw)
    x = rng.standard_normal((3, 256)).astype(np.float32)
    assert native.kernels() == "native"
    fast = matmul(x, w)
    native.use("numpy")
    try:
        slow = matmul(x, w)
    finally:
        native.use("native")
    np.testing.assert_allclose(fast, slow, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="numpy or native"):
        native.use("gpu")


def test_cpu_path_is_reported() -> None:
    assert native.cpu_path() in ("avx512", "avx2", "portable")
    assert native.info()["threads"] >= 1


def test_paris_answers_alike_on_both_kernel_paths() -> None:
    from .conftest import run_cli

    fast = run_cli("run", "examples/paris", "--kernels", "native")
    slow = run_cli("run", "examples/paris", "--kernels", "numpy")
    assert fast.returncode == 0 and slow.returncode == 0, fast.stderr + slow.stderr
    assert fast.stdout == slow.stdout == "The capital of France is Paris.\n"


def test_bench_reports_figures() -> None:
    import json

    from .conftest import run_cli

    ran = run_cli("bench", "--runs", "1", "--long-prompt", "32", "--no-peer", "--json")
    assert ran.returncode == 0, ran.stderr
    report = json.loads(ran.stdout)
    assert report["answer"] == "The capital of France is Paris."
    assert report["prefill_tok_s"]["median"] > 0 and report["decode_tok_s"]["median"] > 0
    assert [p["tokens"] for p in report["prefill"]] == [32] and report["prefill"][0]["tok_s"] > 0
    assert report["prefill"][0]["gflop_s"] > 0
    memory = report["memory"]
    assert memory["read_bytes_s"] > 1e9 and 0 < memory["decode_fraction"] < 1.5
    assert memory["decode_bytes_per_token"] > 50 << 20  # SmolLM2's layers and output: about 94 MB
    assert set(report["share"]) == {"kernels", "host_other", "guest"}
    assert abs(sum(report["share"].values()) - 1.0) < 1e-6
    assert (
        report["us_per_call"]["realm_forward_layer"] > 0
        and report["calls_per_run"]["realm_forward_layer"] == 240
    )
    assert report["peak_rss"] > 0 and 0 < report["guest_memory"] < 2 << 20
    assert report["peer"] is None


def test_bench_runs_the_chat_guest_on_any_model(tmp_path: Path) -> None:
    import json

    from .conftest import run_cli
    from .golden import synthetic

    path = synthetic.write(tmp_path / "gemma3.gguf", arch="gemma3")
    ran = run_cli("bench", "--model", str(path), "--runs", "1", "--prefill", "16,300", "--no-peer", "--json")
    assert ran.returncode == 0, ran.stderr
    report = json.loads(ran.stdout)
    assert report["guest"] == "chat" and report["model"] == str(path)
    # 300 is past the synthetic model's context of 256: left out
    assert report["decode_tok_s"]["median"] > 0 and [p["tokens"] for p in report["prefill"]] == [16]
    assert report["calls_per_run"]["realm_chat_apply"] == 1


PROMPT = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"


def run_both(model: Model, kind: str, steps: list[int]) -> list[NDArray[np.float32]]:
    native.use(kind)
    try:
        ids = model.tokenize(PROMPT)
        ctx = model.new_context(len(ids) + len(steps) + 1)
        hidden = ctx.forward(model.embed_tokens(ids), 0)
        logits = [model.compute_logits(hidden[-1])]
        for i, token in enumerate(steps):
            hidden = ctx.forward(model.embed_tokens([token]), len(ids) + i)
            logits.append(model.compute_logits(hidden[-1]))
        return logits
    finally:
        native.use("native")


def test_fused_native_layer_matches_the_numpy_layer(smollm2: Model) -> None:
    # Bound: logits within 0.05 (measured 0.019); the two sum in different orders and round q and the
    # attention weights to f16 at the same points.
    steps = [504, 3575, 282, 4649]
    fast, slow = run_both(smollm2, "native", steps), run_both(smollm2, "numpy", steps)
    for a, b in zip(fast, slow, strict=True):
        assert np.abs(a - b).max() <= 0.05
        assert int(np.argmax(a)) == int(np.argmax(b))


def test_steady_state_decode_allocates_nothing_new(smollm2: Model) -> None:
    ids = smollm2.tokenize(PROMPT)
    ctx = smollm2.new_context(len(ids) + 60)
    hidden = np.ascontiguousarray(smollm2.embed_tokens(ids))  # (n, d)
    for layer in range(smollm2.config.n_layer):
        ctx.forward_layer_inplace(layer, hidden, 0)
    x = np.empty((1, smollm2.config.n_embd), np.float32)  # the one hidden row a guest would hand in

    def step(position: int) -> None:
        x[:] = smollm2.embed_tokens([504])
        for layer in range(smollm2.config.n_layer):
            ctx.forward_layer_inplace(layer, x, position)
        smollm2.compute_logits(x[0])

    for position in range(len(ids), len(ids) + 20):  # warm-up: buffers pooled, counters past small ints
        step(position)
    misses = {tier: s.misses for tier, s in ctx.pool.stats.items()}
    grows = native.scratch_grows()
    # Bytes held after 10 and after 30 more steps. Python ints (the pool's counters, dict keys) are
    # re-allocated as they change, so which one is alive at a given moment moves a few dozen bytes
    # either way; anything kept per token (one object is at least 32 bytes, x 20 steps) would exceed 64.
    tracemalloc.start()
    try:
        for position in range(len(ids) + 20, len(ids) + 30):
            step(position)
        after_10 = tracemalloc.get_traced_memory()[0]
        for position in range(len(ids) + 30, len(ids) + 50):
            step(position)
        retained = tracemalloc.get_traced_memory()[0] - after_10
    finally:
        tracemalloc.stop()
    assert {tier: s.misses for tier, s in ctx.pool.stats.items()} == misses  # every scratch buffer reused
    assert native.scratch_grows() == grows  # and the kernels' own per-thread scratch too
    assert ctx.pool.stats["medium"].hits + ctx.pool.stats["small"].hits >= 20 * smollm2.config.n_layer
    assert retained <= 64, f"{retained} more bytes held after 20 more decode steps"


@pytest.mark.parametrize("t", [pytest.param(t, id=t.name) for t in NATIVE])
def test_each_tokens_products_are_the_same_bits_in_any_batch(t: T, cpu_path: str) -> None:
    """Batch invariance at the kernel: 15 tokens at once (tiles of 8, 4 and 3 tokens, or 4, 4, 4 and 3;
    rows in pairs) give each token the bits it gets alone (one token, rows one by one)."""
    rng = np.random.default_rng(int(t))
    block, size = gguf.GGML_QUANT_SIZES[t]
    rows, cols = 9, 2 * max(block, 32) * 4
    raw = rng.integers(0, 256, (rows, cols // block * size), dtype=np.uint8)  # (rows, row_bytes)
    if t in HALVES:  # moderate finite scales
        blocks = raw.reshape(rows * (cols // block), size)
        for offset in HALVES[t]:
            blocks[:, offset : offset + 2] = (
                rng.uniform(-0.1, 0.1, len(blocks)).astype(np.float16).view(np.uint8).reshape(-1, 2)
            )
    else:  # F32, F16, BF16 (the top halves of float32s)
        values = rng.uniform(-1, 1, (rows, cols)).astype(np.float32)  # (rows, cols)
        stored: dict[T, NDArray[Any]] = {
            T.F32: values,
            T.F16: values.astype(np.float16),
            T.BF16: (values.view(np.uint32) >> 16).astype(np.uint16),
        }
        raw = stored[t].view(np.uint8)
    x = rng.standard_normal((15, cols)).astype(np.float32)  # (15, cols)
    together = native.matmul(x, raw, t, rows, cols)  # (15, rows)
    alone = np.concatenate([native.matmul(x[i : i + 1], raw, t, rows, cols) for i in range(15)])  # (15, rows)
    assert np.isfinite(together).all()
    assert np.array_equal(together.view(np.uint32), alone.view(np.uint32))
