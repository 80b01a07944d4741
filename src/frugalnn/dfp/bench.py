"""`frugalnn bench dfp`: the DFP16 GEMM (int16 x int16, int32 chunk sums, vpmaddwd) against torch's
float32 matmul, on square shapes and on ResNet-20's convolution GEMMs.

Contenders, timed interleaved in one run (every repeat times each once, in turn):
  torch fp32 matmul          the baseline: torch.matmul on float32 (MKL; torch's own ISA is named in
                             the row: on an AVX-512 machine it runs AVX-512, and we do not)
  torch fp32 matmul, AVX2    the same with ATEN_CPU_CAPABILITY=avx2, MKL_ENABLE_INSTRUCTIONS=AVX2 and
                             ONEDNN_MAX_CPU_ISA=AVX2 (only when torch would otherwise use AVX-512):
                             ISA against ISA
  Both torch contenders run in worker processes started with OMP_WAIT_POLICY=PASSIVE (see PASSIVE
  below); each timed request runs a ~20 ms batch of calls there, so the pipe costs nothing.
  dfp16 gemm                 frugalnn.kernels.dfp.gemm on operands already quantized (int16 + exponent)
  dfp16 incl. quantization   both float32 operands quantized (kernels.dfp.quantize, what
                             frugalnn.dfp.matmul does), then the GEMM
  dfp16 gemm (avx2)          the GEMM under each other vectorised backend available here (avx2 beside
  dfp16 gemm (avx512 no VNNI)  avx512) and, on a VNNI CPU under avx512, its AVX512BW path (vpmaddwd +
                             vpaddd on zmm): the backend's own gain, in the same run

Shapes: 1024^3 and 2048^3 (M = K = N), and the GEMMs of a CIFAR-style ResNet-20 on 28x28
Fashion-MNIST at batch B (`resnet20_shapes`): the forward conv of each stage as im2col writes it
(M = out channels, K = in channels * 9, N = B * H * W), and the forward, input-gradient and
weight-gradient GEMMs exactly as frugalnn.dfp.nn issues them in training, for stages 1 and 3.

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
from dataclasses import dataclass

import numpy as np

from frugalnn.bench.accuracy import check_before_timing, nmse
from frugalnn.bench.harness import BenchArgs, BenchReport, Timing, benchmark, time_interleaved

U = 2.0**-24  # float32 unit roundoff
AVX2_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2",
            "DNNL_MAX_CPU_ISA": "AVX2"}
# torch runs in worker processes whose OpenMP threads sleep as soon as a matmul ends. With
# libgomp's default (spin at the barrier) torch's 2-thread matmul on this shared 2-core machine was
# 4-7x slower than its 1-thread one (25088x144 @ 144x16: 34 ms against 5 ms; PASSIVE: 8 ms), and
# spinning threads would also steal the cores from the contender timed next.
PASSIVE = {"OMP_WAIT_POLICY": "PASSIVE"}
WORKER_SAMPLE_S = 0.02  # each request to a worker times this long a batch of calls (IPC amortized)
BASELINE = "torch fp32 matmul"
TORCH_AVX2 = "torch fp32 matmul, AVX2"
OURS = "dfp16 gemm"
OURS_Q = "dfp16 incl. quantization"


@dataclass(frozen=True)
class Case:
    name: str
    m: int
    k: int
    n: int
    transpose_b: bool = False  # B given as B^T [N, K] (torch multiplies by the transposed view)


def resnet20_shapes(batch: int) -> list[Case]:
    """ResNet-20's 3x3 conv GEMMs on 28x28 inputs (stages of 16/32/64 channels at 28, 14, 7 pixels).

    The forward GEMM of every stage as im2col writes it (M = out channels, K = in channels * 9,
    N = batch * H * W), then the three GEMMs frugalnn.dfp.nn issues per conv layer in training, for
    the first and last stage: forward cols [BHW, 9C] @ W^T (W [O, 9C] passed as B^T), input gradient
    dY [BHW, O] @ W [O, 9C], weight gradient dY^T [O, BHW] @ cols [BHW, 9C].
    """
    hw = {1: 28 * 28, 2: 14 * 14, 3: 7 * 7}
    width = {1: 16, 2: 32, 3: 64}
    out = [Case(f"resnet20 stage{s} conv fwd, im2col (B={batch})", width[s], 9 * width[s], batch * hw[s])
           for s in (1, 2, 3)]
    for s in (1, 3):
        c, p = width[s], batch * hw[s]
        out += [Case(f"resnet20 stage{s} fwd as nn.py (B={batch})", p, 9 * c, c, transpose_b=True),
                Case(f"resnet20 stage{s} input grad as nn.py (B={batch})", p, c, 9 * c),
                Case(f"resnet20 stage{s} weight grad as nn.py (B={batch})", c, p, 9 * c)]
    return out


def cases(quick: bool, shapes: list[str], batch: int | None) -> list[Case]:
    out = []
    if "square" in shapes:
        out += [Case(f"square {n}", n, n, n) for n in ((1024,) if quick else (1024, 2048))]
    if "resnet" in shapes:
        out += resnet20_shapes(batch or (32 if quick else 128))
    return out


def make_operands(m: int, k: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """float32 A [M, K] and B [K, N], standard normal."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((m, k)).astype(np.float32), rng.standard_normal((k, n)).astype(np.float32)


