/* Native kernels for bridge.realm: matrix products that read GGUF quantized blocks in place.
 *
 * y (n, rows) = x (n, cols) @ W^T, where W is `rows` rows of `cols` elements stored as ggml blocks.
 * Each row is dequantized once into a small float buffer and dotted with every token's x, so a
 * prefill batch is matrix-matrix work and the weights are never expanded in memory. Rows are split
 * between the threads of the process-wide pool (threads.c); Python's GIL is released around the call
 * (cffi's default).
 *
 * The row kernel is compiled three times (x86-64-v4 = AVX-512, x86-64-v3 = AVX2+FMA, portable) and
 * the loader picks the best the CPU has (gcc target_clones). The numpy code in quants.py/model.py is
 * the reference; tests/test_native.py keeps the two equal.
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "threads.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define ROW_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define ROW_CLONES
#endif

/* ggml type ids (ggml.h), as gguf's GGMLQuantizationType numbers them */
enum { T_F32 = 0, T_F16 = 1, T_Q4_0 = 2, T_Q4_1 = 3, T_Q5_0 = 6, T_Q5_1 = 7, T_Q8_0 = 8, T_Q2_K = 10, T_Q3_K = 11,
       T_Q4_K = 12, T_Q5_K = 13, T_Q6_K = 14, T_BF16 = 30 };

/* IEEE half to float, exact for every input (subnormals, inf, nan). Where the compiler has _Float16
 * the clones built for x86-64-v3/v4 turn this into one F16C instruction: block scales are read once per
 * 32 weights, so a branchy conversion there costs as much as the arithmetic. */
#if defined(__FLT16_MAX__)
static inline __attribute__((always_inline)) float half(const uint8_t *p) {
    _Float16 h;
    memcpy(&h, p, sizeof h);
    return (float)h;
}
#else
static inline __attribute__((always_inline)) float half(const uint8_t *p) {
    uint16_t h = (uint16_t)(p[0] | (p[1] << 8));
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1F, man = h & 0x3FF, bits;
    if (exp == 0x1F) {
        bits = sign | 0x7F800000u | (man << 13);
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    } else if (man == 0) {
        bits = sign;
    } else { /* subnormal: normalise */
        exp = 113;
        while (!(man & 0x400)) {
            man <<= 1;
            exp--;
        }
        bits = sign | (exp << 23) | ((man & 0x3FF) << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}
#endif

static int matmul_weight(const bridge_weight *wt, const float *x, int64_t n, float *y, int n_threads);
/* Kinds of per-thread scratch (thread_scratch, below). */
enum { SCRATCH_XSUM, SCRATCH_ROW, SCRATCH_SEQS, SCRATCH_ATTN, SCRATCH_KINDS };
static void *thread_scratch(int kind, size_t bytes);

/* Q4_K's and Q5_K's sub-block j (of 8): its 6-bit scale and min from the 12 bytes at sc. */
static inline __attribute__((always_inline)) void k4_scale(const uint8_t *sc, int j, int *scale, int *min) {
    if (j < 4) {
        *scale = sc[j] & 63;
        *min = sc[j + 4] & 63;
    } else {
        *scale = (sc[j + 4] & 0xF) | ((sc[j - 4] >> 6) << 4);
        *min = (sc[j + 4] >> 4) | ((sc[j] >> 6) << 4);
    }
}

/* Q4_K's and Q5_K's sub-blocks s and s + 1: their scales and mins times the block's d and dmin -> dd[2], mm[2]. */
static inline __attribute__((always_inline)) void k4_scales(const uint8_t *sc, int s, float d, float dmin, float *dd,
                                                             float *mm) {
    for (int k = 0; k < 2; k++) {
        int scale, min;
        k4_scale(sc, s + k, &scale, &min);
        dd[k] = d * (float)scale;
        mm[k] = dmin * (float)min;
    }
}

/* Each type's rows -> floats: one row of `cols` elements -> out (cols floats). Compiled for each SIMD level
 * (ROW_CLONES), so the compiler vectorises each for the CPU it runs on. */
ROW_CLONES static void dequantize_f32(const uint8_t *row, int64_t cols, float *out) {
    memcpy(out, row, (size_t)cols * sizeof(float));
}

ROW_CLONES static void dequantize_f16(const uint8_t *row, int64_t cols, float *out) {
    for (int64_t i = 0; i < cols; i++) out[i] = half(row + 2 * i);
}

/* the top half of a float32 */
ROW_CLONES static void dequantize_bf16(const uint8_t *row, int64_t cols, float *out) {
    for (int64_t i = 0; i < cols; i++) {
        const uint32_t bits = (uint32_t)(row[2 * i] | (row[2 * i + 1] << 8)) << 16;
        memcpy(out + i, &bits, sizeof bits);
    }
}

/* d (f16) [| m (f16)] | qh (u32: the fifth bit of value j is bit j) | qs[16] (nibbles) */
static inline __attribute__((always_inline)) void dequantize_q5(const uint8_t *row, int64_t cols, float *out,
                                                                const int has_min) {
    for (int64_t b = 0; b < cols / 32; b++, out += 32) {
        const float d = half(row), m = has_min ? half(row + 2) : 0.0f;
        const uint8_t *qh = row + (has_min ? 4 : 2), *q = qh + 4;
        const uint32_t high = (uint32_t)(qh[0] | (qh[1] << 8) | (qh[2] << 16)) | ((uint32_t)qh[3] << 24);
        for (int j = 0; j < 16; j++) {
            const int lo = (q[j] & 0xF) | (int)(((high >> j) & 1) << 4);
            const int hi = (q[j] >> 4) | (int)(((high >> (j + 16)) & 1) << 4);
            if (has_min) {
                out[j] = d * (float)lo + m;
                out[j + 16] = d * (float)hi + m;
            } else {
                out[j] = d * (float)(lo - 16);
                out[j + 16] = d * (float)(hi - 16);
            }
        }
        row += has_min ? 24 : 22;
    }
}

ROW_CLONES static void dequantize_q5_0(const uint8_t *row, int64_t cols, float *out) {
    dequantize_q5(row, cols, out, 0);
}

ROW_CLONES static void dequantize_q5_1(const uint8_t *row, int64_t cols, float *out) {
    dequantize_q5(row, cols, out, 1);
}

ROW_CLONES static void dequantize_q8_0(const uint8_t *row, int64_t cols, float *out) {
    for (int64_t b = 0; b < cols / 32; b++, row += 34, out += 32) {
        const float d = half(row);
        const int8_t *q = (const int8_t *)(row + 2);
        for (int j = 0; j < 32; j++) out[j] = d * (float)q[j];
    }
}

ROW_CLONES static void dequantize_q4_0(const uint8_t *row, int64_t cols, float *out) {
    for (int64_t b = 0; b < cols / 32; b++, row += 18, out += 32) {
        const float d = half(row);
        const uint8_t *q = row + 2;
        for (int j = 0; j < 16; j++) {
            out[j] = d * (float)((q[j] & 0xF) - 8);
            out[j + 16] = d * (float)((q[j] >> 4) - 8);
        }
    }
}

ROW_CLONES static void dequantize_q4_1(const uint8_t *row, int64_t cols, float *out) {
    for (int64_t b = 0; b < cols / 32; b++, row += 20, out += 32) {
        const float d = half(row), m = half(row + 2);
        const uint8_t *q = row + 4;
        for (int j = 0; j < 16; j++) {
            out[j] = d * (float)(q[j] & 0xF) + m;
            out[j + 16] = d * (float)(q[j] >> 4) + m;
        }
    }
}

/* scales[16] (scale | min << 4) | qs[64] | d | dmin: each 128-value half takes bits 2j, 2j+1
 * (j = 0..3) of qs[0:16] and then qs[16:32] of its 32 bytes, 16 values per scale */
ROW_CLONES static void dequantize_q2_k(const uint8_t *row, int64_t cols, float *out) {
    for (int64_t b = 0; b < cols / 256; b++, row += 84) {
        const uint8_t *sc = row, *q = row + 16;
        const float d = half(row + 80), dmin = half(row + 82);
        for (int h = 0; h < 2; h++, q += 32)
            for (int shift = 0; shift < 8; shift += 2)
                for (int part = 0; part < 2; part++, sc++, out += 16) {
                    const float dl = d * (float)(*sc & 0xF), ml = dmin * (float)(*sc >> 4);
                    for (int l = 0; l < 16; l++) out[l] = dl * (float)((q[l + 16 * part] >> shift) & 3) - ml;
                }
    }
}

/* hmask[32] | qs[64] as in Q2_K | 16 six-bit scales packed in 12 bytes, biased by 32 | d;
 * value = low two bits - 4 unless bit g of hmask[l] is set, g the 16-value group's pair */
ROW_CLONES static void dequantize_q3_k(const uint8_t *row, int64_t cols, float *out) {
    for (int64_t b = 0; b < cols / 256; b++, row += 110) {
        const uint8_t *hm = row, *q = row + 32, *p = row + 96;
        const float d = half(row + 108);
        int scales[16];
        for (int j = 0; j < 16; j++) {
            const int low = j < 8 ? p[j] & 0xF : p[j - 8] >> 4, high = (p[8 + j % 4] >> (2 * (j / 4))) & 3;
            scales[j] = (low | (high << 4)) - 32;
        }
        for (int h = 0, is = 0; h < 2; h++, q += 32)
            for (int shift = 0, g = 4 * h; shift < 8; shift += 2, g++)
                for (int part = 0; part < 2; part++, out += 16) {
                    const float dl = d * (float)scales[is++];
                    for (int l = 0; l < 16; l++) {
                        const int at = l + 16 * part;
                        const int v = ((q[at] >> shift) & 3) - (((hm[at] >> g) & 1) ? 0 : 4);
                        out[l] = dl * (float)v;
                    }
                }
    }
}

ROW_CLONES static void dequantize_q4_k(const uint8_t *row, int64_t cols, float *out) {
    for (int64_t b = 0; b < cols / 256; b++, row += 144) {
        const float d = half(row), dmin = half(row + 2);
        const uint8_t *q = row + 16;
        for (int s = 0; s < 8; s += 2, q += 32) {
            float dd[2], mm[2];
            k4_scales(row + 4, s, d, dmin, dd, mm);
            for (int l = 0; l < 32; l++) out[l] = dd[0] * (float)(q[l] & 0xF) - mm[0];
            for (int l = 0; l < 32; l++) out[l + 32] = dd[1] * (float)(q[l] >> 4) - mm[1];
            out += 64;
        }
    }
}

/* Q4_K's with qh[32] before the nibbles: bit k of qh[l] is the fifth bit of value l of sub-block k */
ROW_CLONES static void dequantize_q5_k(const uint8_t *row, int64_t cols, float *out) {
    for (int64_t b = 0; b < cols / 256; b++, row += 176) {
        const float d = half(row), dmin = half(row + 2);
        const uint8_t *qh = row + 16, *q = row + 48;
        for (int s = 0; s < 8; s += 2, q += 32) {
            float dd[2], mm[2];
            k4_scales(row + 4, s, d, dmin, dd, mm);
            for (int l = 0; l < 32; l++) out[l] = dd[0] * (float)((q[l] & 0xF) | (((qh[l] >> s) & 1) << 4)) - mm[0];
            for (int l = 0; l < 32; l++)
                out[l + 32] = dd[1] * (float)((q[l] >> 4) | (((qh[l] >> (s + 1)) & 1) << 4)) - mm[1];
            out += 64;
        }
    }
}

ROW_CLONES static void dequantize_q6_k(const uint8_t *row, int64_t cols, float *out) {
    for (int64_t b = 0; b < cols / 256; b++, row += 210) {
        const uint8_t *ql = row, *qh = row + 128;
        const int8_t *sc = (const int8_t *)(row + 192);
        const float d = half(row + 208);
        /* two halves of 128: 6-bit values from 4 low bits in ql and 2 high bits in qh */
        for (int h = 0; h < 2; h++, ql += 64, qh += 32, sc += 8, out += 128) {
            for (int l = 0; l < 32; l++) {
                int is = l / 16;
                int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                out[l] = d * (float)sc[is] * (float)q1;
                out[l + 32] = d * (float)sc[is + 2] * (float)q2;
                out[l + 64] = d * (float)sc[is + 4] * (float)q3;
                out[l + 96] = d * (float)sc[is + 6] * (float)q4;
            }
        }
    }
}

/* The types, one row each (ggml-cpu's type traits): a block's elements and bytes, the portable dequantize,
 * and how the SIMD tiles (chunk_avx512, chunk_avx2) read its blocks, 32 values at a time:
 * - min_term: a chunk's values are d*q + m, so a dot adds m times the chunk's sum of x (xsum);
 * - split_scale: the two 16-value halves of a chunk have scales of their own (Q6_K);
 * - tiled: the tiles unpack it (others dequantize a row, then dot). */
typedef void (*dequantize_fn)(const uint8_t *row, int64_t cols, float *out);
typedef struct {
    int64_t block_elements, block_bytes;
    dequantize_fn dequantize;
    int min_term, split_scale, tiled;
} type_traits;

static const type_traits TRAITS[] = {
    [T_F32] = {1, 4, dequantize_f32, 0, 0, 0},
    [T_F16] = {1, 2, dequantize_f16, 0, 0, 0},
    [T_BF16] = {1, 2, dequantize_bf16, 0, 0, 0},
    [T_Q4_0] = {32, 18, dequantize_q4_0, 0, 0, 1},
    [T_Q4_1] = {32, 20, dequantize_q4_1, 1, 0, 1},
    [T_Q5_0] = {32, 22, dequantize_q5_0, 0, 0, 1},
    [T_Q5_1] = {32, 24, dequantize_q5_1, 1, 0, 1},
    [T_Q8_0] = {32, 34, dequantize_q8_0, 0, 0, 1},
    [T_Q2_K] = {256, 84, dequantize_q2_k, 0, 0, 0},
    [T_Q3_K] = {256, 110, dequantize_q3_k, 0, 0, 0},
    [T_Q4_K] = {256, 144, dequantize_q4_k, 1, 0, 1},
    [T_Q5_K] = {256, 176, dequantize_q5_k, 1, 0, 1},
    [T_Q6_K] = {256, 210, dequantize_q6_k, 0, 1, 1},
};

/* The type's row of TRAITS, or NULL for a type the kernels do not know. */
static const type_traits *traits(int type) {
    if (type < 0 || type >= (int)(sizeof TRAITS / sizeof *TRAITS) || !TRAITS[type].dequantize) return NULL;
    return &TRAITS[type];
}

int bridge_supports(int type) { return traits(type) != NULL; }

int64_t bridge_row_bytes(int type, int64_t cols) {
    const type_traits *t = traits(type);
    return t ? cols / t->block_elements * t->block_bytes : 0;
}

/* dot(row, x) for Q4_0 and Q4_1, without expanding the row: each block's integers meet
 * x directly, 16 lanes at a time, and the block scale (and Q4_1's min, via the block sums of x in
 * xsum) is applied per block. For decode, where each row meets one token. */
static inline __attribute__((always_inline)) float dot_row32(int type, const uint8_t *row, int64_t cols,
                                                              const float *x, const float *xsum, int64_t xs) {
    float acc[16] = {0};
    float mins = 0.0f;
    const int64_t blocks = cols / 32;
    switch (type) {
    case T_Q4_0:
        for (int64_t b = 0; b < blocks; b++, row += 18, x += 32) {
            const float d = half(row);
            const uint8_t *q = row + 2;
            for (int j = 0; j < 16; j++)
                acc[j] += d * ((float)((q[j] & 0xF) - 8) * x[j] + (float)((q[j] >> 4) - 8) * x[j + 16]);
        }
        break;
    case T_Q4_1:
        for (int64_t b = 0; b < blocks; b++, row += 20, x += 32) {
            const float d = half(row);
            const uint8_t *q = row + 4;
            mins += half(row + 2) * xsum[b * xs];
            for (int j = 0; j < 16; j++)
                acc[j] += d * ((float)(q[j] & 0xF) * x[j] + (float)(q[j] >> 4) * x[j + 16]);
        }
        break;
    }
    float sum = mins;
    for (int j = 0; j < 16; j++) sum += acc[j];
    return sum;
}

/* Q8_0 is left to dequantize-then-dot, which measured faster for it (its int8 loads widen poorly). */
static int is_block32(int type) { return type == T_Q4_0 || type == T_Q4_1; }

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>
#define HAVE_AVX512_DOTS 1

#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,f16c,fma")))

/* 16 bytes -> 16 lanes of int32 */
AVX512 static inline __attribute__((always_inline)) __m512i bytes16(const uint8_t *p) {
    return _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)p));
}

