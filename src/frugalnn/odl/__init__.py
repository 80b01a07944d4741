"""ODL: on-device training primitives in fp32/fp16 (PULP-TrainLib, Nadalini et al. 2023).

    eng = frugalnn.odl.compile(resnet8(), dtype="fp16")     # batch-1 training engine
    loss = eng.step(x, label, lr=0.01); eng.sync_to(model)

Every layer step is one matmul of csrc/odl (a family of register-tile kernels, tuned per shape);
frugalnn.kernels.odl is the matmul itself. docs/odl.md has the measurements.
"""
from __future__ import annotations


def __getattr__(name: str):
    # torch is imported only when the engine is asked for
    if name in ("compile", "Engine", "DTYPES"):
        from frugalnn.odl import engine

        return getattr(engine, name)
    if name == "UnsupportedLayerError":
        from frugalnn.odl.graph import UnsupportedLayerError

        return UnsupportedLayerError
    raise AttributeError(f"module 'frugalnn.odl' has no attribute {name!r}")


__all__ = ["DTYPES", "Engine", "UnsupportedLayerError", "compile"]
