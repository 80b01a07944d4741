"""Pieces of `frugalnn report --only odl` and `frugalnn bench odl` on small inputs, and the RISC-V
proxy: run where the toolchain and spike are installed (scripts/setup.sh), and its not-available
path always (no skips)."""
import math

import numpy as np
import pytest
import torch

from frugalnn.models import tiny
from frugalnn.odl import experiment, precision, riscv, scenario, speed
from frugalnn.report import Context
from frugalnn.report.registry import registered
from frugalnn.techniques import BY_NAME


def test_registered_and_built():
    assert {"odl_primitives", "odl_scenario", "odl_kws"} <= set(registered())
    assert BY_NAME["odl"].status == "built"


def test_count_rows_reproduce_exactly():
    rows, table = [], []
    experiment._count_rows(rows, table)
    assert len(rows) == 6 and all(r.verdict == "reproduced" for r in rows)
    assert [t[2] for t in table] == [tiny.RESNET8_MACS, tiny.DSCNN_MACS]


def test_error_grows_like_sqrt_k_only_with_fp16_accumulation():
    r = precision.error_vs_k(ks=(16, 256, 4096), seeds=1)
    assert abs(precision.slope(r["K"], r["fp16 accumulation"]) - 0.5) < 0.15
    assert abs(precision.slope(r["K"], r["fp16 storage, fp32 accumulation"])) < 0.1
    rows = []
    fig, table = experiment._precision(rows)
    assert rows[0].verdict == "reproduced" and fig.png


def test_time_cpu_and_clock():
    t = speed.time_cpu({"a": lambda: sum(range(1000))}, repeats=2, min_sample_s=0.001)
    assert t["a"].median_s > 0
    hz, where = speed.clock_hz()
    assert math.isnan(hz) or hz > 1e8


def test_step_fns_without_compile_and_torch_memory():
    model = tiny.dscnn().eval()
    x = tiny.example_input(model)
    fns, notes = speed.step_fns(model, x, 1, compiled=False)
    assert set(fns) == {"engine fp32", "engine fp16", "torch eager"}
    for fn in fns.values():
        assert np.isfinite(fn())
    params = sum(p.numel() * 4 for p in model.parameters())
    assert speed.torch_step_peak_bytes(model, x, 1) > params * 0.5


def test_riscv_proxy_or_its_reason(monkeypatch):
    if riscv.missing():
        with pytest.raises(riscv.Unavailable, match="not available"):
            riscv.proxy()
    else:
        r = riscv.proxy()
        assert r["macs"] == 3 * 8 * 72 * 64
        assert abs(r["ratios"]["scalar Zfh"] - 1.0) < 0.01  # scalar Zfh: the same instructions as F
        assert r["ratios"]["RVV Zvfh, VLEN 128"] > 1.2  # twice the lanes per vector instruction
    # the not-available path, always exercised: a missing compiler is named, never faked
    monkeypatch.setattr(riscv.shutil, "which", lambda name: None)
    monkeypatch.setattr(riscv, "spike_binary", lambda: None)
    with pytest.raises(riscv.Unavailable, match="riscv64-linux-gnu-gcc.*spike.*dtc"):
        riscv.proxy()
    rows = []
    assert experiment._riscv(rows) is None and rows[0].verdict == "not measured"


def test_scenario_pieces():
    x = torch.randn(5, 1, 28, 28)
    assert scenario.to_mlperf(x).shape == (5, 3, 32, 32)
    m = tiny.resnet8().eval()
    opened = scenario.open_new_classes(m)
    assert torch.all(opened.fc.weight[8:] == 0) and not torch.all(m.fc.weight[8:] == 0)
    acc = scenario.accuracy(lambda t: torch.zeros(len(t), 10).index_fill_(1, torch.tensor([9]), 1.0),
                            torch.zeros(4, 3, 32, 32), torch.tensor([1, 9, 9, 3]))
    assert acc == {"old": 0.0, "new": 100.0, "all": 50.0}


def test_kws_pieces_or_their_reason(monkeypatch):
    from frugalnn.odl import kws

    try:
        kws.check_available()
    except kws.KwsDataMissing as e:
        assert "missing" in str(e)
    else:
        rng = np.random.default_rng(0)
        raw = kws.synth("nine", "en-us", 170, 50)
        assert raw.ndim == 1 and len(raw) > 1000
        sig = kws.place(raw, rng, 20.0)
        assert sig.shape == (kws.SR,) and kws.mfcc(sig).shape == (49, 10)
        real, sr = kws._read_wav(str(kws.ASTERISK / "9.wav"))
        assert sr == kws.SR and len(real) > 1000
    # the missing-data path, always exercised: a visible not-measured row naming what is missing
    monkeypatch.setattr(kws.shutil, "which", lambda name: None)
    res = experiment.odl_kws(Context(quick=True))
    assert res.rows[0].verdict == "not measured" and "espeak-ng" in res.rows[0].rule + res.rows[0].notes


def test_bench_checks_and_runs_quick(monkeypatch):
    from frugalnn.bench.harness import BenchArgs
    from frugalnn.odl import bench

    errs = bench._check(tiny.dscnn().eval(), tiny.example_input(tiny.dscnn()), 2)
    assert errs["engine fp32"] < 1e-4 and errs["engine fp16"] < max(5e-2, 1.5 * errs["torch .half()"])
    report = bench.bench_odl(BenchArgs(quick=True, repeats=1, options={"no_compile": True}))
    impls = {(r.case, r.impl) for r in report.rows}
    assert ("DS-CNN", "engine fp32") in impls and ("ResNet8", "torch.compile") in impls
    assert all(r.vs_baseline for r in report.rows if r.impl == "engine fp32")
