"""Numpy reference of the delta-inference engine (csrc/delta; semantics in csrc/delta/layout.h).

    program = Program(); program.layer(...); program.conv(...); ...    # the network, channels last
    dense(program, frame)          the network evaluated densely (float64): what the engine must equal
    RefStream(program).push(frame) the same delta algorithm as the engine, in numpy, with its counters

A Program is what frugalnn.delta.compile builds from a torch model and what kernels.delta.NativeStream
hands to the compiled engine: layer 0 is the input; every other layer sums its edges (conv, identity,
mean) onto its bias, then applies relu and per-channel quantization.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

EDGE_KINDS = ("conv", "identity", "mean")


@dataclass
class LayerSpec:
    c: int
    h: int
    w: int
    relu: bool = False
    step: np.ndarray | None = None      # float64 [c], None: no quantization
    threshold: float = 0.0
    bias: np.ndarray | None = None      # float64 [c]
    name: str = ""

    @property
    def size(self) -> int:
        return self.c * self.h * self.w


@dataclass
class EdgeSpec:
    kind: str
    dst: int
    src: int
    weight: np.ndarray | None = None    # float32 [k, k, cin, cout] for conv
    stride: int = 1
    pad: int = 0


@dataclass
class Program:
    layers: list = field(default_factory=list)
    edges: list = field(default_factory=list)

    def layer(self, c, h, w, relu=False, step=None, threshold=0.0, bias=None, name="") -> int:
        self.layers.append(LayerSpec(int(c), int(h), int(w), bool(relu),
                                     None if step is None else np.ascontiguousarray(step, np.float64),
                                     float(threshold), None if bias is None else np.ascontiguousarray(bias, np.float64),
                                     name))
        return len(self.layers) - 1

    def conv(self, dst, src, weight, stride=1, pad=0) -> None:
        self.edges.append(EdgeSpec("conv", dst, src, np.ascontiguousarray(weight, np.float32), int(stride), int(pad)))

    def identity(self, dst, src) -> None:
        self.edges.append(EdgeSpec("identity", dst, src))

    def mean(self, dst, src) -> None:
        self.edges.append(EdgeSpec("mean", dst, src))

    def edges_into(self, dst: int) -> list:
        return [e for e in self.edges if e.dst == dst]

    def dense_macs(self) -> int:
        """MACs of a dense evaluation (every conv tap inside the output, times cout)."""
        total = 0
        for e in self.edges:
            if e.kind == "conv":
                s, d = self.layers[e.src], self.layers[e.dst]
                total += int(_taps(s, d, e).sum()) * s.c * d.c
        return total


def _taps(s: LayerSpec, d: LayerSpec, e: EdgeSpec) -> np.ndarray:
    """[H, W] of the source: how many taps of its element land inside the destination."""
    k = e.weight.shape[0]

    def axis(n_in, n_out):
        y = np.arange(n_in)[:, None]
        t = y + e.pad - np.arange(k)[None, :]
        ok = (t >= 0) & (t % e.stride == 0) & (t // e.stride < n_out)
        return ok.sum(1)
    return axis(s.h, d.h)[:, None] * axis(s.w, d.w)[None, :]


def conv_hwc(x: np.ndarray, w: np.ndarray, stride: int, pad: int, ho: int, wo: int) -> np.ndarray:
    """x [H, W, Cin] (float64) conv w [k, k, Cin, Cout] -> [ho, wo, Cout], zero padding."""
    h, wd, _ = x.shape
    k = w.shape[0]
    need_h, need_w = stride * (ho - 1) + k, stride * (wo - 1) + k
    xp = np.zeros((max(need_h, h + pad), max(need_w, wd + pad), x.shape[2]))
    xp[pad:pad + h, pad:pad + wd] = x
    out = np.zeros((ho, wo, w.shape[3]))
    for ky in range(k):
        for kx in range(k):
            patch = xp[ky:ky + stride * (ho - 1) + 1:stride, kx:kx + stride * (wo - 1) + 1:stride]
            out += patch @ w[ky, kx].astype(np.float64)
    return out


def _edge_sum(prog: Program, e: EdgeSpec, value: np.ndarray) -> np.ndarray:
    s, d = prog.layers[e.src], prog.layers[e.dst]
    if e.kind == "conv":
        return conv_hwc(value, e.weight, e.stride, e.pad, d.h, d.w)
    if e.kind == "identity":
        return value
    return value.mean(axis=(0, 1), keepdims=True)


def _activate(L: LayerSpec, state: np.ndarray) -> np.ndarray:
    a = np.maximum(state, 0.0) if L.relu else state
    if L.step is not None:
        a = L.step * np.round(a / L.step)
    return a


def _frame_hwc(L: LayerSpec, frame) -> np.ndarray:
    f = np.asarray(frame, np.float64)
    if f.shape != (L.c, L.h, L.w):
        raise ValueError(f"frame: expected shape {(L.c, L.h, L.w)}, got {f.shape}")
    return f.transpose(1, 2, 0)


def _out_chw(a: np.ndarray) -> np.ndarray:
    return a.transpose(2, 0, 1).reshape(-1)


def dense(prog: Program, frame) -> np.ndarray:
    """The quantized network evaluated densely in float64: the last layer's values, CHW flattened."""
    values = [_activate(prog.layers[0], _frame_hwc(prog.layers[0], frame))]
    for i, L in enumerate(prog.layers[1:], 1):
        state = np.zeros((L.h, L.w, L.c)) + (0.0 if L.bias is None else L.bias)
        for e in prog.edges_into(i):
            state = state + _edge_sum(prog, e, values[e.src])
        values.append(_activate(L, state))
    return _out_chw(values[-1])