/* Chunk b (values 32b .. 32b+31) of a row: its values as integers in float, lo (the first 16) and hi
 * (the last 16), their scales dlo and dhi (equal unless TRAITS' split_scale), and its min m (the dot adds
 * m times the chunk's sum of x; 0 unless min_term). The chunk's value i is dlo*lo[i] (i < 16), dhi*hi[i-16],
 * plus m: the values of the type's dequantize, up to float rounding. */
AVX512 static inline __attribute__((always_inline)) void chunk_avx512(const int type, const uint8_t *row, int64_t b,
                                                                       const float *super, __m512 *lo,
                                                                       __m512 *hi, float *dlo, float *dhi,
                                                                       float *m) {
    const __m512i nibble = _mm512_set1_epi32(0xF);
    __m512i l, h;
    *m = 0.0f;
    switch (type) {
    case T_Q8_0: {
        const uint8_t *block = row + b * 34;
        *dlo = *dhi = _cvtsh_ss(*(const uint16_t *)block);
        l = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(block + 2)));
        h = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(block + 18)));
        break;
    }
    case T_Q4_0:
    case T_Q4_1: {
        const uint8_t *block = row + b * (type == T_Q4_1 ? 20 : 18);
        *dlo = *dhi = _cvtsh_ss(*(const uint16_t *)block);
        const __m512i q = bytes16(block + (type == T_Q4_1 ? 4 : 2));
        l = _mm512_and_si512(q, nibble);
        h = _mm512_srli_epi32(q, 4);
        if (type == T_Q4_0) {
            l = _mm512_sub_epi32(l, _mm512_set1_epi32(8));
            h = _mm512_sub_epi32(h, _mm512_set1_epi32(8));
        } else {
            *m = _cvtsh_ss(*(const uint16_t *)(block + 2));
        }
        break;
    }
    case T_Q5_0:
    case T_Q5_1: {
        const int has_min = type == T_Q5_1;
        const uint8_t *block = row + b * (has_min ? 24 : 22), *qh = block + (has_min ? 4 : 2);
        *dlo = *dhi = _cvtsh_ss(*(const uint16_t *)block);
        uint32_t high;
        memcpy(&high, qh, sizeof high);
        const __m512i q = bytes16(qh + 4), five = _mm512_set1_epi32(16);
        l = _mm512_mask_or_epi32(_mm512_and_si512(q, nibble), (__mmask16)(high & 0xFFFF), _mm512_and_si512(q, nibble), five);
        h = _mm512_mask_or_epi32(_mm512_srli_epi32(q, 4), (__mmask16)(high >> 16), _mm512_srli_epi32(q, 4), five);
        if (has_min) {
            *m = _cvtsh_ss(*(const uint16_t *)(block + 2));
        } else {
            l = _mm512_sub_epi32(l, five);
            h = _mm512_sub_epi32(h, five);
        }
        break;
    }
    case T_Q4_K:
    case T_Q5_K: {
        const int five_bits = type == T_Q5_K;
        const uint8_t *block = row + (b / 8) * (five_bits ? 176 : 144);
        const int j = (int)(b % 8);
        *dlo = *dhi = super[j];
        *m = super[16 + j];
        const uint8_t *q = block + (five_bits ? 48 : 16) + (j / 2) * 32;
        const __m512i q0 = bytes16(q), q1 = bytes16(q + 16);
        l = j % 2 ? _mm512_srli_epi32(q0, 4) : _mm512_and_si512(q0, nibble);
        h = j % 2 ? _mm512_srli_epi32(q1, 4) : _mm512_and_si512(q1, nibble);
        if (five_bits) { /* bit j of qh[i] is value i's fifth bit */
            const __m128i shift = _mm_cvtsi32_si128(j);
            const __m512i one = _mm512_set1_epi32(1);
            l = _mm512_or_si512(l, _mm512_slli_epi32(_mm512_and_si512(_mm512_srl_epi32(bytes16(block + 16), shift), one), 4));
            h = _mm512_or_si512(h, _mm512_slli_epi32(_mm512_and_si512(_mm512_srl_epi32(bytes16(block + 32), shift), one), 4));
        }
        break;
    }
    default: { /* T_Q6_K: chunk k of a 128-value half takes nibble k / 2 of ql[l + 32 * (k % 2)] and bits 2k,
                * 2k+1 of qh[l]; its two halves have the scales sc[2k] and sc[2k + 1]. Unpacked as 32 bytes
                * (values -32..31), then widened: half the operations of unpacking in 32-bit lanes. */
        const uint8_t *block = row + (b / 8) * 210;
        const int half_index = (int)(b % 8) / 4, k = (int)(b % 8) % 4;
        const uint8_t *ql = block + 64 * half_index + 32 * (k % 2), *qh = block + 128 + 32 * half_index;
        *dlo = super[b % 8];
        *dhi = super[8 + b % 8];
        const __m256i low_bits = _mm256_set1_epi8(0xF), two_bits = _mm256_set1_epi8(3);
        const __m256i q = _mm256_and_si256(_mm256_srl_epi16(_mm256_loadu_si256((const __m256i *)ql),
                                                            _mm_cvtsi32_si128(4 * (k / 2))), low_bits);
        const __m256i top = _mm256_and_si256(_mm256_srl_epi16(_mm256_loadu_si256((const __m256i *)qh),
                                                              _mm_cvtsi32_si128(2 * k)), two_bits);
        const __m256i v = _mm256_sub_epi8(_mm256_or_si256(q, _mm256_slli_epi16(top, 4)), _mm256_set1_epi8(32));
        l = _mm512_cvtepi8_epi32(_mm256_castsi256_si128(v));
        h = _mm512_cvtepi8_epi32(_mm256_extracti128_si256(v, 1));
        break;
    }
    }
    *lo = _mm512_cvtepi32_ps(l);
    *hi = _mm512_cvtepi32_ps(h);
}

