"""Fuzz the ODL bindings (_core.odl.matmul and _core.odl.Net): each case is a valid call with up to
two mutations (dtype, rank, sizes, strides, overlapping output, special values, huge or negative
integers, NaN floats); it must succeed or raise a clean argument error, never crash or hang. Cases
run in a child process per batch (harness.run_batch), once per backend, with a fixed seed."""
from __future__ import annotations

import pytest
from hypothesis import strategies as st

from frugalnn.kernels import available_backends
from harness import draw_cases, examples, run_batch

SETUP = r'''
import numpy as np
from frugalnn import _core

rng = np.random.default_rng(0)
inf, nan = float("inf"), float("nan")
SPECIAL = np.array([np.nan, np.inf, -np.inf, 3e38, 1e-42, -0.0, 65504.0, 70000.0], np.float32)


def arr(shape, dtype="float32", special=False):
    a = rng.standard_normal(shape).astype(dtype) if np.prod(shape) else np.zeros(shape, dtype)
    if special and a.size:
        a.flat[rng.integers(0, a.size)] = SPECIAL[rng.integers(0, len(SPECIAL))]
    return a.view(np.uint16) if dtype == "float16" else a


def small_net(dtype="fp32"):
    n = _core.odl.Net(dtype, 2, 6, 5)
    v = n.conv(0, 3, 3, 3, 2, 0, 0, 1, 1, 1, True)
    v = n.relu(v)
    v = n.conv(v, 3, 3, 3, 1, 1, 1, 1, 1, 3, True)
    v = n.linear(v, 4, True)
    n.set_loss(v)
    return n
'''

INTS = st.sampled_from([0, 1, 2, 3, 7, -1, -5, 2**31, 2**62, 2**63 - 1, 65, 100000])
FLOATS = st.sampled_from([0.0, 0.1, -1.0, float("nan"), float("inf"), 1e300, 0.99, 1.0])


@st.composite
def matmul_case(draw):
    m, n, k = (draw(st.integers(0, 9)) for _ in range(3))
    dtype = draw(st.sampled_from(["float32", "float16"]))
    ta, tb = draw(st.booleans()), draw(st.booleans())
    a = f"arr({(k, m) if ta else (m, k)}, {dtype!r}, {draw(st.booleans())})"
    b = f"arr({(n, k) if tb else (k, n)}, {dtype!r}, {draw(st.booleans())})"
    out = f"arr(({m}, {n}), {dtype!r})"
    mutation = draw(st.sampled_from(["none", "dtype", "rank", "shape", "strided", "overlap", "kernel", "threads",
                                     "acc16"]))
    kernel, threads, acc16 = draw(st.integers(-1, 9)), 1, dtype == "float16" and draw(st.booleans())
    if mutation == "dtype":
        b = f"{b}.astype(np.float64)"
    elif mutation == "rank":
        a = f"{a}.reshape(-1)"
    elif mutation == "shape":
        out = f"arr(({m + 1}, {n}), {dtype!r})"
    elif mutation == "strided":
        b = f"arr({(k, 2 * n + 1)}, {dtype!r})[:, ::2]"
    elif mutation == "overlap":
        return f"a = {a}; _core.odl.matmul(a, {b}, a, {ta}, {tb}, {acc16}, {kernel}, 1)"
    elif mutation == "kernel":
        kernel = draw(INTS)
    elif mutation == "threads":
        threads = draw(INTS)
    elif mutation == "acc16":
        acc16 = True
    return f"_core.odl.matmul({a}, {b}, {out}, {ta}, {tb}, {acc16}, {kernel}, {threads})"


@st.composite
def net_case(draw):
    dtype = draw(st.sampled_from(["fp32", "fp16"]))
    op = draw(st.sampled_from(["conv", "linear", "pool", "add", "step", "forward", "param", "kernel", "ctor"]))
    i = draw(INTS)
    if op == "ctor":
        return f"_core.odl.Net({draw(st.sampled_from(['fp32', 'fp16', 'int8']))!r}, {i}, {draw(INTS)}, 5, {draw(st.booleans())}, {draw(INTS)})"
    pre = f"n = small_net({dtype!r}); "
    if op == "conv":
        args = [draw(st.one_of(INTS, st.integers(0, 4))) for _ in range(10)]
        return pre + f"n.conv({', '.join(map(str, args))}, {draw(st.booleans())}); n.step(arr((2, 6, 5)), 0, 0.1)"
    if op == "linear":
        return pre + f"n.linear({draw(st.integers(-1, 6))}, {i}, True)"
    if op == "pool":
        return pre + f"n.{draw(st.sampled_from(['avgpool', 'maxpool']))}({draw(st.integers(-1, 6))}, {i}, {draw(INTS)}, {draw(INTS)})"
    if op == "add":
        return pre + f"n.add({draw(st.integers(-1, 8))}, {draw(st.one_of(INTS, st.integers(0, 8)))})"
    if op == "step":
        shape = draw(st.sampled_from([(2, 6, 5), (2, 5, 6), (60,), (1, 2, 6, 5)]))
        return pre + f"n.step(arr({shape}, special={draw(st.booleans())}), {draw(st.one_of(INTS, st.integers(0, 3)))}, {draw(FLOATS)}, {draw(FLOATS)}, {draw(st.booleans())})"
    if op == "forward":
        return pre + f"n.forward(arr((2, 6, 5), {draw(st.sampled_from(['float32', 'float16']))!r}, True))"
    if op == "param":
        size = draw(st.sampled_from([0, 1, 18, 27, 54]))
        return pre + f"n.set_param({draw(st.one_of(INTS, st.integers(0, 3)))}, arr(({size},)), arr((3,))); n.get_param({i}, True)"
    return pre + f"n.set_kernel({draw(st.one_of(INTS, st.integers(0, 4)))}, {draw(INTS)}, {draw(INTS)}); n.step(arr((2, 6, 5)), 1, 0.1)"


@pytest.mark.parametrize("backend", available_backends())
def test_odl_matmul_bindings(backend):
    cases = draw_cases(matmul_case(), examples(150))
    run_batch(SETUP + f"\n_core.set_backend({backend!r})\n", cases)


@pytest.mark.parametrize("backend", available_backends())
def test_odl_net_bindings(backend):
    cases = draw_cases(net_case(), examples(150))
    outcomes = run_batch(SETUP + f"\n_core.set_backend({backend!r})\n", cases)
    assert any(o == "ok" for o in outcomes)
