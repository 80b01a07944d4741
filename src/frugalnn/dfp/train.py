"""Train ResNet-20 on Fashion-MNIST in fp32, DFP16 or bf16 autocast, through frugalnn.train.fit.

    python -m frugalnn.dfp.train --quick                          # one process, DFP16, ~1 minute
    torchrun --nproc-per-node 2 -m frugalnn.dfp.train --quick     # the same run as DDP on two processes
    python -m frugalnn.dfp.train --mode fp32 --epochs 10 --checkpoint-dir runs/fp32   # resumes if re-run

The experiment (frugalnn report --only dfp) calls `train_run` for its three modes; this module is
also the command-line entry. --quick is a smoke test: it exits 1 unless the training loss went down.
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass

import torch
import torch.nn.functional as F

import frugalnn
from frugalnn.data import ImageData, image_classification
from frugalnn.dfp.nn import DFPConfig
from frugalnn.models.cifar_resnet import resnet20
from frugalnn.train import FitResult, fit

MODES = ("fp32", "dfp16", "bf16")


def build_model(mode: str, seed: int, config: DFPConfig | None = None) -> torch.nn.Module:
    """ResNet-20 (1 input channel, 10 classes) initialised from `seed`: the same weights for every mode."""
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
    torch.manual_seed(seed)
    model = resnet20(in_channels=1, num_classes=10)
    if mode == "dfp16":
        frugalnn.convert_(model, config or DFPConfig())
    return model


def bf16_forward(model, x):
    """torch's CPU bf16 autocast: the modern alternative a user would pick."""
    with torch.autocast("cpu", dtype=torch.bfloat16):
        return model(x).float()


def forward_for(mode: str):
    return bf16_forward if mode == "bf16" else None


def evaluate(model, x, y, mode: str, batch: int = 500) -> dict:
    """Test accuracy (%) and loss; bf16 models are evaluated under autocast too."""
    correct, loss = 0, 0.0
    for i in range(0, len(y), batch):
        out = (bf16_forward(model, x[i:i + batch]) if mode == "bf16" else model(x[i:i + batch])).float()
        correct += int((out.argmax(1) == y[i:i + batch]).sum())
        loss += float(F.cross_entropy(out, y[i:i + batch], reduction="sum"))
    return {"test_accuracy": 100.0 * correct / len(y), "test_loss": loss / len(y)}


@dataclass
class Schedule:
    epochs: int
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    eval_every: int | None = None  # steps; None: each epoch
    warmup_steps: int = 0          # linear lr warmup before the cosine decay (short high-lr runs)
    bn_momentum: float | None = None  # BatchNorm running-stat momentum; None: torch's 0.1


def _lr_scheduler(opt, total: int, warmup: int):
    """Cosine decay to 0 over `total` steps; with warmup > 0, a linear ramp over the first `warmup` steps
    first (the cosine then spans the rest)."""
    if warmup <= 0:
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(total, 1))
    import math

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * min(step - warmup, total - warmup) / max(total - warmup, 1)))
    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def train_run(data: ImageData, mode: str, seed: int, schedule: Schedule, *, config: DFPConfig | None = None,
              log_path=None, checkpoint_dir=None, resume: bool = True, progress: bool = False,
              log_every: int = 5) -> tuple[torch.nn.Module, FitResult]:
    """One training run: SGD with momentum and a cosine schedule (optionally after a linear warmup), the data
    order fixed by `seed`."""
    model = build_model(mode, seed, config)
    if schedule.bn_momentum is not None:
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.momentum = schedule.bn_momentum
    opt = torch.optim.SGD(model.parameters(), lr=schedule.lr, momentum=schedule.momentum,
                          weight_decay=schedule.weight_decay)
    total = schedule.epochs * (len(data.train_y) // schedule.batch_size)
    sched = _lr_scheduler(opt, total, schedule.warmup_steps)
    result = fit(model, opt, (data.train_x, data.train_y), F.cross_entropy, batch_size=schedule.batch_size,
                 epochs=schedule.epochs, scheduler=sched, forward=forward_for(mode), seed=seed,
                 eval_fn=lambda m: evaluate(m, data.test_x, data.test_y, mode), eval_every=schedule.eval_every,
                 log_path=log_path, checkpoint_dir=checkpoint_dir, resume=resume, progress=progress,
                 log_every=log_every)
    return model, result


QUICK = dict(n_train=2560, n_test=2000, epochs=2)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m frugalnn.dfp.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help=f"a smoke run: {QUICK}; fails unless the loss goes down")
    p.add_argument("--mode", choices=MODES, default="dfp16")
    p.add_argument("--data", choices=("auto", "fashion-mnist", "mnist-5k"), default="auto")
    p.add_argument("--epochs", type=int)
    p.add_argument("--n-train", type=int, help="the first N training images (default: all)")
    p.add_argument("--n-test", type=int, help="the first N test images (default: all)")
    p.add_argument("--batch-size", type=int, default=128, help="global batch, over all ranks")
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--all-dfp", action="store_true", help="the first conv and last linear in DFP16 too")
    p.add_argument("--log", help="JSON-lines log path")
    p.add_argument("--checkpoint-dir", help="checkpoints here; a re-run resumes from the newest valid one")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    n_train, n_test = args.n_train, args.n_test
    epochs = args.epochs
    if args.quick:
        n_train, n_test = n_train or QUICK["n_train"], n_test or QUICK["n_test"]
        epochs = epochs or QUICK["epochs"]
    data = image_classification(args.data).subset(n_train, n_test)
    config = DFPConfig(keep_fp32=()) if args.all_dfp else None
    model, result = train_run(data, args.mode, args.seed, Schedule(epochs or 10, args.batch_size, args.lr),
                              config=config, log_path=args.log, checkpoint_dir=args.checkpoint_dir,
                              progress=not args.no_progress, log_every=4)
    losses = result.losses()
    if int(os.environ.get("RANK", "0")) == 0:
        acc = result.final_eval["test_accuracy"] if result.final_eval else float("nan")
        print(f"{args.mode} ResNet-20 on {data.name} ({len(data.train_y)} train / {len(data.test_y)} test images, "
              f"{data.source}), {result.world_size} process(es): {result.steps} steps, training loss "
              f"{losses[0][1]:.4f} -> {losses[-1][1]:.4f}, test accuracy {acc:.2f}% in {result.seconds:.1f} s")
    if args.quick and not losses[-1][1] < losses[0][1]:
        print(f"quick run failed: the training loss did not go down ({losses[0][1]:.4f} -> {losses[-1][1]:.4f})",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
