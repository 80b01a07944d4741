"""frugalnn.lmul.arith / lmul_matmul: numpy and torch in, matmul's shape rules, autograd, torch.compile,
FLOP counting, and clear errors for bad input."""
import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from frugalnn.lmul import lmul, lmul_matmul, paper_offset
from frugalnn.kernels import lmul_ref

F32 = np.float32


def bits(x):
    return np.asarray(x, F32).view(np.uint32)


def loop_reference(a, b, m, rounding="truncate", offset=None):
    """sum_k lmul(a[..., :, k], b[..., k, :]) in k order, built from the elementwise function alone."""
    a, b = np.asarray(a, F32), np.asarray(b, F32)
    acc = None
    for k in range(a.shape[-1]):
        p = lmul(a[..., :, k:k + 1], b[..., k:k + 1, :], m, rounding, offset)
        acc = p if acc is None else (acc + p).astype(F32)
    return acc


def test_paper_offsets():
    assert [paper_offset(m) for m in range(1, 8)] == [1, 2, 3, 3, 4, 4, 4]


@pytest.mark.parametrize("a_shape,b_shape", [((5, 7), (7, 3)), ((2, 5, 7), (7, 3)), ((2, 5, 7), (2, 7, 3)),
                                             ((3, 1, 4, 6), (2, 6, 5)), ((7,), (7, 3)), ((2, 5, 7), (7,)),
                                             ((4, 300), (300, 2))])
def test_matmul_shape_rules_and_values(a_shape, b_shape):
    rng = np.random.default_rng(len(a_shape) * 10 + len(b_shape))
    a, b = rng.standard_normal(a_shape).astype(F32), rng.standard_normal(b_shape).astype(F32)
    got = lmul_matmul(a, b, 3, "nearest")
    assert got.shape == np.matmul(a, b).shape and got.dtype == F32
    a2 = a[None] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    want = loop_reference(a2, b2, 3, "nearest")
    if a.ndim == 1:
        want = want[..., 0, :]
    if b.ndim == 1:
        want = want[..., 0]
    np.testing.assert_array_equal(bits(got), bits(want))
    # an approximation of the right matmul: no product errs by more than a fraction of its magnitude
    assert np.all(np.abs(got - np.matmul(a, b)) <= 0.3 * np.matmul(np.abs(a), np.abs(b)))


def test_transposed_views_are_read_without_a_copy_and_agree():
    rng = np.random.default_rng(0)
    a, w = rng.standard_normal((9, 40)).astype(F32), rng.standard_normal((12, 40)).astype(F32)
    np.testing.assert_array_equal(bits(lmul_matmul(a, w.T, 4)), bits(lmul_matmul(a, np.ascontiguousarray(w.T), 4)))
    np.testing.assert_array_equal(bits(lmul_matmul(a, w.T, 4)), bits(lmul_matmul(a, w.T, 4, impl="numpy")))


def test_other_float_dtypes_are_converted():
    a = np.linspace(-2, 2, 12, dtype=np.float64).reshape(3, 4)
    np.testing.assert_array_equal(lmul_matmul(a, a.T, 4), lmul_matmul(a.astype(F32), a.T.astype(F32), 4))
    t = torch.linspace(-2, 2, 12).reshape(3, 4)
    assert lmul(t.half(), t.bfloat16(), 4).dtype == torch.float32


def test_elementwise_broadcasts_and_keeps_the_container():
    a = np.arange(1, 7, dtype=F32).reshape(2, 3)
    got = lmul(a, np.array([2.0], F32), 23, offset=23)
    assert isinstance(got, np.ndarray) and got.shape == (2, 3)
    t = lmul(torch.from_numpy(a), torch.tensor([2.0]), 23, offset=23)
    assert isinstance(t, torch.Tensor)
    np.testing.assert_array_equal(t.numpy(), got)
    # powers of two times anything: exact up to the 2^-l term (here 2^-23: one ulp of the mantissa)
    np.testing.assert_allclose(got, a * 2, rtol=2e-7)


