"""Fuzz the LUTWeight constructors (issue 19): from_codes, from_float and from_gguf either build a
weight whose every effective value is finite and right, or raise TypeError/ValueError naming the
problem -- never a crash, a hang, another exception, a silent cast or a weight holding inf/NaN.

Drawn: code arrays of every integer, bool, float and odd dtype, in and out of range, odd shapes
and ranks; scales/offsets with NaN, inf, 3e38, subnormals, float64 past float32, wrong shapes;
bits and group sizes in and out of range; float weights of every float dtype (numpy and torch)
with special values; raw GGUF blobs of every supported and some unsupported types, as bytes,
bytearray, memoryview or arrays, with sizes exact or off, shapes huge, negative or not ints, and
valid blocks with random bytes flipped. A built weight is checked against q * scale + offset
(from_codes), the gguf package's dequantizer (from_gguf), and multiplied once.

Cases are drawn with a fixed seed and run in one child per backend (tests/fuzz/harness.py), so a
crash fails the test naming its case. FRUGALNN_FUZZ_EXAMPLES=N draws N cases per test.
"""
from __future__ import annotations

import pytest
from hypothesis import strategies as st

from frugalnn.kernels import available_backends
from harness import draw_cases, examples, run_batch

ALLOWED = ("TypeError", "ValueError")

