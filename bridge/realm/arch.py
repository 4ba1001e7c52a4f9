"""The model families realm runs, as data: each one's tensors and what it changes in the llama layer.

Both forward passes follow these descriptions: the numpy reference in model.py and the fused native layer
(kernels.c's bridge_arch). Adding a family that differs from llama only in these ways is one entry in
ARCHITECTURES and its tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# Every tensor a layer may have: the LayerWeights field -> (its name after `blk.N.`, its shape in ggml order,
# from the dims d = n_embd, q = n_head*head_dim, kv = n_head_kv*head_dim, hd = head_dim, ff = n_ff). One
# dimension is a vector (norm weights, biases), read as float32; two is a weight matrix, kept quantized.
LAYER_TENSORS: dict[str, tuple[str, tuple[str, ...]]] = {
    "attn_norm": ("attn_norm.weight", ("d",)),
    "wq": ("attn_q.weight", ("d", "q")),
    "wk": ("attn_k.weight", ("d", "kv")),
    "wv": ("attn_v.weight", ("d", "kv")),
    "wo": ("attn_output.weight", ("q", "d")),
    "ffn_norm": ("ffn_norm.weight", ("d",)),
    "w_gate": ("ffn_gate.weight", ("d", "ff")),
    "w_up": ("ffn_up.weight", ("d", "ff")),
    "w_down": ("ffn_down.weight", ("ff", "d")),
    "q_bias": ("attn_q.bias", ("q",)),
    "k_bias": ("attn_k.bias", ("kv",)),
    "v_bias": ("attn_v.bias", ("kv",)),
    "q_norm": ("attn_q_norm.weight", ("hd",)),
    "k_norm": ("attn_k_norm.weight", ("hd",)),
    "post_attn_norm": ("post_attention_norm.weight", ("d",)),
    "post_ffn_norm": ("post_ffw_norm.weight", ("d",)),
}
LLAMA_TENSORS = ("attn_norm", "wq", "wk", "wv", "wo", "ffn_norm", "w_gate", "w_up", "w_down")


@dataclass(frozen=True)
class Arch:
    """One family's departures from the llama layer. Outside the layers, every family has token_embd,
    output_norm and an output projection (output.weight, or the embeddings when the file has none)."""

    name: str
    # RoPE rotates the pairs (i, i + rope_dim/2) of each head (GPT-NeoX's layout), not (2i, 2i + 1).
    rope_neox: bool = False
    # attn_q, attn_k and attn_v carry bias vectors, added after the projections.
    qkv_bias: bool = False
    # q and k get a per-head RMSNorm (head_dim weights each) before RoPE.
    qk_norm: bool = False
    # The attention output and the FFN output each get an RMSNorm before they join the residual stream.
    post_norms: bool = False
    # The gated FFN's activation on the gate: SiLU (SwiGLU), or GELU's tanh approximation (GeGLU).
    activation: Literal["silu", "gelu_tanh"] = "silu"
    # Token embeddings are multiplied by sqrt(n_embd) on the way in.
    embd_scale: bool = False
    # Sliding-window attention (the window from `<arch>.attention.sliding_window`) on every layer but each
    # swa_period-th (layers swa_period-1, 2*swa_period-1, ... see all positions); 0: every layer sees all.
    swa_period: int = 0
    # The RoPE base on the sliding-window layers; the file's `rope.freq_base` is the global layers'.
    rope_base_local: float = 10000.0
    # The attention scale is 1/sqrt(n_embd/n_head) rather than 1/sqrt(head_dim) for models of this many
    # layers (Gemma 3 27B's query_pre_attn_scalar); 0 for none.
    scale_by_embd_layers: int = 0

    @property
    def layer_tensors(self) -> tuple[str, ...]:
        """The LAYER_TENSORS fields every layer of this family has."""
        extra = (
            ("q_bias", "k_bias", "v_bias") * self.qkv_bias
            + ("q_norm", "k_norm") * self.qk_norm
            + ("post_attn_norm", "post_ffn_norm") * self.post_norms
        )
        return LLAMA_TENSORS + extra

    def sliding(self, layer: int) -> bool:
        """Whether `layer` attends over the sliding window only."""
        return self.swa_period > 0 and (layer + 1) % self.swa_period != 0


ARCHITECTURES = {
    "llama": Arch("llama"),  # Mistral-style files are llama too; Llama 3's rope_freqs in model.py
    "qwen2": Arch("qwen2", rope_neox=True, qkv_bias=True),
    "qwen3": Arch("qwen3", rope_neox=True, qk_norm=True),
    "gemma3": Arch(
        "gemma3",
        rope_neox=True,
        qk_norm=True,
        post_norms=True,
        activation="gelu_tanh",
        embd_scale=True,
        swa_period=6,
        scale_by_embd_layers=62,
    ),
}
