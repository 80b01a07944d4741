"""numpy twin of csrc/odl/serial.h: the ODL matmul (fp32, or fp16 storage with fp32 or fp16
accumulation) and the im2col / col2im that turn every conv step into one matmul.

fp16 storage: operands are float16; products are formed in float32 (exact for two fp16 values),
summed in float32 in ascending k, and with acc16 the running sum is rounded to float16 after every
k; the result is rounded to float16 once (numpy's astype rounds to nearest even, like vcvtps2ph).
"""
from __future__ import annotations

import numpy as np


def matmul(a: np.ndarray, b: np.ndarray, trans_a: bool = False, trans_b: bool = False, acc16: bool = False):
    """op(a) @ op(b) with the serial kernel's rounding; the dtype of a (float32 or float16) is kept."""
    dtype = a.dtype
    a = (a.T if trans_a else a).astype(np.float32)
    b = (b.T if trans_b else b).astype(np.float32)
    if dtype == np.float32 and not acc16:
        acc = np.zeros((a.shape[0], b.shape[1]), np.float32)
        for q in range(a.shape[1]):
            acc = acc + np.outer(a[:, q], b[q]).astype(np.float32)
        return acc
    acc = np.zeros((a.shape[0], b.shape[1]), np.float32)
    with np.errstate(over="ignore", invalid="ignore"):  # fp16 overflow to inf is the defined result
        return _acc_fp16(a, b, acc, acc16).astype(dtype)


def _acc_fp16(a, b, acc, acc16):
    for q in range(a.shape[1]):
        acc = (acc + np.outer(a[:, q], b[q]).astype(np.float32)).astype(np.float32)
        if acc16:
            acc = acc.astype(np.float16).astype(np.float32)
    return acc


def out_size(size: int, k: int, stride: int, before: int, after: int) -> int:
    return (size + before + after - k) // stride + 1


def im2col(x: np.ndarray, kh: int, kw: int, stride: int, pad: tuple[int, int, int, int]) -> np.ndarray:
    """x [C, H, W] -> col [C*kh*kw, Ho*Wo]; pad = (top, left, bottom, right), zeros outside."""
    c, h, w = x.shape
    t, l, b, r = pad
    xp = np.zeros((c, h + t + b, w + l + r), x.dtype)
    xp[:, t:t + h, l:l + w] = x
    ho, wo = out_size(h, kh, stride, t, b), out_size(w, kw, stride, l, r)
    col = np.empty((c, kh, kw, ho, wo), x.dtype)
    for i in range(kh):
        for j in range(kw):
            col[:, i, j] = xp[:, i:i + stride * (ho - 1) + 1:stride, j:j + stride * (wo - 1) + 1:stride]
    return col.reshape(c * kh * kw, ho * wo)


def col2im(col: np.ndarray, shape: tuple[int, int, int], kh: int, kw: int, stride: int,
           pad: tuple[int, int, int, int]) -> np.ndarray:
    """The adjoint of im2col (float64 sums: the order-free reference for the input gradient)."""
    c, h, w = shape
    t, l, b, r = pad
    ho, wo = out_size(h, kh, stride, t, b), out_size(w, kw, stride, l, r)
    xp = np.zeros((c, h + t + b, w + l + r), np.float64)
    col = col.reshape(c, kh, kw, ho, wo)
    for i in range(kh):
        for j in range(kw):
            xp[:, i:i + stride * (ho - 1) + 1:stride, j:j + stride * (wo - 1) + 1:stride] += col[:, i, j]
    return xp[:, t:t + h, l:l + w]


def conv_steps(x, w, dy, stride: int, pad):
    """(y, dw, dx) of a groups=1 conv as the three matmuls (float64 reference)."""
    cout, cin, kh, kw = w.shape
    col = im2col(x.astype(np.float64), kh, kw, stride, pad)
    wm = w.reshape(cout, -1).astype(np.float64)
    y = wm @ col
    dyf = dy.reshape(cout, -1).astype(np.float64)
    dw = (dyf @ col.T).reshape(w.shape)
    dx = col2im(wm.T @ dyf, x.shape, kh, kw, stride, pad)
    return y.reshape(dy.shape), dw, dx
