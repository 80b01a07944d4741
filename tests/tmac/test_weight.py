"""LUTWeight construction (float, ternary, GGUF), dequantize, matmul accuracy and bad input."""
import gguf
import numpy as np
import pytest
import torch

from frugalnn.kernels import pack
from frugalnn.tmac import TERNARY, LUTWeight, matmul
from frugalnn.tmac.weight import MAX_WEIGHT

RNG = np.random.default_rng(0)
W = RNG.standard_normal((70, 256)).astype(np.float32)


def nmse(y, ref):
    y, ref = np.asarray(y, np.float64), np.asarray(ref, np.float64)
    return float(((y - ref) ** 2).sum() / (ref**2).sum())


# symmetric 1-bit uses mean|w| levels, not the group quantizer's: test_binary_levels covers it
@pytest.mark.parametrize("bits,symmetric", [(b, s) for b in (1, 2, 3, 4, 8) for s in (True, False)
                                            if not (b == 1 and s)])
@pytest.mark.parametrize("group", [4, 32, 64, 128, 256])
def test_from_float_dequantize_matches_group_quantizer(backend, bits, group, symmetric):
    w = LUTWeight.from_float(W, bits, group, symmetric)
    p, s, o = pack.quantize_pack(W, bits, group, symmetric)
    ref = pack.dequantize_unpack(p, s, o, bits, group)
    np.testing.assert_allclose(w.dequantize(), ref, rtol=1e-6, atol=1e-6 * np.abs(ref).max())
    x = RNG.standard_normal((3, 256)).astype(np.float32)
    # the only loss against the dequantized weight is the int8 table quantization
    assert nmse(matmul(x, w), x @ w.dequantize().T) < 2e-4


def test_binary_levels_are_sign_times_mean_abs():
    w = LUTWeight.from_float(W, 1, 64)
    level = np.abs(W).reshape(70, 4, 64).mean(axis=2)
    expected = np.where(W >= 0, 1, -1) * np.repeat(level, 64, axis=1)
    np.testing.assert_allclose(w.dequantize(), expected, rtol=1e-6)
    assert w.symmetric


def test_nbytes_is_bits_plus_scales():
    w = LUTWeight.from_float(np.ones((64, 512), np.float32), 2, 128)
    assert w.nbytes == 64 * 512 * 2 // 8 + 64 * 4 * 4  # codes + one fp32 scale per group, no zero term
    assert w.symmetric and w.zt is None
    assert LUTWeight.from_float(W, 3, 64, symmetric=False).zt is not None


def test_ternary_is_absmean_with_one_scale():
    w = LUTWeight.from_float(W, TERNARY)
    scale = np.float32(np.abs(W, dtype=np.float64).mean())
    expected = np.clip(np.rint(W / scale), -1, 1) * scale
    np.testing.assert_allclose(w.dequantize(), expected, rtol=1e-6, atol=1e-7)
    assert w.kind == TERNARY and w.group_size == 256 and w.bits == 2
    x = RNG.standard_normal((2, 256)).astype(np.float32)
    assert nmse(matmul(x, w), x @ expected.T) < 1e-3


def test_matmul_leading_dims_and_torch_in_torch_out():
    w = LUTWeight.from_float(W, 4, 64)
    x = RNG.standard_normal((2, 3, 256)).astype(np.float32)
    y = matmul(x, w)
    assert y.shape == (2, 3, 70) and isinstance(y, np.ndarray)
    yt = matmul(torch.from_numpy(x), w, threads=1)
    assert isinstance(yt, torch.Tensor) and yt.shape == (2, 3, 70)
    np.testing.assert_array_equal(yt.numpy(), y)
    np.testing.assert_array_equal(matmul(x[0, 0], w), y[0, 0])  # 1-d x -> GEMV


def test_real_weights_accuracy_improves_with_bits():
    from frugalnn.data.packages import minilm_tensor

    weight = np.ascontiguousarray(minilm_tensor("encoder.layer.0.attention.self.query.weight"), np.float32)
    x = RNG.standard_normal((4, weight.shape[1])).astype(np.float32)
    ref = x @ weight.T
    errors = [nmse(matmul(x, LUTWeight.from_float(weight, b, 64)), ref) for b in (2, 3, 4)]
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.02


@pytest.mark.parametrize("bad,match", [
    (dict(bits=0), "bits"), (dict(bits=9), "bits"), (dict(bits="three"), "bits"),
    (dict(group_size=6), "multiple of 4"), (dict(group_size=96), "does not divide K"),
])
def test_from_float_bad_arguments(bad, match):
    args = dict(bits=2, group_size=64) | bad
    with pytest.raises((ValueError, TypeError), match=match):
        LUTWeight.from_float(W, **args)


def test_from_float_bad_weights():
    with pytest.raises(ValueError, match="2-d"):
        LUTWeight.from_float(W[0], 2, 64)
    with pytest.raises(ValueError, match="multiple of 4"):
        LUTWeight.from_float(W[:, :10], 2, 2)
    bad = W.copy()
    bad[3, 70] = np.nan
    with pytest.raises(ValueError, match="row 3, group 1"):
        LUTWeight.from_float(bad, 2, 64)
    with pytest.raises(ValueError, match=r"\(3, 70\)"):
        LUTWeight.from_float(bad, TERNARY)
    with pytest.raises(TypeError, match="floating"):
        LUTWeight.from_float(W.astype(np.int32), 2, 64)


