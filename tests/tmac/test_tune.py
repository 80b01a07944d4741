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


# Issue 19, item 16: the cache is only a cache. Corrupt content is ignored with one warning, matmul
# works, and the next tuning result rewrites the file. Before: `[]` in the file broke every LUT
# matmul on weights of 2^20 elements or more ("'list' object has no attribute 'get'").
import warnings  # noqa: E402

import pytest  # noqa: E402

CORRUPT = {"list": "[]", "string": '"x"', "number": "3", "null": "null", "not json": "{", "binary": b"\xff\xfe\x00",
           "nested": "[" * 100_000 + "]" * 100_000, "entry not a dict": '{"k": []}',
           "huge col_block": None, "bool units": None}


@pytest.mark.parametrize("what", sorted(CORRUPT))
def test_corrupt_cache_is_ignored_rebuilt_and_warned_once(what, tmp_path, monkeypatch):
    monkeypatch.setenv("FRUGALNN_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("FRUGALNN_LUT_TUNE", "1")
    monkeypatch.setattr(tune, "MIN_TUNE_WEIGHTS", 0)
    monkeypatch.setattr(tune, "_MEMORY", {})
    monkeypatch.setattr(tune, "_WARNED", set())
    monkeypatch.setattr(tune, "GEMV_CANDIDATES", tune.GEMV_CANDIDATES[:2])  # keep the re-tuning short
    w = LUTWeight.from_float(np.random.default_rng(0).standard_normal((64, 128)).astype(np.float32), 2, 64)
    x = np.random.default_rng(1).standard_normal((1, 128)).astype(np.float32)
    content = CORRUPT[what]
    if what in ("huge col_block", "bool units"):  # well-formed JSON, an entry the tuner never writes, for this key
        bad = {"col_block": 10**12} if what == "huge col_block" else {"units": True}
        content = json.dumps({tune.key(w, 1, 1): {**tune.DEFAULT_GEMV, **bad}})
    path = tmp_path / "lut_tune.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.warns(RuntimeWarning, match="LUT tuning cache"):
        y = matmul(x, w, threads=1)
    monkeypatch.setenv("FRUGALNN_LUT_TUNE", "0")
    np.testing.assert_array_equal(y, matmul(x, w, threads=1))  # same answer as the untuned defaults
    monkeypatch.setenv("FRUGALNN_LUT_TUNE", "1")
    rebuilt = json.loads(path.read_text())
    assert isinstance(rebuilt, dict) and tune.key(w, 1, 1) in rebuilt
    assert all(tune._valid_entry(v) for v in rebuilt.values())
    # once per file and process: a second corrupt read stays quiet
    path.write_text("[]")
    monkeypatch.setattr(tune, "_MEMORY", {})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        matmul(x, w, threads=1)


def test_valid_cache_entries_are_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("FRUGALNN_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(tune, "_WARNED", set())
    entry = {**tune.DEFAULT_GEMV, "units": 4}
    (tmp_path / "lut_tune.json").write_text(json.dumps({"a": entry, "b": {"units": 3}}))
    with pytest.warns(RuntimeWarning, match="1 invalid entry"):
        assert tune._load_file() == {"a": entry}
