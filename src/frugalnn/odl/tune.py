"""Per-shape kernel choice for the ODL engine: every matmul of a training step (layer, step) is
timed with each kernel of the family on random operands of its shape, dtype and transposes; the
fastest is kept. Answers are cached in memory and in $FRUGALNN_CACHE_DIR (default
~/.cache/frugalnn)/odl_tune.json, keyed by CPU model, backend, dtype, accumulation, shape and
threads (like the T-MAC tuner). FRUGALNN_ODL_TUNE=0 turns timing off (the default tile is used).
The file is only a cache: anything unreadable in it is ignored.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from frugalnn import _core, cachedir
from frugalnn.kernels import backend, op_backends
from frugalnn.kernels import odl as kodl

import functools

VERSION = 2  # bump when the kernel family changes: old cache entries are ignored
_MEMORY: dict[str, int] = {}


@functools.lru_cache(maxsize=None)
def _cpu_model() -> str:
    from frugalnn import info

    return info.cpu()["model"]


def cache_path() -> Path:
    return cachedir.root() / "odl_tune.json"


def enabled() -> bool:
    return os.environ.get("FRUGALNN_ODL_TUNE", "1").strip() not in ("0", "false", "no", "off")


def key(dtype: str, acc16: bool, m, n, k, ta, tb, threads: int) -> str:
    return f"v{VERSION}|{_cpu_model()}|{backend()}|{dtype}|acc{16 if acc16 else 32}|{m}x{n}x{k}|{int(ta)}{int(tb)}|t{threads}"


def _load() -> dict:
    try:
        data = json.loads(cache_path().read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items()
            if isinstance(k, str) and type(v) is int and 0 <= v < _core.odl.num_kernels}


def _store(entries: dict) -> None:
    try:
        path = cache_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        merged = {**_load(), **entries}
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(merged, indent=0, sort_keys=True))
        tmp.replace(path)
    except OSError:
        pass  # a read-only home only loses the cache


def time_kernel(m, n, k, ta, tb, dtype: str, acc16: bool, kernel: int, threads: int, repeats: int = 5) -> float:
    rng = np.random.default_rng(0)
    np_dtype = np.float16 if dtype == "fp16" else np.float32
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(np_dtype)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(np_dtype)
    out = np.empty((m, n), np_dtype)
    kodl.matmul(a, b, ta, tb, acc16, kernel, threads, out)
    best = float("inf")
    reps = max(1, int(2e5 // max(1, m * n * k)))
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(reps):
            kodl.matmul(a, b, ta, tb, acc16, kernel, threads, out)
        best = min(best, (time.perf_counter() - t0) / reps)
    return best


def choose(m, n, k, ta, tb, dtype: str, acc16: bool, threads: int) -> int:
    if op_backends().get("odl") != "avx2":  # the tile kernels are AVX2 (they also run under the avx512 backend)
        return 0
    kk = key(dtype, acc16, m, n, k, ta, tb, threads)
    if kk in _MEMORY:
        return _MEMORY[kk]
    cached = _load().get(kk)
    if cached is not None:
        _MEMORY[kk] = cached
        return cached
    if not enabled():
        return _core.odl.default_kernel
    times = {kid: time_kernel(m, n, k, ta, tb, dtype, acc16, kid, threads) for kid in range(1, _core.odl.num_kernels)}
    best = min(times, key=times.get)
    _MEMORY[kk] = best
    _store({kk: best})
    return best


def tune_net(net, dtype: str, acc16: bool, threads: int) -> dict:
    """Sets the kernel of every (node, step) of `net`; returns {(node, step): kernel id}."""
    chosen = {}
    for node, step, m, n, k, ta, tb in net.matmul_shapes():
        kid = choose(m, n, k, ta, tb, dtype, acc16, threads)
        net.set_kernel(node, step, kid)
        chosen[(node, step)] = kid
    return chosen
