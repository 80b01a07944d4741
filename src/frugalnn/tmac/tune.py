"""Per-shape tile choice for the LUT kernels: a few candidates timed on the real weight, cached.

What is tuned (all runtime parameters of one weight layout, so no re-packing):
  units      32-row units per register block (1, 2, 4): table-load reuse vs register pressure
  cols       activation columns per register block in GEMM (1..4): weight-index reuse across columns
  col_block  columns whose tables are built and consumed together (their tables stay in L2)
  prefetch   software prefetch distance in each 32-row unit's weight stream (0 or 1 KiB): pays off
             once the weight spills L3
The answer is cached in memory and in $FRUGALNN_CACHE_DIR (default ~/.cache/frugalnn)/lut_tune.json,
keyed by CPU model, backend, bits, M, K, group size, GEMV/GEMM and threads. FRUGALNN_LUT_TUNE=0
turns tuning off (the defaults below are used); shapes under MIN_TUNE_WEIGHTS are never tuned.

The file is only a cache: content this module would not have written (not JSON, not an object,
an entry that is not one of the candidates) is ignored with one RuntimeWarning per file and
process, and the next tuning result rewrites the file with the valid entries only.
"""
from __future__ import annotations

import functools
import json
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np

from frugalnn import cachedir

GEMV_CANDIDATES = tuple({"units": u, "cols": 1, "prefetch": p} for u in (1, 2, 4) for p in (0, 1024))
GEMM_CANDIDATES = tuple({"units": u, "cols": c, "col_block": b}
                        for (u, c) in ((1, 2), (2, 2), (1, 4), (1, 3)) for b in (16, 64))
DEFAULT_GEMV = {"units": 2, "cols": 1, "col_block": 32, "prefetch": 0}
DEFAULT_GEMM = {"units": 1, "cols": 4, "col_block": 32, "prefetch": 0}
MIN_TUNE_WEIGHTS = 1 << 20
VERSION = 4  # bump when the candidates, the kernels or the timing change: old cache entries are then ignored
# (4: candidates timed in interleaved rounds; entries timed one after another may hold a choice made under load)
_MEMORY: dict[str, dict] = {}
_WARNED: set[str] = set()  # cache files already reported as corrupt in this process
# Every value a cache entry may hold: what the tuner itself can write (anything else is corruption,
# and an unchecked value such as a huge col_block would reach the kernel).
_ALLOWED = {name: frozenset(c[name] for c in GEMV_CANDIDATES + GEMM_CANDIDATES + (DEFAULT_GEMV, DEFAULT_GEMM)
                            if name in c) for name in DEFAULT_GEMV}


@functools.lru_cache(maxsize=None)
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cache_path() -> Path:
    return cachedir.root() / "lut_tune.json"


def tuning_enabled() -> bool:
    return os.environ.get("FRUGALNN_LUT_TUNE", "1").strip() not in ("0", "false", "no", "off")


def key(w, n: int, threads: int) -> str:
    from frugalnn.kernels import backend

    m, k = w.shape
    kind = "gemv" if n == 1 else "gemm"
    return f"v{VERSION}|{_cpu_model()}|{backend()}|b{w.bits}|{m}x{k}|g{w.group_size}|{kind}|t{threads}"


def _valid_entry(cfg) -> bool:
    return isinstance(cfg, dict) and set(cfg) <= set(_ALLOWED) and all(
        type(v) is int and v in _ALLOWED[name] for name, v in cfg.items())


def _warn_corrupt(path: Path, why: str) -> None:
    if str(path) not in _WARNED:
        _WARNED.add(str(path))
        warnings.warn(f"LUT tuning cache {path}: {why}; ignoring it (it is rebuilt as shapes are tuned again)",
                      RuntimeWarning, stacklevel=4)


def _load_file() -> dict:
    """The valid entries of the cache file ({} when it is missing, unreadable or corrupt)."""
    path = cache_path()
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:  # ValueError: not UTF-8
        _warn_corrupt(path, f"cannot be read ({e})")
        return {}
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as e:  # RecursionError: absurdly nested JSON
        _warn_corrupt(path, f"not valid JSON ({type(e).__name__})")
        return {}
    if not isinstance(data, dict):
        _warn_corrupt(path, f"expected a JSON object, found {type(data).__name__}")
        return {}
    valid = {k: v for k, v in data.items() if _valid_entry(v)}
    if len(valid) != len(data):
        bad = next(k for k in data if k not in valid)
        _warn_corrupt(path, f"{len(data) - len(valid)} invalid entr{'y' if len(data) - len(valid) == 1 else 'ies'} "
                            f"(first: {bad!r})")
    return valid


def _store(k: str, cfg: dict) -> None:
    _MEMORY[k] = cfg
    try:
        data = _load_file()
        data[k] = cfg
        path = cache_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        tmp.replace(path)
    except OSError:
        pass  # a read-only home only costs re-tuning next time


def config_for(w, n: int, threads: int) -> dict:
    """The tile configuration to use for this weight and batch size (tunes on first use if allowed)."""
    default = DEFAULT_GEMV if n == 1 else DEFAULT_GEMM
    m, k = w.shape
    if m * k < MIN_TUNE_WEIGHTS:
        return default
    kk = key(w, n, threads)
    cfg = _MEMORY.get(kk)
    if cfg is None:
        cfg = _load_file().get(kk)
        if cfg is not None:
            _MEMORY[kk] = cfg
    if cfg is None and tuning_enabled():
        cfg = tune(w, n, threads)
    return {**default, **(cfg or {})}


def tune(w, n: int, threads: int, repeats: int = 7) -> dict:
    """Time every candidate on `w` with random activations; cache and return the fastest."""
    from frugalnn.kernels import lut as lutk

    m, k = w.shape
    cols = 1 if n == 1 else min(n, 64)
    x = np.random.default_rng(0).standard_normal((cols, k)).astype(np.float32)
    zt = w.ws if w.zt is None else w.zt
    candidates = GEMV_CANDIDATES if n == 1 else GEMM_CANDIDATES
    base = DEFAULT_GEMV if n == 1 else DEFAULT_GEMM
    runs = []
    for cand in candidates:
        cfg = {**base, **cand}

        def run(cfg=cfg):
            lutk.matmul(x, w.packed, w.ws, zt, m, w.bits, w.group_size, w.zt is not None, threads=threads, **cfg)

        run()
        runs.append((cfg, run, max(1, min(50, int(0.01 / max(_once(run), 1e-6))))))
    # Rounds over all candidates, not one candidate's repeats after another's: on a shared machine a burst
    # of load then costs every candidate one round instead of costing one candidate all of its repeats (a
    # tile 2.2x off the best was once cached for good that way). Interference only adds time: keep the min.
    best_times = [float("inf")] * len(runs)
    for _ in range(repeats):
        for i, (_, run, reps) in enumerate(runs):
            t0 = time.perf_counter()
            for _ in range(reps):
                run()
            best_times[i] = min(best_times[i], (time.perf_counter() - t0) / reps)
    results = [(t, cfg) for t, (cfg, _, _) in zip(best_times, runs)]
    best = min(results, key=lambda r: r[0])[1]
    _store(key(w, n, threads), best)
    return best


def _once(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0
