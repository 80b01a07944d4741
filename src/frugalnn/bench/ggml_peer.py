"""llama.cpp's own matmul kernel, timed in isolation: ggml_mul_mat through ctypes on the libggml
that the optional `llama-cpp-python` wheel ships (the `peers` extra; never a test requirement).

How the kernel is isolated: a one-node ggml graph, out = mul_mat(W, x) with W [M, K] in a llama.cpp
quantized type (filled by ggml_quantize_chunk from the float weight given) and x [N, K] float32,
computed by the CPU backend with a persistent ggml threadpool, as llama.cpp's decode does. The time
therefore includes what llama.cpp does per matmul (quantizing x to its dot-product type, e.g.
Q8_K, then the vec_dot kernel over all rows) and nothing else: no graph building, no other layers.

What a race needs besides the time comes from here too: `MulMat.result()` (llama.cpp's answer),
`MulMat.dequantize()` (the float weight llama.cpp really multiplies by, decoded from its own bytes
by gguf's reference decoder), `MulMat.bits_per_weight` (bytes held, from ggml_nbytes) and
`GGML.features()` (the ISA the loaded build dispatches to). The llama.cpp peer of `frugalnn bench tmac`
and of the T-MAC experiment.
"""
from __future__ import annotations

import ctypes
import importlib.util
import os
from pathlib import Path

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

# The quantized types raced here; ids, block sizes and bytes per block come from gguf (ggml's own tables).
QUANT_TYPES = ("Q4_0", "Q4_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "TQ1_0", "TQ2_0")
GGML_TYPES = {name: int(GGMLQuantizationType[name]) for name in ("F32", "F16", *QUANT_TYPES)}
BLOCK = {name: GGML_QUANT_SIZES[GGMLQuantizationType[name]][0] for name in QUANT_TYPES}


def bits_per_weight(qtype: str) -> float:
    """Bits per weight a ggml type stores: 8 x bytes per block / weights per block (Q2_K: 2.625)."""
    if qtype not in BLOCK:
        raise ValueError(f"qtype: expected one of {', '.join(BLOCK)}, got {qtype!r}")
    block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType[qtype]]
    return 8.0 * type_size / block


_FEATURES = ("sse3", "ssse3", "avx", "avx2", "avx_vnni", "fma", "f16c", "bmi2", "avx512", "avx512_vbmi",
             "avx512_vnni", "avx512_bf16", "amx_int8", "neon", "arm_fma", "dotprod", "sve")


class PeerUnavailable(RuntimeError):
    pass


class _InitParams(ctypes.Structure):
    _fields_ = [("mem_size", ctypes.c_size_t), ("mem_buffer", ctypes.c_void_p), ("no_alloc", ctypes.c_bool)]


class _CPlan(ctypes.Structure):
    _fields_ = [("work_size", ctypes.c_size_t), ("work_data", ctypes.c_void_p), ("n_threads", ctypes.c_int),
                ("threadpool", ctypes.c_void_p), ("abort_callback", ctypes.c_void_p),
                ("abort_callback_data", ctypes.c_void_p), ("use_ref", ctypes.c_bool)]


def library_dir() -> Path:
    """Where libggml-base/libggml-cpu live: $FRUGALNN_GGML_LIB_DIR, else the llama_cpp package."""
    env = os.environ.get("FRUGALNN_GGML_LIB_DIR")
    if env:
        return Path(env)
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.submodule_search_locations:
        raise PeerUnavailable("llama.cpp peer not installed (pip install 'frugalnn[peers]' builds it, ~30 min)")
    root = Path(next(iter(spec.submodule_search_locations)))
    for cand in (root / "lib", root):
        if (cand / "libggml-cpu.so").exists() or (cand / "libggml-base.so").exists():
            return cand
    raise PeerUnavailable(f"llama_cpp is installed at {root} but holds no libggml-cpu.so")