def test_torch_matches_numpy_bits():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((2, 3, 17, 33)).astype(F32), rng.standard_normal((2, 3, 33, 9)).astype(F32)
    t = lmul_matmul(torch.from_numpy(a), torch.from_numpy(b), 4)
    np.testing.assert_array_equal(bits(t.numpy()), bits(lmul_matmul(a, b, 4)))
    kt = torch.from_numpy(np.ascontiguousarray(b.swapaxes(-1, -2))).transpose(-1, -2)  # K^T as attention writes it
    np.testing.assert_array_equal(bits(lmul_matmul(torch.from_numpy(a), kt, 4).numpy()), bits(t.numpy()))


def test_autograd_uses_the_exact_products_gradient():
    torch.manual_seed(0)
    a = torch.randn(2, 5, 7, requires_grad=True)
    w = torch.randn(4, 7, requires_grad=True)
    g = torch.randn(2, 5, 4)
    (lmul_matmul(a, w.t(), 3) * g).sum().backward()
    a2, w2 = a.detach().clone().requires_grad_(), w.detach().clone().requires_grad_()
    (torch.matmul(a2, w2.t()) * g).sum().backward()
    torch.testing.assert_close(a.grad, a2.grad)
    torch.testing.assert_close(w.grad, w2.grad)
    x, y = torch.randn(6, requires_grad=True), torch.randn(6, requires_grad=True)
    lmul(x, y, 4).sum().backward()
    torch.testing.assert_close(x.grad, y.detach())
    torch.testing.assert_close(y.grad, x.detach())


def test_flop_counter_counts_two_flops_per_mac():
    a, b = torch.randn(3, 5, 7), torch.randn(3, 7, 11)
    with FlopCounterMode(display=False) as counter:
        lmul_matmul(a, b, 4)
        lmul_matmul(a, b.transpose(-1, -2).contiguous().transpose(-1, -2), 4)  # the transposed path too
    flops = counter.get_flop_counts()["Global"]
    assert flops[torch.ops.frugalnn.lmul_matmul] == 2 * (2 * 3 * 5 * 7 * 11)


def test_fake_tensor_and_compile():
    import frugalnn.lmul.nn  # noqa: F401

    torch.library.opcheck(torch.ops.frugalnn.lmul_matmul.default,
                          (torch.randn(2, 3, 4), torch.randn(2, 5, 4), 4, False, 3, True))
    torch.library.opcheck(torch.ops.frugalnn.lmul.default, (torch.randn(3, 4), torch.randn(3, 4), 3, True, 3))

    def f(x, y):
        return lmul_matmul(x, y, 4).relu().sum(-1)

    x, y = torch.randn(4, 8), torch.randn(8, 6)
    torch.testing.assert_close(torch.compile(f, backend="aot_eager", fullgraph=True)(x, y), f(x, y))


def test_bad_input_is_named():
    a = np.ones((2, 3), F32)
    with pytest.raises(ValueError, match="mantissa_bits: expected 1..23, got 24"):
        lmul(a, a, 24)
    with pytest.raises(ValueError, match="mantissa_bits: expected 1..23, got 0"):
        lmul_matmul(a, a.T, 0)
    with pytest.raises(TypeError, match="mantissa_bits: expected an int"):
        lmul(a, a, 3.5)
    with pytest.raises(ValueError, match="rounding: expected one of 'truncate', 'nearest', got 'up'"):
        lmul(a, a, 4, "up")
    with pytest.raises(ValueError, match="offset: expected 0..23, got 30"):
        lmul(a, a, 4, offset=30)
    with pytest.raises(TypeError, match="a: expected a floating-point array, got dtype int64"):
        lmul(np.ones(3, np.int64), a[0], 4)
    with pytest.raises(TypeError, match="b: expected a floating-point tensor"):
        lmul_matmul(torch.ones(2, 3), torch.ones(3, 2, dtype=torch.int32), 4)
    with pytest.raises(ValueError, match="K = 3 vs 2"):
        lmul_matmul(a, a, 4)
    with pytest.raises(ValueError, match="batch dimensions do not broadcast"):
        lmul_matmul(np.ones((2, 2, 3), F32), np.ones((3, 3, 2), F32), 4)
    with pytest.raises(ValueError, match="at least one dimension"):
        lmul_matmul(np.float32(2), a, 4)
    with pytest.raises(ValueError, match="shape mismatch|broadcast"):
        lmul(a, np.ones(4, F32), 4)


