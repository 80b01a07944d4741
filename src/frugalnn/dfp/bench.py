"""`frugalnn bench dfp`: the DFP16 GEMM (int16 x int16, int32 chunk sums, vpmaddwd) against torch's
float32 matmul, on square shapes and on ResNet-20's convolution GEMMs.

Contenders, timed interleaved in one run (every repeat times each once, in turn):
  torch fp32 matmul          the baseline: torch.matmul on float32 (MKL; torch's own ISA is named in
                             the row: on an AVX-512 machine it runs AVX-512, and we do not)
  torch fp32 matmul, AVX2    the same in a subprocess started with ATEN_CPU_CAPABILITY=avx2,
                             MKL_ENABLE_INSTRUCTIONS=AVX2 and ONEDNN_MAX_CPU_ISA=AVX2 (only when torch
                             would otherwise use AVX-512): ISA against ISA. Its OpenMP threads sleep
                             between calls (OMP_WAIT_POLICY=PASSIVE) so they never spin on the cores
                             the other contenders are timed on; each request times a ~20 ms batch
  dfp16 gemm                 frugalnn.kernels.dfp.gemm on operands already quantized (int16 + exponent)
  dfp16 incl. quantization   frugalnn.dfp.matmul on the float32 operands: quantize both, then the GEMM

Shapes: 1024^3 and 2048^3 (M = K = N), and the im2col GEMMs of a CIFAR-style ResNet-20 on 28x28
Fashion-MNIST at batch B: forward conv of each stage (M = out channels, K = in channels * 9,
N = B * H * W), a weight gradient (M = out channels, K = B * H * W, N = in channels * 9) and an
input gradient (M = in channels * 9, K = out channels, N = B * H * W).

Check before timing (every case, at the benched shape): our output must equal the numpy reference
bit for bit (kernels/dfp_ref.py), and lie within (chunks + 2) * 2^-24 * (|A'| @ |B'|) of the exact
product of the quantized operands A', B' (computed exactly in float64: products of int16 are
below 2^30 and the sums stay far below 2^53); torch's output must lie within K * 2^-24 * (|A| @ |B|)
of the float64 product (the classical bound for a float32 dot product of length K). Rows report
each side's error against the float64 product of the original float32 operands (NMSE: ours
includes the int16 quantization, torch only float32 rounding) and the bytes each holds per operand
value. Rates: GMAC/s (one multiply-accumulate = 2 FLOP), and the share of the core's fp32 FMA peak
(8-lane FMAs, measured here at run time with `_core.dfp.peak_macs`, times the thread count); the
int16 vpmaddwd + vpaddd peak is measured too and reported in the notes.

    frugalnn bench dfp [--quick] [--threads 1 2] [--shapes square resnet] [--batch 128]
    (benchmarks/bench_dfp.py runs the same)
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

from frugalnn.bench.accuracy import check_before_timing, nmse
from frugalnn.bench.harness import BenchArgs, BenchReport, Timing, benchmark, time_interleaved

U = 2.0**-24  # float32 unit roundoff
AVX2_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2",
            "DNNL_MAX_CPU_ISA": "AVX2"}
# The worker's OpenMP threads sleep as soon as a matmul ends: spinning (libgomp's default) would
# steal the cores from the other contenders timed right after it on this 2-core machine.
WORKER_ENV = {**AVX2_ENV, "OMP_WAIT_POLICY": "PASSIVE"}
WORKER_SAMPLE_S = 0.02  # each request to the worker times this long a batch of calls (IPC amortized)
BASELINE = "torch fp32 matmul"
TORCH_AVX2 = "torch fp32 matmul, AVX2"
OURS = "dfp16 gemm"
OURS_Q = "dfp16 incl. quantization"


def resnet20_shapes(batch: int) -> list[tuple[str, int, int, int]]:
    """(name, M, K, N) of ResNet-20's 3x3 conv GEMMs on 28x28 inputs (stages at 28, 14, 7 pixels)."""
    s1, s2, s3 = batch * 28 * 28, batch * 14 * 14, batch * 7 * 7
    return [
        (f"resnet20 stage1 conv fwd (B={batch})", 16, 16 * 9, s1),
        (f"resnet20 stage2 conv fwd (B={batch})", 32, 32 * 9, s2),
        (f"resnet20 stage3 conv fwd (B={batch})", 64, 64 * 9, s3),
        (f"resnet20 stage3 weight grad (B={batch})", 64, s3, 64 * 9),
        (f"resnet20 stage2 input grad (B={batch})", 32 * 9, 32, s2),
    ]


