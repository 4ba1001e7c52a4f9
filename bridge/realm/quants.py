"""Reference numpy dequantizers for GGUF/ggml tensor blocks.

A ggml tensor row is a run of fixed-size blocks: `type_size` bytes that decode to `block_size` floats.
The byte layouts are ggml's (ggml-common.h `block_*`), and the arithmetic is `dequantize_row_*` from
ggml-quants.c: the same float32 products and sums in the same order. For these types every intermediate
product is exact in float32 (an f16 scale has 11 significant bits, the integer factors at most 8 + 6), so
each output is the single correctly rounded value of its exact expression: bit-identical to ggml's C
(with or without fused multiply-add) and to gguf-py's `gguf.quants.dequantize`.

Every kernel works on all blocks at once: integer unpacking is done in uint8, and the one float32 pass
writes straight into the array that is returned.

    dequantize(reader.tensors[i].data[rows], reader.tensors[i].tensor_type)   # (len(rows), n_cols) float32
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType
from numpy.typing import NDArray

__all__ = ["QuantType", "UnsupportedQuantError", "dequantize", "quant_type", "row_bytes", "supported_types"]

Bytes = NDArray[np.uint8]
Floats = NDArray[np.float32]

# Multi-byte fields in GGUF files are little-endian; spelling the byte order out keeps the views right on
# any host (on a little-endian host these are the native dtypes and cost nothing).
_HALF = np.dtype("<f2")  # ggml_half
_BF16_BITS = np.dtype("<u2")
_FLOAT = np.dtype("<f4")

_T = GGMLQuantizationType


class UnsupportedQuantError(ValueError):
    """A tensor type (ggml_type) this module has no dequantizer for."""


class QuantType:
    """One ggml tensor type: its block geometry and its block dequantizer.

    Subclasses name their type with a class keyword (`class Q8_0(QuantType, ggml_type=T.Q8_0)`); the block
    geometry is taken from gguf's GGML_QUANT_SIZES and one instance is registered for `quant_type`.
    """

    ggml_type: ClassVar[GGMLQuantizationType]
    block_size: ClassVar[int]  # elements per block
    type_size: ClassVar[int]  # bytes per block

    def __init_subclass__(cls, *, ggml_type: GGMLQuantizationType, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls.ggml_type = ggml_type
        cls.block_size, cls.type_size = GGML_QUANT_SIZES[ggml_type]
        _REGISTRY[ggml_type] = cls()

    @property
    def name(self) -> str:
        return self.ggml_type.name

    def dequantize_blocks(self, blocks: Bytes) -> Floats:
        """blocks: (n, type_size) bytes, last axis contiguous -> (n, block_size) float32 (a new array)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<QuantType {self.name}: {self.block_size} elements in {self.type_size} bytes>"


_REGISTRY: dict[GGMLQuantizationType, QuantType] = {}


def _half(blocks: Bytes, offset: int) -> Floats:
    """The ggml_half field at byte `offset` of every block, as float32: (n, 1)."""
    return blocks[:, offset : offset + 2].view(_HALF).astype(np.float32)


def _nibbles(qs: Bytes) -> Bytes:
    """Split packed 4-bit values: (..., m) bytes -> (..., 2, m), low nibbles first, then high nibbles.

    This is ggml's order everywhere: byte j of a 32-value group holds value j (low) and value j + m (high).
    """
    q = np.empty((*qs.shape[:-1], 2, qs.shape[-1]), np.uint8)  # (..., 2, m)
    np.bitwise_and(qs, 0x0F, out=q[..., 0, :])
    np.right_shift(qs, 4, out=q[..., 1, :])
    return q


# --- plain floats: one element per block ---------------------------------------------------------------


class F32(QuantType, ggml_type=_T.F32):
    def dequantize_blocks(self, blocks: Bytes) -> Floats:
        return blocks.view(_FLOAT).astype(np.float32)  # (n, 1), copied


class F16(QuantType, ggml_type=_T.F16):
    def dequantize_blocks(self, blocks: Bytes) -> Floats:
        return blocks.view(_HALF).astype(np.float32)  # (n, 1)


