"""Trains a small conv net with frugalnn.train.fit; run by tests/train/test_distributed.py and
test_resume.py, plainly or under `python -m torch.distributed.run --nproc-per-node 2`.

    python ddp_script.py OUT_DIR --runs fp32:1,dfp:1,dfp:2 [--steps 6] [--checkpoint-dir D --kill-at S]

Each run `mode:micro_batches` trains a freshly seeded model and saves its weights to OUT_DIR/<mode>-m<micro>.pt
(rank 0). One thread per process, so a run's numbers do not depend on how it was launched.
"""
import argparse
import os
import signal
import sys

import torch
from torch import nn

import frugalnn
from frugalnn.dfp import DFPConfig
from frugalnn.train import fit


def model(mode: str, stochastic: bool, dropout: float) -> nn.Module:
    torch.manual_seed(1234)
    net = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 8, 3, stride=2), nn.ReLU(),
                        nn.Flatten(), nn.Dropout(dropout), nn.Linear(8 * 3 * 3, 5))
    if mode == "dfp":
        frugalnn.convert_(net, DFPConfig(keep_fp32=(), rounding="stochastic" if stochastic else "nearest"))
    return net


def data():
    g = torch.Generator().manual_seed(99)
    x = torch.randn(64, 1, 8, 8, generator=g)
    y = (x.mean(dim=(1, 2, 3)) * 40).long().clamp(-2, 2) + 2
    return x, y


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--runs", default="fp32:1")
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--checkpoint-dir")
    p.add_argument("--checkpoint-every", type=int, default=3)
    p.add_argument("--kill-at", type=int)
    p.add_argument("--stochastic", action="store_true")
    p.add_argument("--dropout", type=float, default=0.0)  # per-rank RNG streams: not for DDP equality
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    for run in args.runs.split(","):
        mode, micro = run.split(":")
        net = model(mode, args.stochastic, args.dropout)
        opt = torch.optim.SGD(net.parameters(), lr=0.2, momentum=0.9)

        def kill(info):
            if args.kill_at is not None and info["step"] == args.kill_at:
                os.kill(os.getpid(), signal.SIGKILL)

        result = fit(net, opt, data(), nn.functional.cross_entropy, batch_size=16, steps=args.steps, seed=5,
                     micro_batches=int(micro), progress=False, log_every=1, checkpoint_dir=args.checkpoint_dir,
                     checkpoint_every=args.checkpoint_every, callback=kill,
                     log_path=os.path.join(args.out, f"{mode}-m{micro}.jsonl"))
        if int(os.environ.get("RANK", "0")) == 0:
            torch.save({"state": net.state_dict(), "losses": result.losses(), "world": result.world_size,
                        "resumed_from": result.resumed_from}, os.path.join(args.out, f"{mode}-m{micro}.pt"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
