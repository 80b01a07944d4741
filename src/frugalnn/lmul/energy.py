"""The energy model of the L-Mul paper, applied to counted operations (helpers of lmul/experiment.py).

Per-operation energies at 45 nm, 0.9 V: M. Horowitz, "Computing's energy problem (and what we can do
about it)", ISSCC 2014 (the table the L-Mul paper cites). int16 addition is not in that table; it is
interpolated linearly in bit width between the 8-bit (0.03 pJ) and 32-bit (0.1 pJ) adders.
Memory: the same source gives 10 pJ for a 64-bit read from an 8 KB SRAM and 1.3-2.6 nJ for a 64-bit
DRAM access; the lower end is used, so memory energy here is a lower bound.

An L-Mul replaces a float multiplication by one integer addition of the operand width; in a dot
product the accumulation stays a float addition (as in our kernel and in the paper).
"""
from __future__ import annotations

PJ = {
    "fp32 mul": 3.7, "fp32 add": 0.9, "fp16 mul": 1.1, "fp16 add": 0.4,
    "int32 add": 0.1, "int32 mul": 3.1, "int8 add": 0.03, "int8 mul": 0.2,
    "int16 add": 0.03 + (0.1 - 0.03) * (16 - 8) / (32 - 8),  # interpolated, see above
    "sram 8KB read 64b": 10.0, "dram read 64b": 1300.0,
}
SOURCE = "Horowitz, ISSCC 2014, 45 nm (int16 add interpolated; DRAM at the low end of 1.3-2.6 nJ / 64 bit)"
DRAM_PJ_PER_BYTE = PJ["dram read 64b"] / 8


def elementwise_saving(width: int) -> float:
    """Fraction of energy saved by one L-Mul (int add) in place of one float multiplication."""
    return 1 - PJ[f"int{width} add"] / PJ[f"fp{width} mul"]


def dot_saving(width: int) -> float:
    """Fraction saved per multiply-accumulate when the multiplication becomes an L-Mul and the add stays float."""
    return 1 - (PJ[f"int{width} add"] + PJ[f"fp{width} add"]) / (PJ[f"fp{width} mul"] + PJ[f"fp{width} add"])


def mac_energy_pj(float_macs: int, lmul_macs: int, width: int = 32) -> float:
    return (float_macs * (PJ[f"fp{width} mul"] + PJ[f"fp{width} add"])
            + lmul_macs * (PJ[f"int{width} add"] + PJ[f"fp{width} add"]))


def smollm2_decode_profile(context: int = 512) -> dict:
    """Per generated token of SmolLM2-135M: MACs in linear layers (tied LM head included) and in attention at
    `context` cached positions, and the DRAM bytes of weights (as shipped, and at fp32) and of the fp32 KV cache."""
    import gguf
    import numpy as np

    from frugalnn.data import smollm2_gguf

    reader = gguf.GGUFReader(str(smollm2_gguf()))
    linear_macs, shipped_bytes, params = 0, 0, 0
    for t in reader.tensors:
        n = int(np.prod(t.shape))
        params += n
        shipped_bytes += int(t.n_bytes)
        if len(t.shape) == 2:  # every 2-D weight is a matmul per token (token_embd is the tied LM head)
            linear_macs += n

    def meta(key):
        f = reader.fields[key]
        return int(f.parts[f.data[0]][0])

    layers, heads = meta("llama.block_count"), meta("llama.attention.head_count")
    kv_heads, dim = meta("llama.attention.head_count_kv"), meta("llama.embedding_length")
    head_dim = dim // heads
    attention_macs = layers * heads * head_dim * context * 2  # q.K^T and p.V of one query
    kv_bytes = layers * kv_heads * head_dim * context * 2 * 4
    return {"params": params, "linear_macs": linear_macs, "attention_macs": attention_macs,
            "weight_bytes_shipped": shipped_bytes, "weight_bytes_fp32": 4 * params, "kv_bytes": kv_bytes,
            "context": context}
