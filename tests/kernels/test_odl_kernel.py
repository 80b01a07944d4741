"""The ODL matmul family (csrc/odl) against its numpy twin (frugalnn.kernels.odl_ref), every kernel,
both backends, odd shapes, both transposes: fp16 storage bit for bit (fp32 and fp16
accumulation), fp32 within float rounding (the AVX2 tiles use FMA)."""
import numpy as np
import pytest

from frugalnn import _core
from frugalnn.kernels import odl, odl_ref

SHAPES = [(1, 1, 1), (3, 5, 7), (17, 33, 9), (9, 1, 40), (1, 31, 300), (13, 25, 0)]
KERNELS = list(range(_core.odl.num_kernels))


def operands(m, n, k, ta, tb, dtype, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
    return a, b


@pytest.mark.parametrize("m, n, k", SHAPES)
@pytest.mark.parametrize("ta, tb", [(False, False), (True, False), (False, True)])
def test_fp16_bit_exact(backend, m, n, k, ta, tb):
    a, b = operands(m, n, k, ta, tb, np.float16)
    for acc16 in (False, True):
        want = odl_ref.matmul(a, b, ta, tb, acc16)
        for kid in KERNELS:
            got = odl.matmul(a, b, ta, tb, acc16, kernel=kid)
            assert got.dtype == np.float16
            np.testing.assert_array_equal(got.view(np.uint16), want.view(np.uint16), err_msg=f"kernel {kid} acc16={acc16}")


@pytest.mark.parametrize("m, n, k", SHAPES)
@pytest.mark.parametrize("ta, tb", [(False, False), (True, False), (False, True)])
def test_fp32_close(backend, m, n, k, ta, tb):
    a, b = operands(m, n, k, ta, tb, np.float32, seed=1)
    ref = (a.T if ta else a).astype(np.float64) @ (b.T if tb else b).astype(np.float64)
    for kid in KERNELS:
        got = odl.matmul(a, b, ta, tb, kernel=kid)
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5 * max(1.0, np.abs(ref).max(initial=0)))


def test_serial_kernel_matches_reference_bit_for_bit_in_fp32(backend):
    a, b = operands(7, 11, 50, False, False, np.float32, seed=2)
    np.testing.assert_array_equal(odl.matmul(a, b, kernel=0), odl_ref.matmul(a, b))


def test_fp16_edge_values(backend):
    """Overflow to inf, subnormal products and signed zeros round like numpy's float16."""
    a = np.array([[60000.0, 2.0, 1e-4, -0.0], [6e-8, 6e-8, 0.5, 3.0]], np.float16)
    b = np.array([[2.0], [1.0], [1e-4], [-0.0]], np.float16)
    for acc16 in (False, True):
        want = odl_ref.matmul(a, b, acc16=acc16)
        for kid in KERNELS:
            got = odl.matmul(a, b, acc16=acc16, kernel=kid)
            np.testing.assert_array_equal(got.view(np.uint16), want.view(np.uint16))
    assert np.isinf(odl.matmul(a, b)[0, 0])


def test_threads_do_not_change_results(backend):
    a, b = operands(20, 300, 30, False, False, np.float16, seed=3)
    one = odl.matmul(a, b, threads=1)
    np.testing.assert_array_equal(odl.matmul(a, b, threads=3).view(np.uint16), one.view(np.uint16))


def test_im2col_reference_matches_torch_conv():
    import torch

    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 7, 6)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 2)).astype(np.float32)
    pad = (0, 1, 1, 0)  # top, left, bottom, right
    y, _, _ = odl_ref.conv_steps(x, w, np.zeros((4, 3, 3)), 2, pad)
    xt = torch.nn.functional.pad(torch.from_numpy(x)[None], (pad[1], pad[3], pad[0], pad[2]))
    want = torch.nn.functional.conv2d(xt, torch.from_numpy(w), stride=2)[0].numpy()
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("bad", ["dtype", "shape", "kernel", "acc16"])
def test_bad_arguments(bad):
    a, b = operands(3, 4, 5, False, False, np.float32)
    if bad == "dtype":
        with pytest.raises(TypeError, match="dtype"):
            odl.matmul(a, b.astype(np.float16))
    elif bad == "shape":
        with pytest.raises(ValueError, match="b"):
            odl.matmul(a, b[:4])
    elif bad == "kernel":
        with pytest.raises(ValueError, match="kernel"):
            odl.matmul(a, b, kernel=99)
    else:
        with pytest.raises(ValueError, match="acc16"):
            odl.matmul(a, b, acc16=True)