SETUP = r'''
import numpy as np
import gguf
import torch
from frugalnn.tmac import LUTWeight, matmul
from frugalnn.tmac.gguf import FORMATS
from frugalnn.tmac.weight import MAX_WEIGHT, _row_major

_F32_MAX = float(np.finfo(np.float32).max)


def _fill(shape, dtype, fill, bits, seed):
    rng = np.random.default_rng(seed)
    top = (1 << bits) - 1 if isinstance(bits, int) and not isinstance(bits, bool) and 0 < bits < 16 else 3
    v = rng.integers(0, top + 1, shape).astype(np.float64)
    if fill == "max":
        v[...] = top
    elif fill == "neg" and v.size:
        v.flat[rng.integers(v.size)] = -1
    elif fill == "over" and v.size:
        v.flat[rng.integers(v.size)] = top + 1
    elif fill == "frac" and v.size:
        v.flat[rng.integers(v.size)] = 2.7
    elif fill == "huge" and v.size:
        v.flat[rng.integers(v.size)] = 2.0**40
    elif fill == "nan" and v.size:
        v.flat[rng.integers(v.size)] = np.nan
    with np.errstate(all="ignore"):
        if dtype.startswith("torch."):
            return torch.from_numpy(v.astype(dtype[6:] if dtype != "torch.bool" else bool))
        if dtype == "list":
            return v.tolist()
        return v.astype(dtype)


_SPECIAL = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf, "3e38": 3e38, "1e38": 1e38, "sub": 1e-45, "-0": -0.0,
            "1e300": 1e300, "edge": None}


def _real(shape, fill, bits, seed, dtype="float32"):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(shape)
    if fill == "zero":
        a[...] = 0
    elif fill == "edge" and a.size:  # right at the bound: (2^b - 1) |scale| = float32 max
        a[...] = _F32_MAX / ((1 << bits) - 1) if isinstance(bits, int) and 0 < bits < 16 else 1.0
    elif fill in _SPECIAL and a.size:
        a.flat[rng.integers(a.size)] = _SPECIAL[fill]
    with np.errstate(all="ignore"):
        return a.astype(dtype) if dtype != "list" else a.tolist()


def _check_weight(w, ref=None, bound=None):
    m, k = w.shape
    d = w.dequantize()
    assert d.shape == (m, k) and d.dtype == np.float32
    assert np.isfinite(d).all(), "a built weight holds inf/NaN"
    assert np.isfinite(w.ws).all() and (w.zt is None or np.isfinite(w.zt).all())
    if ref is not None:  # float32 rounding of the largest intermediate, (2^b - 1) |scale| + |offset|
        if bound is None and getattr(w, "kq", None) is not None:  # file's fp16 scales (issue 18): gguf's own order
            bound = np.abs(np.asarray(ref, np.float64))
        if bound is None:  # from the layout: |(2q - (2^b - 1)) ws| <= (2^b - 1) |ws|, plus |zt|
            ws = np.repeat(_row_major(w.ws, m), w.group_size, axis=1).astype(np.float64)
            zt = 0 if w.zt is None else np.repeat(_row_major(w.zt, m), w.group_size, axis=1).astype(np.float64)
            bound = ((1 << w.bits) - 1) * np.abs(ws) + np.abs(zt)
        ref = np.asarray(ref, np.float64)
        tol = 1e-6 * np.asarray(bound, np.float64) + 1e-37
        assert (np.abs(d - ref) <= tol).all(), "dequantize disagrees with q * scale + offset"
    if m and np.abs(d).max(initial=0) < 1e30:
        x = np.random.default_rng(0).standard_normal((2, k)).astype(np.float32)
        y = matmul(x, w, threads=1)
        assert y.shape == (2, m) and np.isfinite(y).all()


def codes_case(dtype, shape, fill, bits, group, scale_fill, offset_fill, sdtype, sshape, symmetric, kind, seed):
    codes = _fill(shape, dtype, fill, bits, seed)
    k = shape[-1] if len(shape) else 0
    groups = k // group if isinstance(group, int) and not isinstance(group, bool) and group > 0 else 1
    m = shape[0] if len(shape) else 0
    sshape = (m, groups) if sshape == "right" else (m, groups + 1)
    scales = _real(sshape, scale_fill, bits, seed + 1, sdtype)
    offsets = _real(sshape, offset_fill, bits, seed + 2, sdtype)
    w = LUTWeight.from_codes(codes, scales, offsets, bits, group, symmetric=symmetric, kind=kind)
    q = np.asarray(codes.numpy() if isinstance(codes, torch.Tensor) else codes)
    assert np.array_equal(w.codes(), q.astype(np.uint8)) and np.array_equal(q, w.codes()), "codes were cast"
    s = np.repeat(np.asarray(scales, np.float32).astype(np.float64), w.group_size, axis=1)
    o = 0 if symmetric else np.repeat(np.asarray(offsets, np.float32).astype(np.float64), w.group_size, axis=1)
    # symmetric: the level grid (2q - (2^b - 1)) * scale / 2, the offset is implied
    ref = (q - ((1 << bits) - 1) / 2) * s if symmetric else q * s + o
    _check_weight(w, ref, ((1 << bits) - 1) * np.abs(s) + np.abs(o))


def float_case(dtype, shape, fill, bits, group, symmetric, seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(shape) * (1e37 if fill == "huge" else 1e-40 if fill == "tiny" else 1.0)
    if fill in ("nan", "inf", "3e38", "max") and a.size:
        a.flat[rng.integers(a.size)] = {"nan": np.nan, "inf": np.inf, "3e38": 3e38, "max": _F32_MAX}[fill]
    if fill == "const":
        a[...] = 0.5
    with np.errstate(all="ignore"):
        if dtype.startswith("torch."):
            w_in = torch.from_numpy(a.astype(np.float32)).to(getattr(torch, dtype[6:]))
        else:
            w_in = a.astype(dtype)
    w = LUTWeight.from_float(w_in, bits, group, symmetric)
    _check_weight(w)


def _blob(name, m, k, how, seed):
    rng = np.random.default_rng(seed)
    blk, nbytes, _ = FORMATS.get(name, (32, 18, 4))
    size = max(0, m) * max(0, k) // blk * nbytes if m >= 0 and 0 < k < 1 << 20 and m < 1 << 12 else 64
    if how == "random":
        return rng.integers(0, 256, size, dtype=np.uint8)
    if how == "short":
        return rng.integers(0, 256, max(0, size - 1), dtype=np.uint8)
    if how == "long":
        return rng.integers(0, 256, size + 1, dtype=np.uint8)
    # valid blocks, then `how` = "flip:N" random bytes overwritten
    w = rng.standard_normal((m, k)).astype(np.float32)
    if name.startswith("TQ"):
        w = np.clip(np.rint(w), -1, 1)
    data = np.ascontiguousarray(gguf.quants.quantize(w, gguf.GGMLQuantizationType[name])).reshape(-1).copy()
    for _ in range(int(how.split(":")[1])):
        data[rng.integers(data.size)] = rng.integers(0, 256)
    return data


def gguf_case(name, qtype, m, k, how, container, seed):
    data = _blob(name, m, k, how, seed)
    arg = {"bytes": lambda: data.tobytes(), "bytearray": lambda: bytearray(data.tobytes()),
           "memoryview": lambda: memoryview(data.tobytes()), "array": lambda: data,
           "2-d": lambda: data.reshape(max(1, m), -1) if m > 0 and data.size % m == 0 else data,
           "float32 view": lambda: data.view(np.float32) if data.size % 4 == 0 else data,
           "list": lambda: data.tolist()}[container]()
    w = LUTWeight.from_gguf(arg, qtype=qtype, shape=(m, k))
    ref = None
    if name in FORMATS and w.shape[0]:
        with np.errstate(all="ignore"):
            ref = gguf.quants.dequantize(data, gguf.GGMLQuantizationType[name]).reshape(w.shape)
    _check_weight(w, ref)
'''

