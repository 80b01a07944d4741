"""The temporal-sparsity loss and what it estimates.

    sparsity_loss(model)          rate x sum over layers of fan_out x |delta|_1, per frame, / dense MACs
    sparsity_loss(model, estimate="count")   the same with the expected NUMBER of nonzero deltas
    calibrate_steps(model, clips) per-channel initial steps from the typical temporal change
    estimated_macs(model)         the same sum with |delta|_0: MACs delta inference does per frame
    temporal_density(model)       nonzero deltas / elements, per layer and overall

fan_out (fan_out="macs") = the MACs one nonzero element of a layer's output triggers downstream:
the MACs of the conv/linear layers that consume it (frugalnn.cost.profile, per module) divided by the
layer's output elements per frame. Consumers are found on the torch.fx graph, through ops that carry
no MACs (pooling, flatten, residual adds). fan_out="ones" weighs every element 1 (plain activation
sparsity). Deltas are taken between consecutive frames of the clip that just ran (Clips forward).

Why two estimates. estimate="l1" (the paper's) sums |Q(a_t) - Q(a_{t-1})|. Its gradient moves the
weights (smoother activations) but, through the straight-through rounding, pushes every step q DOWN:
a delta that crosses a rounding boundary is worth a whole q, and d/dq of q * round(a / q) is
round(a / q) - a / q, which is positive on the side a crossing lands on and negative on the side it
left, so d|delta|/dq ~ +1 per nonzero delta and 0 per zero one. The true effect of a larger step --
fewer crossings -- is invisible to it. estimate="count" uses what the MACs count: with a uniformly
placed rounding grid a change d = a_t - a_{t-1} crosses a boundary with probability min(|d| / q, 1),
so sum fan_out x min(|d| / q, 1) is the expected MACs per frame (divided by dense MACs: a fraction);
its gradient pushes q up (-|d| / q^2) and the activations towards smaller changes.
"""
from __future__ import annotations

import math

import torch
import torch.fx
from torch import nn

from frugalnn.delta.nn import Clips, DeltaActivation, delta_layers, not_recording

FAN_OUTS = ("macs", "ones")
ESTIMATES = ("l1", "count")


class _Tracer(torch.fx.Tracer):
    def is_leaf_module(self, m, qualname):
        return isinstance(m, DeltaActivation) or super().is_leaf_module(m, qualname)


def trace(cnn: nn.Module) -> torch.fx.GraphModule:
    graph = _Tracer().trace(cnn)
    return torch.fx.GraphModule(cnn, graph)


def consumers(gm: torch.fx.GraphModule) -> dict[str, list[str]]:
    """Delta layer fqn -> the conv/linear modules its output reaches through MAC-free ops."""
    mods = dict(gm.named_modules())
    out = {}
    for node in gm.graph.nodes:
        if node.op != "call_module" or not isinstance(mods[node.target], DeltaActivation):
            continue
        found, todo, seen = [], list(node.users), set()
        while todo:
            u = todo.pop()
            if u in seen:
                continue
            seen.add(u)
            m = mods.get(u.target) if u.op == "call_module" else None
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                found.append(u.target)
            elif not isinstance(m, DeltaActivation):
                todo.extend(u.users)
        out[node.target] = sorted(found)
    return out


def fan_outs(cnn: nn.Module, frame_shape: tuple) -> dict[str, float]:
    """Delta layer fqn -> MACs per nonzero output element (see the module docstring)."""
    from frugalnn.cost import profile

    gm = trace(cnn)
    names = {id(m): n for n, m in cnn.named_modules()}
    numel, hooks = {}, []
    for layer in delta_layers(cnn):
        hooks.append(layer.register_forward_hook(lambda m, i, o: numel.__setitem__(names[id(m)], o[0].numel())))
    was = cnn.training
    try:
        cnn.eval()
        with torch.no_grad(), not_recording(cnn):
            prof = profile(cnn, torch.zeros(1, *frame_shape))
    finally:
        cnn.train(was)
        for h in hooks:
            h.remove()
    per_module = prof.by_module()
    return {fqn: sum(float(per_module[c].macs) for c in cons) / numel[fqn] for fqn, cons in consumers(gm).items()}


def _cnn_and_shape(model, frame_shape):
    cnn = model.cnn if isinstance(model, Clips) else model
    shape = frame_shape or (model.frame_shape if isinstance(model, Clips) else None)
    return cnn, shape


def attach_fan_outs(model, frame_shape: tuple | None = None) -> dict[str, float]:
    cnn, shape = _cnn_and_shape(model, frame_shape)
    if shape is None:
        raise ValueError("frame_shape: pass (C, H, W), or run the Clips model once first")
    fo = fan_outs(cnn, tuple(shape))
    for fqn, m in cnn.named_modules():
        if isinstance(m, DeltaActivation):
            m.fan_out = fo[fqn]
    return fo


def _deltas(layer: DeltaActivation) -> torch.Tensor:
    if layer.last is None:
        raise ValueError("no recorded activations: run the model (Clips) on a clip first")
    y, t = layer.last, layer.frames
    if t < 2:
        raise ValueError(f"temporal deltas need clips of >= 2 frames, the last forward had {t}")
    y = y.reshape(-1, t, *y.shape[1:])
    return y[:, 1:] - y[:, :-1]   # [clips, T-1, C, H, W]


