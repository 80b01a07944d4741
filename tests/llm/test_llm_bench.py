"""`frugalnn bench llm` wiring: our side only (llama.cpp is an optional peer, never in tests)."""
import pytest
import torch

from frugalnn.bench.accuracy import CheckFailed
from frugalnn.bench.harness import BenchArgs
from frugalnn.kernels import backend, other_backends
from frugalnn.llm import bench as llm_bench

OPTIONS = {"no_peer": True, "n_gen": 2, "n_prompt": 8, "only": ["smollm2"], "no_memory": True, "no_perplexity": True}


def run(**options):
    return llm_bench.bench_llm(BenchArgs(quick=True, threads=[1], repeats=1, options={**OPTIONS, **options}))


def test_bench_llm_quick_our_side_checked_and_with_accuracy():
    report = run(torch_path=True, no_perplexity=False)
    label = "smollm2 (Q4_1 as shipped; ours 4-bit)"
    cases = [(r.case, r.impl) for r in report.rows]
    others = [f"frugalnn ({b})" for b in other_backends()]  # e.g. avx2 beside avx512: issue 17, same run
    assert cases == [(f"{label} decode", "frugalnn"), *((f"{label} decode", o) for o in others),
                     (f"{label} decode", "frugalnn torch path"), (f"{label} decode", "llama.cpp"),
                     (f"{label} prefill", "frugalnn"), *((f"{label} prefill", o) for o in others),
                     (f"{label} prefill", "llama.cpp")]
    rows = {(r.case, r.impl): r for r in report.rows}
    decode, torch_path, peer = (rows[(f"{label} decode", i)] for i in ("frugalnn", "frugalnn torch path", "llama.cpp"))
    assert decode.extra["backend"] == backend()
    for o in others:  # each backend checked before timing, with its own accuracy, and the gain over it beside ours
        other = rows[(f"{label} decode", o)]
        assert 0 <= other.extra["check"] <= 1 and 0 < other.extra["logits nmse vs fp32"] < 0.05
        assert other.extra["verdict"] == "not measured (target >= 1.4x)" and decode.extra[f"x vs {o}"] > 0
        assert 10 < other.extra["perplexity"] < 40
    assert report.meta["isa"]["ours"]["backend"] == backend() and "llama" in report.meta["isa"]["ours"]["ops"]
    assert "not measured" in report.meta["isa"]["peer"]
    assert decode.extra["tok/s"] > 0 and decode.extra["weights MB"] > 50 and decode.extra["linear share"].endswith("%")
    assert 0 <= decode.extra["check"] <= 1  # checked before it was timed
    assert 4.5 < decode.extra["bits/weight"] < 8  # Q4_1 codes + float32 scale and zero per 32, Q8_0 head
    assert 0 < decode.extra["logits nmse vs fp32"] < 0.05 and 0 < torch_path.extra["logits nmse vs fp32"] < 0.05
    assert peer.median_ms is None and "--no-peer" in peer.extra["not measured"]  # absent, and visible
    # Q4_1 blocks and the Q8_0 head as stored: identical bytes once the scales are fp16 as in the file
    assert decode.extra["stored"].startswith(("identical bytes", "codes as stored (211/211)"))
    assert decode.extra["verdict"] == "not measured (target >= 1.4x)"
    assert 10 < decode.extra["perplexity"] < 40  # SmolLM2-135M on the llm text (1024 tokens with --quick)
    assert decode.extra["perplexity"] == torch_path.extra["perplexity"]
    assert peer.extra["not measured"].startswith("not run")
    assert not any("took the torch path" in n for n in report.notes)  # decode ran on the compiled decoder


def test_file_bits_per_weight_is_what_the_file_holds(smollm2_path):
    assert 5.0 <= llm_bench.file_bits_per_weight(smollm2_path) < 6  # Q4_1 (5.0) blocks + the Q8_0 (8.5) head


def test_a_decoder_that_disagrees_with_the_torch_path_is_not_timed(monkeypatch):
    from frugalnn.llm import check

    def broken(model, ids, layers=None):
        out = real(model, ids, layers)
        out[-1].fast_vs_torch = 3 * out[-1].table_error
        return out

    real = check.check_layers
    monkeypatch.setattr(check, "check_layers", broken)
    with pytest.raises(CheckFailed, match="not timing a wrong answer"):
        run()


def test_bench_llm_rejects_unknown_model_key():
    with pytest.raises(ValueError, match="unknown model keys"):
        llm_bench.bench_llm(BenchArgs(quick=True, threads=[1], repeats=1, options={"no_peer": True, "only": ["gpt5"]}))


def test_last_logits_paths_agree_on_a_tiny_model(tmp_path):
    from tiny_gguf import write_tiny_llama

    from frugalnn import llm as llama

    model = llama.load(write_tiny_llama(tmp_path / "t.gguf"))
    ids = [1, 5, 9, 2]
    fast, slow = llm_bench.last_logits(model, ids, True), llm_bench.last_logits(model, ids, False)
    torch.testing.assert_close(torch.from_numpy(fast), torch.from_numpy(slow), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(torch.from_numpy(fast), model(torch.tensor([ids]))[0, -1], rtol=1e-5, atol=1e-5)


def test_bench_llm_measures_peak_memory_of_our_side(monkeypatch):
    monkeypatch.setattr(llm_bench, "MEMORY_CONTEXTS", (512,))
    report = run(no_memory=False)
    row = report.meta["peak_rss_mib"][512]
    # a fresh process: torch alone is ~220 MiB; ours must stay far below the 898 MiB it took before (issue 18)
    assert 150 < row["frugalnn"] < 700
    assert row["llama.cpp"].startswith("not measured") and "--no-peer" in row["llama.cpp"]
    assert any("peak RSS" in n and "512" in n for n in report.notes)


def test_other_backends_option_is_checked_and_can_leave_only_the_active_one():
    assert llm_bench.our_sides([]) == {"frugalnn": backend()}
    with pytest.raises(ValueError, match="--other-backends"):
        llm_bench.our_sides(["serial"])
    assert list(llm_bench.our_sides(None).values()) == [backend(), *other_backends()]
