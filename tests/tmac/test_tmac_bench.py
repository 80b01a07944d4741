"""`frugalnn bench tmac --quick` runs end to end: checks before timing, both sides' bits and accuracy,
visible rows for an absent or failing llama.cpp; the peer (optional) computes a real matmul."""
import json

import numpy as np
import pytest

import frugalnn.tmac
from frugalnn.bench import ggml_peer
from frugalnn.bench.accuracy import CheckFailed, nmse
from frugalnn.cli import main
from frugalnn.tmac.bench import PEER_NMSE_BOUND, race


def test_bench_tmac_quick(tmp_path, capsys):
    out = tmp_path / "tmac.json"
    assert main(["bench", "tmac", "--quick", "--threads", "1", "--repeats", "1", "--bits", "2", "ternary",
                 "--no-peer", "--nmse", "off", "--json", str(out)]) == 0  # NMSE rows: test_quantizers_table.py
    data = json.loads(out.read_text())
    rows = {(r["case"], r["impl"]): r for r in data["rows"]}
    impls = {impl for _, impl in rows}
    assert {"torch fp32", "lut 2-bit", "lut ternary", "torch dequant 2", "llama.cpp Q2_K", "llama.cpp TQ2_0"} <= impls
    for (case, impl), r in rows.items():
        if impl.startswith("llama.cpp"):  # --no-peer: visible, with the reason
            assert r["median_ms"] is None and "--no-peer" in r["extra"]["not measured"]
            continue
        assert r["extra"]["check nmse"] < 1e-3 and "nmse vs fp32" in r["extra"] and r["vs_baseline"] > 0
    ours = rows[("GEMV 1024x1024", "lut 2-bit")]["extra"]
    assert ours["bits/weight"] == pytest.approx(2.5) and ours["x vs dequant"] > 1 and ours["nmse vs fp32"] < 0.4
    assert rows[("GEMV 1024x1024", "torch fp32")]["extra"]["bits/weight"] == 32
    assert "not measured" in capsys.readouterr().out
    assert data["meta"]["torch"]["isa"] and data["meta"]["ours"]["kernel_isa"]
    # issue 17: the target verdict can fail and says when the peer is absent; both sides' ISA in the JSON
    assert ours["verdict"] == "not measured (target >= 2x) vs Q2_K"
    assert "verdict" not in rows[("GEMV 1024x1024", "lut ternary")]["extra"]
    assert data["meta"]["isa"]["ours"]["ops"]["lut"] in ("serial", "avx2", "avx512")
    assert "--no-peer" in data["meta"]["isa"]["peer"]["not measured"]
    for backend in data["meta"]["isa"]["ours"]["also_timed_backends"]:  # avx2 beside avx512, same run
        assert rows[("GEMV 1024x1024", f"lut 2-bit ({backend})")]["extra"]["verdict"].startswith("not measured")


def test_gemv_shapes_option():
    from frugalnn.tmac.bench import _shape_arg

    assert _shape_arg("11008x4096") == (11008, 4096)
    for bad in ("4096", "0x4", "ax4", "4x-1"):
        with pytest.raises(ValueError, match="--gemv"):
            _shape_arg(bad)


def test_bench_tmac_rejects_bad_bits(capsys):
    assert main(["bench", "tmac", "--quick", "--bits", "5", "--no-peer"]) == 2
    assert "--bits" in capsys.readouterr().err


def _inputs(m=64, k=256, n=1):
    rng = np.random.default_rng(0)
    return rng.standard_normal((m, k)).astype(np.float32), rng.standard_normal((n, k)).astype(np.float32)


def test_race_stops_on_a_wrong_answer(monkeypatch):
    real = frugalnn.tmac.matmul
    monkeypatch.setattr(frugalnn.tmac, "matmul", lambda x, w, threads=None: real(x, w, threads) * 1.1)
    w, x = _inputs()
    with pytest.raises(CheckFailed, match="lut 2-bit"):
        race("test", w, x, (2,), 1, 1, peer=None, peer_missing="absent")


def test_race_keeps_a_failing_peer_as_a_row(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("ggml exploded")

    monkeypatch.setattr(ggml_peer, "MulMat", broken)
    w, x = _inputs(k=320)  # K = 320 fits Q4_0's 32-blocks but not Q4_K's 256
    r = race("test", w, x, (4,), 1, 1, peer=object())
    assert "ggml exploded" in r.not_measured["llama.cpp Q4_0"]
    assert "256" in r.not_measured["llama.cpp Q4_K"]
    assert r.ms("lut 4-bit") > 0 and r.ms("torch fp32") > 0


class _FailingRun:
    """A peer that builds but fails when it runs (e.g. ggml_graph_compute returning an error)."""

    def __init__(self, *args, **kwargs):
        self.bits_per_weight = 4.5

    def run(self):
        raise RuntimeError("ggml_graph_compute failed with status 1")

    def dequantize(self):
        raise AssertionError("not reached")

    def close(self):
        pass


def test_race_keeps_a_peer_that_fails_to_run_as_a_row(monkeypatch):
    monkeypatch.setattr(ggml_peer, "MulMat", _FailingRun)
    w, x = _inputs()
    r = race("test", w, x, (4,), 1, 1, peer=object())
    assert "status 1" in r.not_measured["llama.cpp Q4_0"] and "status 1" in r.not_measured["llama.cpp Q4_K"]
    from frugalnn.kernels import other_backends

    # ours on the active backend, plus every other vectorised one (avx2 beside avx512) in the same run
    assert set(r.timings) == {"torch fp32", "lut 4-bit", "torch dequant 4"} | {f"lut 4-bit ({b})" for b in other_backends()}


def test_bits_per_weight_from_ggml_block_sizes():
    expected = {"Q2_K": 2.625, "Q3_K": 3.4375, "Q4_0": 4.5, "Q4_K": 4.5, "TQ2_0": 2.0625}
    assert {qt: ggml_peer.bits_per_weight(qt) for qt in expected} == expected
    with pytest.raises(ValueError, match="Q9_9"):
        ggml_peer.bits_per_weight("Q9_9")


@pytest.mark.parametrize("qtype", ["Q8_0", "Q2_K", "Q4_0", "TQ2_0"])
def test_ggml_peer_matches_its_dequantized_weight_when_installed(qtype):
    try:
        g = ggml_peer.load()
    except ggml_peer.PeerUnavailable as e:
        pytest.skip(f"optional llama.cpp peer: {e}")
    w, x = _inputs(n=3)
    mm = ggml_peer.MulMat(g, qtype, 64, 256, 3, 1, weight=w, x=x)
    mm.run()
    y = mm.result()
    held = mm.dequantize()
    mm.close()
    assert mm.bits_per_weight == ggml_peer.bits_per_weight(qtype)
    assert nmse(y, x @ held.T) < PEER_NMSE_BOUND
    assert nmse(held, ggml_peer.ternarize(w) if qtype.startswith("TQ") else w) < 0.2
