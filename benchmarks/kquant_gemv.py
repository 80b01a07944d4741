"""One-token GEMV on K-quant weights (issue 18), 1 thread: our two-level LUT kernel against the same codes in the
fp32-scale path (LUTWeight.flat_scales) and against llama.cpp's own mul_mat on the IDENTICAL bytes (ggml quantizes
a Gaussian weight; both sides read its blocks).

    python benchmarks/kquant_gemv.py [--types Q4_K Q2_K] [--shapes 4096x4096 11008x4096] [--threads 1] [--json OUT]

Under the avx512 backend the two-level kernel is also timed with the avx2 backend in the same run ("kq avx2"), so
the gain of the AVX-512 kernel is visible beside the peer.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import platform
import sys

import numpy as np


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--types", nargs="+", default=["Q4_K", "Q2_K", "Q3_K", "Q6_K", "Q4_0", "TQ2_0"])
    ap.add_argument("--shapes", nargs="+", default=["4096x4096", "11008x4096"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--json")
    a = ap.parse_args(argv)

    import gguf

    from frugalnn.bench.ggml_peer import MulMat, load
    from frugalnn.bench.harness import time_interleaved
    from frugalnn.kernels import available_backends, backend, use_backend
    from frugalnn.tmac import LUTWeight

    ggml = load()
    rows = []
    with_avx2 = backend() == "avx512" and "avx2" in available_backends()
    print(f"CPU: {cpu_name()}; threads {a.threads}; our backend {backend()}; llama.cpp {ggml.describe()}")
    print(f"{'type':6} {'shape':>11} | {'llama.cpp':>9} {'ours kq':>8} {'ours f32':>8} | {'kq/f32':>6} {'ggml/kq':>7} |"
          f" {'b/w file':>8} {'kq':>5} {'f32':>5} | nmse kq vs ggml out")
    for shape in a.shapes:
        m, k = (int(v) for v in shape.split("x"))
        rng = np.random.default_rng(0)
        w32 = rng.standard_normal((m, k)).astype(np.float32)
        x = rng.standard_normal((1, k)).astype(np.float32)
        for qt in a.types:
            peer = MulMat(ggml, qt, m, k, 1, a.threads, weight=w32, x=x)
            raw = (ctypes.c_uint8 * peer.weight_bytes).from_address(ggml.base.ggml_get_data(peer.w))
            data = np.frombuffer(raw, np.uint8).reshape(m, -1).copy()
            kq = LUTWeight.from_gguf(data, qtype=gguf.GGMLQuantizationType[qt], shape=(m, k))
            flat = kq.flat_scales()
            f_kq, f_flat = kq.gemv_fn(a.threads), flat.gemv_fn(a.threads)
            peer.run()
            y_peer = peer.result()
            y_kq = f_kq(x)
            nm = float(np.mean((y_kq - y_peer) ** 2) / np.mean(y_peer ** 2))
            runs = {"ggml": peer.run, "kq": lambda: f_kq(x), "f32": lambda: f_flat(x)}
            if with_avx2:
                def kq_avx2():
                    with use_backend("avx2"):
                        f_kq(x)
                runs["kq avx2"] = kq_avx2
            t = time_interleaved(runs, repeats=a.repeats)
            ms = {n: v.median_s * 1e3 for n, v in t.items()}
            ms_min = {n: v.min_s * 1e3 for n, v in t.items()}
            row = {"type": qt, "m": m, "k": k, "threads": a.threads, "ms": ms, "kq_over_f32": ms["kq"] / ms["f32"],
                   "ggml_over_kq": ms["ggml"] / ms["kq"], "ms_min": ms_min, "backend": backend(),
                   "ggml_over_kq_avx2": ms["ggml"] / ms["kq avx2"] if with_avx2 else None,
                   "min_kq_over_f32": ms_min["kq"] / ms_min["f32"], "min_ggml_over_kq": ms_min["ggml"] / ms_min["kq"], "bpw_file": peer.bits_per_weight, "bpw_kq": kq.bits_per_weight,
                   "bpw_f32": flat.bits_per_weight, "nmse_kq_vs_ggml": nm}
            rows.append(row)
            print(f"{qt:6} {shape:>11} | {ms['ggml']:8.3f}m {ms['kq']:7.3f}m {ms['f32']:7.3f}m | {row['kq_over_f32']:6.2f}"
                  f" {row['ggml_over_kq']:7.2f} | {row['bpw_file']:8.3f} {row['bpw_kq']:5.2f} {row['bpw_f32']:5.2f} |"
                  f" {nm:.2e} | min: {ms_min['ggml']:.3f} {ms_min['kq']:.3f} {ms_min['f32']:.3f} ms"
                  + (f" | avx2 kq {ms['kq avx2']:.3f}m ggml/avx2 {row['ggml_over_kq_avx2']:.2f}" if with_avx2 else ""),
                  flush=True)
            peer.close()
            del kq, flat, f_kq, f_flat
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"cpu": cpu_name(), "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
