"""The ODL matmul kernel family (csrc/odl): out = op(a) @ op(b) for float32 or float16 operands.

`kernel` picks one member of the family (0: the serial loops; 1..9: AVX2 register tiles MR x 8*NV;
10: an fp32 dot-product kernel when both operands are contiguous along K; `tiles()`); -1 is the default tile. fp16 operands are passed to the core as their uint16 bits;
`acc16` accumulates in fp16 (rounding after every k). The numpy twin is `odl_ref.matmul`.
"""
from __future__ import annotations

import numpy as np

from frugalnn import _core
from frugalnn._arrays import threads_arg

TILES = ((0, 0), (1, 1), (4, 1), (8, 1), (2, 2), (4, 2), (6, 2), (3, 3), (4, 3), (1, 4))  # csrc/odl/layout.h kTiles
DOT_KERNEL = len(TILES)  # fp32, both operands contiguous along K (else the default tile runs)


def tiles() -> dict[int, str]:
    """Kernel id -> its name ('serial', 'MRxNR' register tile, or 'dot 2x4')."""
    return {**{i: "serial" if mr == 0 else f"{mr}x{8 * nv}" for i, (mr, nv) in enumerate(TILES)},
            DOT_KERNEL: "dot 2x4"}


def _bits(x: np.ndarray, name: str) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name}: expected a numpy array, got {type(x).__name__}")
    if x.dtype == np.float16:
        return x.view(np.uint16)
    if x.dtype != np.float32:
        raise TypeError(f"{name}: expected float32 or float16, got {x.dtype}")
    return x


def matmul(a: np.ndarray, b: np.ndarray, trans_a: bool = False, trans_b: bool = False, acc16: bool = False,
           kernel: int = -1, threads: int | None = 1, out: np.ndarray | None = None) -> np.ndarray:
    if a.dtype != b.dtype:
        raise TypeError(f"a and b must share a dtype, got {a.dtype} and {b.dtype}")
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"a and b must be 2-d, got shapes {a.shape} and {b.shape}")
    m = a.shape[1] if trans_a else a.shape[0]
    n = b.shape[0] if trans_b else b.shape[1]
    if out is None:
        out = np.empty((m, n), a.dtype)
    _core.odl.matmul(_bits(np.ascontiguousarray(a), "a"), _bits(np.ascontiguousarray(b), "b"), _bits(out, "out"),
                     bool(trans_a), bool(trans_b), bool(acc16), int(kernel), threads_arg(threads))
    return out
