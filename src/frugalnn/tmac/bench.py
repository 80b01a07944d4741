"""T-MAC LUT GEMV/GEMM against torch's dense fp32 matmul (the user's real alternative), llama.cpp's
kernels (ggml_mul_mat, frugalnn.bench.ggml_peer) and, as a secondary column, torch
dequantize-then-matmul (uint8 codes + group scales dequantized on every call).

Each case is a `race`: every contender first answers the benched input and is checked against the
float32 matmul of the weight it really holds (check before you time: a wrong answer stops the
benchmark), then all are timed interleaved in one run (medians). Every contender also reports the
bits per weight it really stores and its output NMSE against the fp32 weights on the same input, so a
faster kernel that holds fewer bytes or is less accurate shows it. An absent or failed llama.cpp is a
visible "not measured" row with the reason.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any, Callable

import numpy as np

from frugalnn.bench import isa
from frugalnn.bench.accuracy import check_before_timing, nmse
from frugalnn.bench.harness import BenchArgs, BenchReport, BenchRow, Timing, benchmark, time_interleaved

LLAMA2_7B = ((4096, 4096), (11008, 4096), (4096, 11008))
BITNET_3B = ((3200, 8640), (8640, 3200), (3200, 3200))
BITS = (1, 2, 3, 4, "ternary")
# llama.cpp types raced against each of our widths (all that fit K are timed; the first that fits is
# the 'x vs llama.cpp' pairing): the paper pairs 2-bit with Q2_K and 4-bit with Q4_0.
PEER_TYPES = {1: (), 2: ("Q2_K",), 3: ("Q3_K",), 4: ("Q4_K", "Q4_0"), "ternary": ("TQ2_0", "TQ1_0", "Q4_0")}
GROUP = 64
# Issue 17's GEMV races against a natively built llama.cpp: ours at `bits` >= target x its type.
TARGETS = {2: ("Q2_K", 2.0), 4: ("Q4_K", 1.3)}

# Check bounds: NMSE of a contender's output against x @ W_held.T, the float32 matmul of the weight
# it really holds (so weight quantization, the race's subject, is not part of the check).
DENSE_NMSE_BOUND = 1e-6  # torch fp32 and torch dequant: float32 rounding only (measured <= 1.1e-12)
# Ours: the int8 tables. An entry is rounded to 1/127 of its group's largest table value, i.e. noise
# of variance (max|T| / 127)^2 / 12 per lookup; relative to E[T^2] that is ~5e-5 for N(0,1) inputs with
# 64-wide groups and ~1e-4 with ternary's one scale over all of K (measured: 4e-5..1.5e-4). 1e-3 leaves
# 7x for real activations' outliers; an output 4% off everywhere already exceeds it.
TABLE_NMSE_BOUND = 1e-3
# llama.cpp: x is quantized to 8 bits per block (Q8_K / Q8_0) before vec_dot, the same order of
# rounding as our tables (measured 7e-6..6e-5).
PEER_NMSE_BOUND = 1e-3


def impl_name(bits) -> str:
    return "lut ternary" if bits == "ternary" else f"lut {bits}-bit"


@dataclass
class _Contender:
    name: str
    call: Callable[[], Any]  # what is timed
    held: Callable[[], np.ndarray]  # the float32 weight [M, K] it really multiplies by
    bound: float
    bits_per_weight: float
    close: Callable[[], None] | None = None  # set for a llama.cpp contender (frees ggml's graph and pool)


@dataclass
class Race:
    """One case: times, bits held, accuracy and checks of every contender; reasons for those not measured."""
    case: str
    threads: int
    timings: dict[str, Timing] = field(default_factory=dict)
    bits_per_weight: dict[str, float] = field(default_factory=dict)
    nmse_vs_fp32: dict[str, float] = field(default_factory=dict)
    check_nmse: dict[str, float] = field(default_factory=dict)
    not_measured: dict[str, str] = field(default_factory=dict)

    def ms(self, name: str) -> float | None:
        t = self.timings.get(name)
        return None if t is None else t.median_s * 1e3

    def speedup(self, ours: str, baseline: str, stat: str = "median_s") -> float | None:
        """baseline time / our time (> 1: ours is faster), or None if either was not measured."""
        a, b = self.timings.get(ours), self.timings.get(baseline)
        return None if a is None or b is None else getattr(b, stat) / getattr(a, stat)


class _Dequant:
    """What a torch user does without a low-bit kernel: uint8 codes + group scales, dequantize every call."""

    def __init__(self, w):
        import torch

        m, k = w.shape
        self.codes = torch.from_numpy(w.codes()).view(m, k // w.group_size, w.group_size)
        level_scale = 2 * torch.from_numpy(w.ws).permute(0, 2, 1).reshape(-1, k // w.group_size)[:m]
        top = (1 << w.bits) - 1
        zt = 0 if w.zt is None else torch.from_numpy(w.zt).permute(0, 2, 1).reshape(-1, k // w.group_size)[:m]
        # w = q * scale + (zt - scale * top / 2)
        self.scale = level_scale.contiguous().unsqueeze(-1)
        self.offset = (zt - level_scale * (top / 2)).contiguous().unsqueeze(-1)
        self.shape = (m, k)
        self.bits_per_weight = 8.0 * (self.codes.numel() + 4 * (self.scale.numel() + self.offset.numel())) / (m * k)

    def __call__(self, x):
        import torch

        wt = (self.codes.to(torch.float32) * self.scale + self.offset).view(self.shape)
        return x @ wt.T


def load_peer(skip_reason: str = ""):
    """(ggml, "") when llama.cpp's libggml loads, else (None, why not)."""
    if skip_reason:
        return None, skip_reason
    from frugalnn.bench import ggml_peer

    try:
        return ggml_peer.load(), ""
    except ggml_peer.PeerUnavailable as e:
        return None, str(e)


