"""Skip policy: a skip hides a regression unless it is for an optional peer (llama.cpp) or a CPU
feature this machine lacks (or the browser test's chromium, which .ci/run installs as root). Any
other skip -- a missing required dependency, missing shipped data, a project module that fails to
import -- is turned into a failure by tests/conftest.py, with its reason.
"""
import re

ALLOWED_SKIPS = (
    re.compile(r"llama\.cpp", re.I),         # the optional peer: pip install 'frugalnn[peers]'
    re.compile(r"\bCPU\b"),                  # e.g. "no AVX2 on this CPU", "CPU lacks AVX-512"
    re.compile(r"^chromium not installed"),  # tests/report/test_browser.py when not run as root
)


def skip_is_allowed(reason: str) -> bool:
    return any(p.search(reason) for p in ALLOWED_SKIPS)


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def enforce(report) -> None:
    """Turn a test or collection report's forbidden skip into a failure (xfail is left alone)."""
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = _skip_reason(report)
        if not skip_is_allowed(reason):
            report.outcome = "failed"
            report.longrepr = (f"skip policy (tests/skip_policy.py): a skip is only for an optional peer or a "
                               f"CPU feature the machine lacks; this one hides a failure: {reason}")