def cases(quick: bool, shapes: list[str], batch: int | None) -> list[tuple[str, int, int, int]]:
    out = []
    if "square" in shapes:
        out += [(f"square {n}", n, n, n) for n in ((1024,) if quick else (1024, 2048))]
    if "resnet" in shapes:
        out += resnet20_shapes(batch or (32 if quick else 128))
    return out


def make_operands(m: int, k: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((m, k)).astype(np.float32), rng.standard_normal((k, n)).astype(np.float32)


def torch_error(a: np.ndarray, b: np.ndarray, y: np.ndarray, exact: np.ndarray) -> tuple[float, float]:
    """(worst |y - exact| / (K u |A| @ |B|), NMSE vs exact) for a float32 matmul output y."""
    bound = a.shape[1] * U * (np.abs(a.astype(np.float64)) @ np.abs(b.astype(np.float64)))
    return _worst_ratio(y, exact, bound), nmse(y, exact)


def _worst_ratio(y, exact, bound) -> float:
    err = np.abs(np.asarray(y, np.float64) - exact)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(err == 0, 0.0, err / bound)
    return float(r.max()) if r.size else 0.0


def check_ours(case: str, qa, qb, y: np.ndarray, chunk: int) -> None:
    """Bit-exact against the numpy reference, and within the chunked-float32 bound of the exact product."""
    from frugalnn.kernels import dfp

    ma, mb = qa.mantissa, qb.mantissa
    ea, eb = int(qa.exponent[0]), int(qb.exponent[0])
    want = dfp.gemm(ma, mb, ea, eb, chunk=chunk, impl="numpy")
    same = np.array_equal(y.view(np.uint32), want.view(np.uint32))
    check_before_timing(case, OURS, 0.0 if same else float("inf"), 0.0, "bit mismatches vs dfp_ref")
    scale = 2.0 ** (ea + eb)
    exact = (ma.astype(np.float64) @ mb.astype(np.float64)) * scale  # exact: see the module docstring
    chunks = -(-ma.shape[1] // chunk)
    bound = (chunks + 2) * U * (np.abs(ma.astype(np.float64)) @ np.abs(mb.astype(np.float64))) * scale
    check_before_timing(case, OURS, _worst_ratio(y, exact, bound), 1.0, "error / chunked-fp32 bound")


# ---- torch restricted to AVX2, in a worker process (the ISA is fixed when torch loads) ----

_WORKER = "from frugalnn.dfp.bench import _worker_main; _worker_main()"


def _worker_main() -> None:
    """Serve `setup` (build operands, check, report errors) and `run` (time calls) requests over stdin/stdout."""
    import time

    import torch

    ta = tb = None
    for line in sys.stdin:
        req = json.loads(line)
        if req["op"] == "setup":
            torch.set_num_threads(req["threads"])
            a, b = make_operands(req["m"], req["k"], req["n"], req["seed"])
            ta, tb = torch.from_numpy(a), torch.from_numpy(b)
            exact = a.astype(np.float64) @ b.astype(np.float64)
            ratio, err = torch_error(a, b, torch.matmul(ta, tb).numpy(), exact)
            t0 = time.perf_counter()
            torch.matmul(ta, tb)
            reply = {"isa": torch.backends.cpu.get_cpu_capability(), "ratio": ratio, "nmse": err,
                     "one_call_s": time.perf_counter() - t0}
        else:
            t0 = time.perf_counter()
            for _ in range(req["calls"]):
                torch.matmul(ta, tb)
            reply = {"seconds": time.perf_counter() - t0}
        print(json.dumps(reply), flush=True)


class TorchAVX2Worker:
    def __init__(self):
        env = dict(os.environ, **WORKER_ENV)
        self.proc = subprocess.Popen([sys.executable, "-c", _WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, env=env)

    def ask(self, **req) -> dict:
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"torch AVX2 worker exited with code {self.proc.wait()}")
        return json.loads(line)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def lscpu() -> dict:
    """Model name, family/model and caches as lscpu reports them ({} where lscpu is absent)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    keep = ("Model name", "CPU family", "Model", "Stepping", "Thread(s) per core", "L1d cache", "L2 cache", "L3 cache")
    rows = (line.split(":", 1) for line in out.splitlines() if ":" in line)
    return {k.strip(): v.strip() for k, v in rows if k.strip() in keep}


def _add_arguments(p) -> None:
    p.add_argument("--shapes", nargs="+", choices=("square", "resnet"), default=["square", "resnet"])
    p.add_argument("--batch", type=int, default=None, help="batch of the ResNet-20 GEMM shapes (default 128, quick 32)")
    p.add_argument("--no-avx2-peer", action="store_true", help="skip torch restricted to AVX2 (the subprocess)")


@benchmark("dfp", "DFP16 int16 GEMM (vpmaddwd, int32 chunk sums) vs torch fp32 matmul, square and ResNet-20 shapes",
           _add_arguments)
def bench_dfp(args: BenchArgs) -> BenchReport:
    import torch

    from frugalnn import _core, info
    from frugalnn.dfp.gemm import matmul
    from frugalnn.kernels import dfp

    batch = args.options.get("batch")
    if batch is not None and batch < 1:
        raise ValueError(f"--batch: expected >= 1, got {batch}")
    torch_isa, our_isa = info.torch_isa(), info.kernel_isa()
    avx2_peer = torch_isa.upper() not in ("AVX2", "DEFAULT", "NO AVX") and not args.options.get("no_avx2_peer")
    fma_peak = _core.dfp.peak_macs("fp32_fma", 0.3) if our_isa == "avx2" else float("nan")
    madd_peak = _core.dfp.peak_macs("int16_madd", 0.3) if our_isa == "avx2" else float("nan")
    chunk = dfp.DEFAULT_CHUNK
    report = BenchReport("dfp", baseline=BASELINE)
    report.meta.update({"lscpu": lscpu(), "torch": torch.__version__, "torch_isa": torch_isa, "our_isa": our_isa,
                        "chunk": chunk, "fp32_fma_peak_gmacs_per_core": fma_peak / 1e9,
                        "int16_madd_peak_gmacs_per_core": madd_peak / 1e9})
    report.notes.append(
        f"'x vs {BASELINE}' > 1: faster than torch's float32 matmul at the same thread count, timed interleaved in "
        f"this run. Ours: int16 operands, int32 sums over chunks of {chunk} (the largest safe chunk for DFP16 with "
        f"2 bits of headroom), {our_isa} kernels. torch: {torch_isa} (torch.backends.cpu.get_cpu_capability()). "
        f"Per-core peaks measured here: fp32 FMA {fma_peak / 1e9:.1f} GMAC/s, int16 vpmaddwd+vpaddd "
        f"{madd_peak / 1e9:.1f} GMAC/s ({madd_peak / fma_peak:.2f}x: the physical headroom of int16 on AVX2). "
        "'% fp32 peak' = GMAC/s / (fp32 FMA peak x threads). NMSE: against the float64 product of the float32 "
        "operands. Bytes/value: what each side holds per operand element (ours: int16 + one exponent per tensor).")
    if avx2_peer:
        report.notes.append(f"torch runs {torch_isa} here and our kernels AVX2: '{TORCH_AVX2}' is torch in a "
                            f"subprocess with {' '.join(f'{k}={v}' for k, v in AVX2_ENV.items())}, ISA against ISA.")
    worker = TorchAVX2Worker() if avx2_peer else None
    previous = torch.get_num_threads()
    try:
        for seed, (name, m, k, n) in enumerate(cases(args.quick, args.options.get("shapes") or ["square", "resnet"],
                                                     batch)):
            a, b = make_operands(m, k, n, seed)
            exact = a.astype(np.float64) @ b.astype(np.float64)
            qa, qb = dfp.quantize(a), dfp.quantize(b)
            ma, mb, ea, eb = qa.mantissa, qb.mantissa, int(qa.exponent[0]), int(qb.exponent[0])
            ta, tb = torch.from_numpy(a), torch.from_numpy(b)
            for threads in args.threads:
                torch.set_num_threads(threads)
                y = dfp.gemm(ma, mb, ea, eb, chunk=chunk, threads=threads)
                check_ours(name, qa, qb, y, chunk)
                yq = matmul(a, b, threads=threads)
                check_before_timing(name, OURS_Q, 0.0 if np.array_equal(yq, y) else float("inf"), 0.0,
                                    "bit mismatches vs dfp16 gemm")
                ratio, torch_nmse = torch_error(a, b, torch.matmul(ta, tb).numpy(), exact)
                check_before_timing(name, BASELINE, ratio, 1.0, "error / K u |A||B| bound")
                errors = {BASELINE: torch_nmse, OURS: nmse(y, exact), OURS_Q: nmse(y, exact)}
                isas = {BASELINE: torch_isa, OURS: our_isa, OURS_Q: our_isa}
                fns = {
                    BASELINE: lambda: torch.matmul(ta, tb),
                    OURS: lambda t=threads: dfp.gemm(ma, mb, ea, eb, chunk=chunk, threads=t),
                    OURS_Q: lambda t=threads: matmul(a, b, threads=t),
                }
                if worker is not None:
                    setup = worker.ask(op="setup", m=m, k=k, n=n, seed=seed, threads=threads)
                    check_before_timing(name, TORCH_AVX2, setup["ratio"], 1.0, "error / K u |A||B| bound")
                    errors[TORCH_AVX2], isas[TORCH_AVX2] = setup["nmse"], setup["isa"]
                    batch_calls = max(1, int(WORKER_SAMPLE_S / max(setup["one_call_s"], 1e-6)))
                    fns[TORCH_AVX2] = lambda c=batch_calls: worker.ask(op="run", calls=c)
                timings = time_interleaved(fns, repeats=args.repeats, warmup=1, min_sample_s=0.05)
                if worker is not None:  # one timed call was a batch of `batch_calls` matmuls
                    t = timings[TORCH_AVX2]
                    timings[TORCH_AVX2] = Timing(t.median_s / batch_calls, t.min_s / batch_calls,
                                                 [x / batch_calls for x in t.samples_s],
                                                 t.calls_per_sample * batch_calls)
                report.add_case(name, threads, timings)
                for row in report.rows[-len(fns):]:
                    gmacs = m * k * n / (row.median_ms * 1e-3) / 1e9
                    row.extra["GMAC/s"] = gmacs
                    row.extra["% fp32 peak"] = 100 * gmacs / (fma_peak / 1e9 * threads)
                    row.extra["NMSE vs fp64"] = errors[row.impl]
                    row.extra["bytes/value"] = 4.0 if row.impl.startswith("torch") else (2 * (m * k + k * n) + 2) / (
                        m * k + k * n)
                    row.extra["ISA"] = isas[row.impl]
                    row.extra["shape MxKxN"] = f"{m}x{k}x{n}"
    finally:
        torch.set_num_threads(previous)
        if worker is not None:
            worker.close()
    return report
