"""`frugalnn bench tmac --quick` runs end to end; the llama.cpp peer (optional) computes a real matmul."""
import json

import numpy as np
import pytest

from frugalnn.cli import main


def test_bench_lut_quick(tmp_path, capsys):
    out = tmp_path / "lut.json"
    assert main(["bench", "lut", "--quick", "--threads", "1", "--repeats", "1", "--bits", "2", "ternary",
                 "--no-peer", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    impls = {r["impl"] for r in data["rows"]}
    assert {"torch fp32", "lut 2-bit", "lut ternary", "torch dequant 2"} <= impls
    ours = [r for r in data["rows"] if r["impl"] == "lut 2-bit"]
    assert all(r["extra"]["x vs dequant"] > 1 and r["extra"]["nmse vs fp32"] < 0.4 for r in ours)
    assert "llama.cpp: skipped" in capsys.readouterr().out


def test_bench_lut_rejects_bad_bits(capsys):
    assert main(["bench", "lut", "--quick", "--bits", "5", "--no-peer"]) == 2
    assert "--bits" in capsys.readouterr().err


def test_ggml_peer_matches_dense_when_installed():
    from frugalnn.bench import ggml_peer

    try:
        g = ggml_peer.load()
    except ggml_peer.PeerUnavailable as e:
        pytest.skip(str(e))
    w = np.random.default_rng(0).standard_normal((64, 256)).astype(np.float32)
    mm = ggml_peer.MulMat(g, "Q8_0", 64, 256, 3, 1, weight=w)
    mm.run()
    y = mm.result()
    mm.close()
    assert y.shape == (3, 64) and np.isfinite(y).all() and np.abs(y).max() > 1
