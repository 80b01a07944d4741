import os

import pytest
from hypothesis import HealthCheck, settings

from frugalnn.kernels import available_backends, use_backend
from skip_policy import enforce

# Property tests must stay fast on a 2-core machine; CI may raise the budget with HYPOTHESIS_PROFILE=ci.
settings.register_profile("default", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(params=available_backends())
def backend(request):
    """Run the test once per compiled backend (serial reference and, where the CPU has it, avx2)."""
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
