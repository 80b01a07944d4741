"""`compile(model) -> Stream`: a per-frame CNN (with or without Delta Activation Layers) as a program for
the delta-inference engine (csrc/delta; semantics in csrc/delta/layout.h).

    stream = frugalnn.delta.compile(cnn)                 # exact delta inference of the quantized net
    stream = frugalnn.delta.compile(dense_cnn, threshold=0.1)   # DeltaCNN-style threshold baseline
    stream.reset(); y = stream.push(frame)               # frame [C, H, W] -> output (logits)
    stream.macs, stream.nonzeros, stream.layer_names     # counters of the last frame

The model is read from its torch.fx graph in eval mode: Conv2d (groups 1, dilation 1, square kernel,
zero padding) and Linear, BatchNorm2d folded into the conv before it, ReLU, residual adds,
AdaptiveAvgPool2d(1) / flatten, and DeltaActivation (its step becomes the quantization of the layer
it follows: the input, or an activation). Anything else raises ValueError naming the node.
`threshold` (DeltaCNN's trick, no training): an emitted change must exceed it, else it is kept as a
residual; it applies at the input and after every ReLU, the layers where DeltaActivation sits.
"""
from __future__ import annotations

import math
import operator

import numpy as np
import torch
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp

from frugalnn.delta.nn import Clips, DeltaActivation, not_recording
from frugalnn.delta.sparsity import trace
from frugalnn.kernels import delta as kdelta
from frugalnn.kernels.delta_ref import Program


class _Pending:
    """A sum of edges onto a bias, not yet a layer (materialised at a ReLU, a DeltaActivation, a
    consumer or the output)."""

    def __init__(self, c, h, w, bias, edges):
        self.c, self.h, self.w, self.bias, self.edges = c, h, w, bias, edges


def _shape(node) -> tuple:
    meta = node.meta.get("tensor_meta")
    if meta is None:
        raise ValueError(f"node {node.name}: no shape (the graph did not run through ShapeProp)")
    s = tuple(meta.shape)[1:]
    return s + (1,) * (3 - len(s)) if len(s) < 3 else s


class _Builder:
    def __init__(self, threshold: float):
        self.prog = Program()
        self.threshold = float(threshold)
        self.names: list[str] = []

    def layer(self, p: _Pending, relu: bool, name: str) -> int:
        idx = self.prog.layer(p.c, p.h, p.w, relu, None, self.threshold if relu else 0.0, p.bias, name)
        for kind, src, w, stride, pad in p.edges:
            getattr(self.prog, kind)(idx, src, *([w, stride, pad] if kind == "conv" else []))
        return idx

    def as_layer(self, v, name: str) -> int:
        if isinstance(v, _Pending):
            return self.layer(v, False, name)
        return v


def _conv_edge(m: nn.Conv2d, src: int, name: str, c, h, w) -> _Pending:
    k = m.kernel_size
    if m.groups != 1 or m.dilation != (1, 1) or k[0] != k[1] or m.stride[0] != m.stride[1] \
            or not isinstance(m.padding, tuple) or m.padding[0] != m.padding[1] or m.padding_mode != "zeros":
        raise ValueError(f"{name}: only Conv2d with groups 1, dilation 1, square kernel and stride, symmetric zero "
                         f"padding is supported, got {m}")
    wt = m.weight.detach().double().permute(2, 3, 1, 0).numpy()    # [k, k, cin, cout]
    bias = np.zeros(m.out_channels) if m.bias is None else m.bias.detach().double().numpy()
    return _Pending(c, h, w, bias, [["conv", src, wt, m.stride[0], m.padding[0]]])


