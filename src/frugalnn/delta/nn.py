"""The Delta Activation Layer (Yousefzadeh & Sifalakis) in torch, and its `convert_` config.

    layer = DeltaActivation(channels, init_step)   # Q(a) = q * round(a / q), q > 0 learnable per channel
    frugalnn.convert_(cnn, DeltaConfig(rate=0.5))  # a layer after the input and after every nn.ReLU
    clips = Clips(cnn)                             # [B, T, C, H, W] -> per-frame logits [B, T, K]

Rounding has a straight-through gradient (identity); the step gets the LSQ-style gradient through
both q * and / q. The step is stored as log q so it stays positive. While recording (the default; probe
runs switch it off with `not_recording`) each layer keeps its last input and output, so
frugalnn.delta.sparsity_loss can take the temporal deltas Q(a_t) - Q(a_{t-1}) of the clip that just ran.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from frugalnn.convert import register_handler, swap_modules

PLACEMENTS = ("input+activations", "activations")


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """round-half-even forward, identity backward."""
    return x + (torch.round(x) - x).detach()


class DeltaActivation(nn.Module):
    """Per-channel quantizer with a learnable step; at inference only its temporal changes travel on."""

    def __init__(self, channels: int, init_step: float = 0.05, rate: float = 0.0):
        super().__init__()
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels: expected an int >= 1, got {channels!r}")
        if not (isinstance(init_step, (int, float)) and math.isfinite(init_step) and init_step > 0):
            raise ValueError(f"init_step: expected a finite float > 0, got {init_step!r}")
        self.channels = channels
        self.rate = float(rate)
        self.log_step = nn.Parameter(torch.full((channels,), math.log(init_step)))
        self.recording = True
        self.last: torch.Tensor | None = None   # the last output, for sparsity_loss
        self.last_in: torch.Tensor | None = None    # the last input (before rounding), for estimate="count"
        self.frames = 1                         # frames per clip in the batch of the last forward
        self.fan_out: float | None = None       # MACs one nonzero output element costs downstream

    @property
    def step(self) -> torch.Tensor:
        return self.log_step.exp()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 2 or x.shape[1] != self.channels:
            raise ValueError(f"DeltaActivation({self.channels}): expected [N, {self.channels}, ...], got {tuple(x.shape)}")
        q = self.step.view(1, -1, *([1] * (x.dim() - 2)))
        y = q * round_ste(x / q)
        if self.recording:
            self.last, self.last_in = y, x
        return y

    def extra_repr(self) -> str:
        return f"{self.channels}, rate={self.rate:g}"


@dataclass
class DeltaConfig:
    """rate: weight of the sparsity loss; placement: 'input+activations' (the paper's) or 'activations';
    init_step: the initial quantization step of every channel; frame_shape: (C, H, W) of one frame,
    used by the converter to find each activation's channel count."""
    rate: float = 0.1
    placement: str = "input+activations"
    init_step: float = 0.05
    frame_shape: tuple = (1, 64, 64)

    def __post_init__(self):
        if not (isinstance(self.rate, (int, float)) and math.isfinite(self.rate) and self.rate >= 0):
            raise ValueError(f"rate: expected a finite float >= 0, got {self.rate!r}")
        if self.placement not in PLACEMENTS:
            raise ValueError(f"placement: expected one of {PLACEMENTS}, got {self.placement!r}")
        if not (isinstance(self.init_step, (int, float)) and math.isfinite(self.init_step) and self.init_step > 0):
            raise ValueError(f"init_step: expected a finite float > 0, got {self.init_step!r}")
        self.frame_shape = tuple(self.frame_shape)
        if len(self.frame_shape) != 3 or not all(isinstance(d, int) and d >= 1 for d in self.frame_shape):
            raise ValueError(f"frame_shape: expected (C, H, W) of positive ints, got {self.frame_shape!r}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["frame_shape"] = list(self.frame_shape)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "DeltaConfig":
        return cls(**d)


def delta_layers(model: nn.Module) -> list[DeltaActivation]:
    return [m for m in model.modules() if isinstance(m, DeltaActivation)]


def _probe(model: nn.Module, frame_shape: tuple) -> tuple[dict, list]:
    """One forward of a zero frame: channel count of every nn.ReLU output (fqn -> C), and the
    conv/linear layers in execution order (fqn, in_channels)."""
    names = {id(m): n for n, m in model.named_modules()}
    relus, order, calls, hooks = {}, [], {}, []

    def hook(m, inp, out):
        n = names[id(m)]
        calls[n] = calls.get(n, 0) + 1
        if isinstance(m, nn.ReLU):
            relus[n] = int(out.shape[1])
        else:
            order.append((n, int(inp[0].shape[1])))

    for m in model.modules():
        if isinstance(m, (nn.ReLU, nn.Conv2d, nn.Linear)):
            hooks.append(m.register_forward_hook(hook))
    was = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *frame_shape))
    finally:
        model.train(was)
        for h in hooks:
            h.remove()
    twice = [n for n, c in calls.items() if c > 1]
    if twice:
        raise ValueError(f"modules {twice} run more than once per frame; give every activation and layer its own "
                         "module before converting")
    return relus, order


@register_handler(DeltaConfig)
def _convert_delta(model, config: DeltaConfig, filter_fn=None):
    if delta_layers(model):
        raise ValueError("model already holds DeltaActivation layers")
    relus, order = _probe(model, config.frame_shape)
    keep = (lambda m, n: True) if filter_fn is None else filter_fn
    first = order[0][0] if order and config.placement == "input+activations" else None

    def pick(m, fqn):
        return (fqn in relus and keep(m, fqn)) or fqn == first

    def make(m, fqn):
        if fqn == first:
            return nn.Sequential(DeltaActivation(order[0][1], config.init_step, config.rate), m)
        return nn.Sequential(m, DeltaActivation(relus[fqn], config.init_step, config.rate))

    swap_modules(model, pick, make)
    return model


class Clips(nn.Module):
    """Runs a per-frame CNN on clips: [B, T, C, H, W] -> per-frame logits [B, T, K] (frames of a clip
    are consecutive in the batch the CNN sees, which is what sparsity_loss relies on)."""

    def __init__(self, cnn: nn.Module):
        super().__init__()
        self.cnn = cnn
        self.frame_shape: tuple | None = None

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        if clips.dim() != 5:
            raise ValueError(f"clips: expected [B, T, C, H, W], got {tuple(clips.shape)}")
        b, t = clips.shape[:2]
        self.frame_shape = tuple(clips.shape[2:])
        for layer in delta_layers(self.cnn):
            layer.frames = t
        out = self.cnn(clips.reshape(b * t, *clips.shape[2:]))
        return out.reshape(b, t, -1)


def clip_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the time-averaged softmax (the paper's task loss) for logits [B, T, K]."""
    p = F.softmax(logits, dim=-1).mean(1)
    return F.nll_loss(torch.log(p.clamp_min(1e-12)), y)


class not_recording:
    """Within the block the model's delta layers keep their recorded clip (probe runs leave it alone)."""

    def __init__(self, model: nn.Module):
        self.layers = delta_layers(model)

    def __enter__(self):
        self.saved = [m.recording for m in self.layers]
        for m in self.layers:
            m.recording = False
        return self

    def __exit__(self, *exc):
        for m, r in zip(self.layers, self.saved):
            m.recording = r
