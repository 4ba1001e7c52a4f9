"""A small synthetic llama model, written deterministically with gguf's writer.

It differs from SmolLM2 wherever a llama-family model can: other dimensions (d=256, 8 query heads over
2 KV heads of 32, n_ff=512), every supported quantization type across its tensors (K-quants included),
an untied output projection, RoPE theta 500000, RMS epsilon 1e-6, and a SentencePiece ("llama")
vocabulary. tests/golden/make_golden.py records llama.cpp's answers for it; tests/test_realm.py rebuilds
it with this same code and checks bridge's against them.
"""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np

HERE = Path(__file__).resolve().parent
T = gguf.GGMLQuantizationType

N_EMBD, N_HEAD, N_HEAD_KV, N_FF, N_LAYER, N_CTX = 256, 8, 2, 512, 2, 256
HEAD_DIM = N_EMBD // N_HEAD
ROPE_THETA, RMS_EPS = 500000.0, 1e-6
# The gemma3 variant: six layers (Gemma 3 makes every sixth layer global, the others sliding-window), with
# a window short enough that the recorded prompts pass it.
GEMMA3_LAYERS, GEMMA3_WINDOW = 6, 8

# (tensor, type) for each layer: between them every type bridge supported when these goldens were made
# appears at least once (Q2_K and Q3_K came later).
LAYER_TYPES = [
    {"attn_q": T.Q5_0, "attn_k": T.Q5_1, "attn_v": T.Q8_0, "attn_output": T.Q4_1,
     "ffn_gate": T.Q4_K, "ffn_up": T.F16, "ffn_down": T.BF16},
    {"attn_q": T.Q4_K, "attn_k": T.F16, "attn_v": T.BF16, "attn_output": T.Q6_K,
     "ffn_gate": T.Q8_0, "ffn_up": T.Q5_K, "ffn_down": T.Q4_0},
]  # fmt: skip
EMBD_TYPE, OUTPUT_TYPE = T.Q4_0, T.Q6_K
# Every type bridge supports now, for write(..., layer_types=ALL_TYPES) (no golden: for tests that compare
# bridge with itself, such as batched against stepwise).
ALL_TYPES = [
    {"attn_q": T.Q5_0, "attn_k": T.Q5_1, "attn_v": T.Q8_0, "attn_output": T.Q4_1,
     "ffn_gate": T.Q4_K, "ffn_up": T.Q2_K, "ffn_down": T.BF16},
    {"attn_q": T.Q3_K, "attn_k": T.F16, "attn_v": T.F32, "attn_output": T.Q6_K,
     "ffn_gate": T.Q8_0, "ffn_up": T.Q5_K, "ffn_down": T.Q4_0},
]  # fmt: skip


def _vocab_fields() -> dict[str, tuple[object, gguf.GGUFValueType, gguf.GGUFValueType | None]]:
    """The SentencePiece vocabulary of spm_vocab.gguf (made by make_golden.py tokenizer)."""
    reader = gguf.GGUFReader(HERE / "spm_vocab.gguf")
    out = {}
    for key, field in reader.fields.items():
        if key.startswith("tokenizer."):
            sub = field.types[-1] if field.types[0] == gguf.GGUFValueType.ARRAY else None
            out[key] = (field.contents(), field.types[0], sub)
    return out


