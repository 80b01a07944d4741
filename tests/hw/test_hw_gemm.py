"""The GEMM mapping (frugalnn.hw.gemm), the 28 nm PE kinds and the workloads generated from configs."""
import math

import pytest

from frugalnn import hw
from frugalnn.hw.gemm import gemm_counts
from frugalnn.hw.workloads import MODELS, Gemm


def test_workloads_from_configs():
    vit = {g.name: g for g in hw.workload("ViT-B", batch=64)}
    assert vit["qkv"].m == 197 * 64 and vit["qkv"].n == 3 * 768 and vit["qkv"].count == 12
    llama = {g.name: g for g in hw.workload("Llama2-13B", batch=64)}
    assert llama["down"].k == 13824 and llama["gate+up"].n == 2 * 13824 and llama["o"].m == 64
    opt = sum(g.n * g.k * g.count for g in hw.workload("OPT-6.7B"))
    assert 6.0e9 < opt < 6.8e9  # the weight count of OPT-6.7B's blocks
    with pytest.raises(ValueError, match="workload"):
        hw.workload("GPT-5")
    assert set(MODELS) == {"ViT-B", "ViT-H", "OPT-6.7B", "Llama2-13B"}


def test_mapping_counts_full_tiles_exactly():
    pe = hw.pe_types()["INT8"]
    d = hw.Design(pe, 8, 8)
    c = gemm_counts(d, Gemm("x", 16, 16, 100, 1))
    assert c["cycles"] == 4 * (100 + 16)  # 4 tiles, K cycles + fill/drain
    cost = hw.evaluate(d, [Gemm("x", 16, 16, 100, 1)])
    assert 0 < cost.utilization["array"] <= 1
    assert cost.energy_pj == pytest.approx(sum(cost.energy_breakdown.values()))


def test_rate_and_iso_area():
    pes = hw.pe_types()
    big = Gemm("x", 4096, 4096, 4096, 1)
    fast = hw.evaluate(hw.Design(pes["BitFusion"], 32, 32), [big])  # 2 products per cycle
    slow = hw.evaluate(hw.Design(pes["INT8"], 32, 32), [big])
    assert fast.latency_s < slow.latency_s * 0.6
    d = hw.iso_area(pes["INT8"], 0.4)
    assert d.area_mm2 <= 0.4 and hw.Design(pes["INT8"], d.rows + 4, d.cols + 4).area_mm2 > 0.4


def test_mixpe_beats_int8_at_equal_area():
    pes = hw.pe_types()
    mix = hw.Design(pes["MixPE-W4A8"], 64, 64)
    int8 = hw.iso_area(pes["INT8"], mix.area_mm2)
    g = hw.workload("OPT-6.7B")
    a, b = hw.evaluate(mix, g), hw.evaluate(int8, g)
    assert a.latency_s < b.latency_s and a.energy_pj < b.energy_pj
    assert math.isfinite(a.energy_pj)
