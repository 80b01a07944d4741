"""lmul_matmul throughput: our kernel vs a naive torch bit-manipulation emulation vs fp32 torch matmul.

The naive emulation is what public L-Mul ports do in PyTorch: view the operands as int32,
truncate the mantissas, add the bit patterns of every (a[i, k], b[k, j]) pair with the offset,
view the sums as float32 and reduce over k. Broadcasting all pairs at once needs an M*K*N
tensor (4 GiB at 1024^3), so it runs over blocks of rows sized to keep that tensor near
64 MiB, the same memory the user would have to give it. It skips zero/inf/NaN handling (so it
does strictly less work than our kernel).

Check before timing: every case first compares, at the benched shape, our kernel (each backend and
thread count) with the numpy reference bit for bit, the naive emulation with our kernel within the
float32 summation-order bound, and torch's matmul with the exact (float64) product within the same
bound; a case that fails stops the benchmark (CheckFailed). The reference runs on a deterministic
sample of CHECK_ROWS rows per batch entry (every output row is computed independently of the others),
so the 4096^3 case is checked too. Each row then carries its accuracy against the exact product.

    frugalnn bench lmul [--quick] [--threads 1 2]      (benchmarks/bench_lmul.py runs the same)
"""
from __future__ import annotations

import numpy as np

from frugalnn import info
from frugalnn.bench import isa
from frugalnn.bench.accuracy import check_before_timing, nmse
from frugalnn.bench.harness import BenchArgs, BenchReport, benchmark, time_interleaved
from frugalnn.kernels import available_backends, lmul as kernels, lmul_ref, use_backend
from frugalnn.threads import torch_threads

MANTISSA_BITS = 4
NAIVE_BLOCK_ELEMENTS = 1 << 24  # int32 temporaries of 64 MiB
CHECK_ROWS = 16                 # rows per batch entry compared with the numpy reference
SERIAL_MAX_MACS = 1 << 30       # the portable path is a reference, not a contender at 2048^3 and up
F32_UNIT = 2.0**-24
# |L-Mul product| <= (1 + 2^-l) |exact product| <= 1.125 |x y| for truncated operands (l >= 3 at m = 4;
# the dropped x_m y_m term only lowers it); 1.25 leaves room.
LMUL_MAGNITUDE = 1.25
# Issue 17's race: our kernel >= 0.5x torch's fp32 matmul (its default capability) at 1024^3.
TARGET, TARGET_CASE = 0.5, "square 1024"


