"""CPU runtime of models, measured so that comparisons across many models hold on a noisy machine.

- one intra-op thread and process CPU time (time.process_time), so other tenants of a shared
  machine cost us cache and bandwidth, not wall-clock waits;
- warm-up calls first (allocator, oneDNN primitive caches), not timed;
- rounds interleave the workloads in a fresh shuffled order each round, so drift over the run hits
  all models alike;
- the figure reported is the minimum over rounds: other tenants can only add time to a sample
  (measured here: one model's samples spread up to 1.8x under load, and the median of 3-5 rounds
  still moved models past each other), so the fastest round is the best estimate of the model's
  own cost; the median is kept beside it;
- denormals flushed, so training updates that underflow cannot slow one model down by chance.
"""
from __future__ import annotations

import random
import statistics
import time
from typing import Any, Callable

import torch
import torch.nn.functional as F

from frugalnn.threads import torch_threads


def single_thread():
    """One intra-op thread, denormals flushed (restored on exit)."""
    return torch_threads(1, flush_denormal=True)


def inference_step(model: torch.nn.Module, x: torch.Tensor) -> Callable[[], Any]:
    """One forward pass in eval mode, no autograd (the mode is set on every call, so the same model
    can also serve a training workload)."""
    def run():
        model.eval()
        with torch.inference_mode():
            return model(x)
    return run


def training_step(model: torch.nn.Module, x: torch.Tensor, num_classes: int, lr: float = 1e-3,
                  seed: int = 0) -> Callable[[], Any]:
    """One SGD step (momentum 0.9): forward in train mode, cross-entropy on fixed labels, backward, update."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, num_classes, (x.shape[0],), generator=g)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)

    def run():
        model.train()
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)  # free the gradients between calls: many models share the memory
        return loss
    return run


def time_rounds(workloads: dict[str, Callable[[], Any]], rounds: int, warmup: int = 1, seed: int = 0,
                progress: Callable[[float, str], None] | None = None) -> dict[str, list[float]]:
    """Process-CPU seconds of one call of each workload, per round (see module doc)."""
    if rounds < 1 or warmup < 0:
        raise ValueError(f"rounds >= 1 and warmup >= 0 expected, got rounds={rounds}, warmup={warmup}")
    names = list(workloads)
    samples: dict[str, list[float]] = {n: [] for n in names}
    rng = random.Random(seed)
    total = len(names) * (warmup + rounds)
    done = 0
    with single_thread():
        for r in range(warmup + rounds):
            order = names[:]
            rng.shuffle(order)
            for name in order:
                start = time.process_time()
                workloads[name]()
                elapsed = time.process_time() - start
                if r >= warmup:
                    samples[name].append(elapsed)
                done += 1
                if progress is not None:
                    progress(done / total, f"round {r + 1 - warmup}/{rounds}" if r >= warmup else "warm-up")
    return samples


def summarize(samples: list[float]) -> dict[str, float]:
    return {"min": min(samples), "median": statistics.median(samples), "max": max(samples)}
