"""Numpy/torch interop used by every public function: accept either, answer in kind.

torch is imported lazily (only when the caller already holds a tensor), so numpy-only users
and `frugalnn info` never pay for it.
"""
from __future__ import annotations

import sys
from typing import Any

import numpy as np


def is_tensor(x: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def to_numpy(x: Any, name: str) -> tuple[np.ndarray, bool]:
    """View `x` (numpy array, torch CPU tensor, or array-like) as numpy; report whether it was torch.

    torch tensors are viewed without a copy (bfloat16, which numpy lacks, is widened to float32).
    """
    if is_tensor(x):
        if x.device.type != "cpu":
            raise ValueError(f"{name}: expected a CPU tensor, got one on {x.device}")
        t = x.detach()
        if t.dtype == sys.modules["torch"].bfloat16:
            t = t.float()
        return t.numpy(), True
    if isinstance(x, np.ndarray):
        return x, False
    try:
        return np.asarray(x), False
    except Exception as e:  # ragged lists and other non-arrays
        raise TypeError(f"{name}: expected an array or tensor, got {type(x).__name__}") from e


def from_numpy(a: np.ndarray, as_tensor: bool) -> Any:
    if not as_tensor:
        return a
    import torch

    return torch.from_numpy(np.ascontiguousarray(a))


def require_floating(a: np.ndarray, name: str) -> None:
    if not np.issubdtype(a.dtype, np.floating):
        raise TypeError(f"{name}: expected a floating-point array, got dtype {a.dtype}")


def float32_array(a: Any, name: str, ndim: int) -> np.ndarray:
    """A C-contiguous float32 numpy array of `ndim` dimensions, or TypeError/ValueError naming `name`
    (for kernels whose native side reads raw float32 buffers: no silent dtype conversion)."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name}: expected a numpy array, got {type(a).__name__}")
    if a.dtype != np.float32:
        raise TypeError(f"{name}: expected dtype float32, got {a.dtype}")
    if a.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-d array, got shape {a.shape}")
    return np.ascontiguousarray(a)


def require_int(value: Any, name: str, lo: int | None = None, hi: int | None = None) -> int:
    """An integer argument (bool rejected) within [lo, hi]."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__} {value!r}")
    value = int(value)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        span = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        raise ValueError(f"{name}: expected {span}, got {value}")
    return value


def require_choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{name}: expected one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def max_threads() -> int:
    """The most threads a call may ask for (frugalnn.threads documents why)."""
    from frugalnn import _core

    return int(_core.max_threads())


def threads_arg(threads: int | None) -> int:
    """`threads=None` means all cores (-1 for the compiled core); otherwise 1..max_threads()."""
    if threads is None:
        return -1
    return require_int(threads, "threads", lo=1, hi=max_threads())


def require_float32_scalar(value: Any, name: str) -> float:
    """A real number (Python or numpy scalar, bool rejected) that is finite as a float32; the kernels
    compute in float32, where 1e300 becomes inf."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__} {value!r}")
    try:
        v = float(value)
    except OverflowError:  # an int beyond float64
        raise ValueError(f"{name}: expected a finite float32 value (|{name}| <= 3.4e38), got {value!r}") from None
    with np.errstate(over="ignore"):
        finite32 = bool(np.isfinite(np.float32(v)))
    if not (np.isfinite(v) and finite32):
        raise ValueError(f"{name}: expected a finite float32 value (|{name}| <= 3.4e38), got {value!r}")
    return v
