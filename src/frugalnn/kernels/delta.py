"""The delta-inference engine (csrc/delta) behind the same interface as its numpy twin.

    stream = NativeStream(program, threads=1)    # program: kernels.delta_ref.Program
    stream.reset(); y = stream.push(frame)       # frame float32 [C, H, W]; y float32, CHW flattened
    stream.layer_macs, stream.nonzeros           # per layer, for the last frame

`open_stream(program, impl="native"|"numpy")` picks one. Semantics: csrc/delta/layout.h.
"""
from __future__ import annotations

import numpy as np

from frugalnn import _core
from frugalnn._arrays import is_tensor, require_choice, threads_arg
from frugalnn.kernels.delta_ref import Program, RefStream, dense

IMPLS = ("native", "numpy")


def build_engine(prog: Program):
    if not isinstance(prog, Program):
        raise TypeError(f"program: expected a kernels.delta_ref.Program, got {type(prog).__name__}")
    eng = _core.delta.Engine()
    for L in prog.layers:
        eng.add_layer(L.c, L.h, L.w, L.relu, L.step, L.threshold, L.bias)
    for e in sorted(prog.edges, key=lambda e: e.dst):   # stable: the order edges were added per layer
        if e.kind == "conv":
            eng.add_conv(e.dst, e.src, e.weight, e.stride, e.pad)
        elif e.kind == "identity":
            eng.add_identity(e.dst, e.src)
        elif e.kind == "mean":
            eng.add_mean(e.dst, e.src)
        else:
            raise ValueError(f"edge kind: expected one of conv, identity, mean, got {e.kind!r}")
    eng.finish()
    return eng


def _frame(frame, shape) -> np.ndarray:
    if is_tensor(frame):
        frame = frame.detach().cpu().numpy()
    f = np.asarray(frame)
    if f.dtype != np.float32:
        if not np.issubdtype(f.dtype, np.number):
            raise TypeError(f"frame: expected a float32 array, got dtype {f.dtype}")
        f = f.astype(np.float32)
    if f.shape != tuple(shape):
        f = f.reshape(shape) if f.size == int(np.prod(shape)) else f
        if f.shape != tuple(shape):
            raise ValueError(f"frame: expected shape {tuple(shape)}, got {np.asarray(frame).shape}")
    return np.ascontiguousarray(f)


class NativeStream:
    def __init__(self, prog: Program, threads: int | None = 1):
        self.prog = prog
        self.threads = threads_arg(threads)
        self.engine = build_engine(prog)
        first, last = prog.layers[0], prog.layers[-1]
        self.frame_shape = (first.c, first.h, first.w)
        self.out = np.empty(last.size, np.float32)

    def reset(self) -> None:
        self.engine.reset()

    def push(self, frame, dense: bool = False) -> np.ndarray:
        self.engine.push(_frame(frame, self.frame_shape), self.out, self.threads, bool(dense))
        return self.out.copy()

    @property
    def layer_macs(self) -> list[int]:
        return list(self.engine.macs())

    @property
    def nonzeros(self) -> list[int]:
        return list(self.engine.nonzeros())


class NumpyStream(RefStream):
    def __init__(self, prog: Program, threads: int | None = 1):
        super().__init__(prog)
        first = prog.layers[0]
        self.frame_shape = (first.c, first.h, first.w)

    def push(self, frame, dense: bool = False) -> np.ndarray:
        return super().push(_frame(frame, self.frame_shape), dense)


def open_stream(prog: Program, impl: str = "native", threads: int | None = 1):
    impl = require_choice(impl, "impl", IMPLS)
    return NativeStream(prog, threads) if impl == "native" else NumpyStream(prog, threads)


__all__ = ["IMPLS", "NativeStream", "NumpyStream", "Program", "build_engine", "dense", "open_stream"]
