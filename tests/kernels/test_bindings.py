"""The binding layer: every malformed call is a TypeError/ValueError naming the argument, never a
crash or a silent copy; arrays cross zero-copy from numpy and torch."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from frugalnn import _core
from frugalnn.kernels import available_backends, backend, set_backend, use_backend

P = _core.pack


def _buffers(n=4, k=32, bits=4, group=8):
    return (np.zeros((n, k), np.float32), np.zeros((n, (k * bits + 7) // 8), np.uint8),
            np.zeros((n, k // group), np.float32), np.zeros((n, k // group), np.float32))


def test_wrong_dtype_is_type_error_naming_argument():
    w, p, s, o = _buffers()
    with pytest.raises(TypeError, match=r"w: expected dtype float32, got float64"):
        P.quantize_pack(w.astype(np.float64), 4, 8, True, p, s, o)
    with pytest.raises(TypeError, match=r"packed: expected dtype uint8, got int8"):
        P.quantize_pack(w, 4, 8, True, p.view(np.int8), s, o)


def test_strided_view_is_type_error_not_a_copy():
    w = np.zeros((4, 64), np.float32)[:, ::2]
    _, p, s, o = _buffers()
    with pytest.raises(TypeError, match="w: expected a C-contiguous array"):
        P.quantize_pack(w, 4, 8, True, p, s, o)


@pytest.mark.parametrize("bits", [0, 9, -1, 100])
def test_bits_out_of_range(bits):
    w, p, s, o = _buffers()
    with pytest.raises(ValueError, match=f"bits: expected 1..8, got {bits}"):
        P.quantize_pack(w, bits, 8, True, p, s, o)


def test_bad_shapes_and_groups():
    w, p, s, o = _buffers()
    with pytest.raises(ValueError, match="group_size: 5 does not divide K = 32"):
        P.quantize_pack(w, 4, 5, True, p, s, o)
    with pytest.raises(ValueError, match="group_size: expected >= 1, got 0"):
        P.quantize_pack(w, 4, 0, True, p, s, o)
    with pytest.raises(ValueError, match=r"packed: expected size 16 on axis 1"):
        P.quantize_pack(w, 4, 8, True, np.zeros((4, 15), np.uint8), s, o)
    with pytest.raises(ValueError, match=r"w: expected a 2-d array, got shape \(32,\)"):
        P.quantize_pack(w[0], 4, 8, True, p, s, o)
    with pytest.raises(ValueError, match="threads: expected a positive count"):
        P.quantize_pack(w, 4, 8, True, p, s, o, 0)


def test_overlapping_buffers_rejected():
    codes = np.zeros((2, 16), np.uint8)
    with pytest.raises(ValueError, match="share memory"):
        P.pack_codes(codes, 8, codes)


def test_outputs_may_not_overlap_each_other():
    # (issue 19) only input/output pairs were checked: two outputs over one buffer were accepted
    w, p, s, _ = _buffers()
    with pytest.raises(ValueError, match="scales and offsets share memory"):
        P.quantize_pack(w, 4, 8, True, p, s, s)
    x = np.ones(16, np.float32)
    both = np.zeros(64, np.float32)
    with pytest.raises(ValueError, match="share memory"):
        _core.lut.build_tables(x, 16, both.view(np.int8)[:64], both[:1], both[:1].view(np.int32))


def test_read_only_input_accepted_read_only_output_rejected():
    w, p, s, o = _buffers()
    w.setflags(write=False)
    P.quantize_pack(w, 4, 8, True, p, s, o)
    p.setflags(write=False)
    with pytest.raises(TypeError):
        P.quantize_pack(w, 4, 8, True, p, s, o)


def test_torch_tensors_cross_zero_copy():
    import torch
    w = torch.randn(4, 32)
    p = torch.zeros(4, 16, dtype=torch.uint8)
    s = torch.zeros(4, 4)
    o = torch.zeros(4, 4)
    P.quantize_pack(w, 4, 8, True, p, s, o)
    assert p.abs().sum() > 0  # written in place: no copy was made
    with pytest.raises(TypeError, match="w: expected dtype float32, got float16"):
        P.quantize_pack(w.half(), 4, 8, True, p, s, o)


def test_backend_switch():
    before = backend()
    for b in available_backends():
        with use_backend(b):
            assert backend() == b
    assert backend() == before
    with pytest.raises(ValueError, match="backend: expected one of"):
        set_backend("sse")


def test_env_override_in_subprocess():
    import os
    import subprocess
    import sys

    env = dict(os.environ, FRUGALNN_KERNELS="serial")
    out = subprocess.run([sys.executable, "-c", "import frugalnn.kernels as k; print(k.backend())"],
                         env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "serial"
    env["FRUGALNN_KERNELS"] = "bogus"
    bad = subprocess.run([sys.executable, "-c", "import frugalnn.kernels"], env=env, capture_output=True, text=True)
    assert bad.returncode != 0 and "FRUGALNN_KERNELS" in bad.stderr


_dtypes = st.sampled_from([np.float32, np.float64, np.uint8, np.int8, np.int32, np.float16])
_shapes = st.lists(st.integers(0, 9), min_size=0, max_size=3).map(tuple)


@given(w_dtype=_dtypes, w_shape=_shapes, p_dtype=_dtypes, p_shape=_shapes, s_shape=_shapes,
       bits=st.integers(-2, 10), group=st.integers(-2, 10), threads=st.integers(-3, 4),
       strided=st.booleans())
def test_fuzz_bindings_never_crash(w_dtype, w_shape, p_dtype, p_shape, s_shape, bits, group, threads, strided):
    """Any combination of dtypes, shapes and scalars either works or raises TypeError/ValueError."""
    w = np.zeros(w_shape, w_dtype)
    if strided and w.ndim == 2 and w.shape[1] > 1:
        w = w[:, ::2]
    p = np.zeros(p_shape, p_dtype)
    s = np.zeros(s_shape, np.float32)
    o = np.zeros(s_shape, np.float32)
    for call in (lambda: P.quantize_pack(w, bits, group, True, p, s, o, threads),
                 lambda: P.dequantize_unpack(p, s, o, bits, group, w, threads),
                 lambda: P.pack_codes(p, bits, w, threads),
                 lambda: P.unpack_codes(w, bits, p, threads)):
        try:
            call()
        except (TypeError, ValueError):
            pass