class BF16(QuantType, ggml_type=_T.BF16):
    def dequantize_blocks(self, blocks: Bytes) -> Floats:
        # bfloat16 is the top half of a float32: widen the bits and shift them into place.
        bits = blocks.view(_BF16_BITS).astype(np.uint32)  # (n, 1)
        bits <<= 16
        return bits.view(np.float32)


# --- 32-element blocks with one f16 scale (and min) ----------------------------------------------------


class Q8_0(QuantType, ggml_type=_T.Q8_0):
    # block_q8_0: d (f16) | qs[32] (int8);  y = q * d
    def dequantize_blocks(self, blocks: Bytes) -> Floats:
        d = _half(blocks, 0)  # (n, 1)
        qs = blocks[:, 2:34].view(np.int8)  # (n, 32)
        out = np.empty((len(blocks), 32), np.float32)  # (n, 32)
        np.multiply(qs, d, out=out)  # int8 -> float32 inside the loop, no temporary
        return out


class Q4_0(QuantType, ggml_type=_T.Q4_0):
    # block_q4_0: d (f16) | qs[16] (nibbles);  y = (q - 8) * d
    def dequantize_blocks(self, blocks: Bytes) -> Floats:
        n = len(blocks)
        d = _half(blocks, 0)  # (n, 1)
        q = _nibbles(blocks[:, 2:18])  # (n, 2, 16) in 0..15
        q -= 8  # wraps in uint8; read back as int8 it is -8..7
        out = np.empty((n, 32), np.float32)  # (n, 32)
        np.multiply(q.reshape(n, 32).view(np.int8), d, out=out)
        return out


class Q4_1(QuantType, ggml_type=_T.Q4_1):
    # block_q4_1: d (f16) | m (f16) | qs[16] (nibbles);  y = q * d + m
    def dequantize_blocks(self, blocks: Bytes) -> Floats:
        n = len(blocks)
        d = _half(blocks, 0)  # (n, 1)
        m = _half(blocks, 2)  # (n, 1)
        q = _nibbles(blocks[:, 4:20])  # (n, 2, 16)
        out = np.empty((n, 32), np.float32)  # (n, 32)
        np.multiply(q.reshape(n, 32), d, out=out)
        out += m
        return out


def _q5_values(qh: Bytes, qs: Bytes) -> Bytes:
    """5-bit values of Q5_0/Q5_1 blocks: qh (n, 4), qs (n, 16) -> (n, 32) in 0..31.

    qh is a little-endian uint32 whose bit j is the fifth bit of value j, so unpacking its bytes
    little-bit-first lines the bits up with the values.
    """
    n = len(qs)
    q = _nibbles(qs).reshape(n, 32)  # (n, 32) low four bits
    high = np.unpackbits(qh, axis=1, bitorder="little")  # (n, 32) 0/1
    high <<= 4
    q |= high
    return q


class Q5_0(QuantType, ggml_type=_T.Q5_0):
    # block_q5_0: d (f16) | qh[4] | qs[16];  y = (q - 16) * d
    def dequantize_blocks(self, blocks: Bytes) -> Floats:
        d = _half(blocks, 0)  # (n, 1)
        q = _q5_values(blocks[:, 2:6], blocks[:, 6:22])  # (n, 32)
        q -= 16  # as int8: -16..15
        out = np.empty(q.shape, np.float32)  # (n, 32)
        np.multiply(q.view(np.int8), d, out=out)
        return out


class Q5_1(QuantType, ggml_type=_T.Q5_1):
    # block_q5_1: d (f16) | m (f16) | qh[4] | qs[16];  y = q * d + m
    def dequantize_blocks(self, blocks: Bytes) -> Floats:
        d = _half(blocks, 0)  # (n, 1)
        m = _half(blocks, 2)  # (n, 1)
        q = _q5_values(blocks[:, 4:8], blocks[:, 8:24])  # (n, 32)
        out = np.empty(q.shape, np.float32)  # (n, 32)
        np.multiply(q, d, out=out)
        out += m
        return out