INT_DTYPES = ["uint8", "int8", "int16", "int32", "int64", "uint16", "uint64", "bool", "torch.int32", "torch.uint8",
              "torch.bool", "list"]
ODD_DTYPES = ["float16", "float32", "float64", "complex64", "torch.float32", "<U1", "object"]
BITS = [1, 2, 3, 4, 8, 1, 2, 4, 0, 9, -1, 2.0, "4", True]
REAL_FILLS = ["normal", "normal", "normal", "zero", "edge", "nan", "inf", "-inf", "3e38", "1e38", "sub", "-0", "1e300"]


def _shape(draw, k_choices):
    m = draw(st.sampled_from([0, 1, 3, 32, 33, 70]))
    k = draw(st.sampled_from(k_choices))
    rank = draw(st.sampled_from([2, 2, 2, 2, 1, 3]))
    return (m, k) if rank == 2 else (k,) if rank == 1 else (2, m, k)


@st.composite
def codes_case(draw):
    """A valid call, then (half of the time) one or two of its arguments mutated."""
    bits = draw(st.sampled_from([1, 2, 3, 4, 8]))
    k = draw(st.sampled_from([4, 8, 64, 128, 256]))
    group = draw(st.sampled_from([g for g in (4, 8, 32, 64, 128, 256) if k % g == 0]))
    args = {"dtype": draw(st.sampled_from(INT_DTYPES)), "shape": (draw(st.sampled_from([0, 1, 3, 32, 33, 70])), k),
            "fill": draw(st.sampled_from(["valid", "valid", "max"])), "bits": bits, "group": group,
            "scale_fill": draw(st.sampled_from(["normal", "normal", "zero", "edge", "sub", "-0"])),
            "offset_fill": draw(st.sampled_from(["normal", "zero", "sub", "-0"])),
            "sdtype": draw(st.sampled_from(["float32", "float32", "float64", "float16", "int32", "list"])),
            "sshape": "right", "symmetric": draw(st.booleans()), "kind": draw(st.sampled_from(["int", "ternary"])),
            "seed": draw(st.integers(0, 2**31))}
    mutations = {"dtype": st.sampled_from(ODD_DTYPES), "shape": st.builds(lambda d: d, st.sampled_from(
                     [(args["shape"][0], 0), (args["shape"][0], 6), (k,), (2, 3, k), (args["shape"][0], k + 1)])),
                 "fill": st.sampled_from(["neg", "over", "frac", "huge", "nan"]), "bits": st.sampled_from(BITS[5:]),
                 "group": st.sampled_from([0, 3, 6, -4, 2**62, 4.0, 3 * k]),
                 "scale_fill": st.sampled_from(REAL_FILLS[5:]), "offset_fill": st.sampled_from(REAL_FILLS[5:]),
                 "sdtype": st.sampled_from(["complex64", "<U1"]), "sshape": st.just("wrong"),
                 "kind": st.sampled_from(["other", "", None])}
    for name in draw(st.lists(st.sampled_from(sorted(mutations)), max_size=2)) if draw(st.booleans()) else ():
        args[name] = draw(mutations[name])
    return "codes_case(" + ", ".join(f"{v!r}" for v in args.values()) + ")"


