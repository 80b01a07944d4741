"""torch layers and their converters (LUTLinear, L-Mul attention, ...); each registers with frugalnn.convert."""

_LAZY = {"LUTLinear": "frugalnn.nn.lut_linear", "LUTConfig": "frugalnn.nn.lut_linear"}


def __getattr__(name):  # layers load torch (and register their converters) on first use
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'frugalnn.nn' has no attribute {name!r}")