def torch_operands(a: np.ndarray, b: np.ndarray, transpose_b: bool):
    """torch views of A and B as the case multiplies them (B as the transpose of a [N, K] tensor)."""
    import torch

    tb = torch.from_numpy(np.ascontiguousarray(b.T)).t() if transpose_b else torch.from_numpy(b)
    return torch.from_numpy(a), tb


def torch_error(a: np.ndarray, b: np.ndarray, y: np.ndarray, exact: np.ndarray) -> tuple[float, float]:
    """(worst |y - exact| / (K u |A| @ |B|), NMSE vs exact) for a float32 matmul output y."""
    bound = a.shape[1] * U * (np.abs(a.astype(np.float64)) @ np.abs(b.astype(np.float64)))
    return _worst_ratio(y, exact, bound), nmse(y, exact)


def _worst_ratio(y, exact, bound) -> float:
    err = np.abs(np.asarray(y, np.float64) - exact)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(err == 0, 0.0, err / bound)
    return float(r.max()) if r.size else 0.0


def check_ours(case: str, qa, qb, y: np.ndarray, chunk: int, transpose_b: bool = False) -> None:
    """Bit-exact against the numpy reference, and within the chunked-float32 bound of the exact product
    (qb holds B^T when transpose_b)."""
    from frugalnn.kernels import dfp

    ma, mb = qa.mantissa, qb.mantissa
    ea, eb = int(qa.exponent[0]), int(qb.exponent[0])
    want = dfp.gemm(ma, mb, ea, eb, chunk=chunk, transpose_b=transpose_b, impl="numpy")
    same = np.array_equal(y.view(np.uint32), want.view(np.uint32))
    check_before_timing(case, OURS, 0.0 if same else float("inf"), 0.0, "bit mismatches vs dfp_ref")
    scale = 2.0 ** (ea + eb)
    b64 = (mb.T if transpose_b else mb).astype(np.float64)
    exact = (ma.astype(np.float64) @ b64) * scale  # exact: see the module docstring
    chunks = -(-ma.shape[1] // chunk)
    bound = (chunks + 2) * U * (np.abs(ma.astype(np.float64)) @ np.abs(b64)) * scale
    check_before_timing(case, OURS, _worst_ratio(y, exact, bound), 1.0, "error / chunked-fp32 bound")


# ---- torch in worker processes (the ISA and the OpenMP wait policy are fixed when torch loads) ----

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
            ta, tb = torch_operands(a, b, req.get("transpose_b", False))
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


class TorchWorker:
    """A python process serving _worker_main, with `env` added to this process's environment."""

    def __init__(self, env: dict):
        env = dict(os.environ, **env)
        self.proc = subprocess.Popen([sys.executable, "-c", _WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, env=env)

    def ask(self, **req) -> dict:
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"torch worker exited with code {self.proc.wait()}")
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
    p.add_argument("--sample-ms", type=float, default=50.0,
                   help="shortest timed sample (calls are repeated until a sample lasts this long)")


@benchmark("dfp", "DFP16 int16 GEMM (vpmaddwd, int32 chunk sums) vs torch fp32 matmul, square and ResNet-20 shapes",
           _add_arguments)
def bench_dfp(args: BenchArgs) -> BenchReport:
    import torch

    from frugalnn import _core, info
    from frugalnn.kernels import avx512_vnni, dfp, op_backends, other_backends, use_avx512_vnni, use_backend

    batch = args.options.get("batch")
    if batch is not None and batch < 1:
        raise ValueError(f"--batch: expected >= 1, got {batch}")
    sample_ms = args.options.get("sample_ms")
    sample_s = 0.05 if sample_ms is None else float(sample_ms) / 1e3
    if not sample_s > 0:
        raise ValueError(f"--sample-ms: expected > 0, got {sample_ms}")
    worker_batch_s = min(WORKER_SAMPLE_S, sample_s / 2)
    # the ISA the DFP GEMM really runs (avx512: vpdpwssd where VNNI is on, else vpmaddwd on zmm)
    torch_isa, our_isa = info.torch_isa(), op_backends()["dfp"]
    our_isa_named = dfp.isa()
    vnni = our_isa_named.endswith("VNNI")
    avx2_peer = torch_isa.upper() not in ("AVX2", "DEFAULT", "NO AVX") and not args.options.get("no_avx2_peer")
    # the probes are 8-lane AVX2 loops (on Zen 4 a zmm instruction has the same MAC rate)
    fma_peak = _core.dfp.peak_macs("fp32_fma", 0.3) if our_isa in ("avx2", "avx512") else float("nan")
    madd_peak = _core.dfp.peak_macs("int16_madd", 0.3) if our_isa in ("avx2", "avx512") else float("nan")
    chunk = dfp.DEFAULT_CHUNK
    report = BenchReport("dfp", baseline=BASELINE)
    report.meta.update({"lscpu": lscpu(), "torch": torch.__version__, "torch_isa": torch_isa, "our_isa": our_isa_named,
                        "torch_env": {BASELINE: PASSIVE, TORCH_AVX2: {**AVX2_ENV, **PASSIVE}},
                        "chunk": chunk, "fp32_fma_peak_gmacs_per_core": fma_peak / 1e9,
                        "int16_madd_peak_gmacs_per_core": madd_peak / 1e9})
    report.notes.append(
        f"'x vs {BASELINE}' > 1: faster than torch's float32 matmul at the same thread count, timed interleaved in "
        f"this run. Ours: int16 operands, int32 sums over chunks of {chunk} (the largest safe chunk for DFP16 with "
        f"2 bits of headroom), {our_isa_named} kernels. torch: {torch_isa} (torch.backends.cpu.get_cpu_capability()). "
        f"Per-core peaks measured here: fp32 FMA {fma_peak / 1e9:.1f} GMAC/s, int16 vpmaddwd+vpaddd "
        f"{madd_peak / 1e9:.1f} GMAC/s ({madd_peak / fma_peak:.2f}x: the physical headroom of int16 on AVX2). "
        "'% fp32 peak' = GMAC/s / (fp32 FMA peak x threads). NMSE: against the float64 product of the float32 "
        "operands. Bytes/value: what each side holds per operand element (ours: int16 + one exponent per tensor).")
    if avx2_peer:
        report.notes.append(f"torch runs {torch_isa} here and our kernels {our_isa_named}: '{TORCH_AVX2}' is torch in a "
                            f"worker started with {' '.join(f'{k}={v}' for k, v in AVX2_ENV.items())}, ISA "
                            "against ISA (MKL and oneDNN, which torch's matmul calls, follow the last two).")
    load_before = os.getloadavg()[0]
    workers = {BASELINE: TorchWorker(PASSIVE)}
    if avx2_peer:
        workers[TORCH_AVX2] = TorchWorker({**AVX2_ENV, **PASSIVE})
    try:
        for seed, case in enumerate(cases(args.quick, args.options.get("shapes") or ["square", "resnet"], batch)):
            name, m, k, n, tb_ = case.name, case.m, case.k, case.n, case.transpose_b
            a, b = make_operands(m, k, n, seed)
            b_ours = np.ascontiguousarray(b.T) if tb_ else b  # ours takes B^T [N, K] as stored
            exact = a.astype(np.float64) @ b.astype(np.float64)
            qa, qb = dfp.quantize(a), dfp.quantize(b_ours)
            ma, mb, ea, eb = qa.mantissa, qb.mantissa, int(qa.exponent[0]), int(qb.exponent[0])

            def with_quantization(t):
                xa, xb = dfp.quantize(a, threads=t), dfp.quantize(b_ours, threads=t)
                return dfp.gemm(xa.mantissa, xb.mantissa, int(xa.exponent[0]), int(xb.exponent[0]), chunk=chunk,
                                threads=t, transpose_b=tb_)

            for threads in args.threads:
                y = dfp.gemm(ma, mb, ea, eb, chunk=chunk, threads=threads, transpose_b=tb_)
                check_ours(name, qa, qb, y, chunk, tb_)
                yq = with_quantization(threads)
                check_before_timing(name, OURS_Q, 0.0 if np.array_equal(yq, y) else float("inf"), 0.0,
                                    "bit mismatches vs dfp16 gemm")
                errors = {OURS: nmse(y, exact), OURS_Q: nmse(y, exact)}
                isas = {OURS: our_isa_named, OURS_Q: our_isa_named}
                fns = {
                    OURS: lambda t=threads: dfp.gemm(ma, mb, ea, eb, chunk=chunk, threads=t, transpose_b=tb_),
                    OURS_Q: lambda t=threads: with_quantization(t),
                }
                others = {f"{OURS} ({b})": (b, True) for b in other_backends()}
                if vnni:
                    others[f"{OURS} (avx512 no VNNI)"] = ("avx512", False)
                for impl, (b, v) in others.items():  # the same GEMM on another ISA: bit-exact, then timed

                    def on(b=b, v=v, t=threads):
                        with use_backend(b), use_avx512_vnni(v and avx512_vnni()):
                            return dfp.gemm(ma, mb, ea, eb, chunk=chunk, threads=t, transpose_b=tb_)

                    check_before_timing(name, impl, 0.0 if np.array_equal(on(), y) else float("inf"), 0.0,
                                        "bit mismatches vs dfp16 gemm")
                    fns[impl], errors[impl] = on, errors[OURS]
                    isas[impl] = b if v else "avx512 (AVX512BW, no VNNI)"
                batch_calls = {}
                for impl, w in workers.items():  # checked in the worker (K u |A||B| bound), then timed there
                    setup = w.ask(op="setup", m=m, k=k, n=n, seed=seed, threads=threads, transpose_b=tb_)
                    check_before_timing(name, impl, setup["ratio"], 1.0, "error / K u |A||B| bound")
                    errors[impl], isas[impl] = setup["nmse"], setup["isa"]
                    batch_calls[impl] = max(1, int(worker_batch_s / max(setup["one_call_s"], 1e-6)))
                    fns[impl] = lambda w=w, c=batch_calls[impl]: w.ask(op="run", calls=c)
                fns = {impl: fns[impl] for impl in (BASELINE, OURS, OURS_Q, *others, TORCH_AVX2) if impl in fns}
                timings = time_interleaved(fns, repeats=args.repeats, warmup=1, min_sample_s=sample_s)
                for impl, c in batch_calls.items():  # one timed call was a batch of c matmuls
                    t = timings[impl]
                    timings[impl] = Timing(t.median_s / c, t.min_s / c, [x / c for x in t.samples_s],
                                           t.calls_per_sample * c)
                report.add_case(name, threads, timings)
                best_base = timings[BASELINE].min_s
                for row in report.rows[-len(fns):]:
                    row.extra["x (best times)"] = best_base / timings[row.impl].min_s
                    gmacs = m * k * n / (row.median_ms * 1e-3) / 1e9
                    row.extra["GMAC/s"] = gmacs
                    row.extra["% fp32 peak"] = 100 * gmacs / (fma_peak / 1e9 * threads)
                    row.extra["NMSE vs fp64"] = errors[row.impl]
                    row.extra["bytes/value"] = 4.0 if row.impl.startswith("torch") else (2 * (m * k + k * n) + 2) / (
                        m * k + k * n)
                    row.extra["ISA"] = isas[row.impl]
                    row.extra["shape MxKxN"] = f"{m}x{k}x{n}" + (" (B^T)" if tb_ else "")
    finally:
        for w in workers.values():
            w.close()
    report.meta["load_average_1min"] = {"before": load_before, "after": os.getloadavg()[0]}
    report.notes.append(
        f"Machine load (1-minute load average, {os.cpu_count()} logical CPUs): {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after. On a shared machine other processes take turns on the cores: the "
        "medians then carry their interference, and 'x (best times)' compares each side's fastest sample. At "
        "threads = all cores a busy core slows torch's OpenMP regions (a static split, then a barrier) more than "
        "our thread pool (tasks taken from a shared counter). torch runs in worker processes with "
        "OMP_WAIT_POLICY=PASSIVE (see PASSIVE in frugalnn/dfp/bench.py: libgomp's default spinning made its "
        "2-thread matmul slower than its 1-thread one here); each timed request runs a ~20 ms batch of calls.")
    return report