def test_matmul_bad_input():
    w = LUTWeight.from_float(W, 2, 64)
    with pytest.raises(ValueError, match=r"\[\.\.\., 256\]"):
        matmul(np.ones((3, 255), np.float32), w)
    with pytest.raises(TypeError, match="LUTWeight"):
        matmul(np.ones((3, 256), np.float32), W)
    with pytest.raises(ValueError, match="threads"):
        matmul(np.ones(256, np.float32), w, threads=0)
    x = np.ones((2, 256), np.float32)
    x[1, 5] = np.nan
    y = matmul(x, w)
    assert np.isfinite(y[0]).all() and np.isnan(y[1]).all()


# ---- GGUF ---------------------------------------------------------------------------------------


def _gguf_blocks(name, shape):
    qt = gguf.GGMLQuantizationType[name]
    w = RNG.standard_normal(shape).astype(np.float32)
    if name.startswith("TQ"):
        w = np.clip(np.rint(w), -1, 1) * RNG.uniform(0.5, 2, (shape[0], 1)).astype(np.float32)
    return gguf.quants.quantize(w, qt), qt


@pytest.mark.parametrize("name", ["Q4_0", "Q8_0", "TQ1_0", "TQ2_0"])
def test_from_gguf_is_lossless(name):
    data, qt = _gguf_blocks(name, (40, 512))
    w = LUTWeight.from_gguf(data, qtype=qt, shape=(40, 512))
    np.testing.assert_array_equal(w.dequantize(), gguf.quants.dequantize(data, qt).reshape(40, 512))
    assert w.source == f"gguf:{name}"


def test_from_gguf_real_q4_1_tensor():
    from frugalnn.data.packages import smollm2_gguf

    reader = gguf.GGUFReader(str(smollm2_gguf()))
    t = next(t for t in reader.tensors if t.tensor_type.name == "Q4_1" and len(t.shape) == 2)
    w = LUTWeight.from_gguf(t)
    ref = gguf.quants.dequantize(t.data, t.tensor_type).reshape(w.shape)
    np.testing.assert_array_equal(w.dequantize(), ref)
    x = RNG.standard_normal((2, w.shape[1])).astype(np.float32)
    assert nmse(matmul(x, w), x @ ref.T) < 1e-3


def test_from_gguf_bad_tensors():
    data, qt = _gguf_blocks("Q4_0", (8, 64))
    with pytest.raises(ValueError, match="truncated or corrupted"):
        LUTWeight.from_gguf(data.reshape(-1)[:-5], qtype=qt, shape=(8, 64))
    with pytest.raises(ValueError, match="blocks of 32"):
        LUTWeight.from_gguf(data, qtype=qt, shape=(16, 32 + 4))
    with pytest.raises(ValueError, match="IQ2_XXS is not supported"):
        LUTWeight.from_gguf(data, qtype=gguf.GGMLQuantizationType.IQ2_XXS, shape=(8, 64))
    corrupt = data.copy().reshape(8, 2, 18)
    corrupt[3, 1, :2] = np.frombuffer(np.float16(np.inf).tobytes(), np.uint8)
    with pytest.raises(ValueError, match="block 1 of row 3"):
        LUTWeight.from_gguf(corrupt, qtype=qt, shape=(8, 64))
    tq, tqt = _gguf_blocks("TQ2_0", (2, 256))
    tq = tq.copy().reshape(2, 66)
    tq[1, 0] = 0xFF
    with pytest.raises(ValueError, match="not ternary"):
        LUTWeight.from_gguf(tq, qtype=tqt, shape=(2, 256))
    with pytest.raises(TypeError, match="qtype"):
        LUTWeight.from_gguf(data)


def test_gemv_fn_matches_matmul_and_validates():
    w = LUTWeight.from_float(W, 4, 64, symmetric=False)
    fn = w.gemv_fn(threads=1)
    x = RNG.standard_normal(256).astype(np.float32)
    np.testing.assert_array_equal(fn(x), matmul(x[None], w, threads=1))
    np.testing.assert_array_equal(fn(x[None]), matmul(x[None], w, threads=1))
    yt = fn(torch.from_numpy(x))
    assert isinstance(yt, torch.Tensor) and yt.shape == (1, 70)
    with pytest.raises(TypeError, match="x"):
        fn(x.astype(np.float64))
    with pytest.raises(ValueError):
        fn(x[:255])
    with pytest.raises(TypeError, match="C-contiguous"):
        fn(np.ascontiguousarray(np.stack([x, x], 1))[:, 0])


# ---- issue 19: from_codes refuses what it used to cast (item 9), from_gguf takes raw bytes (item 14) --------