def race(case: str, w_float: np.ndarray, x: np.ndarray, bits_list, threads: int, repeats: int,
         peer=None, peer_missing: str = "", peer_types: dict | None = None, with_dequant: bool = True) -> Race:
    """Check, then time, torch fp32 (F.linear of w_float), ours at each width, torch dequant (2/4/ternary,
    when `with_dequant`) and llama.cpp's `peer_types[bits]` on x [N, K]. `peer`: a ggml_peer.GGML, or
    None with `peer_missing` saying why."""
    import torch

    from frugalnn.kernels import other_backends, use_backend
    from frugalnn.threads import torch_threads
    from frugalnn.tmac import LUTWeight, matmul

    def on(backend, w):
        with use_backend(backend):
            return matmul(xv, w, threads=threads)

    n, k = x.shape
    m = w_float.shape[0]
    peer_types = PEER_TYPES if peer_types is None else peer_types
    result = Race(case, threads)
    xv = x[0] if n == 1 else x  # a GEMV is timed on the 1-d call a decoder makes
    xt, wt = torch.from_numpy(x), torch.from_numpy(w_float)
    contenders = [_Contender("torch fp32", lambda: torch.nn.functional.linear(xt, wt), lambda: w_float,
                             DENSE_NMSE_BOUND, 32.0)]
    for bits in bits_list:
        w = LUTWeight.from_float(w_float, bits, GROUP)
        held = cache(w.dequantize)  # shared by ours and torch dequant: both multiply by these weights
        contenders.append(_Contender(impl_name(bits), lambda w=w: matmul(xv, w, threads=threads), held,
                                     TABLE_NMSE_BOUND, w.bits_per_weight))
        for backend in other_backends():  # e.g. avx2 beside avx512, same run: the backend's own gain
            contenders.append(_Contender(f"{impl_name(bits)} ({backend})", lambda w=w, b=backend: on(b, w), held,
                                         TABLE_NMSE_BOUND, w.bits_per_weight))
        if with_dequant and bits in (2, 4, "ternary"):
            deq = _Dequant(w)
            contenders.append(_Contender(f"torch dequant {bits}", lambda d=deq: d(xt), held,
                                         DENSE_NMSE_BOUND, deq.bits_per_weight))
    contenders += _peer_contenders(result, peer, peer_missing, peer_types, bits_list, x, w_float, threads)
    try:
        with torch_threads(threads):
            ref = x.astype(np.float64) @ w_float.T.astype(np.float64)
            timed = {}
            for c in contenders:
                try:
                    y = _as_array(c.call()).reshape(n, m)
                    held = c.held()
                except Exception as e:
                    if c.close is None:  # ours or torch: a failure is a bug, not a row
                        raise
                    result.not_measured[c.name] = f"{type(e).__name__}: {e}"  # a failed peer stays visible
                    continue
                result.check_nmse[c.name] = check_before_timing(case, c.name, nmse(y, x @ held.T), c.bound)
                result.nmse_vs_fp32[c.name] = nmse(y, ref)
                result.bits_per_weight[c.name] = c.bits_per_weight
                timed[c.name] = c.call
            for c in contenders:  # dequantized copies are for the check only: free them before timing
                getattr(c.held, "cache_clear", lambda: None)()
            result.timings = time_interleaved(timed, repeats=repeats)
    finally:
        for c in contenders:
            if c.close is not None:
                c.close()
    return result