/* A Q4_K or Q5_K super-block's scales, once for its 8 chunks: super[c] and super[8 + c] are chunk c's
 * scale (the same; the tiles read a chunk's two halves' scales there), super[16 + c] its min term. 256-bit
 * code, so the AVX-512 and the AVX2 tiles share it. The same products as k4_scale per chunk: the same bits. */
__attribute__((target("avx2,f16c,fma"))) static inline __attribute__((always_inline)) void super_k4(const uint8_t *block,
                                                                                                   float *super) {
    /* k4_scale for the 8 chunks at once, a lane each. Lane j < 4: scale sc[j] & 63, min
     * sc[j + 4] & 63; lane j >= 4: scale (sc[j + 4] & 15) | (sc[j - 4] >> 6) << 4, min
     * (sc[j + 4] >> 4) | (sc[j] >> 6) << 4. */
    const uint8_t *sc = block + 4;
    const __m256i a = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)sc));       /* sc[j] */
    const __m256i c = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(sc + 4))); /* sc[j + 4] */
    const __m256i a_low = _mm256_permutevar8x32_epi32(a, _mm256_setr_epi32(0, 1, 2, 3, 0, 1, 2, 3)); /* sc[j - 4] */
    const __m256i six = _mm256_set1_epi32(63), four = _mm256_set1_epi32(15);
    const __m256i high_scale = _mm256_or_si256(_mm256_and_si256(c, four), _mm256_slli_epi32(_mm256_srli_epi32(a_low, 6), 4));
    const __m256i high_min = _mm256_or_si256(_mm256_srli_epi32(c, 4), _mm256_slli_epi32(_mm256_srli_epi32(a, 6), 4));
    const __m256i scale = _mm256_blend_epi32(_mm256_and_si256(a, six), high_scale, 0xF0);
    const __m256i min = _mm256_blend_epi32(_mm256_and_si256(c, six), high_min, 0xF0);
    const __m256 d = _mm256_set1_ps(_cvtsh_ss(*(const uint16_t *)block));
    const __m256 dmin = _mm256_set1_ps(_cvtsh_ss(*(const uint16_t *)(block + 2)));
    const __m256 dd = _mm256_mul_ps(d, _mm256_cvtepi32_ps(scale));
    _mm256_storeu_ps(super, dd);
    _mm256_storeu_ps(super + 8, dd);
    /* -(dmin * min): the product, then its sign flipped, as the scalar code does */
    _mm256_storeu_ps(super + 16, _mm256_xor_ps(_mm256_mul_ps(dmin, _mm256_cvtepi32_ps(min)), _mm256_set1_ps(-0.0f)));
}

/* A K-quant super-block's scales, once for its 8 chunks (chunk_avx512 reads them): super[c] and super[8 + c]
 * are chunk c's dlo and dhi, super[16 + c] its min term m. The same products as per chunk, so the same
 * bits. Q6_K: scale i of 16 is d * sc[i], and chunk c's halves have scales 2c and 2c + 1. */
AVX512 static inline __attribute__((always_inline)) void super_avx512(const int type, const uint8_t *row,
                                                                       int64_t index, float *super) {
    if (type == T_Q6_K) {
        const uint8_t *block = row + index * 210;
        const __m512 d = _mm512_set1_ps(_cvtsh_ss(*(const uint16_t *)(block + 208)));
        const __m512i sc = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(block + 192)));
        const __m512i evens_then_odds = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
        _mm512_storeu_ps(super, _mm512_permutexvar_ps(evens_then_odds, _mm512_mul_ps(d, _mm512_cvtepi32_ps(sc))));
        return;
    }
    super_k4(row + index * (type == T_Q5_K ? 176 : 144), super);
}

/* R rows (1 or 2, `stride` bytes apart) against k tokens (k <= 8, x rows x_stride apart; the chunk sums of
 * token j at xsum[b * xs + j]): out[r * 8 + j]. Each chunk is unpacked once for the k tokens (eight tokens
 * share each unpacking in prefill), and each token's x loaded once for the R rows. Per (row, token) and
 * chunk: the integers meet x (a product and an FMA), the scale comes in with one more FMA (each half's with
 * its own, for split scales), and a min meets the chunk's sum of x; then one reduction. So a dot's bits are
 * the same whatever R, k and its place in the tile. */
AVX512 static inline __attribute__((always_inline)) void tile_avx512(const int type, const uint8_t *row,
                                                                      int64_t stride, int R, int64_t cols,
                                                                      const float *x, int64_t x_stride,
                                                                      const float *xsum, int64_t xs, int k,
                                                                      float *out) {
    const int split = TRAITS[type].split_scale, min_term = TRAITS[type].min_term;
    __m512 acc[2][8];
    /* each row's min terms, a lane per token (tokens 0-3, then 4-7): lane by lane the same FMAs as one at a time */
    __m128 mins[2][2];
    const __mmask8 tokens = (__mmask8)((1u << k) - 1);
    for (int r = 0; r < R; r++) {
        mins[r][0] = mins[r][1] = _mm_setzero_ps();
        for (int j = 0; j < k; j++) acc[r][j] = _mm512_setzero_ps();
    }
    const int64_t chunks = cols / 32;
    const int super_blocks = TRAITS[type].block_elements == 256;
    float super[2][24]; /* K-quants: each row's current super-block's scales (super_avx512) */
    for (int64_t b = 0; b < chunks; b++) {
        __m512 lo[2], hi[2];
        float dlo[2], dhi[2], m[2];
        if (super_blocks && b % 8 == 0)
            for (int r = 0; r < R; r++) super_avx512(type, row + r * stride, b / 8, super[r]);
        for (int r = 0; r < R; r++)
            chunk_avx512(type, row + r * stride, b, super[r], &lo[r], &hi[r], &dlo[r], &dhi[r], &m[r]);
        for (int j = 0; j < k; j++) {
            const __m512 x0 = _mm512_loadu_ps(x + j * x_stride + b * 32);
            const __m512 x1 = _mm512_loadu_ps(x + j * x_stride + b * 32 + 16);
            for (int r = 0; r < R; r++) {
                if (split) {
                    acc[r][j] = _mm512_fmadd_ps(_mm512_mul_ps(lo[r], x0), _mm512_set1_ps(dlo[r]), acc[r][j]);
                    acc[r][j] = _mm512_fmadd_ps(_mm512_mul_ps(hi[r], x1), _mm512_set1_ps(dhi[r]), acc[r][j]);
                } else {
                    const __m512 t = _mm512_fmadd_ps(hi[r], x1, _mm512_mul_ps(lo[r], x0));
                    acc[r][j] = _mm512_fmadd_ps(t, _mm512_set1_ps(dlo[r]), acc[r][j]);
                }
            }
        }
        if (min_term)
            for (int half = 0; half < (k > 4 ? 2 : 1); half++) {
                const __m128 sums = _mm_maskz_loadu_ps((__mmask8)(tokens >> (4 * half)), xsum + b * xs + 4 * half);
                for (int r = 0; r < R; r++) mins[r][half] = _mm_fmadd_ps(_mm_set1_ps(m[r]), sums, mins[r][half]);
            }
    }
    for (int r = 0; r < R; r++) {
        float lanes[8];
        _mm_storeu_ps(lanes, mins[r][0]);
        _mm_storeu_ps(lanes + 4, mins[r][1]);
        for (int j = 0; j < k; j++) out[r * 8 + j] = _mm512_reduce_add_ps(acc[r][j]) + lanes[j];
    }
}

/* Rows [first, first + R) of a weight whose type TRAITS marks tiled (R = 1 or 2) against all n tokens,
 * four at a time (eight for Q5_0 and Q5_1, whose unpacking costs the most: measured 17% faster in prefill;
 * the other types measured the same or slower, Q4_1 by 25%), then the rest: y[t * rows + first + r].
 * Inlined once per type (rows_avx512 below). */
AVX512 static inline __attribute__((always_inline)) void rows_avx512_of(const int type, const uint8_t *data,
                                                                         int64_t stride, int64_t first, int R,
                                                                         int64_t cols, const float *x,
                                                                         const float *xsum, int64_t n, float *y,
                                                                         int64_t rows) {
    const uint8_t *row = data + first * stride;
    const int widest = type == T_Q5_0 || type == T_Q5_1 ? 8 : 4;
    float out[16];
    for (int64_t t = 0; t < n;) {
        const int k = n - t >= widest ? widest : n - t >= 4 ? 4 : (int)(n - t);
        const float *xt = x + t * cols, *st = xsum + t;
        /* constant R and k in each call, so each tile is unrolled on its own */
#define TILE(RR, KK) tile_avx512(type, row, stride, RR, cols, xt, cols, st, n, KK, out)
        if (R == 2) {
            switch (k) {
            case 8: if (widest == 8) TILE(2, 8); break; /* compiled for the types that take it */
            case 4: TILE(2, 4); break;
            case 3: TILE(2, 3); break;
            case 2: TILE(2, 2); break;
            default: TILE(2, 1); break;
            }
        } else {
            switch (k) {
            case 8: if (widest == 8) TILE(1, 8); break;
            case 4: TILE(1, 4); break;
            case 3: TILE(1, 3); break;
            case 2: TILE(1, 2); break;
            default: TILE(1, 1); break;
            }
        }
#undef TILE
        for (int r = 0; r < R; r++)
            for (int j = 0; j < k; j++) y[(t + j) * rows + first + r] = out[r * 8 + j];
        t += k;
    }
}

