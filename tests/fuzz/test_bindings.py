"""Fuzz every binding of the compiled core (`frugalnn._core`) and every `frugalnn.kernels` wrapper
(issue 19). A case either succeeds or raises a clean argument error (TypeError, ValueError,
IndexError, OverflowError); a crash, a hang or any other exception fails the test and names the
case's code.

Each case starts from a valid call (sizes drawn small, so it also runs the kernel) and mutates up
to two things: an array's dtype, rank, a size, strides, zero-stride views that claim sizes of
2^40 without memory, empty arrays with huge other axes, read-only outputs, outputs overlapping an
input (exactly or shifted), special values (NaN, +-inf, 3e38, 2^125+, subnormals); an integer to
0, -1, 2^31, 2^62, 2^63 - 1; a float to NaN, inf, 1e300; `threads` to 0, 10^6, 2^31. The Llama
decoder gets whole build-finish-step sequences. A differential part checks the kernels against
their numpy references on edge values (bit for bit where the kernel promises it).

Cases are drawn with a fixed seed (harness.draw_cases) and run in batches in a child process
(harness.run_batch), once per backend. FRUGALNN_FUZZ_EXAMPLES=N draws N cases per batch.
"""
from __future__ import annotations

import pytest
from hypothesis import strategies as st

from frugalnn.kernels import available_backends
from harness import draw_cases, examples, run_batch

SETUP = r'''
import numpy as np
from numpy.lib.stride_tricks import as_strided
from frugalnn import _core
from frugalnn.kernels import attention, dfp, lmul, lut, pack, llama

_rng = np.random.default_rng(0)
_SPECIAL = np.array([np.nan, np.inf, -np.inf, 3e38, -3e38, 6e37, 1e-42, -0.0, 1e-38, 2.0**124], np.float32)


def A(shape, dtype="float32", fill="normal", ro=False):
    """A fresh C-contiguous array of `shape`, filled by kind."""
    a = np.zeros(shape, dtype)
    if a.size and fill != "zeros":
        if a.dtype.kind == "f":
            v = _rng.standard_normal(a.shape) * 3
            if fill == "special":
                v = np.where(_rng.random(a.shape) < 0.25, _rng.choice(_SPECIAL, a.shape), v)
            elif fill in ("nan", "inf"):
                v[...] = getattr(np, fill)
            elif fill == "huge":
                v = v * 1e37
            elif fill == "tiny":
                v = v * 1e-39
            with np.errstate(all="ignore"):
                a[...] = v
        else:
            a[...] = _rng.integers(0, 4 if fill == "codes" else 100, a.shape)
    if ro:
        a.setflags(write=False)
    return a


def S(shape, dtype="float32"):
    """A strided view (every other element of the last axis) of `shape`."""
    shape = tuple(shape)
    return A(shape[:-1] + (2 * shape[-1],), dtype)[..., ::2] if shape else A((), dtype)


def V(shape, dtype="float32"):
    """A zero-stride view claiming `shape` (2^40 is fine) over one element of memory."""
    return as_strided(np.zeros(1, dtype), tuple(shape), (0,) * len(shape))


def PAIR(shape_a, shape_b, shift, dtype="float32"):
    """Two views of one buffer: a = buf[:size_a], b = buf[shift:shift + size_b] (overlap by shift)."""
    na, nb = int(np.prod(shape_a)), int(np.prod(shape_b))
    buf = A((max(na, shift + nb, 1),), dtype)
    return buf[:na].reshape(shape_a), buf[shift:shift + nb].reshape(shape_b)
'''

HUGE = 2**40
INTS = [0, -1, 1, 2, 3, 4, 7, 8, 31, 32, 33, 2**31 - 1, 2**31, 2**32, 2**62, 2**63 - 1, -2**63, 2**64, -2**31]
FLOATS = ["float('nan')", "float('inf')", "-float('inf')", "1e300", "-1e300", "0.0", "-0.0", "1e-300", "3.5e38",
          "np.float32(0.5)", "np.float64(2.0)", "np.int64(3)", "10**400", "True", "None", "'x'"]
THREADS = [-1, 0, -2, 1, 2, 3, 7, 255, 256, 257, 10**6, 2**31, 2**63 - 1, -2**63, "None", "1.5", "True"]
DTYPES = ["float64", "float16", "int32", "uint8", "int8", "int64", "bool"]
FILLS = ["normal", "zeros", "special", "nan", "inf", "huge", "tiny"]


class Arr:
    """An array argument: its valid shape and dtype, whether the binding writes it."""

    def __init__(self, shape, dtype="float32", out=False, fill="normal"):
        self.shape, self.dtype, self.out, self.fill = tuple(shape), dtype, out, fill

    def expr(self) -> str:
        return f"A({self.shape!r}, {self.dtype!r}, {self.fill!r})"


class T(int):
    """A `threads` argument (mutated from THREADS rather than INTS)."""


