"""frugalnn.bench.isa: both sides' ISA in every race's JSON, and a target verdict that can fail."""
from frugalnn.bench import isa
from frugalnn.kernels import backend, other_backends


def test_verdict_can_fail_and_names_an_absent_measurement():
    assert isa.verdict(2.1, 2) == "meets >= 2x"
    assert isa.verdict(1.99, 2) == "misses >= 2x"
    assert isa.verdict(1.3, 1.3) == "meets >= 1.3x"
    assert isa.verdict(None, 1.4) == "not measured (target >= 1.4x)"


def test_ours_records_backend_per_op_and_vnni():
    rec = isa.ours(("lut", "odl"))
    assert rec["backend"] == backend() and rec["also_timed_backends"] == list(other_backends())
    assert set(rec["ops"]) == {"lut", "odl"} and rec["ops"]["odl"] in ("serial", "avx2")  # odl has no avx512.h
    assert isinstance(rec["avx512_vnni"], bool) and rec["cpu"]
    assert isa.describe_ours(("lut",)).startswith(f"{backend()} (lut: ")


def test_peer_isa_keeps_the_flags_that_decide_an_x86_race():
    features = {"avx": True, "avx2": True, "avx512": 1, "avx512_vnni": 0, "neon": False}
    assert isa.ggml_isa(features) == {"avx2": True, "avx512": True, "avx512_vnni": False}