/* rows_avx512_of with the type a constant in each case, so each type's unpacking is compiled on its own. */
AVX512 static void rows_avx512(int type, const uint8_t *data, int64_t stride, int64_t first, int R, int64_t cols,
                               const float *x, const float *xsum, int64_t n, float *y, int64_t rows) {
#define ROWS_OF(T) rows_avx512_of(T, data, stride, first, R, cols, x, xsum, n, y, rows)
    switch (type) {
    case T_Q4_0: ROWS_OF(T_Q4_0); break;
    case T_Q4_1: ROWS_OF(T_Q4_1); break;
    case T_Q5_0: ROWS_OF(T_Q5_0); break;
    case T_Q5_1: ROWS_OF(T_Q5_1); break;
    case T_Q8_0: ROWS_OF(T_Q8_0); break;
    case T_Q4_K: ROWS_OF(T_Q4_K); break;
    case T_Q5_K: ROWS_OF(T_Q5_K); break;
    default: ROWS_OF(T_Q6_K); break;
    }
#undef ROWS_OF
}

/* --- AVX2: the same tiles in 8-lane vectors, for CPUs without AVX-512 (x86-64-v3) ---------------------- */
#define AVX2 __attribute__((target("avx2,f16c,fma")))

/* 8 bytes -> 8 lanes of int32 */
AVX2 static inline __attribute__((always_inline)) __m256i bytes8(const uint8_t *p) {
    return _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p));
}

/* 32 signed bytes (values 0-15 in a, 16-31 in b) -> four 8-lane vectors of int32, in value order */
AVX2 static inline __attribute__((always_inline)) void widen32(__m128i a, __m128i b, __m256i v[4]) {
    v[0] = _mm256_cvtepi8_epi32(a);
    v[1] = _mm256_cvtepi8_epi32(_mm_srli_si128(a, 8));
    v[2] = _mm256_cvtepi8_epi32(b);
    v[3] = _mm256_cvtepi8_epi32(_mm_srli_si128(b, 8));
}

/* Bits 0-15 of `bits` (first: byte i of the result for bit i) or 16-31 -> 0xFF in the bytes whose bit is set */
AVX2 static inline __attribute__((always_inline)) __m128i bit_bytes(__m128i bits, int first) {
    const __m128i which = first == 0 ? _mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1)
                                     : _mm_setr_epi8(2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m128i mask = _mm_set1_epi64x((long long)0x8040201008040201ULL);
    return _mm_cmpeq_epi8(_mm_and_si128(_mm_shuffle_epi8(bits, which), mask), mask);
}

/* Chunk b of a row as chunk_avx512 reads it, in four 8-value vectors q[0..3] (values 0-7, 8-15, 16-23,
 * 24-31): dlo scales q[0] and q[1], dhi q[2] and q[3]; m is the min (0 unless min_term). Sub-byte values
 * are unpacked as bytes, 16 or 32 at a time, then widened; K-quant scales come from `super` (super_k4). */
AVX2 static inline __attribute__((always_inline)) void chunk_avx2(const int type, const uint8_t *row, int64_t b,
                                                                   const float *super, __m256 q[4], float *dlo,
                                                                   float *dhi, float *m) {
    const __m256i nibble = _mm256_set1_epi32(0xF);
    const __m128i low4 = _mm_set1_epi8(0xF);
    __m256i v[4];
    *m = 0.0f;
    switch (type) {
    case T_Q8_0: {
        const uint8_t *block = row + b * 34;
        *dlo = *dhi = _cvtsh_ss(*(const uint16_t *)block);
        for (int i = 0; i < 4; i++) v[i] = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(block + 2 + 8 * i)));
        break;
    }
    case T_Q4_0:
    case T_Q4_1: {
        const int has_min = type == T_Q4_1;
        const uint8_t *block = row + b * (has_min ? 20 : 18);
        const uint8_t *qs = block + (has_min ? 4 : 2);
        *dlo = *dhi = _cvtsh_ss(*(const uint16_t *)block);
        if (has_min) *m = _cvtsh_ss(*(const uint16_t *)(block + 2));
        const __m256i a = bytes8(qs), c = bytes8(qs + 8);
        v[0] = _mm256_and_si256(a, nibble);
        v[1] = _mm256_and_si256(c, nibble);
        v[2] = _mm256_srli_epi32(a, 4);
        v[3] = _mm256_srli_epi32(c, 4);
        if (!has_min)
            for (int i = 0; i < 4; i++) v[i] = _mm256_sub_epi32(v[i], _mm256_set1_epi32(8));
        break;
    }
    case T_Q5_0:
    case T_Q5_1: { /* value i: nibble i | (bit i of qh) << 4, less 16 without a min */
        const int has_min = type == T_Q5_1;
        const uint8_t *block = row + b * (has_min ? 24 : 22), *qh = block + (has_min ? 4 : 2);
        *dlo = *dhi = _cvtsh_ss(*(const uint16_t *)block);
        if (has_min) *m = _cvtsh_ss(*(const uint16_t *)(block + 2));
        uint32_t high;
        memcpy(&high, qh, sizeof high);
        const __m128i qs = _mm_loadu_si128((const __m128i *)(qh + 4)), bits = _mm_cvtsi32_si128((int)high);
        const __m128i lo = _mm_and_si128(qs, low4), hi = _mm_and_si128(_mm_srli_epi16(qs, 4), low4);
        const __m128i sixteen = _mm_set1_epi8(16), set_lo = bit_bytes(bits, 0), set_hi = bit_bytes(bits, 16);
        if (has_min)
            widen32(_mm_or_si128(lo, _mm_and_si128(set_lo, sixteen)), _mm_or_si128(hi, _mm_and_si128(set_hi, sixteen)), v);
        else /* (nibble | 16) - 16 = nibble; nibble - 16 without the bit */
            widen32(_mm_sub_epi8(lo, _mm_andnot_si128(set_lo, sixteen)), _mm_sub_epi8(hi, _mm_andnot_si128(set_hi, sixteen)),
                    v);
        break;
    }
    case T_Q4_K:
    case T_Q5_K: { /* value i: nibble (j % 2) of qs[i] (| bit j of qh[i] << 4 for Q5_K) */
        const int five_bits = type == T_Q5_K;
        const uint8_t *block = row + (b / 8) * (five_bits ? 176 : 144);
        const int j = (int)(b % 8);
        *dlo = *dhi = super[j];
        *m = super[16 + j];
        const uint8_t *qs = block + (five_bits ? 48 : 16) + (j / 2) * 32;
        __m256i bytes = _mm256_and_si256(_mm256_srl_epi16(_mm256_loadu_si256((const __m256i *)qs), _mm_cvtsi32_si128(4 * (j % 2))),
                                         _mm256_set1_epi8(0xF));
        if (five_bits) {
            const __m256i top = _mm256_and_si256(
                _mm256_srl_epi16(_mm256_loadu_si256((const __m256i *)(block + 16)), _mm_cvtsi32_si128(j)), _mm256_set1_epi8(1));
            bytes = _mm256_or_si256(bytes, _mm256_slli_epi16(top, 4));
        }
        widen32(_mm256_castsi256_si128(bytes), _mm256_extracti128_si256(bytes, 1), v);
        break;
    }
    default: { /* T_Q6_K, as in chunk_avx512: 32 bytes (values -32..31), then widened */
        const uint8_t *block = row + (b / 8) * 210;
        const int half_index = (int)(b % 8) / 4, k = (int)(b % 8) % 4;
        const uint8_t *ql = block + 64 * half_index + 32 * (k % 2), *qh = block + 128 + 32 * half_index;
        const int8_t *sc = (const int8_t *)(block + 192) + 8 * half_index;
        const float d = _cvtsh_ss(*(const uint16_t *)(block + 208));
        *dlo = d * (float)sc[2 * k];
        *dhi = d * (float)sc[2 * k + 1];
        const __m256i low = _mm256_and_si256(_mm256_srl_epi16(_mm256_loadu_si256((const __m256i *)ql), _mm_cvtsi32_si128(4 * (k / 2))),
                                             _mm256_set1_epi8(0xF));
        const __m256i high = _mm256_and_si256(_mm256_srl_epi16(_mm256_loadu_si256((const __m256i *)qh), _mm_cvtsi32_si128(2 * k)),
                                              _mm256_set1_epi8(3));
        const __m256i bytes = _mm256_sub_epi8(_mm256_or_si256(low, _mm256_slli_epi16(high, 4)), _mm256_set1_epi8(32));
        widen32(_mm256_castsi256_si128(bytes), _mm256_extracti128_si256(bytes, 1), v);
        break;
    }
    }
    for (int i = 0; i < 4; i++) q[i] = _mm256_cvtepi32_ps(v[i]);
}

AVX2 static inline __attribute__((always_inline)) float sum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* One row against k tokens (k <= 4): out[j]. Per (token, chunk) the integers meet x in two products and two
 * FMAs, the scales come in with two more FMAs, and a min meets the chunk's sum of x: the same order in
 * every batch, as in tile_avx512 (one row at a time here: 16 registers hold no more). */
AVX2 static inline __attribute__((always_inline)) void tile_avx2(const int type, const uint8_t *row, int64_t cols,
                                                                  const float *x, const float *xsum, int64_t xs,
                                                                  int k, float *out) {
    const int split = TRAITS[type].split_scale, min_term = TRAITS[type].min_term;
    __m256 acc[4];
    float mins[4];
    for (int j = 0; j < k; j++) {
        acc[j] = _mm256_setzero_ps();
        mins[j] = 0.0f;
    }
    const int64_t chunks = cols / 32;
    const int k4 = type == T_Q4_K || type == T_Q5_K;
    float super[24]; /* Q4_K, Q5_K: the current super-block's scales (super_k4) */
    for (int64_t b = 0; b < chunks; b++) {
        __m256 q[4];
        float dlo, dhi, m;
        if (k4 && b % 8 == 0) super_k4(row + (b / 8) * (type == T_Q5_K ? 176 : 144), super);
        chunk_avx2(type, row, b, super, q, &dlo, &dhi, &m);
        for (int j = 0; j < k; j++) {
            const float *xb = x + j * cols + b * 32;
            const __m256 x0 = _mm256_loadu_ps(xb), x1 = _mm256_loadu_ps(xb + 8);
            const __m256 x2 = _mm256_loadu_ps(xb + 16), x3 = _mm256_loadu_ps(xb + 24);
            if (split) {
                acc[j] = _mm256_fmadd_ps(_mm256_fmadd_ps(q[1], x1, _mm256_mul_ps(q[0], x0)), _mm256_set1_ps(dlo), acc[j]);
                acc[j] = _mm256_fmadd_ps(_mm256_fmadd_ps(q[3], x3, _mm256_mul_ps(q[2], x2)), _mm256_set1_ps(dhi), acc[j]);
            } else {
                const __m256 t = _mm256_fmadd_ps(q[2], x2, _mm256_mul_ps(q[0], x0));
                const __m256 u = _mm256_fmadd_ps(q[3], x3, _mm256_mul_ps(q[1], x1));
                acc[j] = _mm256_fmadd_ps(_mm256_add_ps(t, u), _mm256_set1_ps(dlo), acc[j]);
            }
            if (min_term) mins[j] = fmaf(m, xsum[b * xs + j], mins[j]);
        }
    }
    for (int j = 0; j < k; j++) out[j] = sum8(acc[j]) + mins[j];
}