# --- K-quants: 256-element super-blocks of 16- or 32-element sub-blocks --------------------------------


def _k4_scales_mins(packed: Bytes) -> tuple[Bytes, Bytes]:
    """The 8 six-bit scales and 8 six-bit mins of a Q4_K/Q5_K block, from its 12 packed bytes (n, 12).

    ggml's get_scale_min_k4: bytes 0-3 hold scales 0-3 and bytes 4-7 mins 0-3 in their low 6 bits.
    Scales/mins 4-7 take their low 4 bits from the nibbles of bytes 8-11 (scale low, min high) and their
    top 2 bits from the otherwise unused top 2 bits of bytes 0-3 (scales) and 4-7 (mins).
    """
    n = len(packed)
    sc_lo = packed[:, 0:4]  # (n, 4)
    mn_lo = packed[:, 4:8]  # (n, 4)
    both = packed[:, 8:12]  # (n, 4) min 4-7 low bits << 4 | scale 4-7 low bits
    scales = np.empty((n, 8), np.uint8)  # (n, 8)
    mins = np.empty((n, 8), np.uint8)  # (n, 8)
    np.bitwise_and(sc_lo, 0x3F, out=scales[:, :4])
    np.bitwise_and(mn_lo, 0x3F, out=mins[:, :4])
    scales[:, 4:] = (both & 0x0F) | ((sc_lo >> 6) << 4)
    mins[:, 4:] = (both >> 4) | ((mn_lo >> 6) << 4)
    return scales, mins


def _k4_apply(q: Bytes, blocks: Bytes) -> Floats:
    """y = (d * scale) * q - (dmin * min) for Q4_K/Q5_K: q (n, 8, 32) values -> (n, 256) floats."""
    n = len(blocks)
    d = _half(blocks, 0)  # (n, 1)
    dmin = _half(blocks, 2)  # (n, 1)
    scales, mins = _k4_scales_mins(blocks[:, 4:16])  # (n, 8) each
    d_sub = d * scales  # (n, 8) per-sub-block scale, float32 as in ggml
    m_sub = dmin * mins  # (n, 8) per-sub-block offset
    out = np.empty((n, 8, 32), np.float32)  # (n, 8, 32)
    np.multiply(q, d_sub[:, :, None], out=out)
    out -= m_sub[:, :, None]
    return out.reshape(n, 256)


class Q4_K(QuantType, ggml_type=_T.Q4_K):
    # block_q4_K: d (f16) | dmin (f16) | scales[12] | qs[128]. Sub-blocks of 32: byte group k (32 bytes of
    # qs) holds sub-block 2k in its low nibbles and sub-block 2k+1 in its high nibbles.
    def dequantize_blocks(self, blocks: Bytes) -> Floats:
        n = len(blocks)
        q = _nibbles(blocks[:, 16:144].reshape(n, 4, 32))  # (n, 4, 2, 32) = (n, 8 sub-blocks, 32)
        return _k4_apply(q.reshape(n, 8, 32), blocks)


_BIT_OF_SUBBLOCK = np.arange(8, dtype=np.uint8)[:, None]  # (8, 1)


class Q5_K(QuantType, ggml_type=_T.Q5_K):
    # block_q5_K: d (f16) | dmin (f16) | scales[12] | qh[32] | qs[128]. Low 4 bits as in Q4_K; the fifth
    # bit of value l of sub-block k is bit k of qh[l].
    def dequantize_blocks(self, blocks: Bytes) -> Floats:
        n = len(blocks)
        qh = blocks[:, 16:48]  # (n, 32)
        q = _nibbles(blocks[:, 48:176].reshape(n, 4, 32)).reshape(n, 8, 32)  # (n, 8, 32) low 4 bits
        high = qh[:, None, :] >> _BIT_OF_SUBBLOCK  # (n, 8, 32)
        high &= 1
        high <<= 4
        q |= high
        return _k4_apply(q, blocks)


_Q6_HIGH_SHIFTS = np.array([0, 2, 4, 6], dtype=np.uint8)[:, None]  # (4, 1)


