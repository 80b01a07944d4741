"""FuseMax (Nayak et al., MICRO'24): attention as a cascade of extended Einsums, pass lower bounds,
and the 1-pass fused attention kernel.

    from frugalnn.fusemax import cascade, fused_attention, FusedAttentionConfig
    cascade.parse(cascade.ATTENTION_1PASS).passes("m")            # 1 pass over the keys
    out = fused_attention(q, k, v, causal=True)                   # [..., L, E] numpy or torch, O(tile) memory
    frugalnn.convert_(model, FusedAttentionConfig())              # SDPA calls -> the fused kernel

The accelerator model (FuseMax, FLAT and unfused mappings on frugalnn.hw's machine) is
`frugalnn.fusemax.accelerator`. `experiment.py` checks the paper (`frugalnn report --only fusemax`),
`bench.py` races torch SDPA (`frugalnn bench fusemax`).
"""
from frugalnn.fusemax import cascade
from frugalnn.kernels.attention import fused_attention

_TORCH = {"FusedAttentionConfig"}  # needs torch: loaded on first use


def __getattr__(name):
    if name in _TORCH:
        from frugalnn.fusemax import nn

        return getattr(nn, name)
    raise AttributeError(f"module 'frugalnn.fusemax' has no attribute {name!r}")


__all__ = ["FusedAttentionConfig", "cascade", "fused_attention"]
