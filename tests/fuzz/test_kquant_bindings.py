"""Fuzz cases for `_core.lut.matmul_kq` (two-level K-quant weights) and `LUTWeight.from_gguf` on K-quant
blocks: wrong shapes, dtypes, formats, sub-block sizes, zeros, strided arrays, huge sizes, special
activations, thread and tile counts, corrupted blocks. Every case ends in success or a clean
TypeError/ValueError, never a crash or a hang (subprocess-isolated through harness.run_batch), on every backend."""
from __future__ import annotations

import pytest
from hypothesis import strategies as st

from frugalnn.kernels import available_backends
from harness import draw_cases, examples, run_batch

SETUP = r'''
import numpy as np
from frugalnn import _core
from frugalnn.kernels import lut


def kq(m=5, k=256, bits=4, g=256, sub=32, fmt=0, zero=0, has_min=True, n=2, fill=1.0, sc_shape=None, d_shape=None,
       sc_dtype="uint8", d_dtype="uint16", x_dtype="float32", strided=False, out_shape=None, threads=1, units=1,
       cols=1, col_block=32, prefetch=0, packed_n=None):
    sane = 0 <= m <= 200 and 4 <= k <= 2048 and 1 <= bits <= 8 and 4 <= g <= 2048 and g and k % g == 0
    mm, kk, bb, gg = (m, k, bits, g) if sane else (5, 256, 4, 256)
    units_n, groups, nbytes, _ = lut.layout_sizes(mm, kk, gg, bb) if sane else lut.layout_sizes(5, 256, 256, 4)
    nsub = max(gg // sub, 1) if sub > 0 else 1
    sc_shape = sc_shape if sc_shape and all(0 <= v <= 64 for v in sc_shape) else (units_n, groups, nsub, 32)
    d_shape = d_shape if d_shape and all(0 <= v <= 64 for v in d_shape) else (units_n, groups, 32)
    sc = np.full(sc_shape, 7, sc_dtype)
    d = np.full(d_shape, 0x2000, d_dtype)
    x = np.full((max(min(n, 8), 0), kk), fill, x_dtype)
    if strided:
        x = np.full((x.shape[0], 2 * kk), fill, x_dtype)[:, ::2]
    packed = np.zeros(nbytes if packed_n is None else min(max(packed_n, 0), 10**6), np.uint8)
    out = np.empty(out_shape if out_shape else (x.shape[0], m if 0 <= m <= 200 else 1), np.float32)
    _core.lut.matmul_kq(x, packed, sc, sc, d, d, m, bits, g, fmt, sub, zero, has_min, out, threads, units, cols,
                        col_block, prefetch)
    return out
'''

_SMALL = st.one_of(st.integers(1, 70), st.integers(-3, 3), st.sampled_from([2**31, 2**62, -2**63]))


@st.composite
def kq_case(draw):
    kw = dict(m=draw(_SMALL), k=draw(st.sampled_from([256, 512, 768, 260, 0, 4, 2**40])),
              bits=draw(st.sampled_from([2, 3, 4, 5, 6, 8, 0, 9, -1])),
              g=draw(st.sampled_from([256, 256, 128, 64, 12, 0, -256, 2**30])),
              sub=draw(st.sampled_from([16, 32, 32, 64, 8, 24, 0, 128, -16])),
              fmt=draw(st.sampled_from([0, 1, 2, 2, 3, -1])), zero=draw(st.sampled_from([0, 4, 32, 255, -1, 2**33])),
              has_min=draw(st.booleans()), n=draw(st.integers(0, 5)),
              fill=draw(st.sampled_from(["1.0", "1.0", "-2.5", "np.nan", "np.inf", "6e37", "1e-42", "0.0"])),
              sc_shape=draw(st.one_of(st.none(), st.none(), st.tuples(*[st.integers(0, 9)] * 4))),
              d_shape=draw(st.one_of(st.none(), st.none(), st.tuples(*[st.integers(0, 9)] * 3))),
              sc_dtype=draw(st.sampled_from(["uint8"] * 5 + ["int8", "float32"])),
              d_dtype=draw(st.sampled_from(["uint16"] * 5 + ["float16", "int32"])),
              x_dtype=draw(st.sampled_from(["float32"] * 5 + ["float64"])), strided=draw(st.booleans()),
              out_shape=draw(st.one_of(st.none(), st.none(), st.tuples(st.integers(0, 6), st.integers(0, 80)))),
              threads=draw(st.sampled_from([1, 1, 2, 0, -1, 2**31])), units=draw(st.sampled_from([1, 2, 4, 0, 5])),
              cols=draw(st.sampled_from([1, 2, 3, 4, 0, 7])), col_block=draw(st.sampled_from([32, 1, 3, 0, -1])),
              prefetch=draw(st.sampled_from([0, 64, -1, 2**21])),
              packed_n=draw(st.one_of(st.none(), st.none(), st.none(), st.integers(-1, 5000))))
    args = ", ".join(f"{k}={v}" if k == "fill" else f"{k}={v!r}" for k, v in kw.items())
    return f"kq({args})"


