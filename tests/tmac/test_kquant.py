"""K-quant GGUF tensors (Q2_K..Q6_K) and Q5_0/Q5_1 into LUTWeight as stored: dequantize() is gguf's bit for bit,
the two-level scales stay within 5% of the file's bytes, matmul runs the two-level kernel, bad blocks are named."""
import gguf
import numpy as np
import pytest

from frugalnn.tmac import LUTWeight, matmul
from frugalnn.tmac.kquants import KQUANTS

RNG = np.random.default_rng(18)
T = gguf.GGMLQuantizationType
# byte offsets of the fp16 d / dmin fields of each K-quant super-block
F16_FIELDS = {"Q2_K": (80, 82), "Q3_K": (108,), "Q4_K": (0, 2), "Q5_K": (0, 2), "Q6_K": (208,)}
FILE_BPW = {name: 8 * spec[0] / 256 for name, spec in KQUANTS.items()}


def kquant_blocks(name, m, k, rng=RNG, scale=1e-2):
    """Valid random blocks: any bytes are valid K-quant codes and sub-scales; d/dmin finite fp16."""
    nbytes = KQUANTS[name][0]
    b = rng.integers(0, 256, (m * k // 256, nbytes), dtype=np.uint8)
    for off in F16_FIELDS[name]:
        d = (rng.uniform(0.1, 1, b.shape[0]) * scale).astype(np.float16)
        b[:, off:off + 2] = d.view(np.uint8).reshape(-1, 2)
    return b.reshape(m, -1)


def nmse(a, b):
    return float(np.mean((a - b) ** 2) / np.mean(b ** 2))


@pytest.mark.parametrize("name", list(KQUANTS))
@pytest.mark.parametrize("m,k", [(40, 512), (1, 256), (70, 768)])
def test_kquant_dequantize_is_gguf_bit_for_bit(name, m, k):
    data = kquant_blocks(name, m, k)
    w = LUTWeight.from_gguf(data, qtype=T[name], shape=(m, k))
    assert w.scales == "kq" and w.source == f"gguf:{name}" and w.group_size == 256
    ref = gguf.quants.dequantize(data, T[name]).reshape(m, k)
    np.testing.assert_array_equal(w.dequantize(), ref)


@pytest.mark.parametrize("name", ["Q5_0", "Q5_1"])
def test_q5_dequantize_is_gguf_bit_for_bit(name):
    w32 = RNG.standard_normal((40, 512)).astype(np.float32)
    data = gguf.quants.quantize(w32, T[name])
    w = LUTWeight.from_gguf(data, qtype=T[name], shape=(40, 512))
    np.testing.assert_array_equal(w.dequantize(), gguf.quants.dequantize(data, T[name]).reshape(40, 512))
    assert w.bits == 5


@pytest.mark.parametrize("name", list(KQUANTS))
def test_stored_bytes_within_5_percent_of_the_file(name):
    m, k = 256, 2048
    w = LUTWeight.from_gguf(kquant_blocks(name, m, k), qtype=T[name], shape=(m, k))
    assert w.bits_per_weight <= FILE_BPW[name] * 1.05, (w.bits_per_weight, FILE_BPW[name])


@pytest.mark.parametrize("name", list(KQUANTS))
def test_kquant_matmul_close_to_dense(backend, name):
    m, k = 70, 768
    data = kquant_blocks(name, m, k)
    w = LUTWeight.from_gguf(data, qtype=T[name], shape=(m, k))
    ref_w = w.dequantize()
    x = RNG.standard_normal((3, k)).astype(np.float32)
    y = matmul(x, w)
    assert nmse(y, x @ ref_w.T) < 1e-3
    np.testing.assert_array_equal(w.gemv_fn()(x[:1]), y[:1])
    flat = w.flat_scales()
    assert flat.scales == "f32" and flat.group_size == KQUANTS[name][2]
    np.testing.assert_allclose(flat.dequantize(), ref_w, rtol=1e-5, atol=1e-6 * np.abs(ref_w).max())


def test_non_finite_super_block_scale_is_named():
    data = kquant_blocks("Q4_K", 4, 512).copy()
    data[2, 144 + 2:144 + 4] = np.array([np.inf], np.float16).view(np.uint8)  # dmin of row 2, super-block 1
    with pytest.raises(ValueError, match=r"Q4_K block 1 of row 2 .*non-finite dmin"):
        LUTWeight.from_gguf(data, qtype=T.Q4_K, shape=(4, 512))
    data = kquant_blocks("Q6_K", 2, 256).copy()
    data[1, 208:210] = np.array([np.nan], np.float16).view(np.uint8)
    with pytest.raises(ValueError, match=r"Q6_K block 0 of row 1 .*non-finite d ="):
        LUTWeight.from_gguf(data, qtype=T.Q6_K, shape=(2, 256))


def test_truncated_kquant_data_names_the_block():
    data = kquant_blocks("Q2_K", 4, 512).reshape(-1)
    with pytest.raises(ValueError, match=r"block 6 \(row 3\) is cut short"):
        LUTWeight.from_gguf(data[:-100], qtype=T.Q2_K, shape=(4, 512))


@pytest.mark.parametrize("name", ["IQ2_XXS", "IQ4_XS", "IQ3_S"])
def test_iq_types_name_the_type_and_the_conversion(name):
    with pytest.raises(ValueError, match=rf"{name} is not supported.*llama-quantize.*Q4_K_M"):
        LUTWeight.from_gguf(np.zeros(1000, np.uint8), qtype=T[name], shape=(4, 256))


def test_real_file_types_still_lossless():
    from frugalnn.data.packages import smollm2_gguf

    reader = gguf.GGUFReader(str(smollm2_gguf()))
    seen = set()
    for t in reader.tensors:
        name = t.tensor_type.name
        if len(t.shape) != 2 or name in seen or name in ("F32", "F16") or int(t.shape[-1]) > 4096:
            continue
        seen.add(name)
        w = LUTWeight.from_gguf(t)
        np.testing.assert_array_equal(w.dequantize(), gguf.quants.dequantize(t.data, t.tensor_type).reshape(w.shape))
    assert seen


@pytest.mark.parametrize("name,bpw", [("Q4_0", 4.5), ("Q4_1", 5.0), ("Q5_0", 5.5), ("Q5_1", 6.0), ("Q8_0", 8.5)])
def test_one_level_types_keep_fp16_scales(backend, name, bpw):
    m, k = 64, 1024
    w32 = RNG.standard_normal((m, k)).astype(np.float32)
    data = gguf.quants.quantize(w32, T[name])
    w = LUTWeight.from_gguf(data, qtype=T[name], shape=(m, k))
    assert w.scales == "kq" and w.group_size == 32
    assert w.bits_per_weight == pytest.approx(bpw)
    ref = gguf.quants.dequantize(data, T[name]).reshape(m, k)
    np.testing.assert_array_equal(w.dequantize(), ref)
    f32 = LUTWeight.from_gguf(data, qtype=T[name], shape=(m, k), scales="f32")
    assert f32.scales == "f32" and f32.bits_per_weight >= bpw + 1
    x = RNG.standard_normal((3, k)).astype(np.float32)
    assert nmse(matmul(x, w), x @ ref.T) < 1e-3
    # same codes, same table group: the two scale forms agree to float32 rounding
    np.testing.assert_allclose(matmul(x, w), matmul(x, f32), rtol=1e-4, atol=1e-4 * np.abs(x @ ref.T).max())


def test_tq2_0_keeps_its_fp16_scale(backend):
    """TQ2_0 held as stored (codes and the fp16 d per 256): 2.06 b/w, dequantize() is gguf's bit for bit, and the
    two-level kernel (sc = 1) agrees with the float32-scale form of the same codes."""
    m, k = 64, 768
    w32 = RNG.standard_normal((m, k)).astype(np.float32)
    data = gguf.quants.quantize(w32, T.TQ2_0)
    w = LUTWeight.from_gguf(data, qtype=T.TQ2_0, shape=(m, k))
    assert w.scales == "kq" and w.group_size == 256
    assert w.bits_per_weight == pytest.approx(2.0625)  # the file's: 2-bit codes + one fp16 per 256
    ref = gguf.quants.dequantize(data, T.TQ2_0).reshape(m, k)
    np.testing.assert_array_equal(w.dequantize(), ref)
    f32 = LUTWeight.from_gguf(data, qtype=T.TQ2_0, shape=(m, k), scales="f32")
    x = RNG.standard_normal((3, k)).astype(np.float32)
    assert nmse(matmul(x, w), x @ ref.T) < 1e-3
    np.testing.assert_allclose(matmul(x, w), matmul(x, f32), rtol=1e-4, atol=1e-4 * np.abs(x @ ref.T).max())
