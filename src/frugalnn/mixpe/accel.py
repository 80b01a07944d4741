"""MixPE's accelerator claim on frugalnn.hw: speedup and energy of MixPE against INT8, FP16,
BitFusion, ANT and OLAccel on ViT-B, ViT-H, OPT-6.7B and Llama2-13B (batch 64, 500 MHz, 28 nm),
beside what the authors' simulator (yuzhang712/mixpe_simulator) printed.

Designs. MixPE W4A8 on 64x64 and W4A16 on 32x32 (the paper); BitFusion 32x40 and FP16 32x28 as in
the authors' configs (conf_bitfusion.ini, conf_float.ini); INT8, ANT and OLAccel, whose configs
are not in the repository, at the area of MixPE W4A8's array (frugalnn.hw.iso_area). A second view
puts every baseline at MixPE W4A8's area.

What the authors' simulator gets wrong (read at commit 769f0c85; WHERE_WRONG below, docs/mixpe.md).
"""
from __future__ import annotations

import math

from frugalnn import hw

PAPER_SPEEDUP, PAPER_ENERGY = 2.6, 1.4   # "over the best quantization accelerators" (MixPE 2024)
BATCH = 64
WORKLOADS = ("ViT-B", "ViT-H", "OPT-6.7B", "Llama2-13B")
QUANT_BASELINES = ("INT8", "BitFusion", "ANT", "OLAccel")  # FP16 is not a quantization accelerator
BASELINES = (*QUANT_BASELINES, "FP16")
AUTHOR_ARRAYS = {"MixPE-W4A8": (64, 64), "MixPE-W4A16": (32, 32), "BitFusion": (32, 40), "FP16": (32, 28)}

# The authors' simulator output, results/mixpe_res.csv (last block, the ANT run): time and energy
# normalized to FP16 = 1, designs in the order below. Energy = Static + DRAM + Buffer + Core.
AUTHOR_DESIGNS = ("MixPE-W4A8", "ANT", "BitFusion", "INT8", "MixPE-W4A16", "FP16")
AUTHOR_TIME = {"ViT-B": (0.15, 0.61, 0.70, 0.82, 0.53, 1.00), "ViT-H": (0.12, 0.47, 0.67, 0.82, 0.32, 1.00),
               "OPT-6.7B": (0.10, 0.40, 0.68, 0.86, 0.19, 1.00), "Llama2-13B": (0.10, 0.40, 0.68, 0.86, 0.19, 1.00)}
AUTHOR_ENERGY = {
    "ViT-B": tuple(map(sum, zip((.04, .15, .17, .20, .13, .24), (.02, .03, .04, .05, .05, .07),
                                (.09, .10, .12, .12, .17, .23), (.11, .11, .15, .14, .18, .46)))),
    "ViT-H": tuple(map(sum, zip((.03, .11, .15, .19, .07, .23), (.01, .03, .03, .07, .03, .12),
                                (.06, .08, .11, .11, .12, .23), (.08, .08, .14, .13, .10, .43)))),
    "OPT-6.7B": tuple(map(sum, zip((.02, .09, .15, .19, .04, .22), (.01, .03, .03, .05, .02, .13),
                                   (.05, .07, .11, .11, .10, .23), (.06, .06, .14, .14, .06, .42)))),
    "Llama2-13B": tuple(map(sum, zip((.02, .09, .15, .19, .04, .22), (.01, .03, .03, .06, .02, .13),
                                     (.05, .07, .11, .12, .10, .23), (.06, .06, .14, .14, .06, .42)))),
}

