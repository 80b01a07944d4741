"""Write small Llama-architecture GGUF files with random weights for fast tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def write_tiny_llama(path: Path, arch: str = "llama", dim: int = 64, n_layers: int = 2, n_heads: int = 4,
                     n_kv_heads: int = 2, ffn: int = 96, vocab: int = 128, ctx: int = 64, seed: int = 0,
                     qtype: str = "F32", drop: str | None = None, tied: bool = True,
                     rope_dim: int | None = None) -> Path:
    import gguf

    rng = np.random.default_rng(seed)
    w = gguf.GGUFWriter(str(path), arch)
    w.add_block_count(n_layers)
    w.add_context_length(ctx)
    w.add_embedding_length(dim)
    w.add_feed_forward_length(ffn)
    w.add_head_count(n_heads)
    w.add_head_count_kv(n_kv_heads)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_rope_dimension_count(rope_dim or dim // n_heads)
    w.add_vocab_size(vocab)
    hd = dim // n_heads
    qt = gguf.GGMLQuantizationType[qtype]

    def add(name, shape, scale=0.1):
        if name == drop:
            return
        a = (rng.standard_normal(shape) * scale).astype(np.float32)
        if len(shape) == 2 and qt != gguf.GGMLQuantizationType.F32:
            w.add_tensor(name, gguf.quants.quantize(a, qt), raw_dtype=qt)
        else:
            w.add_tensor(name, a)

    add("token_embd.weight", (vocab, dim), 1.0)
    if not tied:
        add("output.weight", (vocab, dim))
    w.add_tensor("output_norm.weight", np.ones(dim, np.float32))
    for i in range(n_layers):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", (1 + 0.1 * rng.standard_normal(dim)).astype(np.float32))
        w.add_tensor(p + "ffn_norm.weight", (1 + 0.1 * rng.standard_normal(dim)).astype(np.float32))
        add(p + "attn_q.weight", (n_heads * hd, dim))
        add(p + "attn_k.weight", (n_kv_heads * hd, dim))
        add(p + "attn_v.weight", (n_kv_heads * hd, dim))
        add(p + "attn_output.weight", (dim, n_heads * hd))
        add(p + "ffn_gate.weight", (ffn, dim))
        add(p + "ffn_up.weight", (ffn, dim))
        add(p + "ffn_down.weight", (dim, ffn))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
