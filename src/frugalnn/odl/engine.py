"""`compile(model, dtype=, accumulate=)` -> Engine: batch-1 training of a torch CNN in one native call per step.

    eng = frugalnn.odl.compile(model, dtype="fp16", accumulate="fp32")
    loss = eng.step(x, label, lr=0.01)      # forward, backward, SGD for one sample (x [1, C, H, W])
    logits = eng.forward(x)
    eng.sync_to(model)                      # trained weights back into the torch module

The engine copies the model's weights (BatchNorm folded into the convs, statistics frozen, as an MCU
runs it); `sync_from(model)` copies them in again. fp16 stores weights, activations and gradients
as IEEE half; `accumulate` is "fp32" (default) or "fp16" (the paper's kernels).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from frugalnn import _core
from frugalnn._arrays import threads_arg
from frugalnn.odl import graph, tune

DTYPES = ("fp32", "fp16")


def _input_shape(model, input_shape):
    if input_shape is not None:
        shape = tuple(int(v) for v in input_shape)
        if len(shape) != 3:
            raise ValueError(f"input_shape: expected (C, H, W), got {input_shape!r}")
        return shape
    from frugalnn.models import tiny

    if isinstance(model, (tiny.ResNet8, tiny.DSCNN)):
        return tuple(tiny.example_input(model).shape[1:])
    raise ValueError("input_shape: give (C, H, W) for a model other than ResNet8 / DS-CNN")


class Engine:
    def __init__(self, model: torch.nn.Module, dtype: str = "fp32", accumulate: str | None = None,
                 input_shape=None, threads: int | None = 1, autotune: bool = True):
        if dtype not in DTYPES:
            raise ValueError(f"dtype: expected one of {DTYPES}, got {dtype!r}")
        accumulate = accumulate or "fp32"
        if accumulate not in DTYPES:
            raise ValueError(f"accumulate: expected one of {DTYPES}, got {accumulate!r}")
        if accumulate == "fp16" and dtype != "fp16":
            raise ValueError("accumulate='fp16' needs dtype='fp16'")
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
        self.dtype, self.accumulate = dtype, accumulate
        self.input_shape = _input_shape(model, input_shape)
        self.threads = threads_arg(threads)
        self.net = _core.odl.Net(dtype, *self.input_shape, acc16=accumulate == "fp16", threads=self.threads)
        gm = torch.fx.symbolic_trace(model)
        self.links = graph.build(self.net, gm, self.input_shape)
        self.sync_from(model)
        self.kernels = tune.tune_net(self.net, dtype, accumulate == "fp16", self.threads) if autotune else {}

    # -- weights ------------------------------------------------------------------------------
    def sync_from(self, model: torch.nn.Module) -> None:
        """Copies the model's weights (BN folded) into the engine; momentum restarts at zero."""
        for i, link in enumerate(self.links):
            w, b = graph.folded(link)
            if not (torch.isfinite(w).all() and torch.isfinite(b).all()):
                raise ValueError(f"{link.name}: non-finite weights")
            self.net.set_param(i, np.ascontiguousarray(w.reshape(-1).numpy(), np.float32),
                               np.ascontiguousarray(b.numpy(), np.float32))

    def sync_to(self, model: torch.nn.Module) -> None:
        """Writes the engine's weights into the model (unfolding BN into its shift)."""
        for i, link in enumerate(self.links):
            w, b = self.net.get_param(i)
            graph.unfold_into(link, torch.from_numpy(w), torch.from_numpy(b))

    def grads(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Gradients of the last step per parameter link (folded weight, bias), float32."""
        return [tuple(g) for g in (self.net.get_param(i, True) for i in range(len(self.links)))]

    # -- running ------------------------------------------------------------------------------
    def _sample(self, x) -> np.ndarray:
        if isinstance(x, torch.Tensor):
            if x.dtype != torch.float32:
                raise TypeError(f"x: expected float32, got {x.dtype}")
            x = x.detach().cpu().numpy()
        elif isinstance(x, np.ndarray):
            if x.dtype != np.float32:
                raise TypeError(f"x: expected float32, got {x.dtype}")
        else:
            raise TypeError(f"x: expected a torch tensor or numpy array, got {type(x).__name__}")
        if x.ndim == 4:
            if x.shape[0] != 1:
                raise ValueError(f"x: the engine trains one sample at a time (batch 1), got batch {x.shape[0]}")
            x = x[0]
        if tuple(x.shape) != self.input_shape:
            raise ValueError(f"x: expected shape (1, {', '.join(map(str, self.input_shape))}), got {tuple(x.shape)}")
        return np.ascontiguousarray(x)

    def forward(self, x) -> torch.Tensor:
        return torch.from_numpy(self.net.forward(self._sample(x))).unsqueeze(0)

    __call__ = forward

    def step(self, x, y, lr: float, momentum: float = 0.0, update: bool = True) -> float:
        """One SGD step on one sample; returns its loss. A non-finite loss raises and changes nothing."""
        if isinstance(y, torch.Tensor):
            if y.numel() != 1:
                raise ValueError(f"y: expected one label (batch 1), got {y.numel()}")
            y = int(y.item())
        if isinstance(y, bool) or not isinstance(y, (int, np.integer)):
            raise TypeError(f"y: expected an int label, got {type(y).__name__}")
        if not isinstance(lr, (int, float)) or not math.isfinite(lr):
            raise ValueError(f"lr: expected a finite number, got {lr!r}")
        return float(self.net.step(self._sample(x), int(y), float(lr), float(momentum), bool(update)))

    def input_grad(self, x, y) -> np.ndarray:
        """d loss / d x for one sample (no weight update)."""
        self.net.set_input_grad(True)
        try:
            self.step(x, y, 0.0, update=False)
            return self.net.input_grad().reshape(self.input_shape)
        finally:
            self.net.set_input_grad(False)

    def bytes(self, momentum: bool = False) -> int:
        return int(self.net.bytes(momentum))

    def __repr__(self) -> str:
        return (f"odl.Engine(dtype={self.dtype}, accumulate={self.accumulate}, input={self.input_shape}, "
                f"layers={len(self.links)}, threads={self.threads})")


def compile(model: torch.nn.Module, dtype: str = "fp32", accumulate: str | None = None, input_shape=None,
            threads: int | None = 1, autotune: bool = True) -> Engine:
    return Engine(model, dtype, accumulate, input_shape, threads, autotune)