class RefStream:
    """The engine's delta algorithm in numpy: states, emitted values, sparse deltas, counters."""

    def __init__(self, prog: Program, threads: int | None = None):
        self.prog = prog
        self.reset()

    def reset(self) -> None:
        self.state = [np.zeros((L.h, L.w, L.c)) + (0.0 if L.bias is None else L.bias) for L in self.prog.layers]
        self.emitted = [np.zeros((L.h, L.w, L.c)) for L in self.prog.layers]
        self.deltas = [np.zeros((L.h, L.w, L.c)) for L in self.prog.layers]
        self.emits = [np.zeros((L.h, L.w, L.c), bool) for L in self.prog.layers]
        self.layer_macs = [0] * len(self.prog.layers)
        self.nonzeros = [0] * len(self.prog.layers)

    def push(self, frame, dense: bool = False) -> np.ndarray:
        prog = self.prog
        for i, L in enumerate(prog.layers):
            if i == 0:
                self.state[0] = _frame_hwc(L, frame).copy()
            macs = 0
            for e in prog.edges_into(i):
                d = self.deltas[e.src]
                if e.kind == "mean":   # one add per delta, in raster order: the engine's rounding exactly
                    src = prog.layers[e.src]
                    flat, mask = d.reshape(-1), self.emits[e.src].reshape(-1)
                    nz = np.flatnonzero(mask)
                    acc = self.state[i].reshape(-1)
                    np.add.at(acc, nz % src.c, flat[nz] * (1.0 / (src.h * src.w)))
                    self.state[i] = acc.reshape(self.state[i].shape)
                    continue
                self.state[i] = self.state[i] + _edge_sum(prog, e, d)
                if e.kind == "conv":
                    s = prog.layers[e.src]
                    macs += int((self.emits[e.src] * _taps(s, L, e)[:, :, None]).sum()) * L.c
            a = _activate(L, self.state[i])
            diff = a - self.emitted[i]
            emit = np.ones(diff.shape, bool) if dense else (np.abs(diff) > L.threshold if L.threshold > 0 else diff != 0)
            self.deltas[i] = np.where(emit, diff, 0.0)
            self.emits[i] = emit
            self.emitted[i] = np.where(emit, a, self.emitted[i])
            self.layer_macs[i] = macs
            self.nonzeros[i] = int(emit.sum())
        return _out_chw(self.emitted[-1]).astype(np.float32)
