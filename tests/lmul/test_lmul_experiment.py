"""Pieces of the L-Mul experiments on small inputs (the full runs live in `frugalnn report --only lmul`)."""
import numpy as np
import pytest
import torch

from frugalnn.lmul import accuracy as models
from frugalnn.lmul import energy, experiment, precision
from frugalnn.lmul.nn import LMulLinear
from frugalnn.report.discover import load_experiments, select
from frugalnn.report.verdicts import CLAIM_VERDICTS, REPRODUCED
from frugalnn.routing import RoutedModule


def test_error_stats_separate_error_and_magnitude_bias():
    exact = np.array([1.0, -2.0, 4.0])
    s = precision.ErrorStats.of(np.array([1.1, -2.2, 4.4], np.float32), exact)
    assert s.mean == pytest.approx(0.1, rel=1e-5) and s.bias == pytest.approx(0.1, rel=1e-5)
    s = precision.ErrorStats.of(np.array([0.9, -1.8, 3.6], np.float32), exact)
    assert s.bias == pytest.approx(-0.1, rel=1e-5)


def test_precision_pieces_on_gaussian_pairs():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal(1 << 14).astype(np.float32), rng.standard_normal(1 << 14).astype(np.float32)
    rows, by_data = precision.precision_table({"g": (x, y)}, widths=(3, 4))
    assert len(rows) == 2 * 2 + 2
    assert by_data["g"]["L-Mul m=4 truncate"].mean < by_data["g"]["L-Mul m=3 truncate"].mean
    assert 0.02 < by_data["g"]["e4m3"].mean < 0.05
    _, best = precision.offset_sweep(x, y, widths=(3,), offsets=range(1, 7))
    assert best[(3, "truncate")][0] == 3  # the paper's l(3) for truncated operands
    bias = {r[0]: r for r in precision.sum_bias(rng, 64, 200, precision.sum_schemes())}
    assert bias["L-Mul m=4 nearest"][1] > 0.03  # rounded operands with the paper's offset: sums come out large
    assert bias["L-Mul m=4 nearest"][3] < 0.02  # ... while random signs cancel the bias


def test_retrieval_set_and_metrics():
    queries, docs = models.retrieval_set(5)
    assert len(queries) == len(docs) == 5 and all(queries) and all(len(d) > 100 for d in docs)
    q = torch.nn.functional.normalize(torch.randn(5, 8), dim=-1)
    d = torch.nn.functional.normalize(torch.randn(5, 8), dim=-1)
    m = models.retrieval_metrics(q, d, q, d)
    assert m["cos_mean"] == pytest.approx(1.0) and m["top1_agree"] == 1.0 and m["spearman"] == pytest.approx(1.0)


def test_energy_model_arithmetic():
    assert energy.elementwise_saving(32) == pytest.approx(1 - 0.1 / 3.7)
    assert energy.dot_saving(32) == pytest.approx(1 - 1.0 / 4.6)
    assert energy.mac_energy_pj(10, 0) == pytest.approx(46.0)
    assert energy.mac_energy_pj(0, 10) == pytest.approx(10.0)


class Attention(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(8, 8)

    def forward(self, x):
        q = self.proj(x).view(1, -1, 2, 4).transpose(1, 2)
        return torch.nn.functional.scaled_dot_product_attention(q, q, q).transpose(1, 2).reshape(x.shape)


@pytest.mark.parametrize("scheme", models.schemes(quick=False), ids=lambda s: s.name)
def test_schemes_convert_a_copy(scheme):
    model = torch.nn.Sequential(Attention(), torch.nn.Linear(8, 3))
    x = torch.randn(1, 5, 8)
    converted = scheme.apply(model)
    assert isinstance(model[0], Attention)  # the original is untouched
    y, y32 = converted(x), model(x)
    assert y.shape == y32.shape and torch.isfinite(y).all()
    if scheme.kind != "fp32":
        assert isinstance(converted[0], RoutedModule) and 0 < (y - y32).abs().max() < 0.5
    if scheme.kind == "lmul" and scheme.scope == "all":
        assert isinstance(converted[1], LMulLinear)


def test_precision_rows_judge_gaussian_products_with_one_headline():
    rng = np.random.default_rng(1)
    pairs = {name: (rng.standard_normal(1 << 14).astype(np.float32), rng.standard_normal(1 << 14).astype(np.float32))
             for name in (experiment.HEADLINE_DATA, "other")}
    _, by_data = precision.precision_table(pairs)
    rows = experiment.precision_rows(by_data)
    headline = [r for r in rows if r.headline]
    assert len(headline) == 1 and "e4m3" in headline[0].metric and experiment.HEADLINE_DATA in headline[0].metric
    assert headline[0].verdict == REPRODUCED  # 4-bit truncated L-Mul ~3.0% vs e4m3 ~3.4% on N(0,1)
    assert all(r.rule for r in rows if r.verdict in CLAIM_VERDICTS)


def test_report_only_lmul_selects_its_three_experiments():
    experiments, errors = load_experiments()
    assert "lmul" not in errors
    assert {e.name for e in select(experiments, ["lmul"])} == {"lmul_precision", "lmul_models", "lmul_energy"}
    assert all(e.technique == "lmul" for e in select(experiments, ["lmul"]))
