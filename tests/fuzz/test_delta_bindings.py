"""Fuzz cases for `_core.delta.Engine` (the delta-inference engine): programs with wrong shapes, strides,
steps, thresholds, layer indices, weights of odd dtypes and layouts, frames with special values, huge
sizes and thread counts. Every case must end in success or a clean TypeError/ValueError, never a crash
or a hang (subprocess-isolated through harness.run_batch), on both backends."""
from __future__ import annotations

import pytest
from hypothesis import strategies as st

from frugalnn.kernels import available_backends
from harness import draw_cases, examples, run_batch

SETUP = r'''
import numpy as np
from frugalnn import _core

_SPECIAL = [np.nan, np.inf, -np.inf, 3e38, -0.0, 1e-42, 0.0]


def _vec(n):
    # the helper must not allocate gigabytes itself before the binding sees the size
    return np.full(n if 0 <= n <= 64 else 1, 0.1)


def _wshape(shape):
    return shape if all(0 <= d <= 64 for d in shape) else (1, 1, 1, 1)


def engine(c=2, h=5, w=4, c2=3, k=3, stride=1, pad=1, step=True, thr=0.0, wdtype="float32", wshape=None,
           finish=True, relu=True, h2=None, w2=None):
    e = _core.delta.Engine()
    e.add_layer(c, h, w, False, _vec(c) if step else None, thr, None)
    ho = (h + 2 * pad - k) // stride + 1 if h2 is None else h2
    wo = (w + 2 * pad - k) // stride + 1 if w2 is None else w2
    e.add_layer(c2, ho, wo, relu, _vec(c2) if step else None, thr, _vec(c2))
    wt = np.ones(_wshape(wshape or (k, k, c, c2)), wdtype) * 0.1
    e.add_conv(1, 0, wt, stride, pad)
    if finish:
        e.finish()
    return e, (c, h, w), c2 * ho * wo


def push(e, shape, n_out, fill=1.0, dtype="float32", out_n=None, threads=1, dense=False, strided=False):
    if not all(0 <= d <= 64 for d in shape):
        shape = (1, 1, 1)
    f = np.full(shape, fill, dtype)
    if strided:
        f = np.full((shape[0], shape[1], shape[2] * 2), fill, dtype)[:, :, ::2]
    out = np.empty(min(n_out, 10**6) if out_n is None else out_n, np.float32)
    e.push(f, out, threads, dense)
    return out
'''

_SANE = st.integers(1, 6)
_INT = st.one_of(_SANE, _SANE, _SANE, st.integers(-3, 9), st.sampled_from([0, -1, 2**31, 2**62, -2**63]))


@st.composite
def engine_case(draw):
    kw = dict(c=draw(_INT), h=draw(_INT), w=draw(_INT), c2=draw(_INT), k=draw(st.one_of(st.sampled_from([1, 3, 3]), _INT)), stride=draw(st.one_of(st.just(1), _INT)),
              pad=draw(st.one_of(st.sampled_from([0, 1]), _INT)), step=draw(st.booleans()),
              thr=draw(st.sampled_from(["0.0", "0.0", "0.1", "-1.0", "np.nan", "np.inf"])),
              wdtype=draw(st.sampled_from(["float32"] * 6 + ["float64", "int32"])),
              finish=draw(st.sampled_from([True] * 5 + [False])), relu=draw(st.booleans()),
              h2=draw(st.one_of(st.none(), st.none(), st.none(), _INT)), w2=draw(st.one_of(st.none(), st.none(), st.none(), _INT)))
    push_kw = dict(fill=draw(st.sampled_from(["1.0"] * 4 + ["0.0", "np.nan", "np.inf", "-3e38", "1e-42"])),
                   dtype=draw(st.sampled_from(["float32"] * 5 + ["float64", "float16"])),
                   out_n=draw(st.one_of(st.none(), st.none(), st.none(), st.integers(0, 40))),
                   threads=draw(st.sampled_from([1, 1, 2, 3, 0, -1, -2, 2**31, 10**6])),
                   dense=draw(st.booleans()), strided=draw(st.sampled_from([False] * 5 + [True])))
    pushes = draw(st.integers(1, 3))
    args = ", ".join(f"{k}={v}" if k == "thr" else f"{k}={v!r}" for k, v in kw.items())
    pargs = ", ".join(f"{k}={v}" if k == "fill" else f"{k}={v!r}" for k, v in push_kw.items())
    return (f"e, shape, n = engine({args})\n"
            + "".join(f"push(e, shape, n, {pargs})\n" for _ in range(pushes))
            + "e.macs(); e.nonzeros(); e.reset()")


@st.composite
def program_case(draw):
    """Bad layer indices, edges of the wrong kind or shape, bias/step of the wrong size, use before finish."""
    op = draw(st.sampled_from(["identity", "mean", "conv_idx", "bias", "step", "early_push", "after_finish",
                               "empty", "huge"]))
    i, j = draw(_INT), draw(_INT)
    return {
        "identity": f"e = _core.delta.Engine(); e.add_layer(2,3,3,False,None,0.0,None); "
                    f"e.add_layer({draw(_INT)},3,3,True,None,0.0,None); e.add_identity({i}, {j}); e.finish()",
        "mean": f"e = _core.delta.Engine(); e.add_layer(2,3,3,False,None,0.0,None); "
                f"e.add_layer(2,{draw(_INT)},1,False,None,0.0,None); e.add_mean({i}, {j}); e.finish()",
        "conv_idx": f"e, s, n = engine(finish=False); e.add_conv({i}, {j}, np.ones((3,3,2,3), np.float32), 1, 1)",
        "bias": f"e = _core.delta.Engine(); e.add_layer(2,3,3,False,None,0.0,None); "
                f"e.add_layer(2,3,3,False,None,0.0,np.zeros({max(i, 0) % 5}))",
        "step": f"e = _core.delta.Engine(); e.add_layer(2,3,3,False,np.array([{draw(st.sampled_from(['0.1', '0.0', '-1.0', 'np.nan', 'np.inf']))}, 0.1]),0.0,None)",
        "early_push": "e, s, n = engine(finish=False); push(e, s, n)",
        "after_finish": "e, s, n = engine(); e.add_layer(1,1,1,False,None,0.0,None)",
        "empty": "e = _core.delta.Engine(); e.finish()",
        "huge": f"e = _core.delta.Engine(); e.add_layer({2**20}, {2**20}, {max(i, 1)}, False, None, 0.0, None)",
    }[op]


BACKENDS = list(available_backends())


@pytest.mark.parametrize("backend", BACKENDS)
def test_engine_never_crashes(backend):
    outcomes = run_batch(SETUP, draw_cases(engine_case(), examples(150)), timeout=120,
                         env={"FRUGALNN_KERNELS": backend})
    assert any(o == "ok" for o in outcomes), "no case reached the engine: the generator is broken"


def test_program_building_never_crashes():
    outcomes = run_batch(SETUP, draw_cases(program_case(), examples(120)), timeout=120)
    assert any(o.startswith("ValueError") for o in outcomes)