/* Row r of a weight whose type TRAITS marks tiled against all n tokens, four at a time: y[t * rows + r]. */
AVX2 static inline __attribute__((always_inline)) void row_avx2_of(const int type, const uint8_t *row, int64_t r,
                                                                    int64_t cols, const float *x, const float *xsum,
                                                                    int64_t n, float *y, int64_t rows) {
    float out[4];
    for (int64_t t = 0; t < n; t += 4) {
        const int k = n - t < 4 ? (int)(n - t) : 4;
        const float *xt = x + t * cols, *st = xsum + t;
        switch (k) {
        case 4: tile_avx2(type, row, cols, xt, st, n, 4, out); break;
        case 3: tile_avx2(type, row, cols, xt, st, n, 3, out); break;
        case 2: tile_avx2(type, row, cols, xt, st, n, 2, out); break;
        default: tile_avx2(type, row, cols, xt, st, n, 1, out); break;
        }
        for (int j = 0; j < k; j++) y[(t + j) * rows + r] = out[j];
    }
}

AVX2 static void row_avx2(int type, const uint8_t *row, int64_t r, int64_t cols, const float *x, const float *xsum,
                          int64_t n, float *y, int64_t rows) {
#define ROW_OF(T) row_avx2_of(T, row, r, cols, x, xsum, n, y, rows)
    switch (type) {
    case T_Q4_0: ROW_OF(T_Q4_0); break;
    case T_Q4_1: ROW_OF(T_Q4_1); break;
    case T_Q5_0: ROW_OF(T_Q5_0); break;
    case T_Q5_1: ROW_OF(T_Q5_1); break;
    case T_Q8_0: ROW_OF(T_Q8_0); break;
    case T_Q4_K: ROW_OF(T_Q4_K); break;
    case T_Q5_K: ROW_OF(T_Q5_K); break;
    default: ROW_OF(T_Q6_K); break;
    }
#undef ROW_OF
}
#endif

/* Per-thread scratch that only grows: each thread keeps the largest buffer of each kind it has needed,
 * so steady decoding allocates nothing; freed when the thread ends. Sizes follow the model's dims and the
 * batch bounds, so they stay bounded. */
typedef struct {
    void *data;
    size_t bytes;
} grown_buffer;
static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static atomic_long scratch_grows; /* how many times any thread's buffer grew (tests read it) */

static void free_scratch(void *p) {
    grown_buffer *b = p;
    for (int i = 0; i < SCRATCH_KINDS; i++) free(b[i].data);
    free(b);
}

static void make_scratch_key(void) { pthread_key_create(&scratch_key, free_scratch); }

/* This thread's buffer of `kind`, at least `bytes` long; NULL when out of memory. */
static void *thread_scratch(int kind, size_t bytes) {
    pthread_once(&scratch_once, make_scratch_key);
    grown_buffer *b = pthread_getspecific(scratch_key);
    if (!b) {
        b = calloc(SCRATCH_KINDS, sizeof *b);
        if (!b) return NULL;
        if (pthread_setspecific(scratch_key, b)) {
            free(b);
            return NULL;
        }
    }
    if (b[kind].bytes < bytes) {
        void *grown = malloc(bytes);
        if (!grown) return NULL;
        free(b[kind].data);
        b[kind].data = grown;
        b[kind].bytes = bytes;
        atomic_fetch_add(&scratch_grows, 1);
    }
    return b[kind].data;
}

long bridge_scratch_grows(void) { return atomic_load(&scratch_grows); }

static int cpu_level = -1;

/* Caps the level the hand-written paths use (tests run the compiler-vectorised paths this way). */
void bridge_cap_cpu_level(int level) {
    int have = bridge_cpu_level();
    cpu_level = level < have ? level : have;
}

int bridge_active_cpu_level(void) {
    if (cpu_level < 0) cpu_level = bridge_cpu_level();
    return cpu_level;
}

/* One weight row against every token: y[t * rows] = dot(row, x[t]) for t < n. */
ROW_CLONES
static void row_times_tokens(int type, const uint8_t *row, int64_t cols, const float *x, int64_t n,
                             float *y, int64_t rows, float *tmp, const float *xsum) {
    if (is_block32(type)) {
        /* Q4_0 and Q4_1 always take the fused per-token dot, whatever n is, so a token's result never
         * depends on how many others share the batch (batch invariance across tenants). */
        for (int64_t t = 0; t < n; t++) y[t * rows] = dot_row32(type, row, cols, x + t * cols, xsum + t, n);
        return;
    }
    TRAITS[type].dequantize(row, cols, tmp);
    for (int64_t t = 0; t < n; t++) {
        const float *xt = x + t * cols;
        float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
        for (int64_t k = 0; k < cols; k++) sum += tmp[k] * xt[k];
        y[t * rows] = sum;
    }
}

int bridge_matmul(const uint8_t *w, int type, int64_t rows, int64_t cols, const float *x, int64_t n,
                  float *y, int n_threads) {
    bridge_weight weight = {w, type, rows, cols};
    return matmul_weight(&weight, x, n, y, n_threads);
}

/* One part of a matrix product: rows [begin, end) of the weight against every token. */
typedef struct {
    const bridge_weight *wt;
    const float *x, *xsum;
    float *y;
    int64_t n, stride;
    atomic_int failed;
} matmul_job;

static void matmul_rows(void *arg, int64_t begin, int64_t end) {
    matmul_job *job = arg;
    const bridge_weight *wt = job->wt;
#ifdef HAVE_AVX512_DOTS
    /* With AVX-512 the tiles beat dequantize-then-dot at every batch size measured. */
    if (cpu_level == 2 && TRAITS[wt->type].tiled) {
        /* Pairs of rows share each token's loads, and give a lone token (decode) two independent chains of
         * FMAs: measured 10-20% faster at one token, but for Q8_0, whose pairs ran 2x slower there. */
        const int pair = job->n >= 4 || wt->type != T_Q8_0 ? 2 : 1;
        for (int64_t r = begin; r < end; r += pair)
            rows_avx512(wt->type, wt->data, job->stride, r, end - r >= pair ? pair : 1, wt->cols, job->x, job->xsum,
                        job->n, job->y, wt->rows);
        return;
    }
    if (cpu_level == 1 && TRAITS[wt->type].tiled) { /* the same chunks, read in 8-lane vectors */
        for (int64_t r = begin; r < end; r++)
            row_avx2(wt->type, wt->data + r * job->stride, r, wt->cols, job->x, job->xsum, job->n, job->y, wt->rows);
        return;
    }
#endif
    float *tmp = thread_scratch(SCRATCH_ROW, (size_t)wt->cols * sizeof(float));
    if (!tmp) {
        atomic_store(&job->failed, 1);
        return;
    }
    for (int64_t r = begin; r < end; r++)
        row_times_tokens(wt->type, wt->data + r * job->stride, wt->cols, job->x, job->n, job->y + r, wt->rows, tmp,
                         job->xsum);
}

static int matmul_weight(const bridge_weight *wt, const float *x, int64_t n, float *y, int n_threads) {
    const int type = wt->type;
    const int64_t cols = wt->cols;
    if (cpu_level < 0) cpu_level = bridge_cpu_level();
    int64_t stride = bridge_row_bytes(type, cols);
    if (stride == 0 || cols % traits(type)->block_elements != 0) return -1;
    /* Chunk sums of each token's x, chunk by chunk (cols/32, n) (plus room for a tile's 8-lane read): a
     * min term is min * sum(x over the chunk); only types with one need them. */
    float *xsum = thread_scratch(SCRATCH_XSUM, (size_t)(n * (cols / 32) + 8) * sizeof(float));
    if (!xsum) return -2;
    if (traits(type)->min_term)
        for (int64_t t = 0; t < n; t++)
            for (int64_t b = 0; b < cols / 32; b++) {
                float s = 0.0f;
                for (int j = 0; j < 32; j++) s += x[t * cols + b * 32 + j];
                xsum[b * n + t] = s;
            }
    matmul_job job = {wt, x, xsum, y, n, stride, 0};
    bridge_parallel_for(matmul_rows, &job, wt->rows, n_threads);
    return atomic_load(&job.failed) ? -2 : 0;
}

typedef struct {
    const uint8_t *p;
    _Atomic uint64_t sum;
} read_job;

/* Lines [begin, end) of 64 bytes: eight 64-bit words each, summed in eight lanes the compiler vectorises. */
ROW_CLONES
static void read_lines(void *arg, int64_t begin, int64_t end) {
    read_job *job = arg;
    uint64_t lanes[8] = {0};
    for (int64_t line = begin; line < end; line++) {
        const uint64_t *words = (const uint64_t *)(job->p + line * 64);
        for (int i = 0; i < 8; i++) lanes[i] += words[i];
    }
    uint64_t sum = 0;
    for (int i = 0; i < 8; i++) sum += lanes[i];
    atomic_fetch_add(&job->sum, sum);
}

uint64_t bridge_read_memory(const uint8_t *p, int64_t n, int n_threads) {
    read_job job = {p, 0};
    bridge_parallel_for(read_lines, &job, n / 64, n_threads);
    return atomic_load(&job.sum);
}

int bridge_cpu_level(void) {
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl"))
        return 2;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 1;
#endif
    return 0;
}


/* --- one transformer layer, fused -------------------------------------------------------------------- */

