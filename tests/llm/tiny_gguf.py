"""Write small Llama-architecture GGUF files with random weights for fast tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def write_tiny_llama(path: Path, arch: str = "llama", dim: int = 64, n_layers: int = 2, n_heads: int = 4,
                     n_kv_heads: int = 2, ffn: int = 96, vocab: int = 128, ctx: int = 64, seed: int = 0,
                     qtype: str = "F32", drop: str | None = None, tied: bool = True,
                     rope_dim: int | None = None, meta: dict | None = None, fill: dict | None = None) -> Path:
    """meta: metadata keys to write instead of (or beside) the defaults, '{arch}' standing for the architecture
    (an int is written as uint32, or uint64 from 2^32; a float as float32; a str as a string; a list as an array);
    fill: tensor name -> (flat index, value) written into that float32 tensor (a NaN norm weight, say)."""
    import gguf

    rng = np.random.default_rng(seed)
    w = gguf.GGUFWriter(str(path), arch)
    values = {"{arch}.block_count": n_layers, "{arch}.context_length": ctx, "{arch}.embedding_length": dim,
              "{arch}.feed_forward_length": ffn, "{arch}.attention.head_count": n_heads,
              "{arch}.attention.head_count_kv": n_kv_heads, "{arch}.attention.layer_norm_rms_epsilon": 1e-5,
              "{arch}.rope.freq_base": 10000.0, "{arch}.rope.dimension_count": rope_dim or dim // n_heads,
              "{arch}.vocab_size": vocab}
    values.update(meta or {})
    for key, value in values.items():
        key = key.replace("{arch}", arch)
        if isinstance(value, bool):
            w.add_bool(key, value)
        elif isinstance(value, int):
            (w.add_uint32 if 0 <= value < 2**32 else w.add_uint64)(key, value)
        elif isinstance(value, float):
            w.add_float32(key, value)
        elif isinstance(value, str):
            w.add_string(key, value)
        else:
            w.add_array(key, list(value))
    fill = fill or {}
    hd = dim // n_heads
    qt = gguf.GGMLQuantizationType[qtype]

    def _filled(name, a):
        if name in fill:
            index, value = fill[name]
            a.reshape(-1)[index] = value
        return a

    def add(name, shape, scale=0.1):
        if name == drop:
            return
        a = (rng.standard_normal(shape) * scale).astype(np.float32)
        if len(shape) == 2 and qt != gguf.GGMLQuantizationType.F32:
            w.add_tensor(name, gguf.quants.quantize(a, qt), raw_dtype=qt)
        else:
            w.add_tensor(name, _filled(name, a))

    add("token_embd.weight", (vocab, dim), 1.0)
    if not tied:
        add("output.weight", (vocab, dim))
    w.add_tensor("output_norm.weight", _filled("output_norm.weight", np.ones(dim, np.float32)))
    for i in range(n_layers):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", _filled(p + "attn_norm.weight",
                                                     (1 + 0.1 * rng.standard_normal(dim)).astype(np.float32)))
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