def test_nan_and_inf_follow_the_rule_in_matmul():
    a = np.array([[1.0, np.inf], [0.0, 2.0]], F32)
    b = np.array([[0.0, 1.0], [1.0, -1.0]], F32)
    got = lmul_matmul(a, b, 4)
    # row 0: 1*0 + inf*1 = inf; 1*1 + inf*(-1) = -inf. row 1: 0*0 + 2*1, 0*1 + 2*(-1)
    assert got[0, 0] == np.inf and got[0, 1] == -np.inf
    assert got[1, 0] == lmul_ref.lmul_bits(F32(2), F32(1), 4, False, 3)
    a[0, 0] = np.nan
    assert bits(lmul_matmul(a, b, 4))[0, 0] == 0x7FC00000


# Issue 19, item 8: numpy.matmul's shape rules exactly, on both containers and both implementations.
MATMUL_SHAPES = [((7,), (7,)), ((7,), (3, 7, 2)), ((2, 3, 7), (7,)), ((3, 0), (0, 4)), ((0,), (0,)),
                 ((2, 1, 3, 0), (5, 0, 4)), ((0, 3), (3, 4)), ((3, 4), (4, 0)), ((0,), (2, 0, 3)), ((4, 0), (0,)),
                 ((0, 2, 3), (3, 4)), ((2, 1, 3, 4), (1, 5, 4, 2)), ((1, 1, 3, 4), (4, 2))]


@pytest.mark.parametrize("impl", ["native", "numpy"])
@pytest.mark.parametrize("a_shape,b_shape", MATMUL_SHAPES)
def test_matmul_follows_numpy_shapes_including_1d_and_zero_sizes(a_shape, b_shape, impl, backend):
    rng = np.random.default_rng(7)
    a, b = rng.standard_normal(a_shape).astype(F32), rng.standard_normal(b_shape).astype(F32)
    want = np.matmul(a, b)
    got = lmul_matmul(a, b, 3, impl=impl)
    assert isinstance(got, np.ndarray) and got.shape == want.shape and got.dtype == F32
    t = lmul_matmul(torch.from_numpy(a), torch.from_numpy(b), 3, impl=impl)
    assert isinstance(t, torch.Tensor) and tuple(t.shape) == want.shape
    np.testing.assert_array_equal(bits(t.numpy()), bits(got))
    if a_shape[-1] == 0:  # K = 0: the empty sum
        assert not got.any()
    else:
        assert np.all(np.abs(got - want) <= 0.3 * np.matmul(np.abs(a), np.abs(b)))


def test_vector_dot_is_zero_dimensional():
    got = lmul_matmul(np.ones(7, F32), np.ones(7, F32), 3)
    assert got.shape == () and got == lmul_matmul(torch.ones(7), torch.ones(7), 3).item()
    assert lmul(torch.tensor(2.0), torch.tensor(3.0), 4, impl="numpy").shape == ()


def test_zero_k_backward_gives_empty_gradients():
    a = torch.ones(3, 0, requires_grad=True)
    out = lmul_matmul(a, torch.ones(0, 4), 3)
    assert out.shape == (3, 4) and not out.any()
    out.sum().backward()
    assert a.grad.shape == (3, 0)


@pytest.mark.parametrize("fn", [lmul, lmul_matmul])
@pytest.mark.parametrize("threads", [-5, 0, 2.5, True])
def test_threads_validated_on_the_torch_path_too(fn, threads):
    # Before: the torch-tensor path ignored `threads`, so threads=-5 was accepted there.
    for x in (np.ones((2, 2), F32), torch.ones(2, 2)):
        with pytest.raises((ValueError, TypeError), match="threads"):
            fn(x, x, 3, threads=threads)


def test_threads_honoured_on_the_torch_path_and_restored():
    before = torch.get_num_threads()
    x = torch.randn(4, 8)
    np.testing.assert_array_equal(lmul_matmul(x, x.T, 3, threads=1).numpy(), lmul_matmul(x, x.T, 3).numpy())
    assert torch.get_num_threads() == before