def _peer_contenders(result: Race, peer, peer_missing, peer_types, bits_list, x, w_float, threads) -> list:
    from frugalnn.bench import ggml_peer

    (n, k), m = x.shape, w_float.shape[0]
    out = []
    for qt in dict.fromkeys(qt for bits in bits_list for qt in peer_types.get(bits, ())):
        name = f"llama.cpp {qt}"
        if peer is None:
            result.not_measured[name] = peer_missing or "llama.cpp peer not loaded"
        elif k % ggml_peer.BLOCK[qt]:
            result.not_measured[name] = f"K = {k} is not a multiple of {qt}'s {ggml_peer.BLOCK[qt]}-weight block"
        else:
            try:
                mm = ggml_peer.MulMat(peer, qt, m, k, n, threads, weight=w_float, x=x)
            except Exception as e:  # a failed peer is a visible row, never a silent gap
                result.not_measured[name] = f"{type(e).__name__}: {e}"
                continue

            def call(mm=mm):
                mm.run()
                return mm

            out.append(_Contender(name, call, mm.dequantize, PEER_NMSE_BOUND, mm.bits_per_weight, mm.close))
    return out


def _as_array(y) -> np.ndarray:
    if hasattr(y, "result"):  # a ggml MulMat after run()
        return y.result()
    if hasattr(y, "detach"):
        return y.detach().numpy()
    return np.asarray(y)


# ---- frugalnn bench tmac ----------------------------------------------------------------------------
def _add_arguments(p):
    p.add_argument("--shapes", choices=("all", "llama", "bitnet"), default="all", help="GEMV shapes (M x K)")
    p.add_argument("--gemv", nargs="+", default=None, metavar="MxK",
                   help="GEMV shapes M x K to race instead of --shapes (e.g. 4096x4096 11008x4096)")
    p.add_argument("--bits", nargs="+", default=None, help="bit widths among 1 2 3 4 ternary")
    p.add_argument("--gemm-n", type=int, nargs="+", default=None, help="GEMM batch sizes (default 32 256)")
    p.add_argument("--no-peer", action="store_true", help="skip llama.cpp even when installed")
    p.add_argument("--nmse", choices=("on", "off", "only"), default="on",
                   help="the quantizer NMSE table (ours vs llama.cpp's quantizer): with the races, skipped, or alone")


def _bits_arg(values):
    if values is None:
        return BITS
    out = []
    for v in values:
        if v == "ternary":
            out.append(v)
        elif v in ("1", "2", "3", "4"):
            out.append(int(v))
        else:
            raise ValueError(f"--bits: expected 1, 2, 3, 4 or ternary, got {v!r}")
    return tuple(out)


def _shape_arg(value: str) -> tuple[int, int]:
    m, sep, k = str(value).lower().partition("x")
    if not sep or not m.isdigit() or not k.isdigit() or int(m) < 1 or int(k) < 1:
        raise ValueError(f"--gemv: expected M x K such as 4096x4096, got {value!r}")
    return int(m), int(k)


def _provenance(report: BenchReport, peer, peer_missing: str) -> None:
    from frugalnn import info

    from frugalnn.kernels import other_backends

    report.meta["ours"] = {"kernel_isa": info.kernel_isa(), "also_timed_backends": list(other_backends()),
                           "cpu_avx512_vnni": info.collect()["avx512_vnni"]}
    report.meta["torch"] = {"isa": info.torch_isa(), "version": info.package_version("torch")}
    report.meta["isa"] = {"ours": isa.ours(("lut",)), "torch": info.torch_isa()}
    if peer is None:
        report.meta["llama.cpp"] = {"not measured": peer_missing}
        report.meta["isa"]["peer"] = {"not measured": peer_missing}
        return
    features = peer.features()
    report.meta["isa"]["peer"] = isa.ggml_isa(features)
    report.meta["llama.cpp"] = {"lib": str(peer.lib_dir), "features": features,
                                "isa": {f: features.get(f) for f in ("avx2", "avx512", "avx512_vnni")},
                                "ggml": peer.version(), "llama_cpp_python": info.package_version("llama_cpp_python")}


