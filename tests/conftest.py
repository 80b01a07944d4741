import atexit
import os
import shutil
import tempfile

# torch.compile's on-disk caches (FX graphs, C++ kernels) are keyed without ATEN_CPU_CAPABILITY: code generated for
# one vector width and then loaded by a process of another (e.g. a run under ATEN_CPU_CAPABILITY=avx2 on an AVX-512
# machine) computes garbage and writes past its buffers. Seen on this project's machines; so the suite compiles into
# a cache of its own, never one another process filled. Set before torch is imported anywhere.
if "TORCHINDUCTOR_CACHE_DIR" not in os.environ:
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="frugalnn-tests-inductor-")
    atexit.register(shutil.rmtree, os.environ["TORCHINDUCTOR_CACHE_DIR"], True)

import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

from frugalnn.kernels import BACKENDS, MISSING_REASON, available_backends, use_backend  # noqa: E402
from skip_policy import enforce  # noqa: E402

# Property tests must stay fast on a 2-core machine; CI may raise the budget with HYPOTHESIS_PROFILE=ci.
settings.register_profile("default", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Run the test once per compiled backend: serial reference, avx2 and avx512. A backend this CPU
    lacks skips with MISSING_REASON ("CPU lacks AVX-512 ...", allowed by tests/skip_policy.py)."""
    if request.param not in available_backends():
        pytest.skip(MISSING_REASON[request.param])
    with use_backend(request.param):
        yield request.param


# Skip policy (tests/skip_policy.py): a skip that hides a regression becomes a failure.
@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    enforce(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    enforce(outcome.get_result())
