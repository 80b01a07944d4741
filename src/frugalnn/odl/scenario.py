"""The on-device learning scenario: ResNet8 pretrained in torch (frugalnn.train.fit) on Fashion-MNIST
classes 0-7, then taught classes 8-9 one sample at a time on the compiled engine (fp32 and fp16),
with a small replay buffer of old-class samples mixed into the stream (as an MCU would keep).

Images are padded from 1x28x28 to 3x32x32 (2 pixels of zero each side, the grey channel repeated),
the MLPerf Tiny ResNet8 input. BatchNorm statistics come from pretraining and stay frozen on device.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from frugalnn.models import tiny

QUICK = dict(n_pre=6000, pre_epochs=3, n_new=200, passes=3, replay=100, replay_every=1, n_test=1000, lr=0.005)
FULL = dict(n_pre=24000, pre_epochs=6, n_new=1000, passes=3, replay=400, replay_every=1, n_test=4000, lr=0.005)


def to_mlperf(x: torch.Tensor) -> torch.Tensor:
    """[N, 1, 28, 28] -> [N, 3, 32, 32]: zero-padded by 2, channel repeated."""
    return F.pad(x, (2, 2, 2, 2)).repeat(1, 3, 1, 1).contiguous()


@dataclass
class Split:
    old_x: torch.Tensor
    old_y: torch.Tensor
    new_x: torch.Tensor
    new_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor


def split(data, sizes: dict) -> Split:
    old = data.train_y < 8
    tx, ty = data.test_x[: sizes["n_test"]], data.test_y[: sizes["n_test"]]
    return Split(to_mlperf(data.train_x[old][: sizes["n_pre"]]), data.train_y[old][: sizes["n_pre"]],
                 to_mlperf(data.train_x[~old][: sizes["n_new"]]), data.train_y[~old][: sizes["n_new"]],
                 to_mlperf(tx), ty)


def pretrain(s: Split, sizes: dict, seed: int = 0) -> torch.nn.Module:
    from frugalnn.train import fit

    torch.manual_seed(seed)
    model = tiny.resnet8(num_classes=10)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    fit(model, opt, (s.old_x, s.old_y), F.cross_entropy, batch_size=64, epochs=sizes["pre_epochs"], seed=seed,
        progress=False, resume=False)
    return model.eval()


@torch.no_grad()
def open_new_classes(model: torch.nn.Module, new=(8, 9)) -> torch.nn.Module:
    """A copy whose classifier rows for the unseen classes start neutral (zero weights, the old rows'
    mean bias): pretraining drove them far negative, which one-sample SGD would take long to undo."""
    import copy

    model = copy.deepcopy(model)
    fc = model.fc
    old = [i for i in range(fc.out_features) if i not in new]
    fc.weight[list(new)] = 0.0
    fc.bias[list(new)] = fc.bias[old].mean()
    return model


@torch.no_grad()
def accuracy(forward, x: torch.Tensor, y: torch.Tensor) -> dict:
    pred = torch.cat([forward(x[i:i + 1]).argmax(1) for i in range(len(x))])
    old, new = y < 8, y >= 8
    return {"old": 100.0 * float((pred[old] == y[old]).float().mean()),
            "new": 100.0 * float((pred[new] == y[new]).float().mean()),
            "all": 100.0 * float((pred == y).float().mean())}


def learn_on_device(model: torch.nn.Module, s: Split, sizes: dict, dtype: str, seed: int = 0) -> dict:
    """Sample-by-sample SGD on the engine: `passes` over the new samples, each followed (every
    `replay_every` new ones) by one replayed old sample from a buffer of `replay` old-class samples. Returns accuracies and the
    median seconds (thread CPU time) of one sample step."""
    import frugalnn.odl as odl

    eng = odl.compile(open_new_classes(model), dtype=dtype)
    g = np.random.default_rng(seed)
    buf = g.choice(len(s.old_y), sizes["replay"], replace=False)
    stream, seen = [], 0
    for _ in range(sizes["passes"]):
        for i in g.permutation(len(s.new_y)):
            stream.append((s.new_x[i:i + 1], int(s.new_y[i])))
            seen += 1
            if seen % sizes["replay_every"] == 0:
                j = int(g.choice(buf))
                stream.append((s.old_x[j:j + 1], int(s.old_y[j])))
    times, losses = [], []
    for x, y in stream:
        t0 = time.thread_time()
        losses.append(eng.step(x, y, sizes["lr"]))
        times.append(time.thread_time() - t0)
    acc = accuracy(eng.forward, s.test_x, s.test_y)
    return {**acc, "step_s": float(np.median(times)), "steps": len(stream), "final_loss": float(np.mean(losses[-50:]))}


def run(data, quick: bool = True, seed: int = 0) -> dict:
    sizes = QUICK if quick else FULL
    s = split(data, sizes)
    model = pretrain(s, sizes, seed)
    before = accuracy(model, s.test_x, s.test_y)
    out = {"sizes": sizes, "before": before}
    for dt in ("fp32", "fp16"):
        out[dt] = learn_on_device(model, s, sizes, dt, seed)
    return out
