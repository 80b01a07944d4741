"""Torch module -> the compiled engine's node list (torch.fx trace), with BatchNorm folded.

Supported: Conv2d (groups 1 or depthwise, zero padding, dilation 1; a ZeroPad2d in front merges into
its padding, which is how TF-"same" asymmetric padding is written), BatchNorm2d directly after a
Conv2d (folded, running statistics frozen), ReLU, AvgPool2d / AdaptiveAvgPool2d(1) / MaxPool2d
without padding, Linear, residual add, Flatten / Identity / Dropout (no-ops at batch 1 on device).
Anything else is an error naming the layer.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


class UnsupportedLayerError(ValueError):
    pass


@dataclass
class ParamLink:
    """Which torch parameters an engine parameter holds: a conv (+ folded BN) or a linear."""
    module: nn.Module
    bn: nn.BatchNorm2d | None = None
    name: str = ""


_NOOPS = (nn.Flatten, nn.Identity, nn.Dropout)
_FLATTENS = {torch.flatten}


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


def build(net, gm: torch.fx.GraphModule, input_shape) -> list[ParamLink]:
    """Adds gm's layers to `net` (a _core.odl.Net); returns the parameter links in engine order."""
    env: dict[torch.fx.Node, int] = {}
    pads: dict[torch.fx.Node, tuple[int, tuple[int, int, int, int]]] = {}  # value, (left, right, top, bottom)
    conv_of: dict[int, int] = {}  # engine value id -> index in links of the conv that made it
    links: list[ParamLink] = []
    out = None

    def value(arg, user: str) -> int:
        if arg in pads:
            raise UnsupportedLayerError(f"{user}: a ZeroPad2d output may only feed a Conv2d")
        return env[arg]

    for node in gm.graph.nodes:
        if node.op == "placeholder":
            if env:
                raise UnsupportedLayerError(f"model takes more than one input ({node.name})")
            env[node] = 0
        elif node.op == "output":
            out = node.args[0]
        elif node.op == "call_module":
            mod = gm.get_submodule(node.target)
            name = f"{node.target} ({type(mod).__name__})"
            src = node.args[0]
            if isinstance(mod, nn.ZeroPad2d):
                l, r, t, b = mod.padding
                pads[node] = (value(src, name), (l, r, t, b))
            elif isinstance(mod, nn.Conv2d):
                if mod.padding_mode != "zeros" or _pair(mod.dilation) != (1, 1) or mod.stride[0] != mod.stride[1]:
                    raise UnsupportedLayerError(f"{name}: only zero padding, dilation 1 and equal strides are supported")
                if isinstance(mod.padding, str):
                    raise UnsupportedLayerError(f"{name}: padding={mod.padding!r}; use ints (or a ZeroPad2d in front)")
                ph, pw = mod.padding
                l = r = pw
                t = b = ph
                if src in pads:
                    x, (pl, pr, pt, pb) = pads[src]
                    l, r, t, b = l + pl, r + pr, t + pt, b + pb
                else:
                    x = value(src, name)
                kh, kw = mod.kernel_size
                env[node] = net.conv(x, mod.out_channels, kh, kw, mod.stride[0], t, l, b, r, mod.groups, True)
                conv_of[env[node]] = len(links)
                links.append(ParamLink(mod, name=str(node.target)))
            elif isinstance(mod, nn.BatchNorm2d):
                x = value(src, name)
                if x not in conv_of or len(src.users) != 1:
                    raise UnsupportedLayerError(f"{name}: BatchNorm2d is folded, so it must directly follow a Conv2d "
                                                "whose output it alone uses")
                links[conv_of[x]].bn = mod
                env[node] = x
            elif isinstance(mod, nn.ReLU):
                env[node] = net.relu(value(src, name))
            elif isinstance(mod, (nn.AvgPool2d, nn.MaxPool2d)):
                kh, kw = _pair(mod.kernel_size)
                stride = _pair(mod.stride if mod.stride else mod.kernel_size)
                x = value(src, name)
                _, h, w = net.value_shape(x)
                if (kh, kw) == (h, w):  # a global pool: one window, the stride does not matter
                    stride = (1, 1)
                if _pair(mod.padding) != (0, 0) or mod.ceil_mode or stride[0] != stride[1] or \
                        (isinstance(mod, nn.MaxPool2d) and _pair(mod.dilation) != (1, 1)):
                    raise UnsupportedLayerError(f"{name}: only unpadded pools with equal strides are supported")
                pool = net.maxpool if isinstance(mod, nn.MaxPool2d) else net.avgpool
                env[node] = pool(x, kh, kw, stride[0])
            elif isinstance(mod, nn.AdaptiveAvgPool2d) and _pair(mod.output_size) == (1, 1):
                x = value(src, name)
                _, h, w = net.value_shape(x)
                env[node] = net.avgpool(x, h, w, 1)
            elif isinstance(mod, nn.Linear):
                env[node] = net.linear(value(src, name), mod.out_features, True)
                links.append(ParamLink(mod, name=str(node.target)))
            elif isinstance(mod, _NOOPS):
                env[node] = value(src, name)
            else:
                raise UnsupportedLayerError(f"unsupported layer {name}: frugalnn.odl supports Conv2d, BatchNorm2d "
                                            "(after a conv), ReLU, pools, Linear, add, Flatten")
        elif node.op == "call_function":
            fn = node.target
            if fn in (operator.add, torch.add) and len(node.args) == 2 and not node.kwargs:
                env[node] = net.add(value(node.args[0], "add"), value(node.args[1], "add"))
            elif fn in (F.relu, torch.relu):
                env[node] = net.relu(value(node.args[0], "relu"))
            elif fn in _FLATTENS:
                env[node] = value(node.args[0], "flatten")
            else:
                raise UnsupportedLayerError(f"unsupported function {getattr(fn, '__name__', fn)} ({node.name})")
        elif node.op == "call_method" and node.target in ("flatten", "view", "reshape", "relu"):
            x = value(node.args[0], node.target)
            env[node] = net.relu(x) if node.target == "relu" else x
        else:
            raise UnsupportedLayerError(f"unsupported operation {node.op} {node.target} ({node.name})")
    if not isinstance(out, torch.fx.Node) or out not in env:
        raise UnsupportedLayerError("the model must return one tensor of logits")
    net.set_loss(env[out])
    return links