class GGML:
    """The few ggml entry points needed to time one mul_mat."""

    def __init__(self):
        d = library_dir()
        mode = ctypes.RTLD_GLOBAL
        try:
            self.base = ctypes.CDLL(str(d / "libggml-base.so"), mode=mode)
            self.cpu = ctypes.CDLL(str(d / "libggml-cpu.so"), mode=mode)
        except OSError as e:
            raise PeerUnavailable(f"cannot load libggml from {d}: {e}") from e
        self.lib_dir = d
        b, c, vp = self.base, self.cpu, ctypes.c_void_p
        b.ggml_init.argtypes, b.ggml_init.restype = [_InitParams], vp
        b.ggml_free.argtypes = [vp]
        b.ggml_new_tensor_2d.argtypes, b.ggml_new_tensor_2d.restype = [vp, ctypes.c_int, ctypes.c_int64,
                                                                        ctypes.c_int64], vp
        b.ggml_get_data.argtypes, b.ggml_get_data.restype = [vp], vp
        b.ggml_nbytes.argtypes, b.ggml_nbytes.restype = [vp], ctypes.c_size_t
        b.ggml_mul_mat.argtypes, b.ggml_mul_mat.restype = [vp, vp, vp], vp
        b.ggml_new_graph.argtypes, b.ggml_new_graph.restype = [vp], vp
        b.ggml_build_forward_expand.argtypes = [vp, vp]
        b.ggml_quantize_chunk.argtypes = [ctypes.c_int, vp, vp, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, vp]
        b.ggml_quantize_chunk.restype = ctypes.c_size_t
        b.ggml_threadpool_params_init.argtypes = [vp, ctypes.c_int]
        c.ggml_threadpool_new.argtypes, c.ggml_threadpool_new.restype = [vp], vp
        c.ggml_threadpool_free.argtypes = [vp]
        c.ggml_graph_plan.argtypes, c.ggml_graph_plan.restype = [vp, ctypes.c_int, vp], _CPlan
        c.ggml_graph_compute.argtypes, c.ggml_graph_compute.restype = [vp, ctypes.POINTER(_CPlan)], ctypes.c_int
        if hasattr(c, "ggml_cpu_init"):
            c.ggml_cpu_init()

    def features(self) -> dict:
        """The CPU features this libggml build uses (compiled in and present), as ggml reports them."""
        out = {}
        for f in _FEATURES:
            fn = getattr(self.cpu, f"ggml_cpu_has_{f}", None)
            if fn is not None:
                fn.restype = ctypes.c_int
                out[f] = bool(fn())
        return out

    def version(self) -> str | None:
        fn = getattr(self.base, "ggml_version", None)
        if fn is None:
            return None
        fn.restype = ctypes.c_char_p
        v = fn()
        return v.decode() if v else None

    def describe(self) -> str:
        """One provenance line: 'ggml <version> (avx avx2 fma f16c ...)' as this build reports itself."""
        used = " ".join(f for f, on in self.features().items() if on) or "no SIMD features reported"
        return f"ggml {self.version() or '(version unknown)'} ({used})"


def ternarize(w: np.ndarray) -> np.ndarray:
    """BitNet b1.58 absmean ternary weights {-s, 0, +s}, s = mean |w| (what frugalnn.tmac's "ternary"
    holds). ggml's TQ quantizers take a block's absmax as its scale, so they store these exactly: both
    sides of a ternary race then multiply by the same weights."""
    s = np.float32(np.abs(w, dtype=np.float64).mean()) if w.size else np.float32(0)
    inv = np.float32(1) / s if s > 0 else np.float32(0)
    return (np.clip(np.rint(w * inv), -1, 1) * s).astype(np.float32)