def _pos_ints(hi):
    return st.integers(1, hi)


# ---- raw bindings: (call, args) with every argument valid for the drawn sizes ----------------------

@st.composite
def _attention(draw):
    nk, g, l, s, e, ev = draw(_pos_ints(3)), draw(_pos_ints(2)), draw(_pos_ints(60)), draw(_pos_ints(140)), \
        draw(_pos_ints(20)), draw(_pos_ints(20))
    n = nk * g
    return "_core.attention.fused_attention", [
        Arr((n, l, e)), Arr((nk, s, e)), Arr((nk, s, ev)), draw(st.booleans()), 0.25, Arr((n, l, ev), out=True),
        T(draw(st.sampled_from([-1, 1, 2, 3])))]


@st.composite
def _attention_misc(draw):
    n = draw(st.integers(0, 40))
    if draw(st.booleans()):
        return "_core.attention.exp", [Arr((n,), fill="normal"), Arr((n,), out=True)]
    return "_core.attention.workspace_bytes", [draw(_pos_ints(64)), draw(_pos_ints(64))]


@st.composite
def _lmul(draw):
    mb, off = draw(st.integers(1, 23)), draw(st.integers(0, 23))
    if draw(st.booleans()):
        n = draw(st.integers(0, 70))
        return "_core.lmul.elementwise", [Arr((n,)), Arr((n,)), mb, draw(st.booleans()), off, Arr((n,), out=True),
                                          T(draw(st.sampled_from([-1, 1, 2])))]
    b, m, k, n = draw(st.integers(0, 3)), draw(st.integers(0, 20)), draw(st.integers(0, 40)), draw(st.integers(0, 20))
    tb = draw(st.booleans())
    return "_core.lmul.matmul", [Arr((b, m, k)), Arr((b, n, k) if tb else (b, k, n)), mb, draw(st.booleans()), off, tb,
                                 Arr((b, m, n), out=True), T(draw(st.sampled_from([-1, 1, 2]))), draw(st.booleans())]


