"""Progressive shrinking of the supernet (and plain training of one architecture) through frugalnn.train.fit.

    python -m frugalnn.tdnn.train --quick                          # one process, width-scaled supernet
    torchrun --nproc-per-node 2 -m frugalnn.tdnn.train --quick     # the same run as DDP on two processes

Stages (Once-for-All's order, the paper's): largest -> kernel -> depth -> width. In each step one subnet is
drawn from the stage's space (seeded by the step, so every DDP rank draws the same one and a resumed run
draws what the interrupted one would have); the loss is AAM-softmax (m=0.2, s=30). Later stages train at
half the learning rate, each with its own cosine schedule and checkpoint directory (a re-run resumes).
Not done: the paper's knowledge distillation from the largest subnet during shrinking.
"""
from __future__ import annotations

import argparse
import hashlib
import math
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from frugalnn.tdnn.config import SubnetConfig, SupernetConfig
from frugalnn.tdnn.nn import TDNN
from frugalnn.tdnn.supernet import Supernet
from frugalnn.train import current_step, fit

STAGES = ("largest", "kernel", "depth", "width")


class AAMSoftmax(nn.Module):
    """Additive angular margin softmax: the head holds class centres; `forward` gives cosines and
    `loss(cos, y)` applies cos(theta + m) to the target class and scales by s."""

    def __init__(self, embed: int, n_classes: int, margin: float = 0.2, scale: float = 30.0):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_classes, embed))
        nn.init.xavier_normal_(self.weight)
        self.margin, self.scale = margin, scale

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        return F.linear(F.normalize(emb), F.normalize(self.weight))

    def loss(self, cos: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        cos = cos.clamp(-1 + 1e-7, 1 - 1e-7)
        sin = torch.sqrt(1 - cos * cos)
        m = self.margin
        phi = cos * math.cos(m) - sin * math.sin(m)
        # past theta = pi - m the margined cosine would rise again: fall back to cos - m sin(m) m (ArcFace's rule)
        phi = torch.where(cos > math.cos(math.pi - m), phi, cos - math.sin(math.pi - m) * m)
        onehot = F.one_hot(y, cos.shape[1]).bool()
        return F.cross_entropy(self.scale * torch.where(onehot, phi, cos), y)


class SpeakerModel(nn.Module):
    """Backbone (a Supernet or a TDNN) + AAM head; forward returns the head's cosines."""

    def __init__(self, backbone: nn.Module, n_classes: int, embed: int = 192):
        super().__init__()
        self.backbone = backbone
        self.head = AAMSoftmax(embed, n_classes)

    def forward(self, x):
        cos = self.head(self.backbone(x))
        if self.training:
            # Every parameter joins the graph (with a zero gradient when its subnet does not use it), so DDP
            # without find_unused_parameters sees the same parameter set at every step.
            cos = cos + 0.0 * sum(p.reshape(-1)[0] for p in self.parameters())
        return cos


@dataclass
class Schedule:
    steps: int                      # total optimizer steps (all stages together)
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 2e-5
    fractions: tuple = (0.4, 0.2, 0.2, 0.2)   # share of the steps per stage (largest, kernel, depth, width)
    later_lr: float = 0.5           # lr multiplier of the shrinking stages

    def stage_steps(self) -> list[int]:
        n = [int(round(f * self.steps)) for f in self.fractions]
        n[-1] = self.steps - sum(n[:-1])
        return n


def stage_space(config: SupernetConfig, stage: str) -> dict | None:
    """What `sample_active_subnet` may draw in `stage` (None: the largest subnet only)."""
    if stage == "largest":
        return None
    full_w = (1.0,)
    if stage == "kernel":
        return dict(depths=(config.blocks,), kernels=config.kernels, width_ratios=full_w)
    if stage == "depth":
        return dict(depths=config.depths, kernels=config.kernels, width_ratios=full_w)
    if stage == "width":
        return dict(depths=config.depths, kernels=config.kernels, width_ratios=config.width_ratios)
    raise ValueError(f"stage: expected one of {STAGES}, got {stage!r}")


def step_rng(seed: int, stage: str, step: int | None) -> random.Random:
    h = hashlib.sha256(f"{seed}/{stage}/{step}".encode()).digest()
    return random.Random(int.from_bytes(h[:8], "little"))


def _optimizer(model, lr, wd, steps):
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=wd)
    warm = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, steps - warm))))
    return opt, sched


