"""The benchmark checks before it times (and stops on a wrong answer), and its memory probe measures
real allocations: naive O(seq^2) vs fused O(seq)."""
import pytest
import torch

from frugalnn.bench.accuracy import CheckFailed
from frugalnn.bench.harness import BenchArgs
from frugalnn.fusemax import bench
from frugalnn.fusemax.bench import measure_memory, naive_three_pass, make_inputs


def test_memory_probe_separates_naive_from_fused():
    seq = 1024
    naive = measure_memory("naive 3-pass", seq, 64, 1)
    fused = measure_memory("fused 1-pass (ours)", seq, 64, 1)
    scores = seq * seq * 4
    assert naive >= 2 * scores  # at least the scores and the exponentials coexist
    assert fused < scores / 4  # the output (256 KiB) and scratch, nothing L x S


def test_naive_reference_is_attention():
    q, k, v = make_inputs(33, 8)
    torch.testing.assert_close(naive_three_pass(q, k, v), torch.nn.functional.scaled_dot_product_attention(q, k, v))


def test_check_outputs_gives_both_sides_errors_and_stops_on_a_wrong_answer(monkeypatch):
    q, k, v = make_inputs(200, 64)  # 200: a partial key tile and a partial query block
    fns = bench.implementations(q, k, v, 1)
    errors = bench.check_outputs(fns, q, k, v, "seq 200 d 64")
    assert set(errors) == set(fns)
    assert all(0 <= e["vs float64"] <= bench.CHECK_BOUND for e in errors.values())
    assert errors["torch SDPA"]["vs torch SDPA"] == 0
    wrong = dict(fns, **{"fused 1-pass (ours)": lambda: fns["fused 1-pass (ours)"]() * 1.01})
    with pytest.raises(CheckFailed, match="fused 1-pass"):
        bench.check_outputs(wrong, q, k, v, "seq 200 d 64")
    monkeypatch.setattr(bench, "FLOAT64_MAX_SEQ", 100)  # past it, torch SDPA is the only reference
    assert all("vs float64" not in e for e in bench.check_outputs(fns, q, k, v, "seq 200 d 64").values())


def test_bench_checks_every_case_before_timing(monkeypatch):
    monkeypatch.setattr(bench, "SEQS", (128, 256))
    report = bench.bench_attention(BenchArgs(quick=True, repeats=1, options={"no_memory": True}))
    assert {r.case for r in report.rows} == {"seq 128 d 64", "seq 256 d 64"}
    assert all(r.extra["max rel err vs fp64"] <= bench.CHECK_BOUND for r in report.rows)
    broken = bench.implementations

    def with_a_bug(q, k, v, threads):
        fns = broken(q, k, v, threads)
        fns["fused 1-pass (ours)"] = lambda: torch.zeros_like(q)
        return fns

    monkeypatch.setattr(bench, "implementations", with_a_bug)
    with pytest.raises(CheckFailed, match="not timing a wrong answer"):
        bench.bench_attention(BenchArgs(quick=True, repeats=1, options={"no_memory": True}))


def test_target_rows_carry_a_verdict_and_the_json_both_isas(monkeypatch):
    from frugalnn.kernels import other_backends

    monkeypatch.setattr(bench, "SEQS", (128, 256))
    monkeypatch.setattr(bench, "TARGET_SEQS", (256, 256))
    report = bench.bench_attention(BenchArgs(quick=True, repeats=1, options={"no_memory": True, "no_naive": True}))
    fused = [r for r in report.rows if r.impl.startswith("fused")]
    assert len({r.impl for r in fused}) == 1 + len(other_backends())  # every vector backend, same run
    for r in fused:
        has = "verdict" in r.extra
        assert has == (r.case == "seq 256 d 64")
        assert not has or r.extra["verdict"].split()[0] in ("meets", "misses")
    assert report.meta["isa"]["ours"]["ops"]["attention"] in ("serial", "avx2", "avx512")
    assert report.meta["isa"]["peer"]["torch SDPA"]