def _codes_args(m=4, k=8, g=4):
    return np.ones((m, k), np.uint8), np.ones((m, k // g), np.float32), np.zeros((m, k // g), np.float32)


@pytest.mark.parametrize("codes,error,match", [
    (np.full((4, 8), 2.7), TypeError, "integer array, got dtype float64"),
    (np.full((4, 8), 2.0, np.float32), TypeError, "integer array"),
    (np.full((4, 8), -1, np.int64), ValueError, r"element \(0, 0\) is -1, outside 0\.\.15"),
    (np.full((4, 8), 16, np.int32), ValueError, r"is 16, outside 0\.\.15"),
    (np.full((4, 8), 300, np.int16), ValueError, r"is 300, outside"),
    ([[0.5] * 8] * 4, TypeError, "integer array"),
])
def test_from_codes_refuses_codes_instead_of_casting(codes, error, match):
    _, scales, offsets = _codes_args()
    with pytest.raises(error, match=match):
        LUTWeight.from_codes(codes, scales, offsets, 4, 4)


def test_from_codes_reports_the_first_bad_position():
    codes, scales, offsets = _codes_args()
    codes = codes.astype(np.int32)
    codes[2, 5] = -7
    with pytest.raises(ValueError, match=r"element \(2, 5\) is -7"):
        LUTWeight.from_codes(codes, scales, offsets, 4, 4)


@pytest.mark.parametrize("bits", [1, 4, 8])
def test_from_codes_refuses_scales_that_overflow_float32(bits):
    codes, scales, offsets = _codes_args()
    scales[1, 1], offsets[1, 1] = 3e38, 1e38  # weights reach 4e38 (bits 1) and far beyond
    with pytest.raises(ValueError, match=r"row 1, group 1: scale 3e\+38 with offset 1e\+38"):
        LUTWeight.from_codes(codes, scales, offsets, bits, 4)
    # the bound is (2^b - 1) |scale| + |offset| <= float32 max: just inside it every weight is finite
    scales[1, 1] = np.float32(MAX_WEIGHT / 2 / ((1 << bits) - 1))
    offsets[1, 1] = -np.float32(MAX_WEIGHT / 2)
    w = LUTWeight.from_codes(codes, scales, offsets, bits, 4)
    assert np.isfinite(w.dequantize()).all() and np.isfinite(w.ws).all() and np.isfinite(w.zt).all()
    offsets[1, 1] = np.float32(MAX_WEIGHT)
    with pytest.raises(ValueError, match="past float32"):
        LUTWeight.from_codes(codes, scales, offsets, bits, 4)


def test_from_codes_accepts_integer_bool_and_torch_codes():
    codes, scales, offsets = _codes_args()
    ref = LUTWeight.from_codes(codes, scales, offsets, 4, 4).dequantize()
    for c in (codes.astype(np.int64), codes.astype(np.uint16), codes.astype(bool),
              torch.from_numpy(codes.astype(np.int32)), codes.tolist()):
        np.testing.assert_array_equal(LUTWeight.from_codes(c, scales, offsets, 4, 4).dequantize(), ref)
    with pytest.raises(ValueError, match="kind"):
        LUTWeight.from_codes(codes, scales, offsets, 4, 4, kind="float")


@pytest.mark.parametrize("form", ["bytes", "bytearray", "memoryview", "uint8", "uint8 2-d", "int16 view"])
def test_from_gguf_takes_raw_bytes_in_every_form(form):
    data, qt = _gguf_blocks("Q4_0", (8, 64))
    raw = np.ascontiguousarray(data).reshape(-1)
    arg = {"bytes": lambda: raw.tobytes(), "bytearray": lambda: bytearray(raw.tobytes()),
           "memoryview": lambda: memoryview(raw.tobytes()), "uint8": lambda: raw,
           "uint8 2-d": lambda: raw.reshape(8, -1), "int16 view": lambda: raw.view(np.int16)}[form]()
    w = LUTWeight.from_gguf(arg, qtype=qt, shape=(8, 64))
    np.testing.assert_array_equal(w.dequantize(), gguf.quants.dequantize(data, qt).reshape(8, 64))


def test_from_gguf_raw_size_and_shape_are_validated():
    data, qt = _gguf_blocks("Q4_0", (8, 64))
    raw = data.tobytes()
    with pytest.raises(ValueError, match=r"holds 288 bytes, expected 576"):
        LUTWeight.from_gguf(raw, qtype=qt, shape=(16, 64))
    with pytest.raises(ValueError, match="holds 288 bytes, expected"):  # 2^62 x 2^62: no wrap-around to a match
        LUTWeight.from_gguf(raw, qtype=qt, shape=(2**62, 2**62))
    with pytest.raises(TypeError, match=r"shape must be two ints"):
        LUTWeight.from_gguf(raw, qtype=qt, shape=(8.0, 64))
    with pytest.raises(TypeError, match=r"shape must be"):
        LUTWeight.from_gguf(raw, qtype=qt, shape=8)
    with pytest.raises(TypeError, match="bytes, bytearray, memoryview or a numpy array"):
        LUTWeight.from_gguf(list(raw), qtype=qt, shape=(8, 64))
    with pytest.raises(ValueError, match="not a whole number"):
        LUTWeight.from_gguf(raw, qtype=qt, shape=(-8, 64))
