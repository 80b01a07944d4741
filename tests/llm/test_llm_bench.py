"""`frugalnn bench llm` wiring: our side only (llama.cpp is an optional peer, never in tests)."""
import pytest

from frugalnn.bench.harness import BenchArgs


def test_bench_llm_quick_our_side_only():
    pytest.importorskip("frugalnn.tmac")
    from frugalnn.llm.bench import bench_llm
    from frugalnn.data import MissingDataError

    args = BenchArgs(quick=True, threads=[1], repeats=1,
                     options={"no_peer": True, "n_gen": 2, "n_prompt": 8, "only": ["smollm2"]})
    try:
        report = bench_llm(args)
    except MissingDataError as e:
        pytest.skip(str(e))
    cases = [(r.case, r.impl) for r in report.rows]
    assert cases == [("smollm2 (Q4_1; ours 4-bit) decode", "frugalnn"), ("smollm2 (Q4_1; ours 4-bit) prefill", "frugalnn")]
    decode = report.rows[0]
    assert decode.extra["tok/s"] > 0 and decode.extra["weights MB"] > 50 and decode.extra["linear share"].endswith("%")
    assert any("--no-peer" in n for n in report.notes)
    assert not any("torch path" in n for n in report.notes)  # decode ran on the compiled decoder


def test_bench_llm_times_the_torch_path_on_request():
    pytest.importorskip("frugalnn.tmac")
    from frugalnn.llm.bench import bench_llm
    from frugalnn.data import MissingDataError

    args = BenchArgs(quick=True, threads=[1], repeats=1,
                     options={"no_peer": True, "n_gen": 2, "n_prompt": 8, "only": ["smollm2"], "torch_path": True})
    try:
        report = bench_llm(args)
    except MissingDataError as e:
        pytest.skip(str(e))
    decode = [r.impl for r in report.rows if r.case.endswith("decode")]
    assert decode == ["frugalnn", "frugalnn torch path"]
    assert all(r.extra["tok/s"] > 0 for r in report.rows)


def test_bench_llm_rejects_unknown_model_key():
    from frugalnn.llm.bench import bench_llm

    with pytest.raises(ValueError, match="unknown model keys"):
        bench_llm(BenchArgs(quick=True, threads=[1], repeats=1, options={"no_peer": True, "only": ["gpt5"]}))