def _weights(model, fan_out: str, frame_shape) -> list[tuple[DeltaActivation, float]]:
    if fan_out not in FAN_OUTS:
        raise ValueError(f"fan_out: expected one of {FAN_OUTS}, got {fan_out!r}")
    layers = delta_layers(model)
    if not layers:
        raise ValueError("model holds no DeltaActivation layers (convert_ it with DeltaConfig first)")
    if fan_out == "macs" and any(m.fan_out is None for m in layers):
        attach_fan_outs(model, frame_shape)
    return [(m, m.fan_out if fan_out == "macs" else 1.0) for m in layers]


def dense_macs(model, fan_out: str = "macs", frame_shape=None) -> float:
    """sum over layers of fan_out x elements per frame: the MACs every-element-changed inference does
    downstream of the delta layers."""
    total = 0.0
    for m, w in _weights(model, fan_out, frame_shape):
        total += w * m.last[0].numel()
    return total


def _expected_nonzeros(layer: DeltaActivation) -> torch.Tensor:
    """Per element min(|a_t - a_{t-1}| / q, 1): the chance a change crosses a rounding boundary."""
    if layer.last_in is None:
        raise ValueError("no recorded activations: run the model (Clips) on a clip first")
    x, t = layer.last_in, layer.frames
    x = x.reshape(-1, t, *x.shape[1:])
    q = layer.step.view(1, 1, -1, *([1] * (x.dim() - 3)))
    return torch.clamp((x[:, 1:] - x[:, :-1]).abs() / q, max=1.0)


def sparsity_loss(model, fan_out: str = "macs", frame_shape=None, estimate: str = "l1") -> torch.Tensor:
    """Sum over delta layers of rate x fan_out x (sum |delta| per frame transition, estimate="l1"; or the
    expected number of nonzero deltas, estimate="count"), divided by dense_macs (so rate weighs a fraction
    of the dense MACs against the task loss; with "count" the sum without rate IS that fraction)."""
    if estimate not in ESTIMATES:
        raise ValueError(f"estimate: expected one of {ESTIMATES}, got {estimate!r}")
    total, dense = 0.0, 0.0
    for m, w in _weights(model, fan_out, frame_shape):
        d = _deltas(m) if estimate == "l1" else _expected_nonzeros(m)
        per_frame = d.abs().sum() / (d.shape[0] * d.shape[1])
        total = total + m.rate * w * per_frame
        dense += w * m.last[0].numel()
    return total / dense


@torch.no_grad()
def calibrate_steps(model, clips: torch.Tensor, scale: float = 1.0) -> list[torch.Tensor]:
    """Set every delta layer's per-channel step to `scale` x the mean |a_t - a_{t-1}| of that channel over
    the elements that change at all, on `clips` [B, T, C, H, W] (T >= 2). One init_step for every layer
    ignores that the input faces fresh sensor noise each frame while deep channels barely move; this puts
    each channel at the same starting point: a typical change crosses about 1 / scale boundaries.
    Returns the steps set."""
    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale: expected a finite float > 0, got {scale!r}")
    if clips.dim() != 5 or clips.shape[1] < 2:
        raise ValueError(f"clips: expected [B, T >= 2, C, H, W], got {tuple(clips.shape)}")
    cnn = model.cnn if isinstance(model, Clips) else model
    was = cnn.training
    cnn.eval()
    try:
        Clips(cnn)(clips)
    finally:
        cnn.train(was)
    out = []
    for m in delta_layers(cnn):
        x = m.last_in.reshape(-1, m.frames, *m.last_in.shape[1:])
        d = (x[:, 1:] - x[:, :-1]).abs().transpose(0, 2).reshape(m.channels, -1)     # [C, everything]
        moving = (d > 0).sum(1)
        mean = d.sum(1) / moving.clamp_min(1)
        # a channel that never changes keeps its step (nothing to calibrate on)
        step = torch.where(moving > 0, scale * mean, m.step)
        m.log_step.copy_(step.clamp_min(1e-6).log())
        out.append(step)
    return out


@torch.no_grad()
def estimated_macs(model, fan_out: str = "macs", frame_shape=None) -> float:
    """sum over delta layers of fan_out x nonzero deltas, per frame transition: the MACs delta
    inference does per frame after the first, as the loss weighs them."""
    total = 0.0
    for m, w in _weights(model, fan_out, frame_shape):
        d = _deltas(m)
        total += w * float((d != 0).sum()) / (d.shape[0] * d.shape[1])
    return total


@torch.no_grad()
def temporal_density(model) -> dict[str, float]:
    """Nonzero temporal deltas / elements, per delta layer (fqn) and 'all' (element-weighted)."""
    out, nz, n = {}, 0, 0
    cnn = model.cnn if isinstance(model, Clips) else model
    for fqn, m in cnn.named_modules():
        if isinstance(m, DeltaActivation):
            d = _deltas(m)
            out[fqn] = float((d != 0).float().mean())
            nz += int((d != 0).sum())
            n += d.numel()
    out["all"] = nz / max(n, 1)
    return out
