"""T-MAC LUT GEMV/GEMM against torch fp32, torch dequantize-then-matmul and llama.cpp's kernels.

Every case times all contenders interleaved in one run (medians). llama.cpp is timed through
ggml_mul_mat on the libggml of the optional llama-cpp-python wheel (frugalnn.bench.ggml_peer
explains the isolation); it is skipped with a note when the peer is not installed.
"""
from __future__ import annotations

import numpy as np

from frugalnn.bench.harness import BenchArgs, BenchReport, BenchRow, benchmark, time_interleaved

LLAMA2_7B = ((4096, 4096), (11008, 4096), (4096, 11008))
BITNET_3B = ((3200, 8640), (8640, 3200), (3200, 3200))
BITS = (1, 2, 3, 4, "ternary")
# llama.cpp type raced against each of our widths (first that fits K), with the paper's pairing.
PEER_TYPES = {1: (), 2: ("Q2_K",), 3: ("Q3_K",), 4: ("Q4_K", "Q4_0"), "ternary": ("TQ2_0", "TQ1_0", "Q4_0")}
GROUP = 64


def _add_arguments(p):
    p.add_argument("--shapes", choices=("all", "llama", "bitnet"), default="all", help="GEMV shapes (M x K)")
    p.add_argument("--bits", nargs="+", default=None, help="bit widths among 1 2 3 4 ternary")
    p.add_argument("--gemm-n", type=int, nargs="+", default=None, help="GEMM batch sizes (default 32 256)")
    p.add_argument("--no-peer", action="store_true", help="skip llama.cpp even when installed")


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

    def __call__(self, x):
        import torch

        wt = (self.codes.to(torch.float32) * self.scale + self.offset).view(self.shape)
        return x @ wt.T


def _nmse(y, ref) -> float:
    y, ref = np.asarray(y, np.float64), np.asarray(ref, np.float64)
    return float(((y - ref) ** 2).sum() / (ref**2).sum())


def _peer(args: BenchArgs, report: BenchReport):
    if args.options.get("no_peer"):
        report.notes.append("llama.cpp: skipped (--no-peer).")
        return None
    try:
        from frugalnn.bench import ggml_peer

        g = ggml_peer.load()
        report.meta["llama.cpp"] = {"lib": str(ggml_peer.library_dir()), "features": g.features()}
        try:
            import llama_cpp

            report.meta["llama.cpp"]["llama_cpp_python"] = llama_cpp.__version__
        except Exception:
            pass
        return g
    except Exception as e:  # PeerUnavailable or a broken install: race without it, say so
        report.notes.append(f"llama.cpp: not measured ({e}).")
        return None


def _case(report, args, label, m, k, n, threads, bits_list, w_float, peer, with_dequant=True):
    import torch

    from frugalnn.tmac import LUTWeight, matmul

    rng = np.random.default_rng(1)
    x = rng.standard_normal((n, k)).astype(np.float32)
    xv = x[0] if n == 1 else x
    xt = torch.from_numpy(x)
    wt = torch.from_numpy(w_float)
    ref = (x.astype(np.float64) @ w_float.T.astype(np.float64))
    fns, ours, peers, deq_of = {}, {}, {}, {}
    torch.set_num_threads(threads)
    fns["torch fp32"] = lambda: torch.nn.functional.linear(xt, wt)
    for bits in bits_list:
        w = LUTWeight.from_float(w_float, bits, GROUP)
        name = f"lut {bits}" + ("" if bits == "ternary" else "-bit")
        ours[name] = (bits, w)
        fns[name] = (lambda w=w: matmul(xv, w, threads=threads))
        if with_dequant and bits in (2, 4, "ternary"):
            deq = _Dequant(w)
            fns[f"torch dequant {bits}"] = (lambda d=deq: d(xt))
            deq_of[name] = f"torch dequant {bits}"
        if peer is not None:
            from frugalnn.bench import ggml_peer

            for qt in PEER_TYPES[bits]:
                if f"llama.cpp {qt}" in fns or k % ggml_peer.BLOCK[qt]:
                    continue
                mm = ggml_peer.MulMat(peer, qt, m, k, n, threads, weight=w_float)
                peers[f"llama.cpp {qt}"] = mm
                fns[f"llama.cpp {qt}"] = mm.run
    timings = time_interleaved(fns, repeats=args.repeats)
    for mm in peers.values():
        mm.close()
    t = {name: tm.median_s for name, tm in timings.items()}
    tmin = {name: tm.min_s for name, tm in timings.items()}
    for name, tm in timings.items():
        extra = {}
        if name in ours:
            bits, w = ours[name]
            extra["MiB"] = w.nbytes / 2**20
            extra["nmse vs fp32"] = _nmse(matmul(x, w, threads=threads), ref)
            if name in deq_of:
                extra["x vs dequant"] = t[deq_of[name]] / tm.median_s
            for qt in PEER_TYPES[bits]:
                if f"llama.cpp {qt}" in t:
                    extra["x vs llama.cpp"] = t[f"llama.cpp {qt}"] / tm.median_s
                    # best-of-repeats ratio: on a shared machine interference only ever adds time
                    extra["x vs llama.cpp (min)"] = tmin[f"llama.cpp {qt}"] / tm.min_s
                    extra["peer"] = qt
                    break
        report.rows.append(BenchRow(label, name, threads, tm.median_s * 1e3, t["torch fp32"] / tm.median_s, extra))


@benchmark("tmac", "T-MAC LUT GEMV/GEMM vs torch fp32, torch dequantize+matmul and llama.cpp (ggml_mul_mat)",
           add_arguments=_add_arguments)
def bench_lut(args: BenchArgs) -> BenchReport:
    report = BenchReport("lut", baseline="torch fp32")
    bits_list = _bits_arg(args.options.get("bits"))
    peer = _peer(args, report)
    rng = np.random.default_rng(0)
    if args.quick:
        gemv_shapes, gemm_ns, gemm_shape = ((1024, 1024),), (8,), (1024, 1024)
    else:
        which = args.options.get("shapes", "all")
        gemv_shapes = (LLAMA2_7B if which in ("all", "llama") else ()) + (BITNET_3B if which in ("all", "bitnet") else ())
        gemm_ns, gemm_shape = tuple(args.options.get("gemm_n") or (32, 256)), (4096, 4096)
    for m, k in gemv_shapes:
        w_float = rng.standard_normal((m, k)).astype(np.float32)
        for threads in args.threads:
            _case(report, args, f"GEMV {m}x{k}", m, k, 1, threads, bits_list, w_float, peer)
    m, k = gemm_shape
    w_float = rng.standard_normal((m, k)).astype(np.float32)
    gemm_bits = tuple(b for b in bits_list if b in (2, 4, "ternary"))
    for n in gemm_ns:
        for threads in args.threads:
            _case(report, args, f"GEMM {m}x{k} N={n}", m, k, n, threads, gemm_bits, w_float, peer,
                  with_dequant=n <= 32)
    report.notes.append(
        f"Shapes are M x K (out x in features); weights N(0,1), {GROUP}-element groups, symmetric; ternary = "
        "BitNet absmean with one scale. 'x vs llama.cpp' = llama.cpp median / ours for the type in 'peer' "
        "(ggml_mul_mat on a one-node graph with a persistent ggml threadpool: activation quantization + vec_dot). "
        "'x vs dequant' = torch dequantize-then-matmul median / ours. Medians of interleaved repeats; "
        "'(min)' = the same ratio of best-of-repeats times.")
    return report
