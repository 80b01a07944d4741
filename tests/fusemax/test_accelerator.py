"""The accelerator model: the paper's closed forms, its parameters, and its numbers kept through the
move onto frugalnn.hw."""
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
    assert Arch().machine().array("2d").pe.op("exp").cycles == 7  # 6 MACs + 1 add
    assert Arch().machine(softmax_exp_units=True).array("1d").pe.op("exp").cycles == 1  # FLAT's exp unit


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


# summary() of the model as it stood before it moved onto frugalnn.hw (issue 11), to the last bit
# of a float64 (the refactor keeps every sum in the same order). A change here is a change of the model.
BEFORE_HW = {"speedup vs FLAT": 6.794431649500306, "speedup vs Unfused": 10.217078513045214,
             "energy vs FLAT": 0.8638939892695942, "energy vs Unfused": 0.7581271388845993,
             "end-to-end speedup vs FLAT": 5.379298811859649, "end-to-end energy vs FLAT": 0.8851212531716289,
             "FLAT 2D utilization (E=64, up to 64K)": 0.125, "FuseMax 2D utilization at 1K": 0.889523228449403,
             "FuseMax 2D utilization at 1M": 0.993511817735381}


def test_summary_unchanged_by_the_move_onto_hw():
    s = arch.summary(arch.evaluate())
    assert {k: s[k] for k in BEFORE_HW} == BEFORE_HW
    flat_all = [r.util_2d for (m, _, _), r in arch.evaluate().items() if m == "FLAT"]
    assert len(flat_all) == 24 and s[arch.FLAT_UTIL_ALL] == pytest.approx(sum(flat_all) / 24)
    assert s[arch.FLAT_UTIL_ALL] > s[arch.FLAT_UTIL_SUBSET]  # XLM (E=128) runs FLAT's 2D array at 0.25


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
