"""The avx512 backend (issue 17): dispatch, the fallback to avx2 for ops without AVX-512 kernels, and
the AVX-512 kernels against the AVX2 ones bit for bit (lut, lmul and attention promise the same bits
as avx2; the reference comparisons run under the `backend` fixture in each op's own test file).

On a CPU without AVX-512 the kernel comparisons skip with "CPU lacks AVX-512"; the dispatch tests
run everywhere and check the error path there instead."""
import os
import subprocess
import sys

import numpy as np
import pytest

from frugalnn import _core
from frugalnn.kernels import attention, available_backends, lmul, lut, op_backends, use_backend

HAS_AVX512 = "avx512" in available_backends()
needs_avx512 = pytest.mark.skipif(not HAS_AVX512, reason="CPU lacks AVX-512 (AVX512F/BW/VL/DQ)")
AVX512_OPS = {"attention", "delta", "dfp", "llama", "lmul", "lut", "mixpe"}


def _import_backend(env_value):
    env = dict(os.environ)
    env.pop("FRUGALNN_KERNELS", None)
    if env_value is not None:
        env["FRUGALNN_KERNELS"] = env_value
    return subprocess.run([sys.executable, "-c", "import frugalnn.kernels as k; print(k.backend())"],
                          env=env, capture_output=True, text=True)


def test_the_best_backend_is_chosen_at_import():
    out = _import_backend(None)
    want = "avx512" if _core.cpu_supports_avx512() else "avx2" if _core.cpu_supports_avx2() else "serial"
    assert out.returncode == 0 and out.stdout.strip() == want


def test_environment_asks_for_avx512():
    out = _import_backend("avx512")
    if HAS_AVX512:
        assert out.returncode == 0 and out.stdout.strip() == "avx512"
    else:  # the same clear error as avx2 on a CPU without it
        assert out.returncode != 0 and "CPU lacks AVX-512" in out.stderr


def test_set_backend_error_names_what_the_cpu_lacks(monkeypatch):
    import frugalnn.kernels as k

    monkeypatch.setattr(k, "available_backends", lambda: ("serial", "avx2"))
    with pytest.raises(ValueError, match="backend 'avx512' is not available on this CPU: CPU lacks AVX-512"):
        k.set_backend("avx512")
    if not HAS_AVX512:  # the compiled switch refuses too
        with pytest.raises(ValueError, match="lacks AVX-512"):
            _core.set_backend("avx512")


def test_vnni_is_reported_with_avx512_only():
    assert not _core.cpu_supports_avx512_vnni() or _core.cpu_supports_avx512()


@pytest.mark.parametrize("name", available_backends())
def test_op_backends_fall_back_to_avx2(name):
    with use_backend(name):
        ops = op_backends()
    assert {"attention", "lmul", "lut", "pack", "llama"} <= set(ops)
    for op, runs in ops.items():
        want = name if name != "avx512" or op in AVX512_OPS else "avx2"
        assert runs == want, op


def test_info_lists_backends_and_the_backend_per_op():
    from frugalnn import info

    data = info.collect()
    assert data["available_backends"] == list(available_backends())
    assert data["op_backends"] == op_backends()
    assert isinstance(data["avx512_vnni"], bool)


@needs_avx512
@pytest.mark.parametrize("shape", [(1, 1, 1, 1, 1), (2, 49, 129, 64, 64), (1, 97, 300, 128, 128), (2, 64, 256, 17, 33),
                                   (1, 3, 500, 8, 15), (3, 50, 131, 24, 20), (1, 200, 260, 64, 4)])
@pytest.mark.parametrize("causal", [False, True])
def test_attention_avx512_equals_avx2_bit_for_bit(shape, causal):
    rng = np.random.default_rng(sum(shape))
    h, l, s, e, ev = shape
    q, k, v = (rng.standard_normal(x, dtype=np.float32) for x in ((h, l, e), (h, s, e), (h, s, ev)))
    with use_backend("avx2"):
        want = attention.fused_attention(q, k, v, causal=causal)
    with use_backend("avx512"):
        got = attention.fused_attention(q, k, v, causal=causal)
    np.testing.assert_array_equal(got, want)


@needs_avx512
def test_exp512_equals_exp256_bit_for_bit():
    x = np.concatenate([np.linspace(-104.5, 88.3, 400_003, dtype=np.float32),
                        np.array([0.0, -0.0, -np.inf, np.nan, -88.0, -87.7], np.float32)])
    with use_backend("avx2"):
        want = attention.exp(x)
    with use_backend("avx512"):
        got = attention.exp(x)
    np.testing.assert_array_equal(got, want)


@needs_avx512
@pytest.mark.parametrize("bits", [1, 2, 3, 4, 5, 8])
def test_lut_avx512_equals_avx2_on_a_gemm(bits):
    rng = np.random.default_rng(bits)
    m, k, g = 161, 512, 128
    codes = rng.integers(0, 1 << bits, (m, k), dtype=np.uint8)
    units, groups, _, _ = lut.layout_sizes(m, k, g, bits)
    ws = rng.standard_normal((units, groups, 32)).astype(np.float32)
    zt = rng.standard_normal((units, groups, 32)).astype(np.float32)
    packed = lut.transform(codes, bits, g)
    x = rng.standard_normal((7, k)).astype(np.float32)
    with use_backend("avx2"):
        want = lut.matmul(x, packed, ws, zt, m, bits, g, True, units=4, cols=1)
    with use_backend("avx512"):
        for units, cols in ((4, 1), (2, 1), (2, 2), (3, 3)):
            np.testing.assert_array_equal(lut.matmul(x, packed, ws, zt, m, bits, g, True, units=units, cols=cols),
                                          want, err_msg=f"units={units} cols={cols}")


@needs_avx512
@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (7, 17, 33), (37, 50, 300), (64, 64, 600)])
def test_lmul_avx512_equals_avx2(m, n, k):
    rng = np.random.default_rng(m + n + k)
    a = rng.standard_normal((1, m, k)).astype(np.float32)
    b = rng.standard_normal((1, k, n)).astype(np.float32)
    a[0, 0, 0] = 0.0  # a zero in A: the masked fast kernel
    with use_backend("avx2"):
        want = lmul.matmul(a, b, 3, True, lmul.paper_offset(3))
    with use_backend("avx512"):
        got = lmul.matmul(a, b, 3, True, lmul.paper_offset(3))
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
