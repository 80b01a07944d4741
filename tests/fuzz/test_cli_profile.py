"""Fuzz the `frugalnn profile` command line (issue 19): any argument list ends with exit code 0 and
output, or exit code 2 and exactly one line on stderr -- never a traceback, another exit code, a
crash or a hang, and never an allocation sized by the user before it is checked.

Drawn: built-in model names, module:function and file.py:function specs (a model that works, one
whose input does not match, one that raises, one that returns something else, missing modules
and files), resolutions and batches from negative to 10^30 and non-numbers, --scale strings with
every strategy and factors such as 0, -1, nan, inf, 1e400, --alpha and --max-depth out of range,
unknown options, and --seed values for the commands that take one. The argument lists run in one
child process (tests/fuzz/harness.py) through `frugalnn.cli.main`, with the memory limit of the
size check fixed at 16 MiB there, so accepted sizes stay quick to profile. A few cases also run
as real `python -m frugalnn` processes. FRUGALNN_FUZZ_EXAMPLES=N draws N argument lists.
"""
from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import strategies as st

from harness import draw_cases, examples, run_batch

SPECS = r'''
import torch


def make():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.Linear(4 * 36, 5))
    return net, torch.randn(1, 3, 8, 8)


def mismatch():
    return torch.nn.Linear(3, 4), torch.randn(2, 5)


def raises():
    raise RuntimeError("model zoo\nis closed")


def not_a_pair():
    return 42
'''

SETUP = r'''
import contextlib, io, os, sys, tempfile
from frugalnn.cli import main
from frugalnn.commands import profile as _profile

_profile.available_memory = lambda: 16 << 20  # every machine the same; accepted sizes profile quickly
_tmp = tempfile.mkdtemp(prefix="frugalnn-fuzz-cli-")
with open(os.path.join(_tmp, "fuzzspecs.py"), "w") as _f:
    _f.write(SPECS)
with open(os.path.join(_tmp, "broken.py"), "w") as _f:
    _f.write("def make(:\n")
os.chdir(_tmp)


def cli(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(argv)
        except SystemExit as e:
            rc = e.code
    err = err.getvalue()
    assert "Traceback" not in err, err[-2000:]
    assert rc in (0, 2), f"exit code {rc!r}: {err[-500:]}"
    if rc == 2:
        assert err.endswith("\n") and err.count("\n") == 1, f"not one line: {err[-1000:]!r}"
    else:
        assert out.getvalue().strip(), "exit 0 without output"
'''.replace("SPECS", repr(SPECS))

MODELS = ["regnety-200mf", "effnet-b0", "regnety-400mf", "resnet-9000", "", "-", "REGNETY-200MF", "regnety",
          "fuzzspecs:make", "fuzzspecs:mismatch", "fuzzspecs:raises", "fuzzspecs:not_a_pair", "fuzzspecs:missing",
          "nosuchmodule:make", "broken:make", "broken.py:make", "fuzzspecs.py:make", "/nonexistent/x.py:f", ":",
          "a:", ":b", "fuzzspecs:make:extra"]
NUMBERS = ["-1", "0", "1", "2", "7", "32", "48", "64", "100000", "1000000", str(2**63), str(10**30), "abc", "1e3",
           "", "1.5", "0x10", "9" * 5000]
STRATEGIES = ["d", "w", "r", "dw", "dr", "wr", "dwr", "dWr", "x", "", "DWR"]
FACTORS = ["4", "2", "1e9", "1e30", "0", "-1", "nan", "inf", "1e400", "abc", "", "1e-9", "1e200", "1.7e308", "1e-300"]


@st.composite
def profile_argv(draw):
    argv = ["profile"]
    model = draw(st.sampled_from(MODELS))
    if draw(st.integers(0, 9)):
        argv.append(model)
    options = {
        "--resolution": st.sampled_from(NUMBERS), "--batch": st.sampled_from(NUMBERS),
        "--scale": st.one_of(st.builds(lambda s, f: f"{s}:{f}", st.sampled_from(STRATEGIES), st.sampled_from(FACTORS)),
                             st.sampled_from(["dWr", "4", ":", "dWr:4:2"])),
        "--alpha": st.sampled_from(["0.8", "0", "1", "-0.1", "1.1", "nan", "inf", "abc"]),
        "--max-depth": st.sampled_from(["0", "1", "2", "-1", "100", str(10**30), "x"]),
        "--convention": st.sampled_from(["macs", "fvcore", "x"]),
        "--fake": st.none(), "--json": st.none(), "--list": st.none(), "--bogus": st.none(), "-x": st.none(),
        "--seed": st.sampled_from(["1", str(2**70)]),
    }
    chosen = draw(st.lists(st.sampled_from(sorted(options)), max_size=4, unique=True))
    if "--list" in chosen and draw(st.integers(0, 3)):
        chosen.remove("--list")  # --list short-circuits everything: keep it rare
    for name in chosen:
        value = draw(options[name])
        argv += [name] if value is None else [name, value]
    if draw(st.integers(0, 2)) and "--fake" not in argv:
        argv.append("--fake")  # most accepted cases profile fast under FakeTensorMode
    return argv


OTHER_COMMANDS = [["generate", "--seed", str(2**70), "hi"], ["generate", "--seed", "-1", "hi"],
                  ["report", "--seed", str(2**64), "--list"], ["generate", "--temperature", "x"], ["no-such-command"],
                  ["profile", "regnety-200mf", "--scale", "dWr:1e9", "--batch", str(2**70)]]


def test_profile_arguments():
    argvs = OTHER_COMMANDS + draw_cases(profile_argv(), examples(150))
    cases = list(dict.fromkeys(f"cli({argv!r})" for argv in argvs))  # drawn duplicates run once
    outcomes = run_batch(SETUP, cases, timeout=180, allowed=())
    assert outcomes.count("ok") == len(cases)


def test_real_process_exits_2_with_one_line():
    # one real process end to end (each costs an interpreter and a torch import): 11 TiB of input,
    # refused by the size check on any machine, never allocated
    argv = ["profile", "regnety-200mf", "--resolution", "1000000", "--fake"]
    proc = subprocess.run([sys.executable, "-X", "faulthandler", "-m", "frugalnn", *argv], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert proc.stdout == ""