@st.composite
def gguf_case(draw):
    name = draw(st.sampled_from(["Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "IQ2_XXS", "Q5_0", "Q5_1"]))
    m, k = draw(st.integers(-1, 6)), draw(st.sampled_from([256, 512, 255, 0, 32]))
    cut = draw(st.sampled_from([0, 0, 1, 100, -50]))
    poke = draw(st.sampled_from(["None", "None", "np.inf", "np.nan", "-0.0", "65504.0"]))
    off = draw(st.integers(0, 300))
    return (f"import gguf\nfrom frugalnn.tmac import LUTWeight\nqt = gguf.GGMLQuantizationType.{name}\n"
            f"bs, ts = gguf.GGML_QUANT_SIZES[qt]\nm, k = {m}, {k}\n"
            f"n = max(m, 0) * max(k, 0) // bs * ts\n"
            f"raw = np.random.default_rng(0).integers(0, 256, max(n - {cut}, 0), dtype=np.uint8)\n"
            f"if {poke} is not None and raw.size > {off} + 2: raw[{off}:{off} + 2] = np.array([{poke}], np.float16).view(np.uint8)\n"
            f"LUTWeight.from_gguf(raw, qtype=qt, shape=(m, k))")


BACKENDS = list(available_backends())


@pytest.mark.parametrize("backend", BACKENDS)
def test_matmul_kq_never_crashes(backend):
    outcomes = run_batch(SETUP, draw_cases(kq_case(), examples(150)), timeout=180, env={"FRUGALNN_KERNELS": backend})
    assert any(o == "ok" for o in outcomes), "no case reached the kernel: the generator is broken"
    assert any(o.startswith("ValueError") for o in outcomes)


def test_kquant_from_gguf_never_crashes():
    outcomes = run_batch(SETUP, draw_cases(gguf_case(), examples(80)), timeout=180)
    assert any(o == "ok" for o in outcomes)
    assert any(o.startswith("ValueError") for o in outcomes)


# ---- the compiled Llama decoder's two-level LUT parts (`Decoder.add_lut_kq`) ----------------------------------------

DECODER = r'''
import numpy as np
from frugalnn import _core
from frugalnn.kernels import lut

dim, L, H, Hkv, D, rd, ffn, vocab, maxp = 32, 1, 2, 1, 16, 16, 32, 10, 4
A = lambda shape, dt="float32": np.full(shape, 0.05, dt)


def decoder(slot="o", m=None, bits=4, g=32, fmt=0, sub=16, zero=0, has_min=True, sc_extra=0, d_dtype="uint16",
            threads=1, packed_extra=0, steps=2):
    d = _core.llama.Decoder(dim, L, H, Hkv, D, rd, ffn, vocab, maxp, 1e-5, A((vocab, dim)), A((maxp, rd // 2, 2)),
                            A((dim,)), 1)
    SH = dict(qkv=((H + 2 * Hkv) * D, dim), o=(dim, H * D), gate_up=(2 * ffn, dim), down=(dim, ffn))
    d.set_norms(0, A((dim,)), A((dim,)))
    for s, (rows, kk) in SH.items():
        if s != slot:
            d.add_dense(0, s, A((rows, kk)), 1)
            continue
        mm = rows if m is None else m
        ok = 1 <= bits <= 8 and 4 <= g <= 64 and kk % g == 0 and 0 <= mm <= 100
        bb, gg, m2 = (bits, g, mm) if ok else (4, 32, rows)
        u, gr, nbytes, _ = lut.layout_sizes(m2, kk, gg, bb)
        nsub = max(gg // sub, 1) if sub > 0 else 1
        sc = np.full((u, gr, nsub, 32 + sc_extra), 3, np.uint8) if fmt != 3 else np.zeros(0, np.uint8)
        dd = np.full((u, gr, 32), 0x2000, d_dtype)
        packed = np.zeros(nbytes + packed_extra, np.uint8)
        d.add_lut_kq(0, s, packed, sc, sc, dd, dd, mm, bits, g, fmt, sub, zero, has_min, threads)
    d.add_dense(-1, "head", A((vocab, dim)), 1)
    d.finish()
    k, v = A((L, 1, Hkv, maxp, D)), A((L, 1, Hkv, maxp, D))
    d.set_cache(k, v)
    logits = A((vocab,))
    for pos in range(steps):
        d.step(0, pos, logits)
    return logits
'''


@st.composite
def decoder_case(draw):
    kw = dict(slot=draw(st.sampled_from(["qkv", "o", "gate_up", "down"])),
              m=draw(st.sampled_from([None, None, None, 0, 1, 33, -1, 2**40])),
              bits=draw(st.sampled_from([2, 3, 4, 5, 6, 8, 0, 9])), g=draw(st.sampled_from([32, 32, 16, 8, 12, 0, 64])),
              fmt=draw(st.sampled_from([0, 1, 2, 3, 4, -1])), sub=draw(st.sampled_from([16, 16, 8, 32, 24, 0, 128])),
              zero=draw(st.sampled_from([0, 0, 4, 300, -1])), has_min=draw(st.booleans()),
              sc_extra=draw(st.sampled_from([0, 0, 0, 1])), d_dtype=draw(st.sampled_from(["uint16"] * 4 + ["float16"])),
              threads=draw(st.sampled_from([1, 1, 2, 0, -2])), packed_extra=draw(st.sampled_from([0, 0, 0, 1, -1])))
    return f"decoder({', '.join(f'{k}={v!r}' for k, v in kw.items())})"


@pytest.mark.parametrize("backend", BACKENDS)
def test_decoder_add_lut_kq_never_crashes(backend):
    outcomes = run_batch(DECODER, draw_cases(decoder_case(), examples(80)), timeout=180,
                         env={"FRUGALNN_KERNELS": backend})
    assert any(o == "ok" for o in outcomes), "no case reached the decoder: the generator is broken"
    assert any(o.startswith("ValueError") for o in outcomes)