/* float to IEEE half, rounding to nearest even, as numpy's astype(float16) does. */
static inline __attribute__((always_inline)) uint16_t to_half(float f) {
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint32_t sign = (x >> 16) & 0x8000, exp = (x >> 23) & 0xFF, man = x & 0x7FFFFF;
    if (exp == 0xFF) return (uint16_t)(sign | 0x7C00 | (man ? 0x200 | (man >> 13) : 0));
    int32_t e = (int32_t)exp - 127 + 15;
    if (e >= 31) return (uint16_t)(sign | 0x7C00);
    if (e <= 0) {
        if (e < -10) return (uint16_t)sign;
        man |= 0x800000;
        uint32_t shift = (uint32_t)(14 - e);
        uint32_t half_man = man >> shift, rest = man & ((1u << shift) - 1), halfway = 1u << (shift - 1);
        if (rest > halfway || (rest == halfway && (half_man & 1))) half_man++;
        return (uint16_t)(sign | half_man);
    }
    uint32_t h = sign | ((uint32_t)e << 10) | (man >> 13), rest = man & 0x1FFF;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) h++; /* may carry into the exponent: still right */
    return (uint16_t)h;
}

static inline __attribute__((always_inline)) float from_half(uint16_t h) {
#if defined(__FLT16_MAX__)
    _Float16 f; /* a plain reinterpretation */
    memcpy(&f, &h, sizeof f);
    return (float)f;
#else
    uint8_t b[2] = {(uint8_t)(h & 0xFF), (uint8_t)(h >> 8)};
    return half(b);
#endif
}

static void rmsnorm(const float *x, const float *weight, int64_t n, int64_t d, float eps, float *out) {
    for (int64_t t = 0; t < n; t++) {
        double ss = 0.0;
        for (int64_t i = 0; i < d; i++) ss += (double)x[t * d + i] * x[t * d + i];
        const float scale = (float)(1.0 / sqrt(ss / (double)d + eps));
        for (int64_t i = 0; i < d; i++) out[t * d + i] = x[t * d + i] * scale * weight[i];
    }
}

/* Pairs of each head's first rope_dim dims, at positions position..: adjacent ones (2i, 2i+1), or (i, i +
 * rope_dim/2) with neox (GPT-NeoX's layout); pair i turns by the tables' angle i. */
static void rope(float *v, int64_t n, int64_t heads, int64_t head_dim, int64_t rope_dim, int64_t position,
                 const float *cos_t, const float *sin_t, int neox) {
    const int64_t half_dim = rope_dim / 2, other = neox ? half_dim : 1, step = neox ? 1 : 2;
    for (int64_t t = 0; t < n; t++) {
        const float *c = cos_t + (position + t) * half_dim, *s = sin_t + (position + t) * half_dim;
        for (int64_t h = 0; h < heads; h++) {
            float *p = v + (t * heads + h) * head_dim;
            for (int64_t i = 0; i < half_dim; i++) {
                float *a = p + i * step, *b = a + other;
                const float x0 = *a, x1 = *b;
                *a = x0 * c[i] - x1 * s[i];
                *b = x0 * s[i] + x1 * c[i];
            }
        }
    }
}

/* x (rows, d) += bias (d) */
static void add_bias(float *x, const float *bias, int64_t rows, int64_t d) {
    for (int64_t r = 0; r < rows; r++)
        for (int64_t i = 0; i < d; i++) x[r * d + i] += bias[i];
}

/* Attention's three steps for one row (a token and a query head), per ISA. Each gives a row the same bits
 * whatever else runs:
 * - scores: p[s] = scale * sum_i q[i] k_s[i], the sum in order of i (so every ISA agrees bit for bit),
 *   from a block of keys held transposed, kt[i * ATTN_KEYS + j] for key b0 + j;
 * - softmax: p[s] = exp(p[s] - top), their sum, then each weight divided by it and rounded to f16;
 * - values: o[i] = sum_s w_s v_s[i], in order of s. */
enum { ATTN_TOKENS = 64, ATTN_KEYS = 64 };

static void scores_portable(const float *q, const float *kt, int64_t head_dim, int64_t b0, int64_t s0, int64_t s1,
                            float scale, float *p) {
    for (int64_t s = s0; s < s1; s++) {
        float dot = 0.0f;
        for (int64_t i = 0; i < head_dim; i++) dot = fmaf(q[i], kt[i * ATTN_KEYS + (s - b0)], dot);
        p[s] = dot * scale;
    }
}

static void softmax_portable(float *p, int64_t from, int64_t limit, float top) {
    float sum = 0.0f;
    for (int64_t s = from; s < limit; s++) {
        p[s] = expf(p[s] - top);
        sum += p[s];
    }
    for (int64_t s = from; s < limit; s++) p[s] = from_half(to_half(p[s] / sum));
}

static void values_portable(float *o, const float *p, const float *v, int64_t head_dim, int64_t b0, int64_t s0,
                            int64_t s1) {
    for (int64_t s = s0; s < s1; s++)
        for (int64_t i = 0; i < head_dim; i++) o[i] = fmaf(p[s], v[(s - b0) * head_dim + i], o[i]);
}

#ifdef HAVE_AVX512_DOTS
AVX512 static void scores_avx512(const float *q, const float *kt, int64_t head_dim, int64_t b0, int64_t s0,
                                 int64_t s1, float scale, float *p) {
    for (int64_t g = (s0 - b0) & ~(int64_t)15; g < s1 - b0; g += 16) { /* 16 keys at a time, one per lane */
        __m512 acc = _mm512_setzero_ps();
        for (int64_t i = 0; i < head_dim; i++)
            acc = _mm512_fmadd_ps(_mm512_set1_ps(q[i]), _mm512_loadu_ps(kt + i * ATTN_KEYS + g), acc);
        const int64_t lo = s0 - b0 > g ? s0 - b0 - g : 0, hi = s1 - b0 - g < 16 ? s1 - b0 - g : 16;
        const __mmask16 keep = (__mmask16)(((1u << hi) - 1) & ~((1u << lo) - 1));
        _mm512_mask_storeu_ps(p + b0 + g, keep, _mm512_mul_ps(acc, _mm512_set1_ps(scale)));
    }
}

/* exp(x) for x <= 0 (Cephes' expf: a degree-6 polynomial on x - n ln 2, times 2^n); within 2 ulp. */
AVX512 static inline __attribute__((always_inline)) __m512 exp_avx512(__m512 x) {
    x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    x = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    x = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), x);
    __m512 y = _mm512_set1_ps(1.9875691500e-4f);
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(1.3981999507e-3f));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(8.3334519073e-3f));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(4.1665795894e-2f));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(1.6666665459e-1f));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(5.0000001201e-1f));
    y = _mm512_fmadd_ps(y, _mm512_mul_ps(x, x), _mm512_add_ps(x, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(y, n);
}

AVX512 static void softmax_avx512(float *p, int64_t from, int64_t limit, float top) {
    __m512 sums = _mm512_setzero_ps();
    const __m512 t = _mm512_set1_ps(top);
    for (int64_t s = from; s < limit; s += 16) {
        const __mmask16 m = limit - s >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (limit - s)) - 1);
        const __m512 e = exp_avx512(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, p + s), t));
        _mm512_mask_storeu_ps(p + s, m, e);
        sums = _mm512_add_ps(sums, _mm512_maskz_mov_ps(m, e));
    }
    const float sum = _mm512_reduce_add_ps(sums);
    const __m512 total = _mm512_set1_ps(sum);
    for (int64_t s = from; s < limit; s += 16) {
        const __mmask16 m = limit - s >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (limit - s)) - 1);
        const __m512 w = _mm512_div_ps(_mm512_maskz_loadu_ps(m, p + s), total);
        _mm512_mask_storeu_ps(p + s, m, _mm512_cvtph_ps(_mm512_cvtps_ph(w, _MM_FROUND_TO_NEAREST_INT)));
    }
}

/* head_dim a multiple of 64: 64 dims at a time in four registers, over every key of the block */
AVX512 static void values_avx512(float *o, const float *p, const float *v, int64_t head_dim, int64_t b0, int64_t s0,
                                 int64_t s1) {
    for (int64_t d = 0; d < head_dim; d += 64) {
        __m512 acc[4];
        for (int j = 0; j < 4; j++) acc[j] = _mm512_loadu_ps(o + d + 16 * j);
        for (int64_t s = s0; s < s1; s++) {
            const __m512 w = _mm512_set1_ps(p[s]);
            const float *vs = v + (s - b0) * head_dim + d;
            for (int j = 0; j < 4; j++) acc[j] = _mm512_fmadd_ps(w, _mm512_loadu_ps(vs + 16 * j), acc[j]);
        }
        for (int j = 0; j < 4; j++) _mm512_storeu_ps(o + d + 16 * j, acc[j]);
    }
}

AVX2 static void scores_avx2(const float *q, const float *kt, int64_t head_dim, int64_t b0, int64_t s0, int64_t s1,
                             float scale, float *p) {
    for (int64_t g = (s0 - b0) & ~(int64_t)7; g < s1 - b0; g += 8) {
        __m256 acc = _mm256_setzero_ps();
        for (int64_t i = 0; i < head_dim; i++)
            acc = _mm256_fmadd_ps(_mm256_set1_ps(q[i]), _mm256_loadu_ps(kt + i * ATTN_KEYS + g), acc);
        float lanes[8];
        _mm256_storeu_ps(lanes, _mm256_mul_ps(acc, _mm256_set1_ps(scale)));
        for (int j = 0; j < 8; j++)
            if (b0 + g + j >= s0 && b0 + g + j < s1) p[b0 + g + j] = lanes[j];
    }
}

/* exp_avx512's steps in 8 lanes, 2^n put in the exponent bits */
AVX2 static inline __attribute__((always_inline)) __m256 exp_avx2(__m256 x) {
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    x = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    x = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), x);
    __m256 y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201e-1f));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(x, x), _mm256_add_ps(x, _mm256_set1_ps(1.0f)));
    const __m256i scale = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(scale));
}