class Q6_K(QuantType, ggml_type=_T.Q6_K):
    # block_q6_K: ql[128] | qh[64] | scales[16] (int8) | d (f16);  y = (d * scale) * (q - 32), one scale per
    # 16 values. Each 128-value half uses 64 bytes of ql and 32 of qh: its four 32-value groups g take low
    # nibbles of ql[0:32], ql[32:64], then high nibbles of ql[0:32], ql[32:64], and bits 2g, 2g+1 of qh[l].
    def dequantize_blocks(self, blocks: Bytes) -> Floats:
        n = len(blocks)
        ql = blocks[:, 0:128].reshape(n, 2, 64)  # (n, half, 64)
        qh = blocks[:, 128:192].reshape(n, 2, 1, 32)  # (n, half, 1, 32)
        scales = blocks[:, 192:208].view(np.int8)  # (n, 16)
        d = _half(blocks, 208)  # (n, 1)

        q = _nibbles(ql).reshape(n, 2, 4, 32)  # (n, half, 4 groups = (low, high) x (ql[:32], ql[32:]), 32)
        high = qh >> _Q6_HIGH_SHIFTS  # (n, half, 4 groups, 32)
        high &= 3
        high <<= 4
        q |= high
        q -= 32  # as int8: -32..31

        d_sub = d * scales  # (n, 16) float32, one per 16 values
        out = np.empty((n, 16, 16), np.float32)  # (n, 16, 16)
        np.multiply(q.reshape(n, 16, 16).view(np.int8), d_sub[:, :, None], out=out)
        return out.reshape(n, 256)


_Q2_SHIFTS = np.array([0, 2, 4, 6], dtype=np.uint8)[:, None, None]  # (4, 1, 1)


class Q2_K(QuantType, ggml_type=_T.Q2_K):
    # block_q2_K: scales[16] (low nibble scale, high nibble min) | qs[64] | d (f16) | dmin (f16);
    # y = (d * scale) * q - (dmin * min), one scale and min per 16 values. Each 128-value half uses 32
    # bytes of qs: its 8 groups of 16 take bits (2j, 2j+1) of qs[0:16] then qs[16:32], for j = 0..3.
    def dequantize_blocks(self, blocks: Bytes) -> Floats:
        n = len(blocks)
        scales = blocks[:, 0:16]  # (n, 16)
        qs = blocks[:, 16:80].reshape(n, 2, 1, 2, 16)  # (n, half, 1, 2, 16)
        d = _half(blocks, 80)  # (n, 1)
        dmin = _half(blocks, 82)  # (n, 1)
        q = (qs >> _Q2_SHIFTS) & 3  # (n, half, 4 shifts, 2, 16): the groups in ggml's order
        d_sub = d * (scales & 0xF)  # (n, 16) float32
        m_sub = dmin * (scales >> 4)  # (n, 16)
        out = np.empty((n, 16, 16), np.float32)  # (n, 16, 16)
        np.multiply(q.reshape(n, 16, 16), d_sub[:, :, None], out=out)
        out -= m_sub[:, :, None]
        return out.reshape(n, 256)


