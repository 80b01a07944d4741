"""Fuzz the VNNI switch (`_core.set_avx512_vnni`, `_core.avx512_vnni`) and, with VNNI switched off
(FRUGALNN_VNNI=0) under the avx512 backend, the bindings whose kernels have a separate AVX512BW path
(MixPE's and DFP's integer GEMMs): the MixPE cases of test_mixpe_bindings and the raw-binding and
edge-value differential cases of test_bindings run again on that path. Every case succeeds or raises
a clean argument error; a crash or hang fails and names the case."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from hypothesis import strategies as st

from frugalnn.kernels import MISSING_REASON, available_backends
from harness import draw_cases, examples, run_batch


def _sibling(name):
    """tests/fuzz/<name>.py by path: tests/kernels has a test_bindings.py too, and the bare module name
    resolves to whichever pytest imported first."""
    spec = importlib.util.spec_from_file_location(f"fuzz_{name}", Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


test_bindings = _sibling("test_bindings")
test_mixpe_bindings = _sibling("test_mixpe_bindings")

NO_VNNI = {"FRUGALNN_KERNELS": "avx512", "FRUGALNN_VNNI": "0"}
needs_avx512 = pytest.mark.skipif("avx512" not in available_backends(), reason=MISSING_REASON["avx512"])

SWITCH_SETUP = r'''
import numpy as np
from frugalnn import _core
from frugalnn.kernels import dfp, mixpe
_rng = np.random.default_rng(0)
_W = mixpe.PackedW4.from_float(_rng.standard_normal((33, 130)).astype(np.float32), 32)
_X = _rng.standard_normal((17, 130)).astype(np.float32)
_A = _rng.integers(-3000, 3000, (7, 65)).astype(np.int16)
_B = _rng.integers(-3000, 3000, (65, 19)).astype(np.int16)


def AFTER():
    """the kernels still agree with numpy whatever the switch ended at"""
    assert _core.avx512_vnni() in (True, False)
    assert np.array_equal(dfp.gemm(_A, _B, 0, 0), dfp.gemm(_A, _B, 0, 0, impl="numpy"))
    np.testing.assert_allclose(mixpe.w4a8(_X, _W), mixpe.w4a8(_X, _W, impl="numpy"), rtol=1e-5, atol=1e-4)
'''

VALUES = ["True", "False", "0", "1", "None", "'yes'", "1.5", "np.bool_(True)", "np.bool_(False)", "[]", "2**70"]


@st.composite
def switch_case(draw):
    calls = [f"_core.set_avx512_vnni({draw(st.sampled_from(VALUES))})" for _ in range(draw(st.integers(1, 3)))]
    return "\n".join(f"try:\n    {c}\nexcept (TypeError, ValueError):\n    pass" for c in calls) + "\nAFTER()"


@pytest.mark.parametrize("backend", available_backends())
def test_switch_never_crashes(backend):
    outcomes = run_batch(SWITCH_SETUP, draw_cases(switch_case(), examples(60)), timeout=120,
                         env={"FRUGALNN_KERNELS": backend})
    assert all(o == "ok" for o in outcomes), outcomes


@needs_avx512
def test_mixpe_bindings_without_vnni():
    cases = draw_cases(test_mixpe_bindings.case(), examples(300))
    outcomes = run_batch(test_mixpe_bindings.SETUP, cases, timeout=240, env=NO_VNNI)
    assert outcomes.count("ok") >= len(cases) // 5, "too few cases reached the kernels"


@needs_avx512
def test_raw_bindings_without_vnni():
    cases = draw_cases(test_bindings.raw_case(families=(test_bindings._dfp,)), examples(300))
    outcomes = run_batch(test_bindings.SETUP, cases, timeout=120, env=NO_VNNI)
    assert any(o == "ok" for o in outcomes)


@needs_avx512
def test_kernels_match_references_without_vnni():
    run_batch(test_bindings.DIFF_SETUP, draw_cases(test_bindings.diff_case(), examples(250)), timeout=180,
              env=NO_VNNI, allowed=())
