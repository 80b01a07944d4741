"""Pieces of `frugalnn report --only dfp` on small inputs (the full run lives in the report)."""
import numpy as np
import pytest
import torch

import frugalnn
from frugalnn.dfp import experiment, overflow
from frugalnn.dfp.nn import DFPConfig
from frugalnn.models.cifar_resnet import cifar_resnet
from frugalnn.report import Context
from frugalnn.report.registry import registered
from frugalnn.techniques import BY_NAME


def test_overflow_stats_on_constructed_operands():
    top = np.full((3, 64), 8192, np.int16)  # 64 products of 2^26 reach 2^32: past int32 after 32 of them
    s = overflow.overflow_stats(top, top.T.copy(), chunks=(31, 32, 144))
    assert s["wrong"] == 1.0 and s["leaves"] == 1.0 and s["max_sum_over_2^31"] == 2.0
    assert s["chunk 31"] == 0.0 and s["chunk 32"] == 1.0 and s["chunk 144"] == 1.0
    alt = top * np.where(np.arange(64) % 2, -1, 1).astype(np.int16)
    s = overflow.overflow_stats(alt, top.T.copy(), chunks=(144,))
    assert s["wrong"] == 0.0 and s["leaves"] == 0.0 and s["chunk 144"] == 0.0
    near = np.full((2, 33), 8192, np.int16)  # 32 * 2^26 = 2^31: one past INT32_MAX, then back below
    near[:, -1] = -8192
    s = overflow.overflow_stats(near, np.full((33, 1), 8192, np.int16), chunks=(33,))
    assert s["wrong"] == 0.0 and s["leaves"] == 1.0 and s["chunk 33"] == 0.0
    with pytest.raises(ValueError, match="int16"):
        overflow.overflow_stats(top.astype(np.int32), top.T)
    with pytest.raises(ValueError, match="non-empty"):
        overflow.overflow_stats(np.zeros((0, 4), np.int16), np.zeros((4, 2), np.int16))


def test_overflow_rows_from_a_captured_step():
    torch.manual_seed(0)
    net = frugalnn.convert_(cifar_resnet(8, (4, 8, 16)), DFPConfig())
    ops = experiment._capture(net, torch.randn(4, 1, 12, 12), torch.randint(0, 10, (4,)))
    dfp_layers = 6  # 2 convs per stage; the stem conv and the fc stay fp32
    assert len(ops) == 3 * dfp_layers and {o.gemm for o in ops} == {"forward", "input_gradient", "weight_gradient"}
    table, stats = experiment._overflow_rows(Context(quick=True), {"small": ops}, 31)
    assert len(table) == len(ops) and all(s["chunk 31"] == 0.0 for *_, s in stats)
    assert {s["K"] for _, _, g, s in stats if g == "forward"} == {36, 72, 144}


def test_step_times_measures_the_three_modes():
    t = experiment.step_times(1, repeats=1)
    assert t["threads"] == 1 and all(t[m] > 0 for m in ("fp32", "dfp16", "bf16"))


def test_registered_and_built():
    assert "dfp_training" in registered() and BY_NAME["dfp"].status == "built"


def test_parity_noise_floor_decides_whether_the_rule_applies():
    quick = experiment.parity_noise_pp(75.0, 2000)  # one quick run: ~0.97 pp, the 0.3 pp rule is undecidable
    assert abs(quick - 100 * (0.75 * 0.25 / 2000) ** 0.5) < 1e-12 and quick > experiment.PARITY_PP
    assert experiment.parity_noise_pp(90.0, 5000, 3) < experiment.PARITY_PP  # full mode: the rule applies
    assert experiment.parity_noise_pp(100.0, 10) == 0.0
    assert experiment.QUICK["n_train"] // experiment.QUICK["batch"] * experiment.QUICK["epochs"] >= 60


def test_warmup_then_cosine():
    from frugalnn.dfp.train import _lr_scheduler

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched, lrs = _lr_scheduler(opt, 20, 5), []
    for _ in range(20):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert np.allclose(lrs[:5], [0.02, 0.04, 0.06, 0.08, 0.1]) and lrs[5] == pytest.approx(0.1)
    assert all(a > b for a, b in zip(lrs[5:], lrs[6:])) and lrs[-1] < 0.01
    opt2 = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    assert isinstance(_lr_scheduler(opt2, 20, 0), torch.optim.lr_scheduler.CosineAnnealingLR)
