"""Fuzz the MixPE bindings (`_core.mixpe.w4a8`, `w4a8_quantized`, `quantize`, `w4a16`) and their
wrappers: every case either succeeds or raises a clean argument error; a crash or hang fails and
names the case. Cases start from a valid call (small sizes, so the kernel runs) and mutate one or
two things: n/k/group to odd, huge or negative values, array dtypes, shapes, strided and zero-stride
views, empty arrays with 2^40 axes, read-only or overlapping outputs, special float values, threads.
A differential part checks native against numpy on the valid cases (integer part exact)."""
from __future__ import annotations

import pytest
from hypothesis import strategies as st

from frugalnn.kernels import available_backends
from harness import draw_cases, examples, run_batch

SETUP = r'''
import numpy as np
from numpy.lib.stride_tricks import as_strided
from frugalnn import _core
from frugalnn.kernels import mixpe, mixpe_ref

_rng = np.random.default_rng(0)
_SPECIAL = np.array([np.nan, np.inf, -np.inf, 3e38, -3e38, 1e-42, -0.0, 2.0**124], np.float32)


def W(n, k, group):
    return mixpe.PackedW4.from_float(_rng.standard_normal((n, k)).astype(np.float32), group)


def X(m, k, fill="normal", dtype="float32"):
    x = (_rng.standard_normal((m, k)) * 3).astype(dtype)
    if fill == "special" and x.size:
        x = np.where(_rng.random(x.shape) < 0.3, _rng.choice(_SPECIAL, x.shape), x).astype(dtype)
    return x


def STRIDED(a):
    b = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
    return b[..., ::2]


def ZERO_STRIDE(shape, dtype="float32"):
    return as_strided(np.zeros(1, dtype), tuple(shape), (0,) * len(shape))


def DIFF(m, n, k, group):
    """native == numpy on the integer part (unit scales), and within rounding on random weights."""
    w = W(n, k, group)
    q, s, z = w.unpack()
    aq, asum, sa = mixpe.quantize_activations(X(m, k), group)
    ones = mixpe.PackedW4(*mixpe_ref.pack_weights(q, np.ones_like(s), z, group), n, k, group)
    got = mixpe.w4a8_quantized(aq, asum, np.ones(m, np.float32), ones)
    want = mixpe_ref.group_integers(q, z, aq, asum, group).sum(axis=2).astype(np.float32)
    assert np.array_equal(got, want), "integer part differs"
'''

INTS = [0, -1, 1, 3, 4, 15, 16, 17, 31, 32, 33, 48, 64, 127, 128, 129, 2**31, 2**40, 2**40 + 1, 2**62, 2**63 - 1, -2**63]
THREADS = [-1, 0, -2, 1, 2, 3, 256, 10**6, 2**31, "None", "1.5", "True"]


@st.composite
def case(draw):
    m, n, k = draw(st.integers(0, 6)), draw(st.integers(0, 40)), draw(st.integers(0, 300))
    group = draw(st.sampled_from([32, 64, 128]))
    fn = draw(st.sampled_from(["w4a8", "w4a16", "w4a8_quantized", "quantize", "wrap8", "wrap16", "diff"]))
    args = {"n": n, "k": k, "group": group, "threads": -1}
    mut = draw(st.lists(st.sampled_from(["n", "k", "group", "threads", "x_dtype", "x_shape", "x_strided",
                                         "x_zero_stride", "x_special", "out_ro", "out_alias", "out_shape", "bias",
                                         "empty_huge", "wp_dtype", "sp_shape", "none"]), max_size=2))
    fill = "special" if "x_special" in mut else "normal"
    pre = [f"w = W({n}, {k}, {group})", f"x = X({m}, {k}, {fill!r})",
           f"out = np.zeros(({m}, {n}), np.float32)", "bias = None", "wp, sp, zp = w.wp, w.sp, w.zp"]
    for mu in mut:
        if mu in ("n", "k", "group"):
            args[mu] = draw(st.sampled_from(INTS))
        elif mu == "threads":
            args["threads"] = draw(st.sampled_from(THREADS))
        elif mu == "x_dtype":
            pre.append(f"x = x.astype({draw(st.sampled_from(['np.float64', 'np.float16', 'np.int8', 'np.int32']))})")
        elif mu == "x_shape":
            pre.append(f"x = X({m}, {draw(st.sampled_from([0, 1, k + 1, max(k - 1, 0)]))})")
        elif mu == "x_strided":
            pre.append("x = STRIDED(x)")
        elif mu == "x_zero_stride":
            pre.append(f"x = ZERO_STRIDE(({2**40 if draw(st.booleans()) else m}, {k}))")
        elif mu == "out_ro":
            pre.append("out.setflags(write=False)")
        elif mu == "out_alias":
            pre.append(f"buf = np.zeros(max(x.size, {m * n}) + 8, np.float32); x = buf[:x.size].reshape(x.shape); "
                       f"out = buf[{draw(st.sampled_from([0, 1, 4]))}:][:{m * n}].reshape({m}, {n})")
        elif mu == "out_shape":
            pre.append(f"out = np.zeros(({m}, {n + 1}), np.float32)")
        elif mu == "bias":
            pre.append(f"bias = np.ones({draw(st.sampled_from([n, n + 1, 0]))}, "
                       f"{draw(st.sampled_from(['np.float32', 'np.float64']))})")
        elif mu == "empty_huge":
            pre.append(f"x = ZERO_STRIDE((2**40, 0)) if {k} == 0 else np.zeros((0, {k}), np.float32); "
                       f"out = np.zeros((x.shape[0] if x.shape[0] < 2**20 else 0, {n}), np.float32)")
        elif mu == "wp_dtype":
            pre.append("wp = wp.view(np.int8)")
        elif mu == "sp_shape":
            pre.append("sp = np.ascontiguousarray(sp[:, :-1]) if sp.shape[1] else sp")
    a = args
    t = a["threads"]
    call = {
        "w4a8": f"_core.mixpe.w4a8(wp, sp, zp, {a['n']}, {a['k']}, {a['group']}, x, bias, out, {t})",
        "w4a16": f"_core.mixpe.w4a16(wp, sp, zp, {a['n']}, {a['k']}, {a['group']}, x, bias, out, {t}, "
                 f"{draw(st.booleans())})",
        "w4a8_quantized": f"aq, asum, sa = mixpe.quantize_activations(X({m}, {k}), {group}); "
                          f"_core.mixpe.w4a8_quantized(wp, sp, zp, {a['n']}, {a['k']}, {a['group']}, aq, asum, sa, "
                          f"bias, out, {t})",
        "quantize": f"kp = -(-{k} // {group}) * {group}; _core.mixpe.quantize(x, {a['group']}, "
                    f"np.zeros(({m}, kp), np.int8), np.zeros(({m}, kp // {group}), np.int32), "
                    f"np.zeros({m}, np.float32), {t})",
        "wrap8": f"mixpe.w4a8(x, w, bias, threads={t})",
        "wrap16": f"mixpe.w4a16(x, w, bias, threads={t})",
        "diff": f"DIFF({m}, {n}, {k}, {group})",
    }[fn]
    return "; ".join(pre) + "\n" + call


@pytest.mark.parametrize("backend", available_backends())
def test_mixpe_bindings_fuzz(backend):
    cases = draw_cases(case(), examples(300))
    outcomes = run_batch(SETUP, cases, timeout=240, env={"FRUGALNN_KERNELS": backend})
    assert outcomes.count("ok") >= len(cases) // 5, "too few cases reached the kernels"
