"""Shared by the ODL tests: run one training step on the engine and in torch (float64 and .half()),
and return every gradient side by side."""
from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch import nn

import frugalnn.odl as odl
from frugalnn.odl.reference import fold_bn

U16 = 2.0 ** -11  # fp16 unit roundoff


def torch_grads(model: nn.Module, links, x: torch.Tensor, y: int, dtype=torch.float64):
    f = fold_bn(model).to(dtype)
    xx = x.to(dtype).clone().requires_grad_(True)
    loss = nn.functional.cross_entropy(f(xx), torch.tensor([y]))
    loss.backward()
    grads = []
    for link in links:
        m = f.get_submodule(link.name)
        grads.append((m.weight.grad.double().numpy().ravel(), m.bias.grad.double().numpy()))
    return float(loss.detach()), grads, xx.grad[0].double().numpy()


def engine_grads(model, input_shape, dtype="fp32", accumulate=None, seed=0):
    torch.manual_seed(seed)
    eng = odl.compile(model, dtype=dtype, accumulate=accumulate, input_shape=input_shape, autotune=False)
    x = torch.randn(1, *input_shape)
    y = seed % max(1, int(eng.forward(x).numel()))
    loss = eng.step(x, y, 0.0, update=False)
    grads = [(w.astype(np.float64), b.astype(np.float64)) for w, b in eng.grads()]
    dx = eng.input_grad(x, y).astype(np.float64)
    return eng, x, y, loss, grads, dx


def rel_err(got, want) -> float:
    scale = max(float(np.abs(want).max(initial=0.0)), 1e-30)
    return float(np.abs(np.asarray(got, np.float64) - want).max(initial=0.0)) / scale


def max_k(model: nn.Module) -> int:
    """The longest reduction of a step: K of a forward / input grad, or P of a weight grad (bounded)."""
    ks = [m.weight[0].numel() for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    ks += [m.out_channels * m.kernel_size[0] * m.kernel_size[1] for m in model.modules() if isinstance(m, nn.Conv2d)]
    return max(ks)


def fp16_tolerance(k: int, c: float = 4.0) -> float:
    """Relative (to the tensor's max) error bound against torch .half(): c * sqrt(K) * u16."""
    return c * math.sqrt(k) * U16


def randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    model = copy.deepcopy(model).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.rand(m.num_features, generator=g) * 0.2 - 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.rand(m.num_features, generator=g) * 0.2 - 0.1)
    return model