def _bn_scale(bn: nn.BatchNorm2d) -> torch.Tensor:
    if not bn.track_running_stats or bn.running_var is None:
        raise UnsupportedLayerError("BatchNorm2d without running statistics cannot be folded")
    gamma = bn.weight if bn.affine else torch.ones_like(bn.running_var)
    s = gamma / torch.sqrt(bn.running_var + bn.eps)
    if not bool(torch.all(s != 0)):
        raise ValueError("BatchNorm2d with a zero scale cannot be unfolded after training (sync_to)")
    return s


@torch.no_grad()
def folded(link: ParamLink) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight, bias) the engine holds for this link (BN folded in)."""
    m = link.module
    w = m.weight.detach().float()
    b = m.bias.detach().float() if m.bias is not None else torch.zeros(w.shape[0])
    if link.bn is None:
        return w, b
    bn, s = link.bn, _bn_scale(link.bn).float()
    beta = bn.bias.float() if bn.affine else torch.zeros_like(s)
    return w * s.view(-1, 1, 1, 1), s * (b - bn.running_mean.float()) + beta


@torch.no_grad()
def unfold_into(link: ParamLink, w: torch.Tensor, b: torch.Tensor) -> None:
    """Writes the engine's (weight, bias) back: with BN, the conv weight is w / s and the change of
    the bias goes into BN's shift (its statistics and scale stay frozen)."""
    m = link.module
    if link.bn is None:
        m.weight.copy_(w.view_as(m.weight))
        if m.bias is not None:
            m.bias.copy_(b)
        return
    bn, s = link.bn, _bn_scale(link.bn).float()
    m.weight.copy_((w.view_as(m.weight) / s.view(-1, 1, 1, 1)).to(m.weight.dtype))
    conv_b = m.bias.float() if m.bias is not None else torch.zeros_like(s)
    if not bn.affine:
        raise ValueError("BatchNorm2d(affine=False) has no shift to take the trained bias (sync_to)")
    bn.bias.copy_(b - s * (conv_b - bn.running_mean.float()))
