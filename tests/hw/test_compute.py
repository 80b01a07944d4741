"""frugalnn.hw compute: PE operation costs, arrays turning op counts into cycles, energy per PE kind."""
import pytest

from frugalnn.hw import ENERGY_45NM, PE, ComputeArray, OpCost, alu_pe, energy_table, op_energy


def test_alu_pe_prices_exp_in_a_unit_or_as_macs():
    unit, soft = alu_pe(ENERGY_45NM), alu_pe(ENERGY_45NM, exp_macs=6)
    assert unit.op("exp") == OpCost(1, ENERGY_45NM["exp_unit"], 1)
    assert soft.op("exp") == OpCost(7, 6 * ENERGY_45NM["mac"] + ENERGY_45NM["add"], 7)
    assert unit.op("mac") == soft.op("mac") == OpCost(1, ENERGY_45NM["mac"])
    assert unit.rf_pj_per_step == pytest.approx(2 * 0.653431 + 0.56957)
    assert unit != soft


def test_array_cycles_spread_points_over_its_pes():
    grid = ComputeArray("2d", (256, 256), alu_pe(ENERGY_45NM, exp_macs=6))
    assert grid.pes == 65536
    assert grid.cycles({"mac": 1}, points=65536 * 10) == 10
    assert grid.cycles({"exp": 1, "add": 1}, points=65536) == 8  # 7-cycle exp + 1 add


def test_bad_inputs_name_the_value():
    pe = alu_pe(ENERGY_45NM)
    with pytest.raises(ValueError, match="'shift_add'"):
        pe.op("shift_add")
    with pytest.raises(ValueError, match="shape"):
        ComputeArray("2d", (0, 256), pe)
    with pytest.raises(ValueError, match="exp_macs"):
        alu_pe(ENERGY_45NM, exp_macs=0)
    with pytest.raises(ValueError, match="cycles"):
        OpCost(0, 1.0)
    with pytest.raises(ValueError, match="int4_mac"):
        energy_table(int4_mac=-1.0)
    with pytest.raises(TypeError):
        ENERGY_45NM["mac"] = 0.0  # the shared table is read-only; copy it with energy_table()


def test_op_energy_charges_each_op_at_the_pe_kind_that_ran_it():
    unit, soft = alu_pe(ENERGY_45NM), alu_pe(ENERGY_45NM, exp_macs=6)
    e = op_energy([(soft, {"mac": 10.0}), (unit, {"exp": 2.0}), (soft, {"mac": 5.0, "exp": 1.0})])
    rf = unit.rf_pj_per_step
    assert e["compute"] == pytest.approx(15 * ENERGY_45NM["mac"] + 2 * ENERGY_45NM["exp_unit"]
                                         + 6 * ENERGY_45NM["mac"] + ENERGY_45NM["add"])
    assert e["register file"] == pytest.approx((15 + 2 + 7) * rf)
    with pytest.raises(ValueError, match="'div'"):
        op_energy([(PE("int8 MAC", {"mac": OpCost(1, 0.2)}), {"div": 1.0})])


def test_a_custom_integer_pe_for_a_gemm_array():
    # What a GEMM accelerator (e.g. MixPE's) builds: its own PE kind from an extended table.
    table = energy_table(int4_shift_add=0.05, dequant=1.5)
    pe = PE("shift-add", {"mac": OpCost(1, table["int4_shift_add"]), "dequant": OpCost(4, table["dequant"], 2)}, 0.1)
    grid = ComputeArray("gemm", (32, 32), pe)
    m, n, k, group = 64, 64, 128, 32
    assert grid.cycles({"mac": 1}, m * n * k) == m * n * k / 1024
    assert grid.cycles({"dequant": 1}, m * n * (k // group)) == 4 * m * n * (k // group) / 1024
    e = op_energy([(pe, {"mac": m * n * k, "dequant": m * n * k / group})])
    assert e["compute"] == pytest.approx(m * n * k * 0.05 + m * n * k / group * 1.5)
    assert e["register file"] == pytest.approx((m * n * k + 2 * m * n * k / group) * 0.1)
