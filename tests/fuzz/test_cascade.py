"""Fuzz the cascade parser (issue 19): every input gives a parsed Cascade or a CascadeError that names a
line and column -- never another exception, a RecursionError or a hang.

Inputs: token-level mutants of the built-in cascades (insert, delete, swap, duplicate a line), deep
nesting of every nesting construct, long inputs (many statements, long lines, long numbers) and
free text over the grammar's alphabet. A cascade that parses is also analysed (passes over each
rank) and run on tiny inputs, where a ValueError is the only other accepted outcome.

The parser is pure Python, so no case can crash the process; each case runs under a wall-clock
limit (SIGALRM) instead, which turns a hang into a failure naming the input. Fixed seed
(derandomize) by default; FRUGALNN_FUZZ_EXAMPLES=N runs N examples per property.
"""
from __future__ import annotations

import re
import signal
import threading
from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from frugalnn.fusemax import cascade
from frugalnn.fusemax.cascade import Cascade, CascadeError, parse
from harness import fuzz_settings

CASE_SECONDS = 5.0  # one parse (+ analysis and a tiny run): milliseconds normally; 5 s is a hang
BUILTINS = [cascade.ATTENTION_1PASS, cascade.ATTENTION_2PASS, cascade.ATTENTION_3PASS,
            cascade.ATTENTION_3PASS_DEFERRED, cascade.SOFTMAX_3PASS, cascade.SOFTMAX_ONLINE, cascade.MATMUL]


class Hang(Exception):
    pass


@contextmanager
def time_limit(seconds: float, text: str):
    if threading.current_thread() is not threading.main_thread():  # SIGALRM needs the main thread
        yield
        return

    def fire(signum, frame):
        raise Hang(f"no answer within {seconds} s for input {text[:300]!r}... ({len(text)} chars)")

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def check(text: str, run: bool = True) -> Cascade | CascadeError:
    """Parse `text`; an accepted outcome is returned, anything else fails the test."""
    with time_limit(CASE_SECONDS, text):
        try:
            c = parse(text)
        except CascadeError as e:
            lines = max(1, len(text.splitlines()))
            assert 1 <= e.line <= lines and e.col >= 1, (str(e), text)
            assert str(e).startswith(f"line {e.line}, column {e.col}: "), str(e)
            return e
        assert isinstance(c, Cascade) and c.statements
        str(c)
        if run:
            exercise(c)
        return c


def exercise(c: Cascade) -> None:
    """Pass analysis over every rank, and a run on inputs where every rank has extent 2."""
    ranks = sorted({r for s in c.statements for r in s.ranks} | set(c.partitions))
    for r in ranks[:4]:
        c.passes(r, shapes={r.upper(): 4 for r in ranks}).explain()
    tiles = {sym: 1 for _, (_, _, sym) in c.partitions.items()}
    inputs = {name: np.ones((2,) * len(axes)) for name, axes in c.inputs.items()}
    try:
        c.run(inputs, **{k: v for k, v in tiles.items() if k not in c.shapes})
    except ValueError:
        pass  # extents the tiny inputs cannot satisfy (a shape constant, a tile that does not divide, ...)


# ---- mutants of the built-in cascades ------------------------------------------------------------------

TOKEN = re.compile(r"\s+|\w+|.", re.S)
VOCAB = ["(", ")", "[", "]", ",", "=", "+", "-", "*", "/", "+1", "0", "1", "2.5", "1e999", "9" * 30, "exp", "max",
         "min", "sum", "inf", "input", "M0", "M1", "m", "m0", "m1", "p", "e", "f", "Q", "K", "V", "X", "QK", "RM",
         "\n", "#", "$", " ", "m1*M0+m0", "max(m)", "exp(", "T[", "\t", "\x00", "é", "٣"]


def _tokens(text: str) -> list[str]:
    return TOKEN.findall(text)


