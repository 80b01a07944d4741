"""Processing elements of mixed-precision GEMM accelerators at 28 nm: per-MAC energy, PE area and
products per PE-cycle for MixPE (W4A8 shift-add, W4A16 shift-add on fp16) and its baselines (INT8,
FP16, BitFusion, ANT, OLAccel). Used by frugalnn.hw.gemm; the MixPE reproduction reads it.

Sources. Energy and area of the arithmetic atoms are Horowitz's 45 nm figures (M. Horowitz,
"Computing's energy problem", ISSCC 2014, Fig. 1.1.9: 8-bit multiply 0.2 pJ / 282 um^2, 32-bit add
0.1 pJ / 137 um^2, fp16 multiply 1.1 pJ / 1640 um^2, fp16 add 0.4 pJ / 1360 um^2, fp32 add
0.9 pJ / 4184 um^2, fp32 multiply 3.7 pJ / 7700 um^2), scaled to 28 nm by 0.5 in energy and by
(28/45)^2 = 0.387 in area (Stillmaker & Baas, "Scaling equations for the accurate prediction of CMOS
device performance from 180 nm to 7 nm", Integration 2017: their 45->28 nm dynamic-energy factor is
about 0.5 at nominal voltage). Integer multipliers scale with the product of the operand widths and
adders with their width (array multipliers are adder arrays). These are estimates, not synthesis:
the authors synthesised their PEs (results/systolic_array_synth.csv in their simulator) and we have
no access to that library, so every ratio below follows from the formulas, stated per PE.
"""
from __future__ import annotations

from dataclasses import dataclass

ENERGY_SCALE_28NM = 0.5           # 45 -> 28 nm dynamic energy (Stillmaker & Baas 2017)
AREA_SCALE_28NM = (28 / 45) ** 2  # 45 -> 28 nm area


def int_mul(a_bits: int, b_bits: int) -> tuple[float, float]:
    """(pJ, um^2) at 45 nm of an a x b integer multiplier (8 x 8: 0.2 pJ, 282 um^2)."""
    f = a_bits * b_bits / 64
    return 0.2 * f, 282.0 * f


def int_add(bits: int) -> tuple[float, float]:
    """(pJ, um^2) at 45 nm of a `bits`-wide adder (32 bits: 0.1 pJ, 137 um^2)."""
    f = bits / 32
    return 0.1 * f, 137.0 * f


FP16_MUL, FP16_ADD, FP32_ADD, FP32_MUL = (1.1, 1640.0), (0.4, 1360.0), (0.9, 4184.0), (3.7, 7700.0)


def _sum(*parts: tuple[float, float]) -> tuple[float, float]:
    return sum(p[0] for p in parts), sum(p[1] for p in parts)


@dataclass(frozen=True)
class PEType:
    """One PE kind: `rate` products per PE-cycle for the workload's precision (W bits x A bits),
    `pj` energy per product and `area_um2` per PE at 28 nm; `w_bits`/`a_bits` what is stored and
    moved; `extra_pj_per_mac` work outside the array charged per product (MixPE's per-group FMA,
    OLAccel's outliers); `extra_area_um2` per array column (MixPE's dequantization units)."""

    name: str
    rate: float
    pj: float
    area_um2: float
    w_bits: int
    a_bits: int
    extra_pj_per_mac: float = 0.0
    extra_area_um2_per_col: float = 0.0
    note: str = ""


def _scaled(name, rate, parts45, w_bits, a_bits, extra45=0.0, col_area45=0.0, note="") -> PEType:
    pj, area = parts45
    return PEType(name, rate, pj * ENERGY_SCALE_28NM, area * AREA_SCALE_28NM, w_bits, a_bits,
                  extra45 * ENERGY_SCALE_28NM, col_area45 * AREA_SCALE_28NM, note)


def pe_types(group: int = 128, outlier_fraction: float = 0.03) -> dict[str, PEType]:
    """Every PE kind of the comparison, for a W4 (group `group`) workload."""
    fma16 = _sum(FP16_MUL, FP16_ADD)  # the dequantization unit: one fp16 FMA per group and output
    return {
        # MixPE W4A8: q*a = sum_i bit_i (a << i): four shifted 8-bit rows summed = a 4x8 array
        # multiplier's adders; the group's integer sum fits 20 bits (128 * 15 * 128 < 2^18).
        "MixPE-W4A8": _scaled("MixPE-W4A8", 1.0, _sum(int_mul(4, 8), int_add(20)), 4, 8, fma16[0] / group,
                              fma16[1], "shift-add PE, int20 group accumulator, fp16 FMA per group per column"),
        # MixPE W4A16: the fp16 mantissa (11 bits) shifted by the weight's bits (11x4 adds), an
        # exponent add, alignment, and an fp32 accumulator.
        "MixPE-W4A16": _scaled("MixPE-W4A16", 1.0, _sum(int_mul(4, 11), int_add(5), int_add(16), FP32_ADD), 4, 16,
                               fma16[0] / group, fma16[1], "fp16 shift-add (exponent add), fp32 accumulator"),
        "INT8": _scaled("INT8", 1.0, _sum(int_mul(8, 8), int_add(32)), 8, 8,
                        note="W8A8 per channel: int4 group weights cannot be used without dequantizing"),
        "FP16": _scaled("FP16", 1.0, _sum(FP16_MUL, FP32_ADD), 16, 16, note="fp16 x fp16, fp32 accumulator"),
        # BitFusion (Sharma et al., ISCA 2018): 16 2-bit bricks per fusion unit; 8x8 at 1/cycle, 4x8
        # at 2/cycle; shifters and the fusion tree cost ~30% over a plain 8-bit MAC.
        "BitFusion": _scaled("BitFusion", 2.0, tuple(1.3 * v for v in _sum(int_mul(8, 8), int_add(32))), 4, 8,
                             note="fusion unit, 2 products of 4x8 per cycle"),
        # ANT (Guo et al., MICRO 2022): 4-bit PEs with a type decoder; an 8-bit activation takes two.
        "ANT": _scaled("ANT", 0.5, _sum(int_mul(4, 4), int_add(8), int_add(24)), 4, 8,
                       note="4x4 PE + flint decoder; 4x8 in two cycles"),
        # OLAccel (Park et al., ISCA 2018): 4-bit dense PEs, outliers (~3%) on 16-bit units.
        "OLAccel": _scaled("OLAccel", 0.5 / (1 + outlier_fraction), _sum(int_mul(4, 4), int_add(24)), 4, 8,
                           extra45=outlier_fraction * _sum(int_mul(16, 16), int_add(32))[0],
                           note=f"4x4 dense PE, {outlier_fraction:.0%} outliers at 16 bits"),
    }
