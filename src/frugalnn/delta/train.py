"""The refinement recipe, through frugalnn.train.fit: train a per-frame CNN on frames of moving-image
clips, then convert it (DeltaConfig) and fine-tune it on 2-frame clips with the sparsity loss.

    python -m frugalnn.delta.train --quick                 # baseline + one delta fine-tune, ~1 minute
    python -m frugalnn.delta.train --rate 0.5 --epochs 4

The experiment (frugalnn report --only delta) calls these functions for its rate sweep.
"""
from __future__ import annotations

import argparse
import copy
import sys
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

import frugalnn
from frugalnn.data.moving import moving_clips
from frugalnn.delta.nn import Clips, DeltaConfig, clip_loss, delta_layers
from frugalnn.delta.sparsity import attach_fan_outs, calibrate_steps, sparsity_loss, temporal_density
from frugalnn.models.frame_cnn import frame_cnn
from frugalnn.train import FitResult, fit

FRAME_SHAPE = (1, 64, 64)


@dataclass
class Sizes:
    n_train: int = 1000        # 2-frame training clips (the baseline trains on their frames)
    n_test: int = 100          # 32-frame evaluation clips
    test_frames: int = 32
    base_epochs: int = 3
    delta_epochs: int = 2
    batch: int = 32
    lr: float = 3e-3
    delta_lr: float = 3e-4        # a gentle fine-tune: a fresh Adam at the baseline's lr cost ~10 pp
    init_step: float = 0.25       # in the units of BN-normalised activations (and 0..1 pixels at the input)
    step_lr_factor: float = 20.0
    rates: tuple = (1.0, 10.0, 100.0)
    estimate: str = "l1"          # the sparsity loss's estimate (delta.sparsity): the paper's L1 here
    step_scale: float | None = None   # None: every step starts at init_step; else calibrate_steps(scale)
    fan_out: str = "macs"         # the sparsity loss's per-layer weight (delta.sparsity)


QUICK = Sizes()
FULL = Sizes(n_train=8000, n_test=600, base_epochs=6, delta_epochs=3, rates=(0.3, 1.0, 3.0, 10.0, 30.0, 100.0))


@dataclass
class ClipData:
    train_x: torch.Tensor      # [N, 2, 1, 64, 64]
    train_y: torch.Tensor
    test_x: torch.Tensor       # [M, T, 1, 64, 64]
    test_y: torch.Tensor
    what: str


def make_data(sizes: Sizes, seed: int = 0) -> ClipData:
    tx, ty, what = moving_clips(sizes.n_train, frames=2, split="train", seed=seed)
    vx, vy, _ = moving_clips(sizes.n_test, frames=sizes.test_frames, split="test", seed=seed + 1)
    return ClipData(torch.from_numpy(tx), torch.from_numpy(ty), torch.from_numpy(vx), torch.from_numpy(vy), what)


@torch.no_grad()
def clip_logits(cnn, clips: torch.Tensor, batch: int = 8) -> torch.Tensor:
    """Per-frame logits [M, T, K] of a per-frame CNN (eval mode; delta layers record the last batch)."""
    was = cnn.training
    cnn.eval()
    outs = [Clips(cnn)(clips[i:i + batch]) for i in range(0, len(clips), batch)]
    cnn.train(was)
    return torch.cat(outs)


def accuracy(logits: torch.Tensor, y: torch.Tensor) -> dict:
    """Clip accuracy (time-averaged softmax, %) and per-frame accuracy (%)."""
    clip = F.softmax(logits, -1).mean(1).argmax(1)
    frame = logits.argmax(-1)
    return {"clip_accuracy": 100.0 * float((clip == y).float().mean()),
            "frame_accuracy": 100.0 * float((frame == y[:, None]).float().mean())}


@torch.no_grad()
def spatial_density(cnn, clips: torch.Tensor, batch: int = 8) -> float:
    """Nonzero fraction of the input and every ReLU output (the delta layers' places), element-weighted."""
    nz, n, hooks = [0], [0], []

    def count(t):
        nz[0] += int((t != 0).sum())
        n[0] += t.numel()

    for m in cnn.modules():
        if isinstance(m, torch.nn.ReLU):
            hooks.append(m.register_forward_hook(lambda m, i, o: count(o)))
    was = cnn.training
    cnn.eval()
    try:
        for i in range(0, len(clips), batch):
            x = clips[i:i + batch].reshape(-1, *clips.shape[2:])
            count(x)
            cnn(x)
    finally:
        cnn.train(was)
        for h in hooks:
            h.remove()
    return nz[0] / n[0]


