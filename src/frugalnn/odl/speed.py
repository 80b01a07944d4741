"""Timing and memory of one batch-1 training step: the engine, torch eager and torch.compile on the
same model (BatchNorm folded, frozen statistics: what the engine computes).

Times are this thread's CPU time (time.thread_time), interleaved, median of repeats: at batch 1 and
one thread every contender runs in the calling thread, and on a shared machine wall time would
count other processes' turns. The clock for MAC/clk is read from the machine (cpufreq, else
/proc/cpuinfo)."""
from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch
from torch import nn

from frugalnn.bench.harness import Timing
from frugalnn.odl.reference import fold_bn, torch_step


def time_cpu(fns: dict, repeats: int = 7, warmup: int = 2, min_sample_s: float = 0.05) -> dict[str, Timing]:
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    inner = {}
    for name, fn in fns.items():
        t0 = time.thread_time()
        fn()
        inner[name] = max(1, int(min_sample_s / max(time.thread_time() - t0, 1e-6)))
    samples = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.thread_time()
            for _ in range(inner[name]):
                fn()
            samples[name].append((time.thread_time() - t0) / inner[name])
    return {n: Timing(statistics.median(s), min(s), s, inner[n]) for n, s in samples.items()}


def clock_hz() -> tuple[float, str]:
    """(Hz, where it was read): the highest of cpufreq's current, or /proc/cpuinfo's MHz."""
    cur = Path("/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq")
    try:
        return float(cur.read_text()) * 1e3, str(cur)
    except (OSError, ValueError):
        pass
    try:
        mhz = [float(line.split(":")[1]) for line in Path("/proc/cpuinfo").read_text().splitlines()
               if line.startswith("cpu MHz")]
        if mhz:
            return max(mhz) * 1e6, "/proc/cpuinfo cpu MHz"
    except (OSError, ValueError):
        pass
    return float("nan"), "unavailable"


def step_fns(model: nn.Module, x: torch.Tensor, label: int, compiled: bool = True, lr: float = 1e-4) -> tuple[dict, dict]:
    """Step functions {'engine fp32', 'engine fp16', 'torch eager', ('torch.compile')} and notes."""
    import frugalnn.odl as odl

    y = torch.tensor([label])
    fns, notes = {}, {}
    for dt in ("fp32", "fp16"):
        eng = odl.compile(model, dtype=dt)
        fns[f"engine {dt}"] = lambda eng=eng: eng.step(x, label, lr)
    eager = fold_bn(model)
    opt = torch.optim.SGD(eager.parameters(), lr=lr)
    fns["torch eager"] = lambda: torch_step(eager, opt, x, y)
    if compiled:
        try:
            cm = fold_bn(model)
            c = torch.compile(cm)
            copt = torch.optim.SGD(cm.parameters(), lr=lr)
            t0 = time.time()
            torch_step(c, copt, x, y)
            notes["torch.compile"] = f"inductor, first step (compile) {time.time() - t0:.1f} s"
            fns["torch.compile"] = lambda: torch_step(c, copt, x, y)
        except Exception as e:  # noqa: BLE001 - any inductor failure is reported as the reason
            notes["torch.compile"] = f"not measured: torch.compile failed here: {type(e).__name__}: {str(e)[:200]}"
    return fns, notes


def torch_step_peak_bytes(model: nn.Module, x: torch.Tensor, label: int) -> int:
    """Peak bytes of one torch eager step: parameters + the highest running total of the step's
    allocations (the CPU profiler's per-op memory events, in time order; the grads of the previous
    step freed first, as with zero_grad(set_to_none=True))."""
    from torch.profiler import ProfilerActivity, profile

    m = fold_bn(model)
    opt = torch.optim.SGD(m.parameters(), lr=1e-4)
    y = torch.tensor([label])
    torch_step(m, opt, x, y)
    opt.zero_grad(set_to_none=True)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        torch_step(m, opt, x, y)
    events = sorted((e for e in prof.events() if e.cpu_memory_usage), key=lambda e: e.time_range.start)
    run = peak = 0
    for e in events:
        run += e.self_cpu_memory_usage
        peak = max(peak, run)
    params = sum(p.numel() * p.element_size() for p in m.parameters())
    return params + peak