@st.composite
def float_case(draw):
    """A valid call (special values included), then (half of the time) one argument mutated."""
    k = draw(st.sampled_from([4, 8, 64, 128, 256]))
    args = {"dtype": draw(st.sampled_from(["float32", "float32", "float64", "float16", "torch.float32",
                                           "torch.float16", "torch.bfloat16"])),
            "shape": (draw(st.sampled_from([0, 1, 3, 32, 33, 70])), k),
            "fill": draw(st.sampled_from(["normal", "normal", "huge", "tiny", "nan", "inf", "3e38", "max", "const"])),
            "bits": draw(st.sampled_from([1, 2, 3, 4, 8, "ternary"])),
            "group": draw(st.sampled_from([g for g in (4, 32, 64, 128, 256) if k % g == 0])),
            "symmetric": draw(st.booleans()), "seed": draw(st.integers(0, 2**31))}
    mutations = {"dtype": st.sampled_from(["int32", "bool", "complex64"]),
                 "shape": st.sampled_from([(k,), (2, 3, k), (3, 0), (3, 6)]),
                 "bits": st.sampled_from([0, 9, "x", 2.0, True]), "group": st.sampled_from([0, 6, 3 * k, -4])}
    for name in draw(st.lists(st.sampled_from(sorted(mutations)), max_size=1)) if draw(st.booleans()) else ():
        args[name] = draw(mutations[name])
    return "float_case(" + ", ".join(f"{v!r}" for v in args.values()) + ")"


@st.composite
def gguf_case(draw):
    """Valid blocks (some bytes flipped) in every container, then (half of the time) one thing wrong."""
    name = draw(st.sampled_from(["Q4_0", "Q4_1", "Q8_0", "TQ1_0", "TQ2_0"]))
    blk = 256 if name.startswith("TQ") else 32
    args = {"name": name, "qtype": name, "m": draw(st.sampled_from([1, 2, 5, 33])),
            "k": draw(st.sampled_from([blk, 2 * blk, 4 * blk])),
            "how": draw(st.sampled_from(["flip:0", "flip:0", "flip:1", "flip:8", "random"])),
            "container": draw(st.sampled_from(["bytes", "bytearray", "memoryview", "array", "2-d", "float32 view"])),
            "seed": draw(st.integers(0, 2**31))}
    mutations = {"qtype": st.sampled_from(["Q2_K", "F32", "bogus", 99, -1, 2.5, True]),
                 "m": st.sampled_from([0, -1, 2**40]), "k": st.sampled_from([blk + 4, 0, -blk, 2**62]),
                 "how": st.sampled_from(["short", "long"]), "container": st.just("list")}
    picked = draw(st.lists(st.sampled_from(sorted(mutations)), max_size=1)) if draw(st.booleans()) else []
    for field in picked:
        args[field] = draw(mutations[field])
    if args["how"].startswith("flip") and not (1 <= args["m"] < 100 and args["k"] in (blk, 2 * blk, 4 * blk)):
        args["how"] = "random"  # valid blocks exist only for valid shapes
    return "gguf_case(" + ", ".join(f"{v!r}" for v in args.values()) + ")"


BACKENDS = list(available_backends())


@pytest.mark.parametrize("backend", BACKENDS)
def test_constructors(backend):
    """from_codes, from_float and from_gguf cases, in one child per backend (one interpreter start)."""
    kinds = {"codes": draw_cases(codes_case(), examples(250)), "float": draw_cases(float_case(), examples(120)),
             "gguf": draw_cases(gguf_case(), examples(200))}
    cases = [c for drawn in kinds.values() for c in drawn]
    outcomes = run_batch(SETUP, cases, timeout=180, allowed=ALLOWED,
                         env={"FRUGALNN_KERNELS": backend, "FRUGALNN_LUT_TUNE": "0"})
    start = 0
    for kind, drawn in kinds.items():  # each generator must still reach the constructor's success path
        built = outcomes[start:start + len(drawn)].count("ok")
        assert built >= len(drawn) // 5, f"{kind}: only {built} of {len(drawn)} cases built a weight"
        start += len(drawn)