@torch.no_grad()
def delta_density(cnn, clips: torch.Tensor, batch: int = 8) -> dict:
    """Temporal delta density over the clips: per layer and 'all', element-weighted over batches."""
    sums: dict = {}
    for i in range(0, len(clips), batch):
        clip_logits(cnn, clips[i:i + batch], batch)
        model = Clips(cnn)
        model.frame_shape = tuple(clips.shape[2:])
        for layer in delta_layers(cnn):
            layer.frames = clips.shape[1]
        for k, v in temporal_density(cnn).items():
            sums[k] = sums.get(k, 0.0) + v * len(clips[i:i + batch])
    return {k: v / len(clips) for k, v in sums.items()}


def train_baseline(data: ClipData, sizes: Sizes, seed: int = 0, progress: bool = False) -> tuple:
    torch.manual_seed(seed)
    cnn = frame_cnn()
    x = data.train_x.reshape(-1, *FRAME_SHAPE)
    y = data.train_y.repeat_interleave(data.train_x.shape[1])
    opt = torch.optim.Adam(cnn.parameters(), lr=sizes.lr)
    total = sizes.base_epochs * (len(y) // sizes.batch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(total, 1))
    result = fit(cnn, opt, (x, y), F.cross_entropy, batch_size=sizes.batch, epochs=sizes.base_epochs, seed=seed,
                 scheduler=sched, progress=progress, log_every=20)
    return cnn.eval(), result


def finetune_optimizer(cnn, sizes, n_train: int):
    """Adam over a delta model's weights and its quantization steps, with a cosine schedule over the
    fine-tune. The steps move on a log scale and must travel far in a short fine-tune: their own, larger
    lr (sizes.step_lr_factor times delta_lr)."""
    steps = [m.log_step for m in delta_layers(cnn)]
    rest = [p for p in cnn.parameters() if all(p is not s for s in steps)]
    opt = torch.optim.Adam([{"params": rest}, {"params": steps, "lr": sizes.delta_lr * sizes.step_lr_factor}],
                           lr=sizes.delta_lr)
    total = sizes.delta_epochs * (n_train // sizes.batch)
    return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(total, 1))


def to_delta(baseline, rate: float, init_step: float, frame_shape: tuple):
    """A copy of `baseline` with Delta Activation Layers (input + every ReLU)."""
    cnn = copy.deepcopy(baseline)
    frugalnn.convert_(cnn, DeltaConfig(rate=rate, init_step=init_step, frame_shape=tuple(frame_shape)))
    return cnn


def finetune(baseline, train_x: torch.Tensor, train_y: torch.Tensor, task_loss, rate: float, sizes, seed: int = 0,
             progress: bool = False, log_every: int = 20) -> tuple:
    """The fine-tune both tasks share: a copy of `baseline` with delta layers (DeltaConfig(rate)), steps
    at sizes.init_step or calibrated on the first training clips (sizes.step_scale), trained on the clips
    train_x [N, T, C, H, W] with task_loss(out, train_y) + sparsity_loss(estimate=sizes.estimate).
    Returns (cnn in eval mode, FitResult)."""
    frame_shape = tuple(train_x.shape[2:])
    cnn = to_delta(baseline, rate, sizes.init_step, frame_shape)
    attach_fan_outs(cnn, frame_shape)
    if sizes.step_scale is not None:
        calibrate_steps(cnn, train_x[:64], sizes.step_scale)
    model = Clips(cnn)
    opt, sched = finetune_optimizer(cnn, sizes, len(train_y))

    def loss_fn(out, y):
        return task_loss(out, y) + sparsity_loss(model, fan_out=sizes.fan_out, estimate=sizes.estimate)

    result = fit(model, opt, (train_x, train_y), loss_fn, batch_size=sizes.batch, epochs=sizes.delta_epochs,
                 seed=seed, scheduler=sched, progress=progress, log_every=log_every)
    return cnn.eval(), result


def finetune_delta(baseline, data: ClipData, rate: float, sizes: Sizes, seed: int = 0,
                   progress: bool = False) -> tuple:
    """The classification fine-tune: 2-frame clips, clip_loss + sparsity_loss."""
    return finetune(baseline, data.train_x, data.train_y, clip_loss, rate, sizes, seed, progress)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m frugalnn.delta.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--rate", type=float, default=0.5)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    data = make_data(sizes, args.seed)
    base, r0 = train_baseline(data, sizes, args.seed, progress=True)
    acc0 = accuracy(clip_logits(base, data.test_x), data.test_y)
    dens0 = spatial_density(base, data.test_x)
    cnn, r1 = finetune_delta(base, data, args.rate, sizes, args.seed, progress=True)
    acc1 = accuracy(clip_logits(cnn, data.test_x), data.test_y)
    dens1 = delta_density(cnn, data.test_x)["all"]
    print(f"{data.what}\nbaseline: clip accuracy {acc0['clip_accuracy']:.1f}%, spatial density {dens0:.3f}\n"
          f"delta (rate {args.rate}): clip accuracy {acc1['clip_accuracy']:.1f}%, temporal density {dens1:.3f}")
    losses = r1.losses()
    return 0 if np.isfinite(losses[-1][1]) else 1


if __name__ == "__main__":
    sys.exit(main())
