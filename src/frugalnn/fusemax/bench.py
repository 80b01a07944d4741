"""Fused 1-pass attention (ours) vs torch SDPA (whatever CPU backend it picks) vs a naive 3-pass.

One head (batch 1), float32, non-causal, head dim 64 and 128, sequence 512..32K. Time: median of
interleaved repeats in this process. Memory: each (impl, case) runs once more in a fresh
subprocess that resets Linux's resident-memory high-water mark (VmHWM, via /proc/self/clear_refs)
once the inputs exist and reports how far one call raises it -- the real extra memory of the
call, output included, not a formula. Linux only (like the rest of the benchmarks' machines).

    frugalnn bench fusemax [--quick] [--threads 1 2] [--max-seq 32768] [--no-memory]
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

from frugalnn.bench.harness import BenchArgs, BenchReport, benchmark, time_interleaved

SEQS = (512, 1024, 2048, 4096, 8192, 16384, 32768)
DIMS = (64, 128)
NAIVE_LIMIT_BYTES = 6 << 30  # the naive version holds ~3 L x S float32 matrices at its peak

# Linux keeps a high-water mark of resident memory (VmHWM); writing 5 to clear_refs resets it to
# the current size, so the mark read after the call is the call's own peak.
_CHILD = r"""
import json, sys, torch
impl, seq, d, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
from frugalnn.fusemax.bench import make_inputs, implementations
q, k, v = make_inputs(seq, d)
fn = implementations(q, k, v, threads)[impl]
tiny = make_inputs(64, d)  # warm code paths and lazy allocations on a small case first
implementations(*tiny, threads)[impl]()
def status(key):
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith(key + ":"))
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
before = status("VmRSS")
out = fn()
print(json.dumps({"extra_bytes": status("VmHWM") - before}))
"""


def make_inputs(seq: int, d: int):
    import torch

    g = torch.Generator().manual_seed(seq + d)
    return tuple(torch.randn(1, 1, seq, d, generator=g) for _ in range(3))


def naive_three_pass(q, k, v):
    """Textbook attention: the L x S scores, their max, exp, sum and normalised matrix all materialised."""
    import torch

    s = (q @ k.transpose(-1, -2)) * (q.shape[-1] ** -0.5)
    p = torch.exp(s - s.amax(dim=-1, keepdim=True))
    return (p / p.sum(dim=-1, keepdim=True)) @ v


def implementations(q, k, v, threads: int) -> dict:
    import torch
    import torch.nn.functional as F

    from frugalnn.kernels.attention import fused_attention

    return {
        "torch SDPA": lambda: F.scaled_dot_product_attention(q, k, v),
        "fused 1-pass (ours)": lambda: fused_attention(q, k, v, threads=threads),
        "naive 3-pass": lambda: naive_three_pass(q, k, v),
    }


def measure_memory(impl: str, seq: int, d: int, threads: int) -> int | None:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    proc = subprocess.run([sys.executable, "-c", _CHILD, impl, str(seq), str(d), str(threads)], capture_output=True,
                          text=True, env=env, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"memory probe for {impl} at seq {seq} failed: {proc.stderr.strip()[-400:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])["extra_bytes"]


def _add_arguments(parser) -> None:
    parser.add_argument("--max-seq", type=int, default=max(SEQS), help="longest sequence (default 32768)")
    parser.add_argument("--no-memory", action="store_true", help="skip the per-case memory subprocesses")


@benchmark("fusemax", "fused 1-pass attention vs torch SDPA vs naive 3-pass: time and peak extra memory",
           _add_arguments)
def bench_attention(args: BenchArgs) -> BenchReport:
    import torch

    from frugalnn.kernels.attention import workspace_bytes

    max_seq = int(args.options.get("max_seq") or max(SEQS))
    seqs = [s for s in SEQS if s <= (2048 if args.quick else max_seq)]
    dims = (64,) if args.quick else DIMS
    memory = not args.options.get("no_memory", False)
    report = BenchReport("attention", baseline="torch SDPA")
    report.meta["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    report.notes.append(
        "One head, batch 1, float32, non-causal. 'x vs torch SDPA' > 1 means faster than torch. Extra memory: "
        "peak RSS growth of one call in a fresh process (output included); the fused kernel's own scratch is "
        f"{workspace_bytes(64) // 1024} KiB (d=64) / {workspace_bytes(128) // 1024} KiB (d=128) per thread at "
        f"any length. torch used its {torch.backends.cpu.get_cpu_capability()} kernels; ours are AVX2+FMA.")
    previous = torch.get_num_threads()
    try:
        for threads in args.threads:
            torch.set_num_threads(threads)
            for d in dims:
                for seq in seqs:
                    q, k, v = make_inputs(seq, d)
                    fns = implementations(q, k, v, threads)
                    if 3 * seq * seq * 4 > NAIVE_LIMIT_BYTES:
                        del fns["naive 3-pass"]
                    repeats = args.repeats if seq <= 4096 else min(args.repeats, 3)
                    timings = time_interleaved(fns, repeats=repeats, warmup=1, min_sample_s=0.05)
                    report.add_case(f"seq {seq} d {d}", threads, timings)
                    rows = report.rows[-len(fns):]
                    for row in rows:
                        row.extra["GFLOP/s"] = 4 * seq * seq * d / (row.median_ms * 1e-3) / 1e9
                        if memory:
                            row.extra["extra MiB"] = measure_memory(row.impl, seq, d, threads) / 2**20
                    if "naive 3-pass" not in fns:
                        report.notes.append(f"naive 3-pass skipped at seq {seq}: its score matrices would need "
                                            f"{3 * seq * seq * 4 / 2**30:.0f} GiB")
    finally:
        torch.set_num_threads(previous)
    return report
