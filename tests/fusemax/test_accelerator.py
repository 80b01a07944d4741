"""The accelerator model: the paper's closed forms, its headline ratios, and its parameters."""
import pytest

from frugalnn.fusemax import accelerator as arch
from frugalnn.fusemax.accelerator import Arch, WORKLOADS, flat, fusemax, statement_ops, unfused
from frugalnn.fusemax.cascade import ATTENTION_1PASS, parse


def test_statement_ops_count_the_paper_costs():
    c = {s.out.tensor: s for s in parse(ATTENTION_1PASS).statements if not s.is_init}
    assert statement_ops(c["BQK"]) == {"mac": 1}
    assert statement_ops(c["SLN"]) == {"exp": 1}
    assert statement_ops(c["LM"]) == {"max": 1}
    assert statement_ops(c["AV"]) == {"div": 1}
    assert statement_ops(c["RD"]) == {"add": 1}
    assert Arch().cycles_per_op("2d")["exp"] == 7  # 6 MACs + 1 add


@pytest.mark.parametrize("name", sorted(WORKLOADS))
@pytest.mark.parametrize("seq", [1 << 10, 1 << 16, 1 << 20])
def test_fusemax_closed_form(name, seq):
    w = WORKLOADS[name]
    bhmp = w.batch * w.heads * seq * seq
    # (E+F+10) BHMP/256^2 plus the output division F*B*H*P/256 that the pipeline cannot hide
    expected = ((w.e + w.f + 10) * bhmp / 65536 + w.f * w.batch * w.heads * seq / 256) / 940e6
    r = fusemax(w, seq)
    assert r.latency_s == pytest.approx(expected, rel=1e-9)
    assert r.util_1d == pytest.approx(1.0)


def test_flat_and_unfused_anchor_points():
    bert = WORKLOADS["BERT"]
    bhmp = 64 * 12 * 1024 * 1024
    assert flat(bert, 1024).latency_s == pytest.approx(4 * bhmp / 256 / 940e6)
    assert flat(bert, 1024).util_2d == pytest.approx(0.125)
    assert flat(WORKLOADS["XLM"], 4096).util_2d == pytest.approx(0.25)
    assert flat(bert, 1 << 20).memory_bound and not fusemax(bert, 1 << 20).memory_bound
    u = unfused(bert, 1024)
    assert set(u.stages) == {"QK", "softmax", "AV"} and u.latency_s > flat(bert, 1024).latency_s


def test_headline_ratios_within_ten_percent_of_the_paper():
    s = arch.summary(arch.evaluate())
    for key in ("speedup vs FLAT", "speedup vs Unfused", "end-to-end speedup vs FLAT", "energy vs FLAT",
                "end-to-end energy vs FLAT", "FuseMax 2D utilization at 1K", "FuseMax 2D utilization at 1M",
                "FLAT 2D utilization (E=64, up to 64K)"):
        assert s[key] == pytest.approx(arch.PAPER[key], rel=0.10), key


def test_parameters_change_the_answer_and_are_validated():
    bert = WORKLOADS["BERT"]
    fast = fusemax(bert, 4096, Arch(clock_hz=1880e6))
    assert fast.latency_s == pytest.approx(fusemax(bert, 4096).latency_s / 2)
    small = fusemax(bert, 1 << 16, Arch(buffer_bytes=1 << 20))
    assert small.dram_bytes > fusemax(bert, 1 << 16).dram_bytes  # K and V re-read more often
    assert fusemax(bert, 1024, Arch(exp_macs=12)).latency_s > fusemax(bert, 1024).latency_s
    with pytest.raises(ValueError, match="buffer_bytes"):
        Arch(buffer_bytes=0)
    e = fusemax(bert, 1024).energy_breakdown
    assert set(e) == {"compute", "register file", "buffer", "DRAM", "leakage"} and all(v > 0 for v in e.values())