def _starved(r: Race, label: str, peer: str, one_thread: dict) -> float | None:
    """How many times its own 1-thread time the peer took at r.threads > 1, if more than that: then its
    threadpool found no free core (ggml's workers spin for one held by other work) and a ratio against it
    says nothing about the kernels. None when it scaled, or when there is no 1-thread time to compare."""
    t, base = r.timings.get(peer), one_thread.get((label, peer))
    if r.threads == 1 or t is None or base is None or t.median_s <= base:
        return None
    return t.median_s / base


def _add_rows(report: BenchReport, r: Race, bits_list, label: str, one_thread: dict | None = None) -> None:
    one_thread = {} if one_thread is None else one_thread  # (case, peer) -> the peer's 1-thread median
    if r.threads == 1:
        one_thread.update({(label, n): t.median_s for n, t in r.timings.items() if n.startswith("llama.cpp")})
    for name, t in r.timings.items():
        extra = {"bits/weight": r.bits_per_weight[name], "nmse vs fp32": r.nmse_vs_fp32[name],
                 "check nmse": r.check_nmse[name]}
        bits = next((b for b in bits_list if name == impl_name(b) or name.startswith(impl_name(b) + " (")), None)
        if bits is not None:
            extra["x vs dequant"] = r.speedup(name, f"torch dequant {bits}")
            for qt in PEER_TYPES[bits]:
                if f"llama.cpp {qt}" in r.timings:
                    extra["peer"] = qt
                    extra["x vs llama.cpp"] = r.speedup(name, f"llama.cpp {qt}")
                    # best-of-repeats ratio: on a shared machine interference only ever adds time
                    extra["x vs llama.cpp (min)"] = r.speedup(name, f"llama.cpp {qt}", "min_s")
                    break
        if bits in TARGETS and label.startswith("GEMV"):
            qt, target = TARGETS[bits]
            slow = _starved(r, label, f"llama.cpp {qt}", one_thread)
            extra["verdict"] = (f"not usable: llama.cpp {qt} took {slow:.1f}x its 1-thread time on {r.threads} threads "
                                "(no free core for its threadpool)" if slow is not None
                                else f"{isa.verdict(r.speedup(name, f'llama.cpp {qt}'), target)} vs {qt}")
        extra = {k: v for k, v in extra.items() if v is not None}
        report.rows.append(BenchRow(label, name, r.threads, t.median_s * 1e3, r.speedup(name, "torch fp32"), extra))
    for name, reason in r.not_measured.items():
        report.add_not_measured(label, name, r.threads, reason)


@benchmark("tmac", "T-MAC LUT GEMV/GEMM vs torch fp32, llama.cpp (ggml_mul_mat) and torch dequantize+matmul",
           add_arguments=_add_arguments)