def train_supernet(data, config: SupernetConfig, schedule: Schedule, *, seed: int = 0, checkpoint_dir=None,
                   log_dir=None, progress: bool = False, stages=STAGES, eval_fn=None) -> tuple[Supernet, dict]:
    """Progressive shrinking. Returns the supernet and {stage: FitResult}."""
    torch.manual_seed(seed)
    net = Supernet(config)
    model = SpeakerModel(net, data.n_classes, config.embed)
    results = {}
    for stage, steps in zip(STAGES, schedule.stage_steps()):
        if stage not in stages or steps <= 0:
            continue
        space = stage_space(config, stage)

        def forward(m, x, stage=stage, space=space):
            if space is None:
                net.set_active_subnet(config.largest())
            else:
                net.sample_active_subnet(step_rng(seed, stage, current_step()), **space)
            return m(x)

        lr = schedule.lr * (1.0 if stage == "largest" else schedule.later_lr)
        opt, sched = _optimizer(model, lr, schedule.weight_decay, steps)
        sub = lambda d: None if d is None else str(Path(d) / stage)
        log = None if log_dir is None else str(Path(log_dir) / f"{stage}.jsonl")

        def evaluate(m, stage=stage):
            net.set_active_subnet(config.largest())
            return eval_fn(net) if eval_fn is not None else {}

        results[stage] = fit(model, opt, (data.train_x, data.train_y), model.head.loss, batch_size=schedule.batch_size,
                             steps=steps, scheduler=sched, forward=forward, seed=seed, checkpoint_dir=sub(checkpoint_dir),
                             log_path=log, progress=progress, eval_fn=evaluate if eval_fn else None, log_every=10)
    net.set_active_subnet(config.largest())
    return net, results


def train_standalone(data, cfg, schedule: Schedule, *, in_feats: int = 80, seed: int = 0, checkpoint_dir=None,
                     log_path=None, progress: bool = False) -> tuple[TDNN, object]:
    """One fixed architecture from scratch for `schedule.steps` steps (the baseline at the same budget)."""
    torch.manual_seed(seed)
    net = TDNN(SubnetConfig.of(cfg), in_feats)
    model = SpeakerModel(net, data.n_classes)
    opt, sched = _optimizer(model, schedule.lr, schedule.weight_decay, schedule.steps)
    result = fit(model, opt, (data.train_x, data.train_y), model.head.loss, batch_size=schedule.batch_size,
                 steps=schedule.steps, scheduler=sched, seed=seed, checkpoint_dir=checkpoint_dir, log_path=log_path,
                 progress=progress, log_every=10)
    return net, result


QUICK = dict(utts_per_speaker=4, max_formant=None, steps=200, batch=32, channels=64, cat=192)


def main(argv=None) -> int:
    from frugalnn.data.speech import build_corpus, default_cache_dir
    from frugalnn.tdnn.data import build_speaker_data
    from frugalnn.train.distributed import barrier, init

    p = argparse.ArgumentParser(prog="python -m frugalnn.tdnn.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help=f"a smoke run: {QUICK}; fails unless the loss goes down")
    p.add_argument("--steps", type=int, help="all stages together (default 20000; --quick: 200)")
    p.add_argument("--batch-size", type=int, help="global batch, over all ranks (default 64; --quick: 32)")
    p.add_argument("--channels", type=int, default=512, help="supernet width (the paper: 512)")
    p.add_argument("--cat", type=int, default=1536)
    p.add_argument("--utts-per-speaker", type=int, default=10)
    p.add_argument("--max-formant", type=int, help="at most this many espeak-ng speakers")
    p.add_argument("--stages", default=",".join(STAGES))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--corpus-dir", help="default: ~/.cache/frugalnn/tdnn-corpus/<hash>")
    p.add_argument("--checkpoint-dir")
    p.add_argument("--log-dir")
    p.add_argument("--save", help="write the trained supernet's state_dict here")
    p.add_argument("--threads", type=int, default=1, help="torch threads per process (default 1: on a shared "
                   "2-core machine 2 spinning OpenMP threads per step were ~10x slower)")
    args = p.parse_args(argv)
    if args.quick:
        args.channels, args.cat, args.utts_per_speaker = QUICK["channels"], QUICK["cat"], QUICK["utts_per_speaker"]
    args.steps = args.steps or (QUICK["steps"] if args.quick else 20000)
    args.batch_size = args.batch_size or (QUICK["batch"] if args.quick else 64)
    torch.set_num_threads(args.threads)
    world = init()
    cdir = args.corpus_dir or default_cache_dir(f"u{args.utts_per_speaker}-f{args.max_formant}")
    if world.main:  # rank 0 synthesizes and caches; the others then read the cache
        data = build_speaker_data(build_corpus(cdir, args.utts_per_speaker, args.max_formant))
    barrier(world)
    if not world.main:
        data = build_speaker_data(build_corpus(cdir, args.utts_per_speaker, args.max_formant))
    config = SupernetConfig(channels=args.channels, cat=args.cat)
    t0 = time.perf_counter()
    stages = tuple(s for s in args.stages.split(",") if s)
    net, results = train_supernet(data, config, Schedule(args.steps, args.batch_size), seed=args.seed,
                                  checkpoint_dir=args.checkpoint_dir, log_dir=args.log_dir, progress=False,
                                  stages=stages)
    losses = [(s, r.losses()) for s, r in results.items()]
    if world.main:
        for s, ls in losses:
            print(f"stage {s}: {len(ls)} logged steps, loss {ls[0][1]:.3f} -> {ls[-1][1]:.3f}")
        print(f"supernet {args.channels} ch / cat {args.cat} on {data.n_classes} training speakers "
              f"({data.composition['train']}), {world.size} process(es), {time.perf_counter() - t0:.1f} s")
        if args.save:
            torch.save(net.state_dict(), args.save)
    first = losses[0][1]
    if args.quick and not first[-1][1] < first[0][1]:
        print(f"quick run failed: the loss did not go down ({first[0][1]:.3f} -> {first[-1][1]:.3f})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