WHERE_WRONG = (
    "run_mix.py labels its summary column 'Geomean' but computes the arithmetic mean (sum / len).",
    "run_mix.py's energy summary indexes designs with idx = i * 5 while 6 designs are stored per model, so its "
    "'Geomean' energy entries mix designs across models (e.g. W4A8 Static 'Geomean' 0.14 while its four per-model "
    "values are 0.04, 0.03, 0.02, 0.02).",
    "Simulator peak throughput is a * c * (high_prec / low_prec)^2: with high 8 / low 4 a MixPE W4A8 PE is credited "
    "4 products per cycle (BitFusion's 4x4 rule), but one operand is 8-bit: BitFusion itself does 2 per cycle at "
    "4x8, and a MixPE shift-add PE does 1.",
    "Group dequantization is modelled as an extra 8-bit GEMM [1, K/8] x [N/128, K/8] per layer (e.g. [1,512] x "
    "[96,512] for OPT's 4096 -> 12288), 64 x 96 x 512 MACs per batch, while the work is one multiply-add per output "
    "and group: 64 x 12288 x 32, 8x more.",
    "get_energy_cost() hard-codes 32 banks of 16 x 32-bit words for the buffers whatever the array (the "
    "array-dependent formulas are commented out), so 64x64 and 32x28 designs get the same SRAM energy per bit.",
    "Workloads are typed in by hand with a hand-picked precision per layer (4 or 8), and ViT's 'dot product "
    "attention' is a [197,768] x [768,768] projection shape, not Q K^T / P V per head.",
    "OLAccel's run is commented out in run_mix.py although older blocks of results/mixpe_res.csv carry an OLAccel "
    "column; the CSV is opened in append mode, so it holds several inconsistent runs.",
)


def designs(iso: bool = False) -> dict[str, hw.Design]:
    """Every design of the comparison; iso=True puts all baselines at MixPE W4A8's array area."""
    pes = hw.pe_types()
    out = {name: hw.Design(pes[name], *AUTHOR_ARRAYS[name]) for name in ("MixPE-W4A8", "MixPE-W4A16")}
    area = out["MixPE-W4A8"].area_mm2
    for name in BASELINES:
        if name in AUTHOR_ARRAYS and not iso:
            out[name] = hw.Design(pes[name], *AUTHOR_ARRAYS[name])
        else:
            out[name] = hw.iso_area(pes[name], area)
    return out


def geomean(values) -> float:
    values = list(values)
    return math.exp(sum(math.log(v) for v in values) / len(values))


def compare(iso: bool = False) -> dict:
    """{workload: {design: Cost}} and the speedup / energy ratios of MixPE W4A8 against each baseline."""
    ds = designs(iso)
    costs = {w: {name: hw.evaluate(d, hw.workload(w, BATCH)) for name, d in ds.items()} for w in WORKLOADS}
    speed = {w: {b: c[b].latency_s / c["MixPE-W4A8"].latency_s for b in (*BASELINES, "MixPE-W4A16")}
             for w, c in costs.items()}
    energy = {w: {b: c[b].energy_pj / c["MixPE-W4A8"].energy_pj for b in (*BASELINES, "MixPE-W4A16")}
              for w, c in costs.items()}
    best_speed = {w: min(speed[w][b] for b in QUANT_BASELINES) for w in WORKLOADS}
    best_energy = {w: min(energy[w][b] for b in QUANT_BASELINES) for w in WORKLOADS}
    return {"designs": ds, "costs": costs, "speedup": speed, "energy": energy,
            "geomean_vs_best_speed": geomean(best_speed.values()), "geomean_vs_best_energy": geomean(best_energy.values()),
            "geomean_all_speed": geomean(v for w in WORKLOADS for b, v in speed[w].items() if b in BASELINES),
            "geomean_all_energy": geomean(v for w in WORKLOADS for b, v in energy[w].items() if b in BASELINES)}


def authors_ratios() -> dict:
    """The authors' simulator's own MixPE W4A8 speedup / energy saving against each design, per workload."""
    out = {}
    for w in WORKLOADS:
        t, e = AUTHOR_TIME[w], AUTHOR_ENERGY[w]
        out[w] = {d: (t[i] / t[0], e[i] / e[0]) for i, d in enumerate(AUTHOR_DESIGNS) if i}
    return out
