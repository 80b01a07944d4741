"""The CPU race of the MixPE W4A8 kernel: one GEMV/GEMM case, every contender checked then timed
interleaved in one run (medians), each with its output error and the bits per weight it really holds.

Contenders:
  mixpe w4a8 g128 / g32   frugalnn.kernels.mixpe.w4a8 (int8 tokens quantized inside the call)
  mixpe w4a8 g128 (avx2)  the same under each other vectorised backend available here, and under avx512
  (avx512 no VNNI)        with VNNI switched off (the AVX512BW path): the backend's own gain, same run
  llama.cpp Q4_0          ggml_mul_mat, Q4_0 weights x Q8_0 activations (frugalnn.bench.ggml_peer;
                          optional: a visible not-measured row when libggml is absent)
  T-MAC 4-bit g128        our LUT kernel (frugalnn.tmac), asymmetric 4-bit groups of 128, same weights
  torch fp32 (dequant once)  torch.matmul on the float32 weights dequantized from MixPE's codes
  dequant each weight     our kernel's conventional variant: w = (q - z) s per weight, then its FMA
                          (fp16 activations): the work MixPE's group dequantization removes
Checks (before timing, at the benched shape): each contender's output NMSE against the float32
matmul of the weight it holds (MixPE and llama.cpp: int8 activations, <= 1e-3; T-MAC: int8 tables,
<= 1e-3; torch / dequant-each: float rounding, <= 1e-5).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from frugalnn.bench.accuracy import check_before_timing, nmse
from frugalnn.bench.harness import time_interleaved
from frugalnn.kernels import mixpe as kernel

QUANT_BOUND, FLOAT_BOUND = 1e-3, 1e-5


def load_peer():
    """(ggml, "") when llama.cpp's libggml loads, else (None, why not)."""
    from frugalnn.bench import ggml_peer

    try:
        return ggml_peer.load(), ""
    except ggml_peer.PeerUnavailable as e:
        return None, str(e)


@dataclass
class Result:
    case: str
    threads: int
    median_s: dict = field(default_factory=dict)
    min_s: dict = field(default_factory=dict)
    nmse_fp32: dict = field(default_factory=dict)   # output error vs x @ W_fp32.T
    check: dict = field(default_factory=dict)       # output error vs x @ W_held.T (checked before timing)
    bits: dict = field(default_factory=dict)
    missing: dict = field(default_factory=dict)     # contender -> reason not measured

    def ratio(self, slower: str, faster: str) -> float | None:
        if slower in self.median_s and faster in self.median_s:
            return self.median_s[slower] / self.median_s[faster]
        return None


def _other_isas(add, wf, x, threads, group) -> None:
    """The g`group` W4A8 kernel under the other vectorised backends (avx2 beside avx512) and, on a VNNI
    CPU under avx512, its AVX512BW path: rows whose ratio to the active backend's row is the ISA's gain."""
    from frugalnn.kernels import avx512_vnni, backend, other_backends, use_avx512_vnni, use_backend

    w = kernel.PackedW4.from_float(wf, group)
    held = x @ w.dequantize().T

    def on(b, vnni=True):
        with use_backend(b), use_avx512_vnni(vnni and avx512_vnni()):
            return kernel.w4a8(x, w, threads=threads)

    for b in other_backends():
        add(f"mixpe w4a8 g{group} ({b})", lambda b=b: on(b), held, QUANT_BOUND, w.bits_per_weight)
    if backend() == "avx512" and avx512_vnni():
        add(f"mixpe w4a8 g{group} (avx512 no VNNI)", lambda: on("avx512", False), held, QUANT_BOUND,
            w.bits_per_weight)


def race(case: str, wf: np.ndarray, x: np.ndarray, threads: int, repeats: int, peer=None, peer_missing: str = "",
         tmac: bool = True, groups=(128, 32)) -> Result:
    import torch

    r = Result(case, threads)
    exact = x.astype(np.float64) @ wf.T.astype(np.float64)
    calls, closers = {}, []

    def add(name, call, held_out, bound, bits):
        y = np.asarray(call())
        r.check[name] = check_before_timing(case, name, nmse(y, held_out), bound)
        r.nmse_fp32[name] = nmse(y, exact)
        r.bits[name] = bits
        calls[name] = call

    for g in groups:
        w = kernel.PackedW4.from_float(wf, g)
        held = x @ w.dequantize().T
        add(f"mixpe w4a8 g{g}", lambda w=w: kernel.w4a8(x, w, threads=threads), held, QUANT_BOUND, w.bits_per_weight)
        if g == groups[0]:
            x16 = x.astype(np.float16)
            add("dequant each weight", lambda w=w: kernel.w4a16(x16, w, threads=threads, dequant_each=True),
                x16.astype(np.float32) @ w.dequantize().T, FLOAT_BOUND * 10, w.bits_per_weight)
            wt = torch.from_numpy(w.dequantize())
            xt = torch.from_numpy(x)
            torch.set_num_threads(threads)
            add("torch fp32 (dequant once)", lambda: torch.matmul(xt, wt.T).numpy(), held, FLOAT_BOUND, 32.0)
    _other_isas(add, wf, x, threads, groups[0])
    if tmac:
        try:
            from frugalnn.tmac import LUTWeight, matmul  # the other 4-bit technique, same weights

            lw = LUTWeight.from_float(wf, 4, 128, symmetric=False)
            add("T-MAC 4-bit g128", lambda: matmul(x, lw, threads=threads), x @ lw.dequantize().T, QUANT_BOUND,
                lw.bits_per_weight)
        except (ValueError, ImportError) as e:
            r.missing["T-MAC 4-bit g128"] = str(e)
    if peer is None:
        r.missing["llama.cpp Q4_0"] = peer_missing or "llama.cpp peer not loaded"
    elif wf.shape[1] % 32:
        r.missing["llama.cpp Q4_0"] = f"Q4_0 needs K divisible by 32, got {wf.shape[1]}"
    else:
        from frugalnn.bench import ggml_peer

        mm = ggml_peer.MulMat(peer, "Q4_0", wf.shape[0], wf.shape[1], x.shape[0], threads, weight=wf, x=x)
        closers.append(mm.close)
        mm.run()
        add("llama.cpp Q4_0", lambda: (mm.run(), mm.result())[1], x @ mm.dequantize().T, QUANT_BOUND,
            mm.bits_per_weight)
        calls["llama.cpp Q4_0"] = mm.run  # time the kernel only, not the copy of its output
    try:
        t = time_interleaved(calls, repeats=repeats)
    finally:
        for c in closers:
            c()
    r.median_s = {k: v.median_s for k, v in t.items()}
    r.min_s = {k: v.min_s for k, v in t.items()}
    return r
