"""The model families realm runs, as data: what each adds to the llama layer.

Both forward passes follow these flags: the numpy reference in model.py and the fused native layer
(kernels.c's bridge_arch). Adding a family that differs from llama only in these ways is one entry here
and its tests.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Arch:
    name: str
    # RoPE rotates the pairs (i, i + rope_dim/2) of each head (GPT-NeoX's layout), not (2i, 2i + 1).
    rope_neox: bool = False
    # attn_q, attn_k and attn_v carry bias vectors (blk.N.attn_q.bias, ...).
    qkv_bias: bool = False
    # q and k get a per-head RMSNorm (blk.N.attn_q_norm.weight, attn_k_norm, head_dim each) before RoPE.
    qk_norm: bool = False


ARCHITECTURES = {
    "llama": Arch("llama"),  # Mistral-style files are llama too; Llama 3's rope_freqs in model.py
    "qwen2": Arch("qwen2", rope_neox=True, qkv_bias=True),
    "qwen3": Arch("qwen3", rope_neox=True, qk_norm=True),
}
