"""The L-Mul verdict rules: each one fed figures that pass, fall short and fail, with its threshold in the rule."""
import pytest

from frugalnn.lmul import claims, experiment
from frugalnn.report.verdicts import DERIVED, NOT_REPRODUCED, PARTLY, REPRODUCED


@pytest.mark.parametrize("ratio, verdict", [(0.9, REPRODUCED), (1.099, REPRODUCED), (1.2, PARTLY),
                                            (1.3, NOT_REPRODUCED)])
def test_as_precise_as_e4m3(ratio, verdict):
    v = claims.precision_vs_fp8(0.0336 * ratio, 0.0336, "e4m3", *claims.AS_PRECISE)
    assert v["verdict"] == verdict
    assert "e4m3" in v["rule"] and "1.1" in v["rule"] and "1.25" in v["rule"]


@pytest.mark.parametrize("ratio, verdict", [(0.79, REPRODUCED), (1.05, PARTLY), (1.5, NOT_REPRODUCED)])
def test_more_precise_than_e5m2(ratio, verdict):
    assert claims.precision_vs_fp8(0.0608 * ratio, 0.0608, "e5m2", *claims.MORE_PRECISE)["verdict"] == verdict


def test_precision_needs_a_positive_fp8_error():
    with pytest.raises(ValueError, match="fp8_error"):
        claims.precision_vs_fp8(0.03, 0.0, "e4m3", *claims.AS_PRECISE)


def test_paper_offset_fits():
    fits = (3, 0.030, 3, 0.030)          # the paper's l is the best
    close = (3, 0.030, 4, 0.0296)        # another l is better, by under 2%
    off = (3, 0.053, 4, 0.030)           # the paper's l is far from the best
    assert claims.paper_offset_fits({2: fits, 3: close})["verdict"] == REPRODUCED
    assert claims.paper_offset_fits({2: fits, 3: off})["verdict"] == PARTLY
    v = claims.paper_offset_fits({2: off, 3: off})
    assert v["verdict"] == NOT_REPRODUCED and "2%" in v["rule"]
    with pytest.raises(ValueError, match="per_m"):
        claims.paper_offset_fits({})


def test_attention_lossless_on_embeddings():
    assert claims.attention_lossless_embeddings(0.9997, 0.987)["verdict"] == REPRODUCED
    assert claims.attention_lossless_embeddings(0.9997, 0.90)["verdict"] == PARTLY
    v = claims.attention_lossless_embeddings(0.95, 0.80)
    assert v["verdict"] == NOT_REPRODUCED and "0.01" in v["rule"] and "0.05" in v["rule"]


@pytest.mark.parametrize("change, verdict", [(0.004, REPRODUCED), (-0.01, REPRODUCED), (0.011, NOT_REPRODUCED),
                                             (0.046, NOT_REPRODUCED)])
def test_attention_lossless_perplexity(change, verdict):
    v = claims.attention_lossless_perplexity(change)
    assert v["verdict"] == verdict and "0.01" in v["rule"]


def test_all_lmul_matches_e4m3():
    assert claims.all_lmul_matches_e4m3(0.9955, 0.9962, 16.7, 16.669)["verdict"] == REPRODUCED
    assert claims.all_lmul_matches_e4m3(0.9955, 0.9962, 17.8, 16.669)["verdict"] == PARTLY
    assert claims.all_lmul_matches_e4m3(0.9857, 0.9962, 17.815, 16.669)["verdict"] == NOT_REPRODUCED
    v = claims.all_lmul_matches_e4m3(0.9857, 0.9962)  # SmolLM2 not measured: MiniLM alone decides
    assert v["verdict"] == NOT_REPRODUCED and "SmolLM2" not in v["rule"]


def test_energy_rows_are_derived_never_reproduced():
    rows = experiment.per_operation_rows()
    assert len(rows) == 4 and all(r.verdict == DERIVED and "energy table" in r.rule for r in rows)
    forward = [["w", "fp32", 100, 0, 4.6e-4, 1.0], ["w", "L-Mul m=3 all", 0, 100, 1.0e-4, 1.0]]
    table, rows = experiment.workload_energy(forward)
    assert [r.verdict for r in rows] == [DERIVED]
    assert table[1][5] == pytest.approx(1 - 1.0 / 4.6)   # arithmetic saved
    assert table[1][8] == pytest.approx(1 - 1.0001 / 1.00046)  # total saved, DRAM included