def bench_tmac(args: BenchArgs) -> BenchReport:
    from frugalnn import info

    report = BenchReport("tmac", baseline="torch fp32")
    bits_list = _bits_arg(args.options.get("bits"))
    peer, peer_missing = load_peer("skipped (--no-peer)" if args.options.get("no_peer") else "")
    _provenance(report, peer, peer_missing)
    nmse_mode = args.options.get("nmse", "on")
    if nmse_mode != "off":
        _add_nmse_rows(report, peer, peer_missing, args.quick)
    if nmse_mode == "only":
        return report
    rng = np.random.default_rng(0)
    if args.quick:
        gemv_shapes, gemm_ns, gemm_shape = ((1024, 1024),), (8,), (1024, 1024)
    else:
        which = args.options.get("shapes", "all")
        gemv_shapes = (LLAMA2_7B if which in ("all", "llama") else ()) + (BITNET_3B if which in ("all", "bitnet") else ())
        if args.options.get("gemv"):
            gemv_shapes = tuple(_shape_arg(v) for v in args.options["gemv"])
        gemm_ns, gemm_shape = tuple(args.options.get("gemm_n") or (32, 256)), (4096, 4096)
    cases = [(f"GEMV {m}x{k}", m, k, 1, bits_list, True) for m, k in gemv_shapes]
    gemm_bits = tuple(b for b in bits_list if b in (2, 4, "ternary"))
    cases += [(f"GEMM {gemm_shape[0]}x{gemm_shape[1]} N={n}", *gemm_shape, n, gemm_bits, n <= 32) for n in gemm_ns]
    weights, one_thread = {}, {}
    for label, m, k, n, case_bits, with_dequant in cases:
        if (m, k) not in weights:
            weights = {(m, k): rng.standard_normal((m, k)).astype(np.float32)}  # one shape held at a time
        x = np.random.default_rng(1).standard_normal((n, k)).astype(np.float32)
        for threads in args.threads:
            r = race(label, weights[(m, k)], x, case_bits, threads, args.repeats, peer, peer_missing,
                     with_dequant=with_dequant)
            _add_rows(report, r, case_bits, label, one_thread)
    llama = (f"llama.cpp = ggml_mul_mat of {peer.describe()}" if peer is not None
             else f"llama.cpp not measured: {peer_missing}")
    report.notes.append(
        f"Machine: {info.machine_line()}; torch fp32 = F.linear at torch's {info.torch_isa()} capability; {llama}.")
    report.notes.append(
        f"Shapes are M x K (out x in features); weights N(0,1), ours {GROUP}-element groups, symmetric; ternary = "
        "BitNet absmean with one scale (llama.cpp's TQ types get the same ternary weights). "
        "'x vs torch fp32' = torch F.linear median / ours (the headline ratio). 'bits/weight' = bytes really "
        "held x 8 / (M K); 'nmse vs fp32' = output error against x @ W_fp32.T on the same input; 'check nmse' = "
        "output error against the float32 matmul of the weight the contender holds, checked before timing "
        f"(bounds: {TABLE_NMSE_BOUND:g} ours, {PEER_NMSE_BOUND:g} llama.cpp, {DENSE_NMSE_BOUND:g} torch). "
        "'x vs llama.cpp' = llama.cpp median / ours for the type in 'peer' (one-node ggml graph with a persistent "
        "threadpool: activation quantization + vec_dot). 'x vs dequant' = torch dequantize-then-matmul median / "
        "ours (a baseline that dequantizes on every call). Medians of interleaved repeats; '(min)' = the same "
        "ratio of best-of-repeats times. 'lut ... (X)' = our X backend in the same run. 'verdict': issue 17's "
        f"GEMV targets, {', '.join(f'{b}-bit >= {t:g}x llama.cpp {q}' for b, (q, t) in TARGETS.items())}; "
        f"ours: {isa.describe_ours(('lut',))}, llama.cpp: see meta.isa.peer (ggml_cpu_has_*).")
    return report


def _add_nmse_rows(report: BenchReport, peer, peer_missing: str, quick: bool) -> None:
    """Issue 18's quantizer table (frugalnn.tmac.quantizers.table): rows 'quantizer NMSE: <weights>', with
    the quantization time as the row's time and the verdict in its extra columns."""
    from frugalnn.tmac.quantizers.table import table

    for e in table(peer, peer_missing, quick):
        case = f"quantizer NMSE: {e.weights}"
        if e.nmse is None:
            report.add_not_measured(case, e.impl, 1, e.extra.get("not measured") or e.extra.get("rule", ""))
            continue
        extra = {"bits/weight": e.bits_per_weight, "nmse vs fp32": e.nmse,
                 **{k: v for k, v in e.extra.items() if v is not None}}
        report.rows.append(BenchRow(case, e.impl, 1, e.quantize_ms, None, extra))
    report.notes.append(
        "Quantizer NMSE rows: output error |x Wq^T - x W^T|^2 / |x W^T|^2 (float64) of each side's weights decoded "
        "from its GGUF bytes by gguf's reference decoder, same x; 'median (ms)' there = time to quantize the "
        "matrix (ours: fit + round + encode, 1 thread; llama.cpp: ggml_quantize_chunk, no imatrix). 'verdict': "
        "ours <= llama.cpp at the same bytes; 'issue: ...' = the figures in issue 18. lut rows: 'minmax' = "
        "LUTWeight.from_float as held today (fp32 scale + zero); 'mse fp16' = fit_groups with fp16 scale + zero.")
