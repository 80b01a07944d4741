"""Shared helpers of the fuzz suite (tests/fuzz): run code where a crash or a hang fails one test
instead of killing pytest, and check that a case ended the only ways a fuzz case may end: success
or a clean Python exception.

    rc, out, err = run_isolated("import frugalnn; ...", timeout=30)
    assert_no_crash(rc, out, err, "what ran")        # a signal or a timeout fails, naming it
    outcomes = run_batch(SETUP, ["f(1)", "f(-1)"])   # many cases, one child; the crashing one named
    cases = draw_cases(strategy, 200)                # hypothesis draws, fixed seed, no shrinking

Children run `python -X faulthandler`, so a segfault leaves the Python stack on stderr. Case
counts: `examples(default)` is FRUGALNN_FUZZ_EXAMPLES when set, else the default (kept small so the
whole suite stays under two minutes on two cores). Other areas may add helpers at the end.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from typing import Any, Iterable

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("FRUGALNN_FUZZ_EXAMPLES", "0")) or None
TIMED_OUT = -1000  # run_isolated's return code for a child killed at its timeout
# What a binding may raise for a bad argument; anything else (RuntimeError from an escaped C++
# exception, SystemError, AssertionError from a check inside a case) is a finding.
CLEAN_ERRORS = ("TypeError", "ValueError", "IndexError", "OverflowError")


def examples(default: int) -> int:
    return EXAMPLES or default


def fuzz_settings(default: int, **kw) -> settings:
    """Hypothesis settings for a fuzz property: fixed seed, no deadline, no example database."""
    return settings(max_examples=examples(default), derandomize=True, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck), **kw)


def run_isolated(code: str, timeout: float = 60.0, env: dict[str, str] | None = None,
                 stdin: str | None = None) -> tuple[int, str, str]:
    """Run `code` in a fresh interpreter with faulthandler on: (returncode, stdout, stderr).

    A negative return code is the signal that killed the child; TIMED_OUT means it ran past
    `timeout` seconds and was killed (its output so far is returned)."""
    proc = subprocess.Popen([sys.executable, "-X", "faulthandler", "-c", textwrap.dedent(code)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})}, start_new_session=True)
    try:
        out, err = proc.communicate(stdin, timeout=timeout)
        return proc.returncode, out, err
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the child's own session: nothing else is touched
        out, err = proc.communicate()
        return TIMED_OUT, out, err + f"\n[harness] killed after {timeout:g} s"


def describe_exit(returncode: int) -> str:
    if returncode == TIMED_OUT:
        return "timed out (a hang)"
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


def assert_no_crash(returncode: int, stdout: str, stderr: str, what: str = "child") -> None:
    """The child exited (0, 1 for an exception, 2 for a CLI usage error, ...): never a signal, a fatal
    error (faulthandler's report) or a timeout. Callers check the exit code they expect themselves."""
    fatal = "Fatal Python error" in stderr
    if returncode < 0 or returncode == TIMED_OUT or fatal:
        raise AssertionError(f"{what}: {describe_exit(returncode)}{' (fatal error)' if fatal else ''}\n"
                             f"--- stderr (tail) ---\n{stderr[-3000:]}")


_CHILD = r'''
import json, sys, time, traceback
__ns = {"__name__": "__fuzz__"}
exec(compile(json.loads(sys.argv[1]), "<setup>", "exec"), __ns)
__cases = json.loads(sys.stdin.read())
for __i, __code in enumerate(__cases):
    print(f"@@case {__i}", flush=True)
    __t0 = time.perf_counter()
    try:
        exec(compile(__code, f"<case {__i}>", "exec"), dict(__ns))
        __out = "ok"
    except Exception as __e:
        __out = type(__e).__name__ + ": " + " ".join(str(__e).split())[:300]
        if not isinstance(__e, (TypeError, ValueError, IndexError, OverflowError)):
            __out += " | " + " ".join(traceback.format_exc().split())[-600:]
    print(f"@@done {__i} {time.perf_counter() - __t0:.3f} " + json.dumps(__out), flush=True)
'''


def run_batch(setup: str, cases: list[str], timeout: float = 120.0, allowed: Iterable[str] = CLEAN_ERRORS,
              env: dict[str, str] | None = None) -> list[str]:
    """Run each code string in `cases` (in a copy of the namespace `setup` built) in one child.

    Returns each case's outcome: "ok", or "<ExceptionType>: message". Fails, naming the case and its
    code, if a case crashed the child (a signal), hung it past `timeout`, or raised an exception
    type outside `allowed` (the types of clean argument errors by default)."""
    proc = subprocess.Popen([sys.executable, "-X", "faulthandler", "-c", _CHILD, json.dumps(textwrap.dedent(setup))],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})}, start_new_session=True)
    try:
        out, err = proc.communicate(json.dumps(cases), timeout=timeout)
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        rc = TIMED_OUT
    outcomes: dict[int, str] = {}
    started = -1
    for line in out.splitlines():
        if line.startswith("@@case "):
            started = int(line.split()[1])
        elif line.startswith("@@done "):
            _, i, _, outcome = line.split(" ", 3)
            outcomes[int(i)] = json.loads(outcome)
    if len(outcomes) < len(cases):
        culprit = started if started >= 0 and started not in outcomes else len(outcomes)
        raise AssertionError(
            f"case {culprit} of {len(cases)}: the child {describe_exit(rc)}\n--- case ---\n"
            f"{cases[culprit] if culprit < len(cases) else '(setup)'}\n--- stderr (tail) ---\n{err[-3000:]}")
    allowed = tuple(allowed)
    bad = [(i, o) for i, o in sorted(outcomes.items()) if o != "ok" and not o.startswith(tuple(a + ":" for a in allowed))]
    if bad:
        i, o = bad[0]
        raise AssertionError(f"{len(bad)} case(s) ended in an exception outside {allowed}; first, case {i}:\n"
                             f"{o}\n--- case ---\n{cases[i]}")
    return [outcomes[i] for i in range(len(cases))]


def draw_cases(strategy: st.SearchStrategy, n: int) -> list[Any]:
    """`n` values of `strategy`, the same ones every run (derandomized, generate phase only): for
    cases that run in a batch child, where hypothesis could not shrink a crash anyway."""
    drawn: list[Any] = []

    @settings(max_examples=n, derandomize=True, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(value):
        drawn.append(value)

    collect()
    return drawn