class Q3_K(QuantType, ggml_type=_T.Q3_K):
    # block_q3_K: hmask[32] | qs[64] | scales[12] (16 six-bit scales, biased by 32) | d (f16);
    # y = (d * (scale - 32)) * (q - 4 * (1 - h)), one scale per 16 values: q the two low bits from qs as
    # in Q2_K, h the high bit, bit g of hmask[l] for group g (of 8) of value l (of 32).
    def dequantize_blocks(self, blocks: Bytes) -> Floats:
        n = len(blocks)
        hmask = blocks[:, 0:32].reshape(n, 1, 2, 16)  # (n, 1, 2, 16)
        qs = blocks[:, 32:96].reshape(n, 2, 1, 2, 16)  # (n, half, 1, 2, 16)
        packed = blocks[:, 96:108]  # (n, 12)
        d = _half(blocks, 108)  # (n, 1)
        # scales j = 0..15: low 4 bits from packed[j % 8] (low nibble for j < 8, high after), high 2 bits
        # from packed[8 + j % 4], bits 2 * (j // 4).
        j = np.arange(16)
        low = np.where(j < 8, packed[:, j % 8] & 0xF, packed[:, j % 8] >> 4)  # (n, 16)
        high = (packed[:, 8 + j % 4] >> (2 * (j // 4)).astype(np.uint8)) & 3  # (n, 16)
        scales = (low | (high << 4)).astype(np.int8) - np.int8(32)  # (n, 16) -32..31
        q = ((qs >> _Q2_SHIFTS) & 3).astype(np.int8)  # (n, half, 4, 2, 16)
        bit = np.arange(8, dtype=np.uint8).reshape(2, 4, 1, 1)  # (half, 4, 1, 1): group g = 4 * half + shift
        h = (hmask[:, None] >> bit) & 1  # (n, half, 4, 2, 16)
        q -= np.int8(4) * (1 - h).astype(np.int8)
        d_sub = d * scales  # (n, 16) float32
        out = np.empty((n, 16, 16), np.float32)  # (n, 16, 16)
        np.multiply(q.reshape(n, 16, 16), d_sub[:, :, None], out=out)
        return out.reshape(n, 256)


# --- public API ----------------------------------------------------------------------------------------


def supported_types() -> tuple[GGMLQuantizationType, ...]:
    """The ggml types this module dequantizes, in registration order."""
    return tuple(_REGISTRY)


def quant_type(t: GGMLQuantizationType | int) -> QuantType:
    """The dequantizer for ggml type `t` (an enum member or its integer value)."""
    try:
        ggml_type = GGMLQuantizationType(t)
    except ValueError:
        name = str(t)
    else:
        if (qt := _REGISTRY.get(ggml_type)) is not None:
            return qt
        name = ggml_type.name
    supported = ", ".join(s.name for s in _REGISTRY)
    raise UnsupportedQuantError(f"unsupported tensor type {name} (supported: {supported})")


def row_bytes(t: GGMLQuantizationType | int, n_elements_per_row: int) -> int:
    """Bytes taken by a row of `n_elements_per_row` elements of type `t`."""
    qt = quant_type(t)
    if n_elements_per_row < 0 or n_elements_per_row % qt.block_size:
        raise ValueError(
            f"a {qt.name} row of {n_elements_per_row} elements is not a whole number of "
            f"{qt.block_size}-element blocks"
        )
    return n_elements_per_row // qt.block_size * qt.type_size


def dequantize(raw: Bytes, t: GGMLQuantizationType | int, n_elements: int | None = None) -> Floats:
    """Decode (..., nbytes) bytes of type `t` into (..., nbytes // type_size * block_size) float32.

    `raw` is typically rows of a tensor as GGUFReader hands them, (rows, row_bytes); an array of another
    dtype is read as its bytes (so GGUFReader's float32/float16 arrays work too). `n_elements`, if given,
    is the expected number of elements per row and is checked. Blocks are read through a view of `raw`
    (copied only if its rows are not contiguous); the result is always a new array.
    """
    qt = quant_type(t)
    raw = np.asarray(raw)  # a memmap becomes a plain ndarray view
    if raw.ndim == 0:
        raise ValueError("raw must have at least one dimension (the bytes of a row)")
    if raw.dtype != np.uint8:
        raw = raw.view(np.uint8)  # (..., nbytes)
    nbytes = raw.shape[-1]
    if nbytes % qt.type_size:
        raise ValueError(
            f"{nbytes} bytes per row is not a whole number of {qt.type_size}-byte {qt.name} blocks"
        )
    n_out = nbytes // qt.type_size * qt.block_size
    if n_elements is not None and n_elements != n_out:
        raise ValueError(f"{nbytes} bytes of {qt.name} hold {n_out} elements per row, not {n_elements}")
    blocks = raw.reshape(-1, qt.type_size)  # (n_blocks, type_size)
    return qt.dequantize_blocks(blocks).reshape(*raw.shape[:-1], n_out)