AVX2 static void softmax_avx2(float *p, int64_t from, int64_t limit, float top) {
    __m256 sums = _mm256_setzero_ps();
    const __m256 t = _mm256_set1_ps(top);
    int64_t s = from;
    for (; s + 8 <= limit; s += 8) {
        const __m256 e = exp_avx2(_mm256_sub_ps(_mm256_loadu_ps(p + s), t));
        _mm256_storeu_ps(p + s, e);
        sums = _mm256_add_ps(sums, e);
    }
    float sum = sum8(sums);
    if (s < limit) { /* the tail through the same exp, one lane each */
        float tail[8] = {0};
        const int64_t k = limit - s;
        for (int64_t j = 0; j < k; j++) tail[j] = p[s + j] - top;
        _mm256_storeu_ps(tail, exp_avx2(_mm256_loadu_ps(tail)));
        for (int64_t j = 0; j < k; j++) {
            p[s + j] = tail[j];
            sum += tail[j];
        }
    }
    const __m256 total = _mm256_set1_ps(sum);
    for (s = from; s + 8 <= limit; s += 8)
        _mm256_storeu_ps(p + s, _mm256_cvtph_ps(_mm256_cvtps_ph(_mm256_div_ps(_mm256_loadu_ps(p + s), total),
                                                                _MM_FROUND_TO_NEAREST_INT)));
    for (; s < limit; s++) p[s] = from_half(to_half(p[s] / sum));
}

AVX2 static void values_avx2(float *o, const float *p, const float *v, int64_t head_dim, int64_t b0, int64_t s0,
                             int64_t s1) {
    for (int64_t d = 0; d < head_dim; d += 32) {
        __m256 acc[4];
        for (int j = 0; j < 4; j++) acc[j] = _mm256_loadu_ps(o + d + 8 * j);
        for (int64_t s = s0; s < s1; s++) {
            const __m256 w = _mm256_set1_ps(p[s]);
            const float *vs = v + (s - b0) * head_dim + d;
            for (int j = 0; j < 4; j++) acc[j] = _mm256_fmadd_ps(w, _mm256_loadu_ps(vs + 8 * j), acc[j]);
        }
        for (int j = 0; j < 4; j++) _mm256_storeu_ps(o + d + 8 * j, acc[j]);
    }
}
#endif

/* n keys (rows `stride` halves apart) of head_dim -> floats, transposed: kt[i * ATTN_KEYS + j] = key j's dim i. */
static void widen_keys_portable(const uint16_t *k, int64_t stride, int64_t n, int64_t head_dim, float *kt) {
    for (int64_t j = 0; j < n; j++)
        for (int64_t i = 0; i < head_dim; i++) kt[i * ATTN_KEYS + j] = from_half(k[j * stride + i]);
}

#ifdef HAVE_AVX512_DOTS
/* 16 rows of 16 floats -> their transpose, in registers */
AVX512 static inline __attribute__((always_inline)) void transpose16(__m512 r[16]) {
    __m512 t[16], u[16];
    for (int j = 0; j < 16; j += 2) {
        t[j] = _mm512_unpacklo_ps(r[j], r[j + 1]);
        t[j + 1] = _mm512_unpackhi_ps(r[j], r[j + 1]);
    }
    for (int j = 0; j < 16; j += 4) {
        u[j] = _mm512_shuffle_ps(t[j], t[j + 2], _MM_SHUFFLE(1, 0, 1, 0));
        u[j + 1] = _mm512_shuffle_ps(t[j], t[j + 2], _MM_SHUFFLE(3, 2, 3, 2));
        u[j + 2] = _mm512_shuffle_ps(t[j + 1], t[j + 3], _MM_SHUFFLE(1, 0, 1, 0));
        u[j + 3] = _mm512_shuffle_ps(t[j + 1], t[j + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int j = 0; j < 16; j += 8)
        for (int k = 0; k < 4; k++) {
            t[j + k] = _mm512_shuffle_f32x4(u[j + k], u[j + k + 4], 0x88);
            t[j + k + 4] = _mm512_shuffle_f32x4(u[j + k], u[j + k + 4], 0xDD);
        }
    for (int k = 0; k < 8; k++) {
        r[k] = _mm512_shuffle_f32x4(t[k], t[k + 8], 0x88);
        r[k + 8] = _mm512_shuffle_f32x4(t[k], t[k + 8], 0xDD);
    }
}

AVX512 static void widen_keys_avx512(const uint16_t *k, int64_t stride, int64_t n, int64_t head_dim, float *kt) {
    for (int64_t j0 = 0; j0 < n; j0 += 16)
        for (int64_t i0 = 0; i0 < head_dim; i0 += 16) {
            __m512 r[16];
            for (int j = 0; j < 16; j++)
                r[j] = j0 + j < n ? _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(k + (j0 + j) * stride + i0)))
                                  : _mm512_setzero_ps();
            transpose16(r);
            for (int i = 0; i < 16; i++) _mm512_storeu_ps(kt + (i0 + i) * ATTN_KEYS + j0, r[i]);
        }
}

AVX512 static void widen_values_avx512(const uint16_t *v, int64_t stride, int64_t n, int64_t head_dim, float *out) {
    for (int64_t j = 0; j < n; j++)
        for (int64_t i = 0; i < head_dim; i += 16)
            _mm512_storeu_ps(out + j * head_dim + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(v + j * stride + i))));
}

AVX2 static void widen_values_avx2(const uint16_t *v, int64_t stride, int64_t n, int64_t head_dim, float *out) {
    for (int64_t j = 0; j < n; j++)
        for (int64_t i = 0; i < head_dim; i += 8)
            _mm256_storeu_ps(out + j * head_dim + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(v + j * stride + i))));
}
#endif

static inline void widen_keys(const uint16_t *k, int64_t stride, int64_t n, int64_t head_dim, float *kt) {
#ifdef HAVE_AVX512_DOTS
    if (cpu_level >= 2 && head_dim % 16 == 0) return widen_keys_avx512(k, stride, n, head_dim, kt);
#endif
    widen_keys_portable(k, stride, n, head_dim, kt);
}

/* n values (rows `stride` halves apart) of head_dim -> floats, row after row */
static inline void widen_values(const uint16_t *v, int64_t stride, int64_t n, int64_t head_dim, float *out) {
#ifdef HAVE_AVX512_DOTS
    if (cpu_level >= 2 && head_dim % 16 == 0) return widen_values_avx512(v, stride, n, head_dim, out);
    if (cpu_level == 1 && head_dim % 8 == 0) return widen_values_avx2(v, stride, n, head_dim, out);
#endif
    for (int64_t j = 0; j < n; j++)
        for (int64_t i = 0; i < head_dim; i++) out[j * head_dim + i] = from_half(v[j * stride + i]);
}

static inline void attention_scores(const float *q, const float *kt, int64_t head_dim, int64_t b0, int64_t s0,
                                    int64_t s1, float scale, float *p) {
#ifdef HAVE_AVX512_DOTS
    if (cpu_level >= 2) return scores_avx512(q, kt, head_dim, b0, s0, s1, scale, p);
    if (cpu_level == 1) return scores_avx2(q, kt, head_dim, b0, s0, s1, scale, p);
#endif
    scores_portable(q, kt, head_dim, b0, s0, s1, scale, p);
}

static inline void attention_softmax(float *p, int64_t from, int64_t limit, float top) {
#ifdef HAVE_AVX512_DOTS
    if (cpu_level >= 2) {
        softmax_avx512(p, from, limit, top);
        return;
    }
    if (cpu_level == 1) {
        softmax_avx2(p, from, limit, top);
        return;
    }
#endif
    softmax_portable(p, from, limit, top);
}

static inline void attention_values(float *o, const float *p, const float *v, int64_t head_dim, int64_t b0,
                                    int64_t s0, int64_t s1) {
#ifdef HAVE_AVX512_DOTS
    if (cpu_level >= 2 && head_dim % 64 == 0) return values_avx512(o, p, v, head_dim, b0, s0, s1);
    if (cpu_level == 1 && head_dim % 32 == 0) return values_avx2(o, p, v, head_dim, b0, s0, s1);
#endif
    values_portable(o, p, v, head_dim, b0, s0, s1);
}

/* Grouped-query attention for every sequence's tokens in one parallel pass, causal: a sequence's token t
 * sees its positions <= position + t (the last `window` of them on a sliding-window layer). As in the
 * numpy reference (and ggml's f16 path), q meets the f16 keys as f16 and the weights meet the f16 values
 * as f16.
 *
 * The work is cut in parts: one sequence's block of up to ATTN_TOKENS tokens, and the query heads of one
 * KV head (or one query head, when that leaves too few parts for the threads). A part reads its keys and
 * values from the f16 cache once per block of ATTN_KEYS positions, widened to float for all its rows
 * (token, head) at once. Each row's scores, softmax and weighted sum follow the same order whatever the
 * part, the batch or the thread: a token's attention is the same bits alone or in any batch. */
typedef struct {
    int64_t seq, t0, t1, h0, h1; /* tokens [t0, t1) of the batch, all of sequence seq; query heads [h0, h1) */
} attention_part;

typedef struct {
    const float *q;
    float *attn, *probs;
    const bridge_seq *seqs;
    const attention_part *parts;
    const int64_t *first; /* each sequence's first token in the batch */
    int64_t n_head, group, head_dim, qd, kvd, max_end, window;
    float scale;
    atomic_int failed;
} attention_job;

/* Positions token t of a part sees: [from, limit). */
static inline void attention_span(const attention_job *a, const attention_part *part, int64_t t, int64_t *from,
                                  int64_t *limit) {
    const bridge_seq *seq = &a->seqs[part->seq];
    *limit = seq->position + (t - a->first[part->seq]) + 1;
    *from = a->window > 0 && *limit > a->window ? *limit - a->window : 0;
}

