"""frugalnn.hw cost: latency = max(compute, DRAM), utilisation per array, the energy breakdown."""
import pytest

from frugalnn.hw import DRAM, ENERGY_45NM, Buffer, ComputeArray, Machine, alu_pe


def _machine(bandwidth=1e9, leak=0.5):
    pe = alu_pe(ENERGY_45NM)
    arrays = (ComputeArray("2d", (4, 4), pe), ComputeArray("1d", (4,), pe))
    return Machine(arrays, Buffer(1 << 20, 2, 3.0, 5.0), DRAM(bandwidth, 64.0), clock_hz=1e9,
                   leak_pj_per_pe_cycle=leak), pe


def test_compute_bound_run():
    m, pe = _machine()
    c = m.cost(1000.0, {"2d": 1000.0, "1d": 250.0}, dram_bytes=100.0, charges=[(pe, {"mac": 16000.0})],
               buffer_words=(10.0, 20.0), stages={"all": 1000.0})
    assert c.latency_s == pytest.approx(1e-6) and not c.memory_bound
    assert c.utilization == {"2d": 1.0, "1d": 0.25}
    assert c.energy_breakdown["buffer"] == 10 * 3.0 + 20 * 5.0
    assert c.energy_breakdown["DRAM"] == 100 * 64.0
    assert c.energy_breakdown["leakage"] == pytest.approx(1000 * 20 * 0.5)  # cycles x all 20 PEs x pJ
    assert c.energy_breakdown["compute"] == pytest.approx(16000 * ENERGY_45NM["mac"])
    assert c.energy_pj == pytest.approx(sum(c.energy_breakdown.values()))
    assert c.stages == {"all": 1000.0}


def test_memory_bound_run_stretches_latency_and_leakage():
    m, pe = _machine(bandwidth=1e6)
    c = m.cost(1000.0, {"2d": 1000.0}, dram_bytes=1e3, charges=[(pe, {"mac": 1.0})], buffer_words=(0.0, 0.0))
    assert c.memory_bound and c.latency_s == pytest.approx(1e-3)
    assert c.utilization["2d"] == pytest.approx(1000 / 1e6)
    assert c.energy_breakdown["leakage"] == pytest.approx(1e6 * 20 * 0.5)


def test_machine_validates_its_parts():
    m, pe = _machine()
    with pytest.raises(ValueError, match="'3d'"):
        m.cost(1.0, {"3d": 1.0}, 0.0, [], (0.0, 0.0))
    with pytest.raises(ValueError, match="clock_hz"):
        Machine(m.arrays, m.buffer, m.dram, 0.0)
    with pytest.raises(ValueError, match="uniquely"):
        Machine((m.arrays[0], m.arrays[0]), m.buffer, m.dram, 1e9)
    with pytest.raises(ValueError, match="bytes_per_s"):
        DRAM(0.0, 64.0)
    with pytest.raises(ValueError, match="capacity_bytes"):
        Buffer(0, 2, 1.0, 1.0)
