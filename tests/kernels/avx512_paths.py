"""The two code paths of the avx512 backend's integer kernels (MixPE vpdpbusd, DFP vpdpwssd): VNNI
where the CPU has it, and the AVX512BW fallback (vpmaddubsw / vpmaddwd) that an AVX-512 CPU without
VNNI runs, forced here with kernels.use_avx512_vnni(False). A path this CPU cannot run skips with a
reason naming the CPU (tests/skip_policy.py)."""
import pytest

from frugalnn import _core
from frugalnn.kernels import MISSING_REASON, available_backends, use_avx512_vnni, use_backend

PATHS = ("vnni", "avx512bw")


@pytest.fixture(params=PATHS)
def avx512_path(request):
    if "avx512" not in available_backends():
        pytest.skip(MISSING_REASON["avx512"])
    if request.param == "vnni" and not _core.cpu_supports_avx512_vnni():
        pytest.skip("CPU lacks AVX512-VNNI")
    with use_backend("avx512"), use_avx512_vnni(request.param == "vnni"):
        yield request.param