def _kquant_blocks(rng: np.random.Generator, qtype: T, rows: int, cols: int, gain: float) -> np.ndarray:
    """Random K-quant blocks with small f16 super-block scales (gguf-py cannot quantize K-quants)."""
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, size=(rows, cols // block, size), dtype=np.uint8)
    # Scales that give weights of roughly `gain` standard deviations' size.
    scale = gain * {T.Q2_K: 1e-3, T.Q3_K: 5e-4, T.Q4_K: 1e-4, T.Q5_K: 5e-5, T.Q6_K: 1e-5}[qtype]
    halves = np.array([scale, scale / 2], dtype=np.float16).view(np.uint8)
    if qtype in (T.Q3_K, T.Q6_K):  # d is the block's last two bytes
        raw[..., -2:] = halves[:2]
    elif qtype == T.Q2_K:  # d and dmin end the block
        raw[..., -4:] = halves
    else:  # d and dmin lead the block
        raw[..., :4] = halves
    return raw.reshape(rows, -1)


def _weight(rng: np.random.Generator, qtype: T, rows: int, cols: int, std: float = 0.05) -> np.ndarray:
    if qtype in (T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K):
        return _kquant_blocks(rng, qtype, rows, cols, gain=std / 0.05)
    w = (rng.standard_normal((rows, cols)) * std).astype(np.float32)
    if qtype == T.F32:
        return w
    return gguf.quants.quantize(w, qtype)


# Llama 3's RoPE frequency factors (rope_freqs.weight), for the variant write(..., rope_freqs=ROPE_FACTORS):
# 1 for the fast-turning dimension pairs, up to 8 for the slow ones, as Llama 3.1's scaling makes them.
ROPE_FACTORS = np.geomspace(1.0, 8.0, HEAD_DIM // 2).astype(np.float32)


def write(
    path: str | Path,
    *,
    rope_freqs: np.ndarray | None = None,
    arch: str = "llama",
    layer_types: list[dict[str, T]] = LAYER_TYPES,
    metadata: dict[str, object] | None = None,
) -> Path:
    """Writes the model to `path` and returns it. Same bytes of weights every time; with `rope_freqs`, a
    Llama 3-style variant that also carries them as rope_freqs.weight (float32). `arch` "qwen2" adds q/k/v
    biases and "qwen3" per-head q/k norms to the same weights (both turn RoPE the GPT-NeoX way); "gemma3"
    has GEMMA3_LAYERS layers with q/k norms and post-norms, a sliding window of GEMMA3_WINDOW and GeGLU.
    `layer_types` picks each layer's tensor types (ALL_TYPES: every supported one), in turn; `metadata`
    adds keys (strings, floats)."""
    rng = np.random.default_rng(20261121)
    vocab = _vocab_fields()
    n_vocab = len(vocab["tokenizer.ggml.tokens"][0])  # type: ignore[arg-type]
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_name("bridge synthetic llama" + (" 3" if rope_freqs is not None else ""))
    writer.add_context_length(N_CTX)
    writer.add_embedding_length(N_EMBD)
    n_layer = GEMMA3_LAYERS if arch == "gemma3" else N_LAYER
    writer.add_block_count(n_layer)
    if arch == "gemma3":
        writer.add_sliding_window(GEMMA3_WINDOW)
    writer.add_feed_forward_length(N_FF)
    writer.add_head_count(N_HEAD)
    writer.add_head_count_kv(N_HEAD_KV)
    writer.add_rope_freq_base(ROPE_THETA)
    writer.add_rope_dimension_count(HEAD_DIM)
    writer.add_layer_norm_rms_eps(RMS_EPS)
    writer.add_vocab_size(n_vocab)
    for key, (value, vtype, sub) in vocab.items():
        writer.add_key_value(key, value, vtype, sub_type=sub)
    for key, value in (metadata or {}).items():
        if isinstance(value, str):
            writer.add_string(key, value)
        else:
            writer.add_float32(key, float(value))  # type: ignore[arg-type]

    def add(name: str, data: np.ndarray, qtype: T) -> None:
        writer.add_tensor(name, data, raw_dtype=qtype)

    q_dim, kv_dim = N_HEAD * HEAD_DIM, N_HEAD_KV * HEAD_DIM
    add("token_embd.weight", _weight(rng, EMBD_TYPE, n_vocab, N_EMBD, std=0.5), EMBD_TYPE)
    for i in range(n_layer):
        types = layer_types[i % len(layer_types)]
        norm = (1.0 + 0.1 * rng.standard_normal(N_EMBD)).astype(np.float32)
        add(f"blk.{i}.attn_norm.weight", norm, T.F32)
        shapes = {
            "attn_q": (q_dim, N_EMBD), "attn_k": (kv_dim, N_EMBD), "attn_v": (kv_dim, N_EMBD),
            "attn_output": (N_EMBD, q_dim), "ffn_gate": (N_FF, N_EMBD), "ffn_up": (N_FF, N_EMBD),
            "ffn_down": (N_EMBD, N_FF),
        }  # fmt: skip
        for name, (rows, cols) in shapes.items():
            add(f"blk.{i}.{name}.weight", _weight(rng, types[name], rows, cols), types[name])
        extra = np.random.default_rng(i + 1000)  # its own stream: the llama weights stay as they were
        if arch == "qwen2":
            for name, size in (("attn_q", q_dim), ("attn_k", kv_dim), ("attn_v", kv_dim)):
                add(f"blk.{i}.{name}.bias", (0.1 * extra.standard_normal(size)).astype(np.float32), T.F32)
        if arch in ("qwen3", "gemma3"):
            for name in ("attn_q_norm", "attn_k_norm"):
                norm_weight = (1.0 + 0.2 * extra.standard_normal(HEAD_DIM)).astype(np.float32)
                add(f"blk.{i}.{name}.weight", norm_weight, T.F32)
        if arch == "gemma3":
            for name in ("post_attention_norm", "post_ffw_norm"):
                add(
                    f"blk.{i}.{name}.weight",
                    (1.0 + 0.2 * extra.standard_normal(N_EMBD)).astype(np.float32),
                    T.F32,
                )
        norm = (1.0 + 0.1 * rng.standard_normal(N_EMBD)).astype(np.float32)
        add(f"blk.{i}.ffn_norm.weight", norm, T.F32)
    add("output_norm.weight", np.ones(N_EMBD, np.float32), T.F32)
    if rope_freqs is not None:
        add("rope_freqs.weight", np.asarray(rope_freqs, np.float32), T.F32)
    # Untied, and large enough that greedy choices are clear rather than near-ties.
    add("output.weight", _weight(rng, OUTPUT_TYPE, n_vocab, N_EMBD, std=5.0), OUTPUT_TYPE)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return Path(path)