class MulMat:
    """out [N, M] = x [N, K] @ W[M, K].T with W in a ggml quantized type; call .run() to time.

    `weight` [M, K] float is quantized by ggml itself (TQ types: after `ternarize`); `x` [N, K] is
    the input (random N(0, 1) from `seed` when omitted)."""

    def __init__(self, ggml: GGML, qtype: str, m: int, k: int, n: int, threads: int, seed: int = 0,
                 weight: np.ndarray | None = None, x: np.ndarray | None = None):
        if qtype not in BLOCK:
            raise ValueError(f"qtype: expected one of {', '.join(BLOCK)}, got {qtype!r}")
        if k % BLOCK[qtype]:
            raise ValueError(f"{qtype} needs K divisible by {BLOCK[qtype]}, got K = {k}")
        self.g, b = ggml, ggml.base
        self.pool = self.ctx = None
        self.qtype = qtype
        rng = np.random.default_rng(seed)
        w = weight if weight is not None else rng.standard_normal((m, k)).astype(np.float32)
        w = np.ascontiguousarray(w, np.float32)
        if w.shape != (m, k):
            raise ValueError(f"weight: expected shape {(m, k)}, got {w.shape}")
        if qtype.startswith("TQ"):
            w = ternarize(w)
        x = rng.standard_normal((n, k)).astype(np.float32) if x is None else np.ascontiguousarray(x, np.float32)
        if x.shape != (n, k):
            raise ValueError(f"x: expected shape {(n, k)}, got {x.shape}")
        wbytes = m * k * 2 + (1 << 20)  # generous: every supported type is < 2 bytes per weight
        self.ctx = b.ggml_init(_InitParams(wbytes + n * k * 4 + n * m * 4 + (16 << 20), None, False))
        if not self.ctx:
            raise PeerUnavailable("ggml_init failed")
        self.w = b.ggml_new_tensor_2d(self.ctx, GGML_TYPES[qtype], k, m)
        self.x = b.ggml_new_tensor_2d(self.ctx, GGML_TYPES["F32"], k, n)
        b.ggml_quantize_chunk(GGML_TYPES[qtype], w.ctypes.data, b.ggml_get_data(self.w), 0, m, k, None)
        ctypes.memmove(b.ggml_get_data(self.x), x.ctypes.data, x.nbytes)
        self.out = b.ggml_mul_mat(self.ctx, self.w, self.x)
        self.graph = b.ggml_new_graph(self.ctx)
        b.ggml_build_forward_expand(self.graph, self.out)
        params = ctypes.create_string_buffer(4096)  # ggml_threadpool_params (opaque, < 1 KiB)
        b.ggml_threadpool_params_init(params, threads)
        self.pool = ggml.cpu.ggml_threadpool_new(params)
        self.plan = ggml.cpu.ggml_graph_plan(self.graph, threads, self.pool)
        self.work = ctypes.create_string_buffer(max(int(self.plan.work_size), 1))
        self.plan.work_data = ctypes.cast(self.work, ctypes.c_void_p).value
        self.weight_bytes = int(b.ggml_nbytes(self.w))
        self.shape = (n, m)
        self.weight_shape = (m, k)

    @property
    def bits_per_weight(self) -> float:
        """Bits really held per weight: ggml_nbytes of the quantized tensor x 8 / (M K)."""
        m, k = self.weight_shape
        return 8.0 * self.weight_bytes / (m * k)

    def run(self) -> None:
        status = self.g.cpu.ggml_graph_compute(self.graph, ctypes.byref(self.plan))
        if status != 0:
            raise RuntimeError(f"ggml_graph_compute failed with status {status}")

    def result(self) -> np.ndarray:
        """llama.cpp's output [N, M] of the last run()."""
        n, m = self.shape
        buf = (ctypes.c_float * (n * m)).from_address(self.g.base.ggml_get_data(self.out))
        return np.frombuffer(buf, np.float32).reshape(n, m).copy()

    def dequantize(self) -> np.ndarray:
        """The float32 weight [M, K] llama.cpp multiplies by: its quantized bytes decoded by gguf's
        reference decoder (a check of the race that does not trust ggml's own to_float)."""
        from gguf.quants import dequantize

        m, _ = self.weight_shape
        raw = (ctypes.c_uint8 * self.weight_bytes).from_address(self.g.base.ggml_get_data(self.w))
        data = np.frombuffer(raw, np.uint8).reshape(m, -1).copy()
        return dequantize(data, GGMLQuantizationType[self.qtype]).astype(np.float32, copy=False)

    def close(self) -> None:
        if self.pool:
            self.g.cpu.ggml_threadpool_free(self.pool)
            self.pool = None
        if self.ctx:
            self.g.base.ggml_free(self.ctx)
            self.ctx = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


_GGML: GGML | None = None


def load() -> GGML:
    """The ggml peer, or PeerUnavailable with the reason (a broken build as well as an absent one)."""
    global _GGML
    if _GGML is None:
        try:
            _GGML = GGML()
        except PeerUnavailable:
            raise
        except Exception as e:  # e.g. a libggml without a symbol this module binds (another version)
            raise PeerUnavailable(f"libggml at {library_dir()} is unusable: {type(e).__name__}: {e}") from e
    return _GGML
