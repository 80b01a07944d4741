"""GPTQ (Frantar et al., ICLR'23): quantize one linear layer's weight W [M, K] column by column, each column's
rounding error fed back into the columns not yet quantized, weighted by the inverse Hessian of the layer's
output error on calibration inputs.

    H = 2 X X^T / N                      (X: the layer's calibration inputs [K, N]; accumulated in float64)
    minimize || W X - Q X ||^2  =  tr((W - Q) H (W - Q)^T) / 2 * N

Mechanics (as in the paper and its reference code):
  - dead columns (input never non-zero, H_kk = 0): H_kk := 1 and W[:, k] := 0;
  - dampening: H += percdamp * mean(diag H) * I (raised tenfold until the Cholesky succeeds);
  - U = the upper Cholesky factor of H^-1; after column j is rounded, err = (w_j - q_j) / U_jj and
    W[:, j+1:] -= err U[j, j+1:];
  - lazy batches of `block` (128) columns: inside a batch the updates touch the batch only, the rest of W
    gets one matrix product per batch;
  - the grid of each group (or K-quant super-block) is fit on the CURRENT, error-updated weights when the
    sweep reaches the group's first column; with act_order (columns by decreasing H_kk) the groups are
    fit up front on the original weights instead ("static groups"), since a group's columns no longer
    arrive together.

`fit(w [M, W]) -> Grid` comes from frugalnn.tmac.quantizers (GGUF types) or frugalnn.tmac.grids (the
project's g-formats); `width` is the columns one fit covers. RTN (`rtn`) is the same grid family without
the error feedback, so the two are compared on equal terms (`output_error`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

BLOCK = 128
PERCDAMP = 0.01


class Hessian:
    """Running H = 2 X X^T / N over batches of layer inputs x [..., K] (float64 sums)."""

    def __init__(self, k: int):
        self.sum = torch.zeros(k, k, dtype=torch.float64)
        self.count = 0

    def add(self, x: torch.Tensor) -> None:
        x = x.detach().reshape(-1, x.shape[-1]).to(torch.float64)
        self.sum.addmm_(x.T, x)
        self.count += x.shape[0]

    @property
    def matrix(self) -> torch.Tensor:
        if self.count == 0:
            raise ValueError("Hessian: no calibration inputs were seen")
        return self.sum * (2.0 / self.count)


@dataclass
class Quantized:
    codes: np.ndarray   # uint8 [M, K], original column order
    grid: object        # one Grid over all K columns (concat of the per-group fits)
    weight: np.ndarray  # float32 [M, K]: codes on the grid, what the quantized layer computes with


def _fit(fit: Callable, w: np.ndarray):
    g = fit(np.ascontiguousarray(w, np.float32))
    return g, np.asarray(g.scale, np.float32), np.asarray(g.offset, np.float32)


def _inverse_cholesky(h: torch.Tensor, percdamp: float) -> np.ndarray:
    """Upper Cholesky factor of (H + damp I)^-1 in float64, raising the damping until H is positive definite."""
    damp = percdamp * float(torch.diag(h).mean())
    eye = torch.eye(h.shape[0], dtype=h.dtype)
    for _ in range(8):
        try:
            low = torch.linalg.cholesky(h + damp * eye)
            # H^-1 = L^-T L^-1 (a triangular solve: several times faster than cholesky_inverse on CPU here)
            low_inv = torch.linalg.solve_triangular(low, eye, upper=False)
            return torch.linalg.cholesky(low_inv.T @ low_inv, upper=True).numpy()
        except torch.linalg.LinAlgError:
            damp = damp * 10 if damp > 0 else 1e-6
    raise ValueError("GPTQ: the Hessian stays singular after dampening (non-finite calibration inputs?)")


def gptq(w, h: torch.Tensor, fit: Callable, width: int, concat: Callable, *, percdamp: float = PERCDAMP,
         block: int = BLOCK, act_order: bool = False, cache: dict | None = None) -> Quantized:
    """Quantize w [M, K] against the Hessian h [K, K]; fit/width/concat as in the module docstring. cache: a dict
    the caller keeps while h (the same tensor object) is reused, to factor H once.

    The sweep runs on W^T (a column of W is a contiguous row) in float32 numpy: per column a handful of
    vector operations of length M, where torch's per-call overhead would dominate."""
    W = np.array(w, np.float32, copy=True)
    m, k = W.shape
    if k % width:
        raise ValueError(f"w: {k} columns are not a whole number of groups of {width}")
    if tuple(h.shape) != (k, k):
        raise ValueError(f"h: expected shape ({k}, {k}), got {tuple(h.shape)}")
    if percdamp < 0:
        raise ValueError(f"percdamp: expected >= 0, got {percdamp}")
    H = h.to(torch.float64).clone()
    dead = (torch.diag(H) == 0).numpy()
    H[dead, dead] = 1.0
    W[:, dead] = 0.0
    ngroups = k // width
    grids: list = [None] * ngroups
    scaleT = np.zeros((k, m), np.float32)  # per column (row of W^T): the grid's scale and offset
    offsetT = np.zeros((k, m), np.float32)
    maxq = 0

    def set_group(gi, w_group):
        nonlocal maxq
        g, sc, off = _fit(fit, w_group)
        grids[gi] = g
        maxq = (1 << g.bits) - 1
        cols = slice(gi * width, (gi + 1) * width)
        scaleT[cols] = np.repeat(sc, g.block, axis=1).T
        offsetT[cols] = np.repeat(off, g.block, axis=1).T

    perm = np.arange(k)
    if act_order:
        for gi in range(ngroups):  # static groups: fit on the original weights
            set_group(gi, W[:, gi * width:(gi + 1) * width])
        perm = np.argsort(-torch.diag(H).numpy(), kind="stable")
        W, H = W[:, perm], H[perm][:, perm]
        scaleT, offsetT = scaleT[perm], offsetT[perm]
    # layers fed the same inputs (q/k/v, gate/up) share H and so the factor: `cache` keeps it between calls
    key = (id(h), percdamp, act_order)
    U = cache.get(key) if cache is not None else None
    if U is None:
        U = _inverse_cholesky(H, percdamp).astype(np.float32)
        if cache is not None:
            cache.clear()
            cache[key] = U
    WT = np.ascontiguousarray(W.T)  # [K, M]
    QT = np.zeros((k, m), np.float32)
    for i1 in range(0, k, block):
        i2 = min(i1 + block, k)
        W1 = WT[i1:i2]  # a view: the in-batch updates land in WT directly
        Err = np.zeros((i2 - i1, m), np.float32)
        U1 = U[i1:i2, i1:i2]
        for i in range(i2 - i1):
            j = i1 + i
            if not act_order and j % width == 0:
                # the group's current weights: this batch's columns are updated in place, those after the batch
                # are up to date to the previous batch, which is all the updates they have had
                set_group(j // width, WT[j:j + width].T)
            col = W1[i]
            sc, off = scaleT[j], offsetT[j]
            inv = np.divide(1.0, sc, out=np.zeros_like(sc), where=sc != 0)
            q = np.clip(np.rint((col - off) * inv), 0, maxq)
            QT[j] = q
            err = (col - (q * sc + off)) / U1[i, i]
            W1[i:] -= U1[i, i:, None] * err[None, :]
            Err[i] = err
        WT[i2:] -= U[i1:i2, i2:].T @ Err
    QT = QT.astype(np.float32)
    if act_order:
        inv_perm = np.argsort(perm)
        QT, scaleT, offsetT = QT[inv_perm], scaleT[inv_perm], offsetT[inv_perm]
    codes = np.ascontiguousarray(QT.T).astype(np.uint8)
    deq = np.ascontiguousarray((QT * scaleT + offsetT).T)
    return Quantized(codes, concat(grids), deq)


def rtn(w, fit: Callable, width: int, concat: Callable, round_codes: Callable, dequantize: Callable) -> Quantized:
    """Round-to-nearest on the same grid family: each group fit on the original weights, codes rounded."""
    w = np.asarray(w, np.float32)
    k = w.shape[1]
    if k % width:
        raise ValueError(f"w: {k} columns are not a whole number of groups of {width}")
    grid = concat([fit(np.ascontiguousarray(w[:, c:c + width])) for c in range(0, k, width)])
    codes = round_codes(w, grid)
    return Quantized(codes, grid, dequantize(grid, codes).astype(np.float32))


def output_error(w, q, h: torch.Tensor) -> float:
    """tr((W - Q) H (W - Q)^T): the summed squared output error over the calibration inputs, times 2/N."""
    d = torch.as_tensor(np.asarray(w, np.float64) - np.asarray(q, np.float64))
    return float(((d @ h.to(torch.float64)) * d).sum())