/* Attention parts [begin, stop). */
ROW_CLONES
static void attention_parts(void *arg, int64_t begin, int64_t stop) {
    attention_job *a = arg;
    const int64_t head_dim = a->head_dim;
    for (int64_t index = begin; index < stop; index++) {
        const attention_part *part = &a->parts[index];
        const bridge_seq *seq = &a->seqs[part->seq];
        const int64_t heads = part->h1 - part->h0, rows = (part->t1 - part->t0) * heads;
        const int64_t kvh = part->h0 / a->group;
        /* scratch: each row's q as f16 values (rows, head_dim) | its top score (rows) | a block of keys or
         * values widened (ATTN_KEYS, head_dim) */
        float *qf = thread_scratch(SCRATCH_ATTN, (size_t)(rows * head_dim + rows + ATTN_KEYS * head_dim) * 4);
        if (!qf) {
            atomic_store(&a->failed, 1);
            return;
        }
        float *top = qf + rows * head_dim, *block = top + rows;
        int64_t lo = INT64_MAX, hi = 0; /* the positions any row sees */
        for (int64_t t = part->t0; t < part->t1; t++) {
            int64_t from, limit;
            attention_span(a, part, t, &from, &limit);
            lo = from < lo ? from : lo;
            hi = limit > hi ? limit : hi;
            for (int64_t h = part->h0; h < part->h1; h++) {
                const int64_t r = (t - part->t0) * heads + (h - part->h0);
                const float *qv = a->q + t * a->qd + h * head_dim;
                for (int64_t i = 0; i < head_dim; i++) qf[r * head_dim + i] = from_half(to_half(qv[i]));
                top[r] = -INFINITY;
            }
        }
        /* scores, block by block of keys (each block widened from f16 and transposed once for all rows) */
        for (int64_t b0 = lo; b0 < hi; b0 += ATTN_KEYS) {
            const int64_t b1 = b0 + ATTN_KEYS < hi ? b0 + ATTN_KEYS : hi;
            widen_keys(seq->k_cache + b0 * a->kvd + kvh * head_dim, a->kvd, b1 - b0, head_dim, block);
            for (int64_t t = part->t0; t < part->t1; t++) {
                int64_t from, limit;
                attention_span(a, part, t, &from, &limit);
                const int64_t s0 = from > b0 ? from : b0, s1 = limit < b1 ? limit : b1;
                if (s0 >= s1) continue;
                for (int64_t h = part->h0; h < part->h1; h++) {
                    const int64_t r = (t - part->t0) * heads + (h - part->h0);
                    float *p = a->probs + (t * a->n_head + h) * a->max_end;
                    attention_scores(qf + r * head_dim, block, head_dim, b0, s0, s1, a->scale, p);
                    for (int64_t s = s0; s < s1; s++)
                        if (p[s] > top[r]) top[r] = p[s];
                }
            }
        }
        /* softmax of each row: its weights, rounded to f16, replace its scores */
        for (int64_t t = part->t0; t < part->t1; t++) {
            int64_t from, limit;
            attention_span(a, part, t, &from, &limit);
            for (int64_t h = part->h0; h < part->h1; h++) {
                const int64_t r = (t - part->t0) * heads + (h - part->h0);
                attention_softmax(a->probs + (t * a->n_head + h) * a->max_end, from, limit, top[r]);
                float *o = a->attn + t * a->qd + h * head_dim;
                for (int64_t i = 0; i < head_dim; i++) o[i] = 0.0f;
            }
        }
        /* the weighted sum of values, block by block, each row's in order of position */
        for (int64_t b0 = lo; b0 < hi; b0 += ATTN_KEYS) {
            const int64_t b1 = b0 + ATTN_KEYS < hi ? b0 + ATTN_KEYS : hi;
            widen_values(seq->v_cache + b0 * a->kvd + kvh * head_dim, a->kvd, b1 - b0, head_dim, block);
            for (int64_t t = part->t0; t < part->t1; t++) {
                int64_t from, limit;
                attention_span(a, part, t, &from, &limit);
                const int64_t s0 = from > b0 ? from : b0, s1 = limit < b1 ? limit : b1;
                if (s0 >= s1) continue;
                for (int64_t h = part->h0; h < part->h1; h++)
                    attention_values(a->attn + t * a->qd + h * head_dim,
                                     a->probs + (t * a->n_head + h) * a->max_end, block, head_dim, b0, s0, s1);
            }
        }
    }
}

/* Several sequences (tenants) through one layer at once: the projections run on all their tokens
 * together, so each weight row is read once for the whole batch; RoPE, the KV cache and attention are
 * each sequence's own. Every token's result is the same bits whatever else is in the batch: the row
 * kernels compute each token's dot on its own, in an order that does not depend on the batch. */
int bridge_layer_forward_batch(float *x, int64_t n_seq, const bridge_seq *seqs, const float *attn_norm,
                               const float *ffn_norm, const bridge_weight *w, const bridge_arch *arch,
                               int64_t n_embd, int64_t n_head,
                               int64_t n_head_kv, int64_t head_dim, int64_t rope_dim, int64_t n_ff, float eps,
                               float *scratch, int n_threads) {
    const int64_t d = n_embd, qd = n_head * head_dim, kvd = n_head_kv * head_dim;
    const int64_t group = n_head / n_head_kv;
    if (head_dim > 512 || rope_dim > head_dim || group * n_head_kv != n_head || n_seq < 1) return -1;
    int64_t n = 0, max_end = 0;
    for (int64_t i = 0; i < n_seq; i++) {
        if (seqs[i].n < 1 || seqs[i].position < 0) return -1;
        n += seqs[i].n;
        if (seqs[i].position + seqs[i].n > max_end) max_end = seqs[i].position + seqs[i].n;
    }
    /* scratch (floats): h (n,d) | q (n,qd) | k (n,kvd) | v (n,kvd) | attn (n,qd) | gate (n,n_ff) |
     * up (n,n_ff) | out (n,d) | probabilities (n*n_head, max_end) */
    float *h = scratch, *q = h + n * d, *k = q + n * qd, *v = k + n * kvd, *attn = v + n * kvd;
    float *gate = attn + n * qd, *up = gate + n * n_ff, *out = up + n * n_ff, *probs = out + n * d;
    int rc;

    /* attention rmsnorm; q, k, v projections of every sequence's tokens at once. A failed product
     * returns its own status at once, before anything is added to x. */
    rmsnorm(x, attn_norm, n, d, eps, h);
    if ((rc = matmul_weight(&w[0], h, n, q, n_threads)) || (rc = matmul_weight(&w[1], h, n, k, n_threads)) ||
        (rc = matmul_weight(&w[2], h, n, v, n_threads)))
        return rc;
    /* what the model family adds: biases, per-head RMSNorm of q and k (in place: rmsnorm reads a row whole
     * before it writes it) */
    if (arch && arch->q_bias) {
        add_bias(q, arch->q_bias, n, qd);
        add_bias(k, arch->k_bias, n, kvd);
        add_bias(v, arch->v_bias, n, kvd);
    }
    if (arch && arch->q_norm) {
        rmsnorm(q, arch->q_norm, n * n_head, head_dim, eps, q);
        rmsnorm(k, arch->k_norm, n * n_head_kv, head_dim, eps, k);
    }
    const int neox = arch ? arch->rope_neox : 0;
    /* each token's sequence and each sequence's first token, for the attention jobs */
    /* each sequence's first token, and the attention parts (at most one per query head and block of
     * ATTN_TOKENS tokens, plus one per sequence for the blocks' remainders) */
    const int64_t max_parts = n_head * (n / ATTN_TOKENS + n_seq);
    int64_t *first = thread_scratch(SCRATCH_SEQS, (size_t)n_seq * sizeof(int64_t) + (size_t)max_parts * sizeof(attention_part));
    if (!first) return -2;
    attention_part *parts = (attention_part *)(first + n_seq);
    for (int64_t i = 0, t0 = 0; i < n_seq; t0 += seqs[i].n, i++) {
        const bridge_seq *s = &seqs[i];
        float *qs = q + t0 * qd, *ks = k + t0 * kvd, *vs = v + t0 * kvd;
        first[i] = t0;
        /* rotary embedding of q and k at this sequence's positions; append to its f16 KV cache */
        rope(qs, s->n, n_head, head_dim, rope_dim, s->position, s->cos_t, s->sin_t, neox);
        rope(ks, s->n, n_head_kv, head_dim, rope_dim, s->position, s->cos_t, s->sin_t, neox);
        for (int64_t j = 0; j < s->n * kvd; j++) {
            s->k_cache[s->position * kvd + j] = to_half(ks[j]);
            s->v_cache[s->position * kvd + j] = to_half(vs[j]);
        }
    }
    /* grouped-query attention of every sequence's tokens over its own cache, in one parallel pass */
    const float scale = arch && arch->attn_scale > 0 ? arch->attn_scale : (float)(1.0 / sqrt((double)head_dim));
    int64_t blocks = 0;
    for (int64_t i = 0; i < n_seq; i++) blocks += (seqs[i].n + ATTN_TOKENS - 1) / ATTN_TOKENS;
    /* a part per KV head and block (its keys widened once for the group), or per query head when that
     * leaves a thread idle */
    const int64_t heads_per_part = blocks * n_head_kv >= n_threads ? group : 1;
    int64_t n_parts = 0;
    for (int64_t i = 0; i < n_seq; i++)
        for (int64_t t0 = first[i]; t0 < first[i] + seqs[i].n; t0 += ATTN_TOKENS)
            for (int64_t h0 = 0; h0 < n_head; h0 += heads_per_part) {
                const int64_t t1 = t0 + ATTN_TOKENS < first[i] + seqs[i].n ? t0 + ATTN_TOKENS : first[i] + seqs[i].n;
                parts[n_parts++] = (attention_part){i, t0, t1, h0, h0 + heads_per_part};
            }
    attention_job job = {q,     attn,    probs, seqs, parts, first, n_head, group, head_dim, qd, kvd, max_end,
                         arch ? arch->window : 0, scale, 0};
    bridge_parallel_for(attention_parts, &job, n_parts, n_threads);
    if (atomic_load(&job.failed)) return -2;
    /* output projection (with the family's post-norm, in place), residual */
    if ((rc = matmul_weight(&w[3], attn, n, out, n_threads))) return rc;
    if (arch && arch->post_attn_norm) rmsnorm(out, arch->post_attn_norm, n, d, eps, out);
    for (int64_t i = 0; i < n * d; i++) x[i] += out[i];
    /* feed-forward rmsnorm, gated FFN (SwiGLU, or GeGLU from the f16 table as ggml), post-norm, residual */
    rmsnorm(x, ffn_norm, n, d, eps, h);
    if ((rc = matmul_weight(&w[4], h, n, gate, n_threads)) || (rc = matmul_weight(&w[5], h, n, up, n_threads)))
        return rc;
    if (arch && arch->gelu) {
        for (int64_t i = 0; i < n * n_ff; i++) {
            const float g = gate[i];
            const float act = g <= -10.0f ? 0.0f : g >= 10.0f ? g : arch->gelu[to_half(g)];
            gate[i] = act * up[i];
        }
    } else {
        for (int64_t i = 0; i < n * n_ff; i++) gate[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
    }
    if ((rc = matmul_weight(&w[6], gate, n, out, n_threads))) return rc;
    if (arch && arch->post_ffn_norm) rmsnorm(out, arch->post_ffn_norm, n, d, eps, out);
    for (int64_t i = 0; i < n * d; i++) x[i] += out[i];
    return 0;
}

int64_t bridge_layer_scratch(int64_t n, int64_t end, int64_t n_embd, int64_t n_head, int64_t n_head_kv,
                             int64_t head_dim, int64_t n_ff) {
    const int64_t qd = n_head * head_dim, kvd = n_head_kv * head_dim;
    return n * (2 * n_embd + 2 * qd + 2 * kvd + 2 * n_ff) + n * n_head * end;
}