def _lut_sizes(draw):
    bits = draw(st.integers(1, 8))
    g = 4 * draw(st.integers(1, 24))
    k = g * draw(st.integers(1, 3))
    m = draw(st.integers(0, 70))
    units, groups, spg = -(-m // 32), k // g, -(-g // 8)
    return bits, g, k, m, units, groups, units * groups * spg * bits * 32, groups * spg * 32


@st.composite
def _lut(draw):
    bits, g, k, m, units, groups, nbytes, tb = _lut_sizes(draw)
    which = draw(st.sampled_from(["transform", "untransform", "build_tables", "matmul", "matmul", "layout_sizes"]))
    if which == "layout_sizes":
        return "_core.lut.layout_sizes", [m, k, g, bits]
    if which == "transform":
        return "_core.lut.transform", [Arr((m, k), "uint8", fill="codes"), bits, g, Arr((nbytes,), "uint8", out=True), T(2)]
    if which == "untransform":
        return "_core.lut.untransform", [Arr((nbytes,), "uint8"), bits, g, Arr((m, k), "uint8", out=True), T(2)]
    if which == "build_tables":
        return "_core.lut.build_tables", [Arr((k,)), g, Arr((tb,), "int8", out=True), Arr((groups,), out=True),
                                          Arr((groups,), "int32", out=True)]
    n = draw(st.integers(0, 5))
    return "_core.lut.matmul", [
        Arr((n, k), fill=draw(st.sampled_from(FILLS))), Arr((nbytes,), "uint8"), Arr((units, groups, 32)),
        Arr((units, groups, 32)), m, bits, g, draw(st.booleans()), Arr((n, m), out=True),
        T(draw(st.sampled_from([-1, 1, 2, 3]))), draw(st.integers(1, 4)), draw(st.integers(1, 4)),
        draw(st.integers(1, 40)), draw(st.sampled_from([0, 64, 256]))]


@st.composite
def _pack(draw):
    bits = draw(st.integers(1, 8))
    g = draw(st.integers(1, 12))
    n, k = draw(st.integers(0, 9)), g * draw(st.integers(0, 5))
    rb, groups = (k * bits + 7) // 8, k // g
    which = draw(st.sampled_from(["quantize_pack", "dequantize_unpack", "pack_codes", "unpack_codes", "packed_row_bytes"]))
    if which == "packed_row_bytes":
        return "_core.pack.packed_row_bytes", [k, bits]
    if which == "quantize_pack":
        return "_core.pack.quantize_pack", [Arr((n, k), fill=draw(st.sampled_from(FILLS))), bits, g, draw(st.booleans()),
                                            Arr((n, rb), "uint8", out=True), Arr((n, groups), out=True),
                                            Arr((n, groups), out=True), T(2)]
    if which == "dequantize_unpack":
        return "_core.pack.dequantize_unpack", [Arr((n, rb), "uint8"), Arr((n, groups)), Arr((n, groups)), bits, g,
                                                Arr((n, k), out=True), T(2)]
    if which == "pack_codes":
        return "_core.pack.pack_codes", [Arr((n, k), "uint8", fill="codes"), bits, Arr((n, rb), "uint8", out=True), T(2)]
    return "_core.pack.unpack_codes", [Arr((n, rb), "uint8"), bits, Arr((n, k), "uint8", out=True), T(2)]


@st.composite
def _llama(draw):
    which = draw(st.sampled_from(["rms_norm", "rope", "attend", "silu_mul", "gemv"]))
    n = draw(st.integers(1, 40))
    if which == "rms_norm":
        return "_core.llama.rms_norm", [Arr((n,), fill=draw(st.sampled_from(FILLS))), Arr((n,)), 1e-5, Arr((n,), out=True)]
    if which == "rope":
        h, rd = draw(_pos_ints(5)), 2 * draw(st.integers(0, n // 2))
        return "_core.llama.rope", [Arr((h, n), out=True), rd, Arr((rd // 2, 2))]
    if which == "attend":
        g, s = draw(_pos_ints(4)), draw(_pos_ints(30))
        return "_core.llama.attend", [Arr((g, n), fill=draw(st.sampled_from(FILLS))), Arr((s, n)), Arr((s, n)), 0.5,
                                      Arr((g, n), out=True)]
    if which == "silu_mul":
        return "_core.llama.silu_mul", [Arr((n,), fill=draw(st.sampled_from(FILLS))), Arr((n,)), Arr((n,), out=True)]
    m = draw(st.integers(0, 70))
    return "_core.llama.gemv", [Arr((m, n)), Arr((n,)), Arr((m,), out=True), T(draw(st.sampled_from([-1, 1, 2])))]


@st.composite
def _dfp(draw):
    which = draw(st.sampled_from(["gemm", "gemm", "quantize", "safe_chunk", "peak_macs"]))
    if which == "safe_chunk":
        return "_core.dfp.safe_chunk", [draw(st.sampled_from([0, 1, 32767, 2**32 - 1])),
                                        draw(st.sampled_from([0, 3, 32768, 2**32 - 1]))]
    if which == "peak_macs":  # arguments only: a valid call measures for `seconds`
        return "_core.dfp.peak_macs", [draw(st.sampled_from(["'fp32_fma'", "'int16_madd'", "'x'"])).strip("'"),
                                       draw(st.sampled_from([0.0, -1.0, 11.0, 1e-4]))]
    if which == "quantize":
        bits = draw(st.sampled_from([16, 8]))
        shape = draw(st.sampled_from([(0,), (7,), (3, 5), (2, 3, 4)]))
        return "_core.dfp.quantize", [Arr(shape, fill=draw(st.sampled_from(FILLS))), bits, draw(st.integers(0, 3)),
                                      Arr(shape, "int16" if bits == 16 else "int8", out=True), T(2)]
    m, k, n = draw(st.integers(0, 20)), draw(st.integers(0, 70)), draw(st.integers(0, 40))
    tb = draw(st.booleans())
    return "_core.dfp.gemm", [Arr((m, k), "int16"), Arr((n, k) if tb else (k, n), "int16"), draw(st.integers(-20, 20)),
                              draw(st.integers(-20, 20)), draw(st.sampled_from([1, 2, 31, 1000])), tb,
                              Arr((n,)) if draw(st.booleans()) else None, Arr((m, n), out=True), T(2),
                              draw(st.booleans())]


def _mutated_array(draw, a: Arr) -> str:
    kind = draw(st.sampled_from(["dtype", "strided", "view", "empty_huge", "rank", "size", "zero", "ro", "fill",
                                 "not_array"]))
    shape = a.shape
    if kind == "dtype":
        return f"A({shape!r}, {draw(st.sampled_from(DTYPES))!r})"
    if kind == "strided" and shape:
        return f"S({shape!r}, {a.dtype!r})"
    if kind == "view":  # zero strides, sizes up to 2^40: never C-contiguous, must never be read
        big = tuple(HUGE if draw(st.booleans()) else d for d in shape) or (HUGE,)
        return f"V({big!r}, {a.dtype!r})"
    if kind == "empty_huge" and shape:  # a real, empty array whose other axes are huge
        i = draw(st.integers(0, len(shape) - 1))
        big = tuple(0 if j == i else (HUGE if a.dtype != "float32" else 2**38) for j in range(len(shape)))
        return f"A({big!r}, {a.dtype!r})"
    if kind == "rank":
        return f"A({(shape + (1,)) if draw(st.booleans()) or not shape else shape[1:]!r}, {a.dtype!r})"
    if kind in ("size", "zero") and shape:
        i = draw(st.integers(0, len(shape) - 1))
        d = 0 if kind == "zero" else max(0, shape[i] + draw(st.sampled_from([-1, 1, 32])))
        return f"A({shape[:i] + (d,) + shape[i + 1:]!r}, {a.dtype!r})"
    if kind == "ro":
        return f"A({shape!r}, {a.dtype!r}, ro=True)"
    if kind == "fill" and a.dtype.startswith("float"):
        return f"A({shape!r}, {a.dtype!r}, {draw(st.sampled_from(FILLS))!r})"
    return draw(st.sampled_from(["None", "[1.0, 2.0]", "3.0", "np.float32(1)"]))


@st.composite
def raw_case(draw, families=(_attention, _attention_misc, _lmul, _lut, _pack, _llama, _dfp)):
    call, args = draw(st.sampled_from(families).flatmap(lambda f: f()))
    exprs = [a.expr() if isinstance(a, Arr) else repr(a) for a in args]
    args = [0.0 if a is None else a for a in args]  # an absent optional array mutates like a float
    prelude = []
    for _ in range(draw(st.integers(0, 2))):
        i = draw(st.integers(0, len(args) - 1))
        a = args[i]
        if isinstance(a, Arr):
            outs = [j for j, b in enumerate(args) if isinstance(b, Arr) and b.out and b.dtype == a.dtype and j != i]
            if outs and not a.out and draw(st.booleans()):  # an output sharing memory with this input
                j = draw(st.sampled_from(outs))
                size = 1
                for d in a.shape:
                    size *= d
                shift = draw(st.sampled_from([0, 1, 3, max(size - 1, 0), size]))
                prelude.append(f"_a{i}, _o{j} = PAIR({a.shape!r}, {args[j].shape!r}, {shift}, {a.dtype!r})")
                exprs[i], exprs[j] = f"_a{i}", f"_o{j}"
            else:
                exprs[i] = _mutated_array(draw, a)
        elif isinstance(a, bool):
            exprs[i] = draw(st.sampled_from(["None", "2", "'yes'", "np.bool_(True)"]))
        elif isinstance(a, str):
            exprs[i] = draw(st.sampled_from(["''", "'serial'", "None", "3"]))
        elif isinstance(a, int):
            pool = THREADS if isinstance(a, T) else INTS
            v = draw(st.sampled_from(pool + [a - 1, a + 1, -a, 2 * a]))
            exprs[i] = v if isinstance(v, str) else repr(v)
        else:
            exprs[i] = draw(st.sampled_from(FLOATS))
    return "\n".join(prelude + [f"{call}({', '.join(map(str, exprs))})"])


# ---- the Llama decoder: whole sequences -----------------------------------------------------------

DECODER = """\
dim, L, H, Hkv, D, rd, ffn, vocab, maxp = 8, {L}, 2, 1, 4, {rd}, 8, 10, 4
c = dict(dim=dim, L=L, H=H, Hkv=Hkv, D=D, rd=rd, ffn=ffn, vocab=vocab, maxp=maxp)
{ctor_override}
emb, rope, norm = A((vocab, dim)), A((maxp, rd // 2, 2)), A((dim,))
{emb_override}
d = _core.llama.Decoder(c["dim"], c["L"], c["H"], c["Hkv"], c["D"], c["rd"], c["ffn"], c["vocab"], c["maxp"], {eps},
                        emb, rope, norm, {threads})
SH = dict(qkv=((H + 2 * Hkv) * D, dim), o=(dim, H * D), gate_up=(2 * ffn, dim), down=(dim, ffn), head=(vocab, dim))
W = {{slot: A(shape) for slot, shape in SH.items()}}
{weight_override}
for l in range(L):
    d.set_norms(l, A((dim,)), A((dim,)))
    for slot in ("qkv", "o", "gate_up", "down"):
        {add_line}
d.add_dense(-1, "head", W["head"], 1)
d.finish()
k, v = A((L, 1, Hkv, maxp, D)), A((L, 1, Hkv, maxp, D))
{cache_override}
d.set_cache(k, v)
logits = A((vocab,))
{logits_override}
for pos in range({steps}):
    {step_line}
"""

LUT_ADD = ("if slot == {slot!r}:\n"
           "            rows, kk = SH[slot]\n"
           "            g = {g} if kk % {g} == 0 else kk\n"
           "            codes = A((rows, kk), 'uint8', 'codes') % (1 << {bits})\n"
           "            u, gr, _, _ = lut.layout_sizes(rows, kk, g, {bits})\n"
           "            d.add_lut(l, slot, lut.transform(codes, {bits}, g), A((u, gr, 32)), A((u, gr, 32)), {m}, {bits},\n"
           "                      {group}, {has_zero}, {threads}, {units}, {cols}, {col_block}, {prefetch})\n"
           "        else:\n"
           "            d.add_dense(l, slot, W[slot], {threads})")


@st.composite
def decoder_case(draw):
    fields = dict(L=draw(st.integers(1, 2)), rd=draw(st.sampled_from([0, 2, 4])), eps=1e-5, threads=1, steps=2,
                  token=0, pos=None, ctor_override="", weight_override="", cache_override="", logits_override="",
                  add_line="d.add_dense(l, slot, W[slot], 1)", emb_override="",
                  step_line="d.step({token}, pos if {pos} is None else {pos}, logits)")
    for _ in range(draw(st.integers(0, 2))):
        what = draw(st.sampled_from(["ctor", "eps", "threads", "weight", "cache", "logits", "token", "pos", "lut",
                                     "lut", "row"]))
        if what == "ctor":
            key = draw(st.sampled_from(["dim", "L", "H", "Hkv", "D", "rd", "ffn", "vocab", "maxp"]))
            fields["ctor_override"] = f"c[{key!r}] = {draw(st.sampled_from(INTS + [2**62 + 1, 2**61, 2**40, 5, 6]))!r}"
        elif what == "eps":
            fields["eps"] = draw(st.sampled_from(FLOATS[:9]))
        elif what == "threads":
            fields["threads"] = draw(st.sampled_from(THREADS))
        elif what == "weight":
            slot = draw(st.sampled_from(["qkv", "o", "gate_up", "down", "head"]))
            fields["weight_override"] = f"W[{slot!r}] = {_mutated_array(draw, Arr((8, 8)))}"
        elif what == "cache":  # a cache overlapping a weight, or malformed
            fields["cache_override"] = draw(st.sampled_from([
                "k = W['qkv'].reshape(-1)[:k.size].reshape(k.shape) if W['qkv'].size >= k.size else k",
                "v = emb.reshape(-1)[:v.size].reshape(v.shape)", "v = k", "k = A((L, 1, Hkv, maxp, D + 1))",
                "k = S(k.shape)", "k = A((L, 0, Hkv, 0, D)); v = A((L, 0, Hkv, 0, D))", "k = V((L, 1, Hkv, 2**40, D))"]))
        elif what == "logits":  # logits overlapping the embedding, a weight, the cache
            fields["logits_override"] = draw(st.sampled_from([
                "logits = emb.reshape(-1)[:vocab]", "logits = emb.reshape(-1)[3:3 + vocab]", "logits = norm[:vocab]",
                "logits = W['head'].reshape(-1)[1:1 + vocab]", "logits = k.reshape(-1)[:vocab]",
                "logits = A((vocab,), ro=True)", "logits = A((vocab + 1,))", "logits = S((vocab,))"]))
        elif what == "row":  # a decoder without an embedding table, given each step's row (step_row)
            fields["emb_override"] = draw(st.sampled_from(["emb = A((0, dim))"] * 3 + ["emb = A((3, dim))", ""]))
            row = draw(st.sampled_from(["A((dim,))"] * 3 + ["A((dim + 1,))", "logits[:dim]", "S((dim,))",
                                        "A((dim,), 'float64')", "A((0,))", "emb.reshape(-1)[:dim]"]))
            fields["step_line"] = f"d.step_row({row}, pos if {{pos}} is None else {{pos}}, logits)"
        elif what == "token":
            fields["token"] = draw(st.sampled_from(INTS))
        elif what == "pos":
            fields["pos"] = draw(st.sampled_from(INTS))
        else:
            fields["add_line"] = LUT_ADD.format(
                slot=draw(st.sampled_from(["qkv", "o", "gate_up", "down"])), g=draw(st.sampled_from([4, 8])),
                bits=draw(st.integers(1, 8)), m=draw(st.sampled_from(["rows"] * 4 + INTS)),
                group=draw(st.sampled_from(["g"] * 4 + INTS)), has_zero=draw(st.booleans()),
                threads=draw(st.sampled_from([1, 2, -1] + THREADS)), units=draw(st.sampled_from([1, 2, 4, 0, 5])),
                cols=draw(st.sampled_from([1, 2, 0, 9])), col_block=draw(st.sampled_from([1, 32, 0, -1])),
                prefetch=draw(st.sampled_from([0, 64, -1, 2**21])))
    fields["step_line"] = fields["step_line"].format(token=fields["token"], pos=fields["pos"])
    return DECODER.format(**fields)


# ---- the Python wrappers in frugalnn.kernels ------------------------------------------------------

@st.composite
def wrapper_case(draw):
    # mostly valid calls (so most reach the kernel), with one argument often pushed to an extreme
    wild = draw(st.sampled_from(["", "", "", "impl", "threads", "scale", "bits", "g", "int"]))
    impl = draw(st.sampled_from(["'native'", "'numpy'", "'cuda'", "None"] if wild == "impl" else ["'native'"] * 3 + ["'numpy'"]))
    th = draw(st.sampled_from([repr(t) for t in THREADS] if wild == "threads" else ["None", "1", "2"]))
    fill = draw(st.sampled_from(FILLS))
    which = draw(st.sampled_from(["attention", "exp", "lmul_e", "lmul_m", "lut_t", "lut_u", "lut_b", "lut_m",
                                  "pack_q", "pack_d", "pack_p", "pack_u", "llama_r", "llama_rope", "llama_a",
                                  "llama_s", "llama_g", "dfp_q", "dfp_g"]))
    n, m, k = draw(st.integers(0, 6)), draw(st.integers(0, 40)), 4 * draw(st.integers(0, 12))
    scale = draw(st.sampled_from(FLOATS if wild == "scale" else ["None", "0.5", "-1.0", "0.0"]))
    bits = draw(st.sampled_from(INTS if wild == "bits" else [1, 2, 4, 8]))
    g = draw(st.sampled_from(INTS if wild == "g" else [4, 8, 12]))
    big = draw(st.sampled_from(INTS if wild == "int" else [m]))
    if which == "attention":
        qs = draw(st.sampled_from(["(2, 3, 8)", "(4, 5, 8)", "(0, 3, 8)", "(2, 0, 8)", "(2, 3, 0)", "(3, 8)", "(8,)"]))
        ks = draw(st.sampled_from(["(2, 7, 8)", "(1, 7, 8)", "(0, 7, 8)", "(2, 0, 8)", "(2, 7, 0)", "(7, 8)"]))
        return (f"q = A({qs}, fill={fill!r}); k = A({ks}); v = A({ks})\n"
                f"attention.fused_attention(q, k, v, causal={draw(st.booleans())}, scale={scale}, "
                f"enable_gqa={draw(st.booleans())}, threads={th}, impl={impl})")
    if which == "exp":
        return f"attention.exp(A(({m},), fill={fill!r}), impl={impl})"
    if which == "lmul_e":
        return f"lmul.elementwise(A(({m},), fill={fill!r}), A(({m},)), {bits if wild == 'bits' else 3}, True, 3, " \
               f"threads={th}, impl={impl})"
    if which == "lmul_m":
        return f"lmul.matmul(A((2, {n}, {k}), fill={fill!r}), A((2, {k}, {m})), 3, False, 3, threads={th}, impl={impl})"
    if which == "lut_t":
        return f"lut.transform(A(({m}, {k}), 'uint8', 'codes'), {bits}, {g}, threads={th}, impl={impl})"
    if which == "lut_u":
        return f"lut.untransform(lut.transform(A(({m}, {k}), 'uint8', 'codes'), 2, 4), {bits}, {g}, {big}, {k}, threads={th}, impl={impl})"
    if which == "lut_b":
        return f"lut.build_tables(A(({k},), fill={fill!r}), {g}, impl={impl})"
    if which == "lut_m":
        return (f"c = A(({m}, {k}), 'uint8', 'codes'); p = lut.transform(c, 2, 4)\n"
                f"u, gr, _, _ = lut.layout_sizes({m}, {k}, 4, 2)\n"
                f"lut.matmul(A(({n}, {k}), fill={fill!r}), p, A((u, gr, 32)), A((u, gr, 32)), {m}, {bits}, {g}, True, "
                f"threads={th}, units={draw(st.sampled_from([1, 2, 0, 5]))}, cols={draw(st.sampled_from([1, 3, 0]))}, "
                f"col_block={draw(st.sampled_from([1, 32, 0]))}, prefetch={draw(st.sampled_from([0, 64, -1]))}, impl={impl})")
    if which == "pack_q":
        return f"pack.quantize_pack(A(({n}, {k}), fill={fill!r}), {bits}, {g}, {draw(st.booleans())}, threads={th}, impl={impl})"
    if which == "pack_d":
        return (f"pk, s, o = pack.quantize_pack(A(({n}, 24)), 4, 8)\n"
                f"pack.dequantize_unpack(pk, A(s.shape, fill={fill!r}), o, {bits}, {g}, threads={th}, impl={impl})")
    if which == "pack_p":
        return f"pack.pack_codes(A(({n}, {k}), 'uint8', 'codes'), {bits}, threads={th}, impl={impl})"
    if which == "pack_u":
        return f"pack.unpack_codes(pack.pack_codes(A(({n}, {m}), 'uint8', 'codes'), 2), {bits}, {big}, threads={th}, impl={impl})"
    if which == "llama_r":
        return f"llama.rms_norm(A(({m},), fill={fill!r}), A(({m},)), eps={scale if wild == 'scale' else '1e-5'}, impl={impl})"
    if which == "llama_rope":
        return f"llama.rope(A(({n}, {k}), fill={fill!r}), A(({k // 4}, 2)), rope_dim={'None' if big == m else big}, impl={impl})"
    if which == "llama_a":
        return f"llama.attend(A(({n}, {k}), fill={fill!r}), A(({m}, {k})), A(({m}, {k})), scale={scale}, impl={impl})"
    if which == "dfp_q":
        return f"dfp.quantize(A(({n}, {k}), fill={fill!r}), bits={draw(st.sampled_from([16, 8]) if wild != 'bits' else st.sampled_from(INTS))}, threads={th})"
    if which == "dfp_g":
        ch = draw(st.sampled_from(["None", "1", "31", "4096"] + ([repr(i) for i in INTS] if wild == "int" else [])))
        return (f"a = dfp.quantize(A(({n}, {k}), fill={fill!r})).mantissa if {fill!r} not in ('nan', 'inf', 'special') "
                f"else A(({n}, {k}), 'int16')\n"
                f"dfp.gemm(a, A(({m}, {k}), 'int16'), {big if wild == 'int' else -3}, 2, chunk={ch}, "
                f"bias={draw(st.sampled_from(['None', f'A(({m},))', 'A((1,))']))}, threads={th}, transpose_b=True, "
                f"allow_overflow={draw(st.booleans())}, impl={impl})")
    if which == "llama_s":
        return f"llama.silu_mul(A(({m},), fill={fill!r}), A(({m},)), impl={impl})"
    return f"llama.gemv(A(({m}, {k}), fill={fill!r}), A(({k},)), threads={th}, impl={impl})"


# ---- differential: the kernels against their references on edge values ---------------------------

DIFF_SETUP = SETUP + r'''
def same(a, b, what):
    assert a.shape == b.shape and np.array_equal(a, b, equal_nan=True), \
        f"{what}: native and reference differ at {np.argwhere(~((a == b) | (np.isnan(a) & np.isnan(b))))[:3].tolist()}"


def lut_case(m, k, g, bits, n, has_zero, fill, wfill, threads, units, cols):
    codes = _rng.integers(0, 1 << bits, (m, k), dtype=np.uint8)
    packed = lut.transform(codes, bits, g)
    u, gr, _, _ = lut.layout_sizes(m, k, g, bits)
    ws, zt, x = A((u, gr, 32), fill=wfill), A((u, gr, 32), fill=wfill), A((n, k), fill=fill)
    with np.errstate(all="ignore"):
        ref = lut.matmul(x, packed, ws, zt, m, bits, g, has_zero, impl="numpy")
    out = np.full((n, m), np.nan, np.float32)  # a row the kernel forgets stays NaN (np.empty may hold the answer)
    _core.lut.matmul(x, packed, ws, zt, m, bits, g, has_zero, out, threads, units, cols, 3, 0)
    same(out, ref, "lut.matmul")
    if np.all(np.abs(x) < 2.0**125):
        t, ts, isum = lut.build_tables(x[0] if n else np.zeros(k, np.float32), g)
        with np.errstate(all="ignore"):
            rt, rts, risum = lut.build_tables(x[0] if n else np.zeros(k, np.float32), g, impl="numpy")
        same(t, rt, "tables"); same(ts, rts, "table scales"); same(isum, risum, "isum")


def pack_case(n, k, g, bits, sym, fill, threads):
    w = A((n, k), fill=fill)
    try:
        got = pack.quantize_pack(w, bits, g, sym, threads=threads)
    except ValueError as e:  # NaN/inf/too wide: the reference must refuse too
        try:
            with np.errstate(all="ignore"):
                pack.quantize_pack(w, bits, g, sym, impl="numpy")
        except ValueError:
            return
        raise AssertionError(f"native refused what the reference accepts: {e}")
    with np.errstate(all="ignore"):
        ref = pack.quantize_pack(w, bits, g, sym, impl="numpy")
    for a, b, name in zip(got, ref, ("packed", "scales", "offsets")):
        same(a, b, name)
    same(pack.dequantize_unpack(*got, bits, g, threads=threads), pack.dequantize_unpack(*ref, bits, g, impl="numpy"),
         "dequantize")


def lmul_case(b, m, k, n, mb, nearest, off, fill, threads):
    a, bb = A((b, m, k), fill=fill), A((b, k, n), fill=fill)
    with np.errstate(all="ignore"):
        ref = lmul.matmul(a, bb, mb, nearest, off, impl="numpy")
        same(lmul.elementwise(a.ravel(), a.ravel()[::-1].copy(), mb, nearest, off, threads=threads),
             lmul.elementwise(a.ravel(), a.ravel()[::-1].copy(), mb, nearest, off, impl="numpy"), "lmul.elementwise")
    same(lmul.matmul(a, bb, mb, nearest, off, threads=threads), ref, "lmul.matmul")


def dfp_case(m, k, n, chunk, tb, bias, threads, allow):
    a, b = _rng.integers(-32767, 32768, (m, k), dtype=np.int16), _rng.integers(-32767, 32768, (n, k) if tb else (k, n), dtype=np.int16)
    bb = A((n,)) if bias else None
    got = ref = None
    try:
        got = dfp.gemm(a, b, -20, 3, chunk, bb, threads=threads, transpose_b=tb, allow_overflow=allow)
    except ValueError as e:
        try:
            dfp.gemm(a, b, -20, 3, chunk, bb, transpose_b=tb, allow_overflow=allow, impl="numpy")
        except ValueError:
            return
        raise AssertionError(f"native refused what the reference accepts: {e}")
    ref = dfp.gemm(a, b, -20, 3, chunk, bb, transpose_b=tb, allow_overflow=allow, impl="numpy")
    same(np.asarray(got), np.asarray(ref), "dfp.gemm")


def smooth_case(n, l, s, e, fill, scale):
    # finite inputs of moderate or tiny size: float32 kernels vs float64 references, to float32 rounding
    q, k, v = A((n, l, e), fill=fill), A((n, s, e), fill=fill), A((n, s, e), fill=fill)
    for causal in (False, True):
        got = attention.fused_attention(q, k, v, causal=causal, scale=scale)
        ref = attention.fused_attention(q, k, v, causal=causal, scale=scale, impl="numpy")
        np.testing.assert_allclose(got, ref, rtol=2e-4, atol=2e-5 * max(1.0, float(np.abs(v).max())))
    got = llama.attend(q[0], k[0], v[0], scale=scale)
    np.testing.assert_allclose(got, llama.attend(q[0], k[0], v[0], scale=scale, impl="numpy"), rtol=2e-4,
                               atol=2e-5 * max(1.0, float(np.abs(v).max())))
    x = A((e,), fill=fill)
    w = A((e,))
    np.testing.assert_allclose(llama.rms_norm(x, w), llama.rms_norm(x, w, impl="numpy"), rtol=1e-5, atol=0)
'''


@st.composite
def diff_case(draw):
    kind = draw(st.sampled_from(["lut", "lut", "pack", "lmul", "smooth", "dfp"]))
    th = draw(st.sampled_from([1, 2, 3]))
    if kind == "lut":
        bits, g = draw(st.integers(1, 8)), 4 * draw(st.integers(1, 20))
        return (f"lut_case({draw(st.integers(0, 70))}, {g * draw(st.integers(1, 3))}, {g}, {bits}, "
                f"{draw(st.integers(0, 4))}, {draw(st.booleans())}, {draw(st.sampled_from(FILLS))!r}, "
                f"{draw(st.sampled_from(['normal', 'normal', 'tiny', 'huge', 'zeros']))!r}, {th}, "
                f"{draw(st.integers(1, 4))}, {draw(st.integers(1, 4))})")
    if kind == "pack":
        g = draw(st.integers(1, 12))
        return (f"pack_case({draw(st.integers(0, 9))}, {g * draw(st.integers(0, 5))}, {g}, {draw(st.integers(1, 8))}, "
                f"{draw(st.booleans())}, {draw(st.sampled_from(FILLS))!r}, {th})")
    if kind == "dfp":
        return (f"dfp_case({draw(st.integers(0, 13))}, {draw(st.integers(0, 70))}, {draw(st.integers(0, 37))}, "
                f"{draw(st.sampled_from([1, 2, 3, 31, 32, 100]))}, {draw(st.booleans())}, {draw(st.booleans())}, "
                f"{th}, {draw(st.booleans())})")
    if kind == "lmul":
        return (f"lmul_case({draw(st.integers(0, 3))}, {draw(st.integers(0, 9))}, {draw(st.integers(0, 20))}, "
                f"{draw(st.integers(0, 9))}, {draw(st.integers(1, 23))}, {draw(st.booleans())}, "
                f"{draw(st.integers(0, 23))}, {draw(st.sampled_from(FILLS))!r}, {th})")
    return (f"smooth_case({draw(st.integers(1, 3))}, {draw(st.integers(1, 70))}, {draw(st.integers(1, 150))}, "
            f"{draw(st.integers(1, 24))}, {draw(st.sampled_from(['normal', 'tiny', 'zeros']))!r}, "
            f"{draw(st.sampled_from([0.5, 0.0, -1.0, 1e-30, 3.0]))})")


BACKENDS = list(available_backends())


def _env(backend):
    return {"FRUGALNN_KERNELS": backend}


@pytest.mark.parametrize("backend", BACKENDS)
def test_raw_bindings_never_crash(backend):
    cases = draw_cases(raw_case(), examples(1000))
    outcomes = run_batch(SETUP, cases, timeout=120, env=_env(backend))
    assert any(o == "ok" for o in outcomes), "no case reached a kernel: the generator is broken"


@pytest.mark.parametrize("backend", BACKENDS)
def test_decoder_sequences_never_crash(backend):
    cases = draw_cases(decoder_case(), examples(250))
    outcomes = run_batch(SETUP, cases, timeout=120, env=_env(backend))
    assert any(o == "ok" for o in outcomes)


def test_wrappers_never_crash():
    cases = draw_cases(wrapper_case(), examples(800))
    outcomes = run_batch(SETUP, cases, timeout=120)
    assert any(o == "ok" for o in outcomes)


@pytest.mark.parametrize("backend", BACKENDS)
def test_kernels_match_references_on_edge_values(backend):
    run_batch(DIFF_SETUP, draw_cases(diff_case(), examples(250)), timeout=180, env=_env(backend), allowed=())
