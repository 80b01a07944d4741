"""Fuzz cases for the torch operator `torch.ops.frugalnn.lut_matmul_kq` (tmac/nn.py: LUTLinear's two-level
path under traces and modes) called directly with malformed arguments: buffers of the wrong shape, dtype,
layout or device, sizes out of range, unknown scale formats, odd inputs and thread counts. Each case ends
in success or a clean TypeError/ValueError, never a crash, a hang or a torch-internal RuntimeError from
our side (subprocess-isolated through harness.run_batch), on every backend."""
from __future__ import annotations

import pytest
from hypothesis import strategies as st

from frugalnn.kernels import available_backends
from harness import draw_cases, examples, run_batch

SETUP = r'''
import numpy as np
import torch
import frugalnn.tmac.nn  # registers the operator
from frugalnn.kernels import lut

op = torch.ops.frugalnn.lut_matmul_kq


def call(m=5, k=256, bits=4, g=256, sub=32, zero=0, fmt="u8", mins=True, dmins=True, n=2, lead=(),
         fill=1.0, x_dtype="float32", sc_dtype="uint8", d_dtype="int16", sc_shape=None, d_shape=None,
         strided=None, packed_n=None, threads=1):
    sane = 0 <= m <= 200 and 4 <= k <= 2048 and 1 <= bits <= 8 and 4 <= g <= 2048 and k % g == 0
    mm, kk, bb, gg = (m, k, bits, g) if sane else (5, 256, 4, 256)
    units, groups, nbytes, _ = lut.layout_sizes(mm, kk, gg, bb)
    nsub = gg // sub if 0 < sub <= gg else 1
    sc_default = (1,) if fmt == "one" else (units, groups, nsub, 32)  # "one" has no sub-scale bytes
    sc = torch.full(sc_shape or sc_default, 7, dtype=getattr(torch, sc_dtype))
    d = torch.full(d_shape or (units, groups, 32), 0x2000, dtype=torch.int16).to(getattr(torch, d_dtype))
    empty = torch.empty(0, dtype=torch.uint8)
    packed = torch.zeros(nbytes if packed_n is None else packed_n, dtype=torch.uint8)
    x = torch.full((*lead, n, k if 0 <= k <= 4096 else 3), fill).to(getattr(torch, x_dtype))
    t = dict(x=x, packed=packed, sc=sc, d=d)
    if strided in t:  # the same values, every other element of a twice-as-long tensor
        v = t[strided]
        t[strided] = torch.stack([v, v], -1).flatten(-2)[..., ::2] if v.dim() else v
    return op(t["x"], t["packed"], t["sc"], t["sc"] if mins else empty, t["d"], t["d"] if dmins else empty,
              m, k, bits, g, fmt, sub, zero, threads)
'''

def mostly(draw, good, *bad, n_good=8):
    """A valid value (one of `good`) most of the time, else one of `bad`: most cases reach the kernel."""
    return draw(st.sampled_from(list(good) * n_good + list(bad)))


@st.composite
def op_case(draw):
    kw = dict(m=mostly(draw, [1, 5, 17, 40, 70], 0, -1, 2**31, 2**62, -2**63),
              k=mostly(draw, [256, 512], 260, 0, 4, 2**40), bits=mostly(draw, [2, 3, 4, 5, 6, 8], 0, 9),
              g=mostly(draw, [256, 128], 12, 0, -256), sub=mostly(draw, [16, 32], 8, 0, 24, -16),
              zero=mostly(draw, [0, 4, 32], -1, 2**33), fmt=mostly(draw, ["u8", "nib", "i8", "one"], "q4k", ""),
              mins=draw(st.booleans()), dmins=draw(st.booleans()), n=draw(st.integers(0, 4)),
              lead=draw(st.sampled_from([(), (), (2,), (0,), (1, 1)])),
              fill=draw(st.sampled_from(["1.0", "-2.5", "float('nan')", "float('inf')", "0.0"])),
              x_dtype=mostly(draw, ["float32"], "float64", "bfloat16", "int32", "bool"),
              sc_dtype=mostly(draw, ["uint8"], "int8", "float32"),
              d_dtype=mostly(draw, ["int16"], "float16", "int32", "uint8"),
              sc_shape=mostly(draw, [None], (1, 1, 8, 32), (3,), (0, 0, 0, 0), (1, 2, 8, 16)),
              d_shape=mostly(draw, [None], (1, 1, 32), (0, 0, 0), (2, 1, 16)),
              strided=mostly(draw, [None], "x", "packed", "sc", "d"),
              packed_n=mostly(draw, [None], 0, 1, 4095, 5000),
              threads=mostly(draw, [1, 2, None], 0, -1, 2**31))
    args = ", ".join(f"{k}={v}" if k == "fill" else f"{k}={v!r}" for k, v in kw.items())
    return f"call({args})"


@pytest.mark.parametrize("backend", list(available_backends()))
def test_kq_operator_never_crashes(backend):
    outcomes = run_batch(SETUP, draw_cases(op_case(), examples(120)), timeout=180,
                         env={"FRUGALNN_KERNELS": backend})
    assert any(o == "ok" for o in outcomes), "no case reached the kernel: the generator is broken"
    assert any(o.startswith("ValueError") for o in outcomes)
