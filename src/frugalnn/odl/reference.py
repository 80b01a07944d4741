"""The torch twin of a compiled engine: the same model with BatchNorm folded into its convs
(frozen statistics), trained by plain torch autograd at batch 1. Tests compare the engine with it,
and the benchmarks race it (torch eager, torch.compile)."""
from __future__ import annotations

import copy

import torch
from torch import nn

from frugalnn.odl import graph


def fold_bn(model: nn.Module) -> nn.Module:
    """A copy of `model` whose BatchNorm2d layers are folded into the conv before them (conv gets a
    bias) and replaced by Identity: what the engine computes, in torch."""
    model = copy.deepcopy(model).eval()
    gm = torch.fx.symbolic_trace(model)
    convs = {}
    for node in gm.graph.nodes:
        if node.op != "call_module":
            continue
        mod = gm.get_submodule(node.target)
        if isinstance(mod, nn.Conv2d):
            convs[node] = mod
        elif isinstance(mod, nn.BatchNorm2d):
            src = node.args[0]
            if src not in convs or len(src.users) != 1:
                raise graph.UnsupportedLayerError(f"{node.target}: BatchNorm2d must directly follow a Conv2d")
            conv = convs[src]
            w, b = graph.folded(graph.ParamLink(conv, mod))
            conv.weight = nn.Parameter(w.clone())
            conv.bias = nn.Parameter(b.clone())
            _replace(model, node.target, nn.Identity())
    return model


def _replace(model: nn.Module, target: str, new: nn.Module) -> None:
    parent, _, name = target.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, name, new)


def torch_step(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> float:
    opt.zero_grad(set_to_none=True)
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return float(loss.detach())