@st.composite
def mutants(draw):
    tokens = _tokens(draw(st.sampled_from(BUILTINS)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["insert", "delete", "swap", "replace", "dup_line", "drop_line"]))
        i = draw(st.integers(0, max(0, len(tokens) - 1)))
        if op == "insert":
            tokens.insert(i, draw(st.sampled_from(VOCAB)))
        elif op == "delete" and tokens:
            del tokens[i]
        elif op == "swap" and tokens:
            j = draw(st.integers(0, len(tokens) - 1))
            tokens[i], tokens[j] = tokens[j], tokens[i]
        elif op == "replace" and tokens:
            tokens[i] = draw(st.sampled_from(VOCAB))
        elif op in ("dup_line", "drop_line"):
            lines = "".join(tokens).split("\n")
            k = draw(st.integers(0, len(lines) - 1))
            if op == "dup_line":
                lines.insert(draw(st.integers(0, len(lines))), lines[k])
            else:
                del lines[k]
            tokens = _tokens("\n".join(lines))
    return "".join(tokens)


@fuzz_settings(400)
@given(mutants())
def test_mutated_builtins(text):
    check(text)


# ---- deep nesting ----------------------------------------------------------------------------------------

OPENERS = {"paren": ("(", ")"), "exp": ("exp(", ")"), "max": ("max(A[i], ", ")"), "min": ("min(", ", A[i])"),
           "neg": ("-", ""), "neg paren": ("-(", ")")}


@st.composite
def nested(draw):
    parts = draw(st.lists(st.tuples(st.sampled_from(sorted(OPENERS)), st.integers(1, 400)), min_size=1, max_size=4))
    expr = "A[i]"
    for kind, depth in parts:
        open_, close = OPENERS[kind]
        expr = open_ * depth + expr + close * depth
    if draw(st.booleans()):
        expr = expr + " * A[i]" * draw(st.integers(0, 300))
    return f"input A[i]\nB[i] = {expr}\n"


@fuzz_settings(60)
@given(nested())
def test_deep_nesting(text):
    check(text, run=False)


def test_deep_nesting_extremes():
    for open_, close in OPENERS.values():
        for depth in (99, 100, 101, 1_000, 20_000):
            check(f"input A[i]\nB[i] = {open_ * depth}A[i]{close * depth}", run=False)
    check("input A[i]\nB[i] = " + "(" * 50_000, run=False)  # unbalanced
    check("input A[i]\nB[i] = A[i]" + ")" * 50_000, run=False)
    check("input A[i]\nB[i] = " + " - ".join(["A[i]"] * 20_000), run=False)


# ---- long inputs -----------------------------------------------------------------------------------------

@st.composite
def long_inputs(draw):
    n = draw(st.sampled_from([1, 2, 40, 1_200, 3_000]))  # past the old recursion limit half of the time
    lines = ["T0[i] = A[i]"] + [f"T{i}[i] = T{i - 1}[i] + A[i]" for i in range(1, n)]
    order = draw(st.sampled_from(["forward", "reverse", "shuffled"]))
    if order == "reverse":
        lines.reverse()
    elif order == "shuffled":
        perm = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).permutation(len(lines))
        lines = [lines[j] for j in perm]
    if draw(st.booleans()):  # close a cycle somewhere
        k = draw(st.integers(0, n - 1))
        lines = [ln.replace("= A[i]", f"= T{n - 1}[i]") if ln.startswith(f"T{k}[") and k == 0 else ln for ln in lines]
    extra = draw(st.sampled_from(["", "T = " + "7" * 5_000, "T = 1" + "0" * 30, "Z[i] = " + "1" * 10_000 + " * A[i]",
                                  "Z[i] = A[i] " + "+ A[i] " * 5_000]))
    return "input A[i]\n" + extra + "\n" + "\n".join(lines)


@fuzz_settings(15)
@given(long_inputs())
def test_long_inputs(text):
    check(text, run=False)


# ---- free text -------------------------------------------------------------------------------------------

@fuzz_settings(300)
@given(st.lists(st.sampled_from(list("AQKMXmpie01[](),=+-*/# \n\t.") + ["exp", "max", "sum", "input ", "inf"]),
                max_size=80).map("".join))
def test_free_text(text):
    check(text)


@pytest.mark.parametrize("text", ["", "\n\n", "#", "input", "input A[i]", "=", "A[i] =", "A = 1", "X[] = 1",
                                  "input A[]\nB[] = A[]", "input A[i]\nB[i] = A[i]\n" * 3])
def test_edge_texts(text):
    check(text)
