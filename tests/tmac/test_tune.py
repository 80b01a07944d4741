"""The per-shape tuner: picks a candidate, caches it on disk, results do not depend on the choice."""
import json

import numpy as np

from frugalnn.tmac import LUTWeight, matmul, tune


def test_tune_caches_and_configs_agree(tmp_path, monkeypatch):
    monkeypatch.setenv("FRUGALNN_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("FRUGALNN_LUT_TUNE", "1")
    monkeypatch.setattr(tune, "MIN_TUNE_WEIGHTS", 0)
    monkeypatch.setattr(tune, "_MEMORY", {})
    w = LUTWeight.from_float(np.random.default_rng(0).standard_normal((128, 256)).astype(np.float32), 2, 64)
    x = np.random.default_rng(1).standard_normal((5, 256)).astype(np.float32)
    cfg = tune.config_for(w, 1, 1)
    assert {k: cfg[k] for k in ("units", "cols", "prefetch")} in tune.GEMV_CANDIDATES
    gemm = tune.config_for(w, 5, 1)
    assert gemm["cols"] in (2, 3, 4)
    cached = json.loads((tmp_path / "lut_tune.json").read_text())
    assert len(cached) == 2 and any("|gemv|t1" in k for k in cached)
    y = matmul(x, w, threads=1)
    for c in tune.GEMM_CANDIDATES:
        from frugalnn.tmac.ops import matmul_numpy

        np.testing.assert_array_equal(matmul_numpy(x, w, 1, {**tune.DEFAULT_GEMM, **c}), y)


def test_tuning_can_be_disabled(monkeypatch, tmp_path):
    monkeypatch.setenv("FRUGALNN_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("FRUGALNN_LUT_TUNE", "0")
    monkeypatch.setattr(tune, "MIN_TUNE_WEIGHTS", 0)
    monkeypatch.setattr(tune, "_MEMORY", {})
    w = LUTWeight.from_float(np.ones((32, 64), np.float32), 2, 64)
    assert tune.config_for(w, 1, 1) == tune.DEFAULT_GEMV
    assert not (tmp_path / "lut_tune.json").exists()