def build_program(cnn: nn.Module, frame_shape: tuple, threshold: float = 0.0) -> tuple[Program, list[str]]:
    """The engine program of `cnn` for frames of `frame_shape` (C, H, W); see the module docstring."""
    if not (isinstance(threshold, (int, float)) and math.isfinite(threshold) and threshold >= 0):
        raise ValueError(f"threshold: expected a finite float >= 0, got {threshold!r}")
    was = cnn.training
    cnn.eval()
    try:
        gm = trace(cnn)
        with torch.no_grad(), not_recording(cnn):
            ShapeProp(gm).propagate(torch.zeros(1, *frame_shape))
    finally:
        cnn.train(was)
    mods = dict(gm.named_modules())
    b = _Builder(threshold)
    val: dict = {}
    quantized: set[int] = set()
    out_node = None
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            c, h, w = frame_shape
            val[node] = b.prog.layer(c, h, w, False, None, b.threshold, None, "input")
            continue
        if node.op == "output":
            out_node = node.args[0]
            continue
        if node.op == "get_attr":
            raise ValueError(f"node {node.name}: parameters used outside a module are not supported")
        args = [val.get(a) if isinstance(a, torch.fx.Node) else a for a in node.args]
        m = mods.get(node.target) if node.op == "call_module" else None
        c, h, w = _shape(node)
        if isinstance(m, nn.Conv2d):
            val[node] = _conv_edge(m, b.as_layer(args[0], node.name), node.target, c, h, w)
        elif isinstance(m, nn.Linear):
            src = b.as_layer(args[0], node.name)
            wt = m.weight.detach().double().t().numpy()[None, None]     # [1, 1, in, out]
            bias = np.zeros(m.out_features) if m.bias is None else m.bias.detach().double().numpy()
            if b.prog.layers[src].h * b.prog.layers[src].w != 1:
                raise ValueError(f"{node.target}: a Linear layer must follow a 1x1 map (global pooling), got "
                                 f"{b.prog.layers[src].h}x{b.prog.layers[src].w}")
            val[node] = _Pending(c, 1, 1, bias, [["conv", src, wt, 1, 0]])
        elif isinstance(m, nn.BatchNorm2d):
            p = args[0]
            if not (isinstance(p, _Pending) and len(p.edges) == 1 and p.edges[0][0] == "conv"):
                raise ValueError(f"{node.target}: BatchNorm2d must follow a Conv2d directly to be folded")
            scale = (m.weight.detach().double() / torch.sqrt(m.running_var.double() + m.eps)).numpy()
            shift = m.bias.detach().double().numpy() - m.running_mean.double().numpy() * scale
            edge = p.edges[0]
            val[node] = _Pending(c, h, w, p.bias * scale + shift, [["conv", edge[1], edge[2] * scale, edge[3], edge[4]]])
        elif isinstance(m, nn.ReLU) or (node.op == "call_function" and node.target in (torch.relu, nn.functional.relu)):
            if not isinstance(args[0], _Pending):
                raise ValueError(f"{node.name}: ReLU must follow a conv/linear/add (a sum), not a finished layer")
            val[node] = b.layer(args[0], True, node.target if m is not None else node.name)
        elif isinstance(m, DeltaActivation):
            idx = b.as_layer(args[0], node.name)
            if idx in quantized:
                raise ValueError(f"{node.target}: the layer it follows is quantized already")
            L = b.prog.layers[idx]
            L.step = m.step.detach().double().numpy().copy()
            L.threshold = 0.0 if b.threshold == 0 else L.threshold
            quantized.add(idx)
            val[node] = idx
        elif node.op == "call_function" and node.target in (operator.add, torch.add):
            parts = []
            for a in args:
                if isinstance(a, _Pending):
                    parts.append(a)
                elif isinstance(a, int) and not isinstance(a, bool):
                    L = b.prog.layers[a]
                    parts.append(_Pending(L.c, L.h, L.w, np.zeros(L.c), [["identity", a, None, 1, 0]]))
                else:
                    raise ValueError(f"{node.name}: add of unsupported operands")
            val[node] = _Pending(c, h, w, parts[0].bias + parts[1].bias, parts[0].edges + parts[1].edges)
        elif isinstance(m, nn.AdaptiveAvgPool2d) or (node.op == "call_function"
                                                     and node.target is nn.functional.adaptive_avg_pool2d):
            size = m.output_size if m is not None else args[1]
            if size not in (1, (1, 1)):
                raise ValueError(f"{node.name}: only global average pooling (output size 1) is supported")
            src = b.as_layer(args[0], node.name)
            val[node] = _Pending(c, 1, 1, np.zeros(c), [["mean", src, None, 1, 0]])
        elif (node.op == "call_function" and node.target is torch.flatten) or isinstance(m, nn.Flatten) \
                or (node.op == "call_method" and node.target in ("flatten", "view", "reshape")):
            v = args[0]
            L = b.prog.layers[v] if isinstance(v, int) else v
            if L.h * L.w != 1:
                raise ValueError(f"{node.name}: flatten is supported after global pooling only")
            val[node] = v
        elif isinstance(m, (nn.Identity, nn.Dropout)):
            val[node] = args[0]
        else:
            raise ValueError(f"node {node.name} ({node.op} {node.target}): not supported by the delta engine")
    last = val[out_node]
    if isinstance(last, _Pending):
        last = b.layer(last, False, "output")
    if last != len(b.prog.layers) - 1:
        raise ValueError("the output must be the last layer computed")
    return b.prog, [L.name for L in b.prog.layers]


class Stream:
    """Batch-1 delta inference of a compiled model: reset(), push(frame) -> output, counters."""

    def __init__(self, prog: Program, names: list[str], impl: str = "native", threads: int | None = 1):
        self.program = prog
        self.layer_names = names
        self.impl = impl
        self._s = kdelta.open_stream(prog, impl, threads)
        self.dense_macs = prog.dense_macs()
        self.reset()

    def reset(self) -> None:
        self._s.reset()
        self.frames = 0
        self.total_macs = 0

    def push(self, frame, dense: bool = False) -> np.ndarray:
        """One frame [C, H, W] (numpy or torch); returns the output (float32). dense=True treats every
        element as changed (the engine's own dense baseline)."""
        out = self._s.push(frame, dense)
        self.frames += 1
        self.total_macs += self.macs
        return out

    def run(self, clip) -> np.ndarray:
        """reset, then push every frame of `clip` [T, C, H, W]: outputs [T, ...]."""
        self.reset()
        return np.stack([self.push(f) for f in clip])

    @property
    def macs(self) -> int:
        return int(sum(self._s.layer_macs))

    @property
    def layer_macs(self) -> list[int]:
        return list(self._s.layer_macs)

    @property
    def nonzeros(self) -> list[int]:
        return list(self._s.nonzeros)


def compile(model: nn.Module, frame_shape: tuple | None = None, threshold: float = 0.0, impl: str = "native",
            threads: int | None = 1) -> Stream:
    """A Stream running `model` (a per-frame CNN, or Clips around one) frame by frame with delta inference."""
    cnn = model.cnn if isinstance(model, Clips) else model
    if frame_shape is None:
        frame_shape = getattr(model, "frame_shape", None) or (getattr(cnn, "in_channels", 1), 64, 64)
    prog, names = build_program(cnn, tuple(frame_shape), threshold)
    return Stream(prog, names, impl, threads)