def naive_lmul_matmul(a, b, mantissa_bits: int = MANTISSA_BITS, offset: int | None = None):
    """Pure-torch L-Mul matmul by broadcasting bit patterns: a [B, M, K] @ b [B, K, N] (float32 tensors)."""
    import torch

    offset = lmul_ref.paper_offset(mantissa_bits) if offset is None else offset
    keep = -(1 << (23 - mantissa_bits))  # int32 mask clearing the dropped mantissa bits
    bias = lmul_ref.offset_bits(offset)
    ia, ib = a.view(torch.int32), b.view(torch.int32)
    sa, sb = ia & (-(1 << 31)), ib & (-(1 << 31))  # sign bits
    ma, mb = (ia & 0x7FFFFFFF) & keep, (ib & 0x7FFFFFFF) & keep
    batch, m, k = a.shape
    n = b.shape[2]
    out = torch.empty(batch, m, n)
    rows = max(1, NAIVE_BLOCK_ELEMENTS // max(1, k * n))
    for e in range(batch):
        for i in range(0, m, rows):
            mag = ma[e, i:i + rows, :, None] + (mb[e, None] - bias)           # [rows, K, N]
            prod = (mag | (sa[e, i:i + rows, :, None] ^ sb[e, None])).view(torch.float32)
            out[e, i:i + rows] = prod.sum(dim=1)
    return out


def _square_cases(sizes):
    return [(f"square {n}", 1, n, n, n, False, n <= 1024) for n in sizes]


def _cases(quick: bool):
    """(name, batch, M, K, N, transpose_b, time the naive emulation)."""
    cases = _square_cases((256, 512) if quick else (512, 1024, 2048, 4096))
    heads, seq = (4, 128) if quick else (12, 512)
    cases += [
        (f"attention QK^T {heads}x{seq}x64", heads, seq, 64, seq, True, True),
        (f"attention PV {heads}x{seq}x{seq}->64", heads, seq, seq, 64, False, True),
        (f"decode QK^T {heads}x1x64 vs {8 * seq} keys", heads, 1, 64, 8 * seq, True, True),
    ]
    return cases


def check_rows(m: int, count: int = CHECK_ROWS) -> np.ndarray:
    """A deterministic sample of output rows: `count` rows spread evenly over 0..m-1, first and last included."""
    return np.unique(np.linspace(0, m - 1, min(m, count)).round().astype(np.int64))


def mismatched_outputs(y: np.ndarray, ref: np.ndarray) -> int:
    """Outputs whose float32 bit patterns differ (NaNs included: the kernel writes a canonical one)."""
    if y.shape != ref.shape:
        raise ValueError(f"y: expected the reference's shape {ref.shape}, got {y.shape}")
    bits = np.asarray(y, np.float32).view(np.uint32)
    return int(np.count_nonzero(bits != np.asarray(ref, np.float32).view(np.uint32)))


def scaled_error(y, ref, magnitude) -> float:
    """max |y - ref| / (sum_k |a_ik| |b_kj|): the error of a float sum relative to what it can be."""
    y, ref, magnitude = (np.asarray(v, np.float64) for v in (y, ref, magnitude))
    diff = np.abs(y - ref)
    return float(np.max(np.where(magnitude > 0, diff / np.where(magnitude > 0, magnitude, 1), diff), initial=0.0))


def sum_order_bound(k: int, magnitude: float = 1.0) -> float:
    """Two float32 sums of the same k terms, in any orders, differ by at most 2 (k-1) u sum|term|
    (u = 2^-24, the recursive-summation bound once per side); terms at most `magnitude` |a b|."""
    return 2 * max(k - 1, 1) * F32_UNIT * magnitude


class Sample:
    """The benched operands and what is checked against them: the sampled rows, the numpy reference's
    L-Mul output there, the exact float64 product and sum |a| |b| there."""

    def __init__(self, a: np.ndarray, b: np.ndarray, transpose_b: bool):
        self.rows = check_rows(a.shape[1])
        a_rows = np.ascontiguousarray(a[:, self.rows])
        self.reference = kernels.matmul(a_rows, b, MANTISSA_BITS, False, lmul_ref.paper_offset(MANTISSA_BITS),
                                        transpose_b=transpose_b, impl="numpy")
        b64 = (b.transpose(0, 2, 1) if transpose_b else b).astype(np.float64)
        self.exact = a_rows.astype(np.float64) @ b64
        self.magnitude = np.abs(a_rows).astype(np.float64) @ np.abs(b64)
        self.k = a.shape[2]

    def of(self, y) -> np.ndarray:
        """The sampled rows of a full output."""
        return np.asarray(y)[:, self.rows]


def _add_arguments(parser) -> None:
    parser.add_argument("--square", type=int, nargs="+", default=None,
                        help="time only these square sizes (e.g. 1024 for the 1024^3 race)")


@benchmark("lmul", "L-Mul matmul: our kernel vs naive torch bit-manipulation emulation vs fp32 torch matmul",
           _add_arguments)
def bench_lmul(args: BenchArgs) -> BenchReport:
    import torch

    report = BenchReport("lmul", baseline="torch fp32 matmul")
    offset = lmul_ref.paper_offset(MANTISSA_BITS)
    report.notes.append(
        f"L-Mul m={MANTISSA_BITS} truncate (paper offset l={offset}); float32 operands N(0,1). 'x vs torch fp32 "
        f"matmul' > 1 means faster than torch {torch.__version__}'s float32 matmul (CPU capability "
        f"{info.torch_isa()}) at the same thread count; 'x vs naive' compares our kernel with the naive torch "
        "emulation timed in the same run. GMAC/s counts multiply-accumulates. 'NMSE vs exact': output against the "
        f"float64 product on {CHECK_ROWS} sampled rows per batch entry; every contender holds float32 operands "
        f"(4 bytes), of which L-Mul uses the sign, the exponent and {MANTISSA_BITS} mantissa bits.")
    report.notes.append(f"Checked before timing: ours bit-exact with the numpy reference (frugalnn.kernels.lmul_ref) "
                        "on the sampled rows, the naive emulation and torch within the float32 summation-order "
                        f"bound 2 (K-1) 2^-24 sum|a||b| (x{LMUL_MAGNITUDE} for L-Mul products). {info.machine_line()}.")
    rng = np.random.default_rng(0)
    for name, batch, m, k, n, transpose_b, with_naive in (_square_cases(args.options["square"]) if args.options.get("square")
                                                           else _cases(args.quick)):
        a = rng.standard_normal((batch, m, k)).astype(np.float32)
        b = rng.standard_normal((batch, n, k) if transpose_b else (batch, k, n)).astype(np.float32)
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        tb_mm = tb.transpose(1, 2) if transpose_b else tb  # [B, K, N] view, as attention passes K^T
        naive_b = tb_mm.contiguous()
        sample = Sample(a, b, transpose_b)
        backends = [be for be in available_backends()[::-1]  # avx2 first when present
                    if be != "serial" or batch * m * k * n <= SERIAL_MAX_MACS]
        for threads in args.threads:
            with torch_threads(threads):
                accuracy = {"torch fp32 matmul": _check_torch(name, torch.matmul(ta, tb_mm).numpy(), sample)}
                fns = {"torch fp32 matmul": lambda: torch.matmul(ta, tb_mm)}
                for backend in backends:
                    def ours(backend=backend, threads=threads):
                        with use_backend(backend):
                            return kernels.matmul(a, b, MANTISSA_BITS, False, offset, transpose_b=transpose_b,
                                                  threads=threads)
                    impl = f"lmul_matmul ({backend})"
                    accuracy[impl] = _check_ours(name, impl, sample.of(ours()), sample)
                    fns[impl] = ours
                if with_naive:
                    rows = torch.from_numpy(sample.rows)
                    accuracy["naive torch emulation"] = _check_naive(
                        name, naive_lmul_matmul(ta[:, rows], naive_b).numpy(), sample)
                    fns["naive torch emulation"] = lambda: naive_lmul_matmul(ta, naive_b)
                slow = with_naive and m * k * n >= 1 << 28
                timings = time_interleaved(fns, repeats=min(args.repeats, 3) if slow else args.repeats)
            report.add_case(name, threads, timings)
            rows_added = report.rows[-len(fns):]
            naive = timings.get("naive torch emulation")
            for row in rows_added:
                row.extra["GMAC/s"] = batch * m * k * n / (row.median_ms * 1e-3) / 1e9
                row.extra["NMSE vs exact"] = accuracy[row.impl]
                row.extra["bytes/operand"] = 4
                row.extra["mantissa bits"] = 23 if row.impl == "torch fp32 matmul" else MANTISSA_BITS
                if naive is not None and row.impl.startswith("lmul_matmul"):
                    row.extra["x vs naive"] = naive.median_s / (row.median_ms * 1e-3)
                if name == TARGET_CASE and row.impl.startswith("lmul_matmul") and not row.impl.endswith("(serial)"):
                    row.extra["verdict"] = isa.verdict(row.vs_baseline, TARGET)
            if "serial" in available_backends() and "serial" not in backends:
                report.add_not_measured(name, "lmul_matmul (serial)", threads,
                                        "the portable reference path is not timed above "
                                        f"2^{SERIAL_MAX_MACS.bit_length() - 1} MACs")
    report.meta["torch"] = torch.__version__
    report.meta["torch_isa"] = info.torch_isa()
    report.meta["mantissa_bits"] = MANTISSA_BITS
    report.meta["check_rows"] = CHECK_ROWS
    report.meta["isa"] = {"ours": isa.ours(("lmul",)), "peer": {"torch fp32 matmul": info.torch_isa()}}
    report.notes.append(f"Our backends are timed in the same run (lmul_matmul (X) = the X backend; active: "
                        f"{isa.describe_ours(('lmul',))}). 'verdict': issue 17's target, lmul_matmul >= "
                        f"{TARGET:g}x torch fp32 matmul at {TARGET_CASE}^3.")
    return report


def _check_ours(case: str, impl: str, y_rows: np.ndarray, sample: Sample) -> float:
    """Ours must reproduce the numpy reference bit for bit; returns its NMSE against the exact product."""
    check_before_timing(case, impl, mismatched_outputs(y_rows, sample.reference), 0, "mismatched outputs")
    return nmse(y_rows, sample.exact)


def _check_naive(case: str, y_rows: np.ndarray, sample: Sample) -> float:
    """The naive emulation computes the same products as the reference; only its summation order differs."""
    bound = sum_order_bound(sample.k, LMUL_MAGNITUDE)
    check_before_timing(case, "naive torch emulation", scaled_error(y_rows, sample.reference, sample.magnitude),
                        bound, "max |error| / sum|a||b| vs the numpy reference")
    return nmse(y_rows, sample.exact)


def _check_torch(case: str, y: np.ndarray, sample: Sample) -> float:
    """torch's fp32 matmul against the exact product: a float32 sum's rounding, nothing more."""
    y_rows = sample.of(y)
    check_before_timing(case, "torch fp32 matmul", scaled_error(y_rows, sample.exact, sample.magnitude),
                        sum_order_bound(sample.k), "max |error| / sum|a||b| vs the exact product")
    return nmse(y_rows, sample.exact)
