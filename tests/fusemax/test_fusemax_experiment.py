"""The FuseMax experiment: its verdict rules (each fed values that fail), its model rows and figures,
and the provenance it computes at run time (the CPU timing itself runs in `frugalnn report`)."""
import pytest

from frugalnn.fusemax import experiment as fusemax
from frugalnn.fusemax.accelerator import FLAT_UTIL_ALL, FLAT_UTIL_SUBSET, PAPER
from frugalnn.kernels import use_backend
from frugalnn.report import NOT_REPRODUCED, PARTLY, REPRODUCED, Context


def test_pass_rows_reproduce_the_paper():
    rows, table = fusemax._passes(Context(quick=True))
    assert [r.measured for r in rows] == [3, 2, 2, 1]
    assert all(r.verdict == REPRODUCED and "passes == " in r.rule for r in rows)
    assert len(table.rows) == 7


def test_pass_verdict_fails_on_a_wrong_count_or_a_wrong_answer():
    assert fusemax.pass_verdict(1, 1, 1e-15)["verdict"] == REPRODUCED
    assert fusemax.pass_verdict(2, 1, 1e-15)["verdict"] == NOT_REPRODUCED
    assert fusemax.pass_verdict(1, 1, 1e-3)["verdict"] == NOT_REPRODUCED


@pytest.mark.parametrize("key, failing", [
    ("speedup vs FLAT", 3.0), ("speedup vs Unfused", 4.0), ("end-to-end speedup vs FLAT", 2.0),
    ("energy vs FLAT", 0.95),             # a 5% saving against the claimed 21%
    ("end-to-end energy vs FLAT", 0.97),  # 3% against 17%
    ("FuseMax 2D utilization at 1K", 0.6), ("FuseMax 2D utilization at 1M", 0.7),
    (FLAT_UTIL_ALL, 0.3), (FLAT_UTIL_SUBSET, 0.05),
])
def test_every_accelerator_rule_can_fail(key, failing):
    *_, verdict = fusemax.accelerator_claim(key, failing)
    assert verdict["verdict"] == NOT_REPRODUCED and verdict["rule"]


@pytest.mark.parametrize("key", sorted(PAPER))
def test_the_paper_s_own_value_reproduces(key):
    *_, verdict = fusemax.accelerator_claim(key, PAPER[key])
    assert verdict["verdict"] == REPRODUCED


def test_energy_is_judged_as_the_saving():
    metric, paper, ours, _, verdict = fusemax.accelerator_claim("energy vs FLAT", 0.864)
    assert "saving" in metric and paper == pytest.approx(0.21) and ours == pytest.approx(0.136)
    assert verdict["verdict"] == PARTLY  # 0.136 < 0.9 x 0.21, >= 0.5 x 0.21
    with pytest.raises(ValueError, match="'energy'"):
        fusemax.accelerator_claim("energy", 0.5)


def test_speed_verdict_fails_below_torch():
    assert fusemax.speed_verdict(1.02)["verdict"] == REPRODUCED
    assert fusemax.speed_verdict(0.8)["verdict"] == NOT_REPRODUCED


def test_accelerator_rows_and_figures():
    rows, tables, figures, summary = fusemax._accelerator(Context(quick=True))
    by_key = {r.metric.split(": ", 1)[1]: r for r in rows}
    assert len(rows) == len(PAPER) and all(r.rule for r in rows)
    assert [r.metric for r in rows if r.headline] == ["accelerator model: speedup vs FLAT"]
    energy = by_key["energy saving vs FLAT (1 - FuseMax / FLAT energy)"]
    assert energy.verdict != REPRODUCED and energy.measured == pytest.approx(1 - summary["energy vs FLAT"], abs=1e-3)
    assert by_key[FLAT_UTIL_ALL].measured != by_key[FLAT_UTIL_SUBSET].measured  # both populations shown
    assert "attn-flat.csv" in by_key[FLAT_UTIL_ALL].notes
    assert len(tables[0].rows) == 3 * 4 * 6 and all(f.png.startswith(b"\x89PNG") for f in figures)


@pytest.mark.parametrize("name", ["serial", "avx2"])
def test_race_provenance_names_the_backend_that_ran(name):
    from frugalnn.kernels import available_backends

    if name not in available_backends():
        pytest.skip(f"CPU feature: this CPU has no {name} backend")
    with use_backend(name):
        note = fusemax.race_provenance(1)
    assert f"frugalnn kernels: {name}" in note and "1 thread" in note and "AVX2+FMA" not in note
