"""Delta Activation Layer (Yousefzadeh & Sifalakis, imec): training for temporal sparsity, and a CPU
delta-inference engine that skips the work of what did not change.

    frugalnn.convert_(cnn, DeltaConfig(rate=0.5))     # DeltaActivation after the input and every ReLU
    loss = clip_loss(Clips(cnn)(clips), y) + sparsity_loss(cnn)
    stream = frugalnn.delta.compile(cnn)               # batch-1 delta inference (csrc/delta)
    stream.reset(); out = stream.push(frame); stream.macs, stream.nonzeros

docs/delta.md has the measurements.
"""
from __future__ import annotations

_NN = {"DeltaActivation", "DeltaConfig", "Clips", "clip_loss", "delta_layers", "round_ste"}
_SPARSITY = {"sparsity_loss", "estimated_macs", "temporal_density", "fan_outs", "attach_fan_outs", "dense_macs"}
_COMPILE = {"compile", "Stream"}


def __getattr__(name: str):
    # torch is imported only when a torch-side name is asked for.
    if name in _NN:
        from frugalnn.delta import nn

        return getattr(nn, name)
    if name in _SPARSITY:
        from frugalnn.delta import sparsity

        return getattr(sparsity, name)
    if name in _COMPILE:
        from frugalnn.delta import engine as _c

        return getattr(_c, name)
    raise AttributeError(f"module 'frugalnn.delta' has no attribute {name!r}")


__all__ = sorted(_NN | _SPARSITY | _COMPILE)
