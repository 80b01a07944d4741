"""Parser limits (issue 19, items 4 and 12): linear time in the number of statements, and deep or
huge inputs refused with a CascadeError that names the line and column, never a RecursionError."""
import time

import numpy as np
import pytest

from frugalnn.fusemax.cascade import CascadeError, parse
from frugalnn.fusemax.cascade.parser import MAX_DEPTH, MAX_SHAPE


def _chain(n: int, reverse: bool = False) -> str:
    """T0 = A, T_i = T_{i-1} + A: a dependency chain n statements long."""
    lines = ["T0[i] = A[i]"] + [f"T{i}[i] = T{i - 1}[i] + A[i]" for i in range(1, n)]
    return "input A[i]\n" + "\n".join(lines[::-1] if reverse else lines)


def _parse_seconds(text: str) -> float:
    t0 = time.perf_counter()
    parse(text)
    return time.perf_counter() - t0


def test_parse_time_is_linear_in_statements():
    # Before: producers() scanned every statement for every reference, 8,000 statements took
    # seconds and 100,000 over 100 s. Now a 10x longer text may take at most 25x longer (linear: 10x,
    # quadratic: 100x), and 50,000 statements finish far inside a generous bound.
    small, large = _chain(5_000), _chain(50_000)
    t_small = min(_parse_seconds(small) for _ in range(2))
    t_large = _parse_seconds(large)
    assert t_large < 30, f"50,000 statements took {t_large:.1f} s"
    assert t_large < 25 * t_small, f"5,000 statements: {t_small:.3f} s, 50,000: {t_large:.3f} s (not linear)"


def test_reverse_order_chain_parses_runs_and_counts_passes():
    # 1,000 statements written last-first: the dependency walk is 1,000 deep (a RecursionError before).
    c = parse(_chain(1_000, reverse=True))
    out = c.run({"A": np.arange(3.0)})
    np.testing.assert_array_equal(out["T999"], 1000 * np.arange(3.0))
    assert c.passes("i").passes == 1


def test_reverse_order_chain_still_finds_cycles():
    text = _chain(2_000, reverse=True) + "\nT0x[i] = T1999[i]"  # harmless extra reader
    parse(text)
    cyclic = _chain(2_000, reverse=True).replace("T0[i] = A[i]", "T0[i] = T1999[i]")
    with pytest.raises(CascadeError, match="dependency cycle"):
        parse(cyclic)


@pytest.mark.parametrize("opener,closer", [("(", ")"), ("exp(", ")"), ("max(A[i], ", ")")])
def test_nesting_past_the_limit_is_a_cascade_error(opener, closer):
    n = 400  # past the old ~330-level RecursionError
    text = "input A[i]\nB[i] = " + opener * n + "A[i]" + closer * n
    with pytest.raises(CascadeError, match=f"deeper than {MAX_DEPTH} levels") as info:
        parse(text)
    assert info.value.line == 2
    assert info.value.col == 8 + MAX_DEPTH * len(opener)  # the opener of level MAX_DEPTH + 1


def test_nesting_up_to_the_limit_parses_and_runs():
    text = "input A[i]\nB[i] = " + "(" * MAX_DEPTH + "A[i]" + ")" * MAX_DEPTH
    assert parse(text).run({"A": np.ones(2)})["B"].tolist() == [1.0, 1.0]
    text = "input A[i]\nB[i] = " + "exp(" * (MAX_DEPTH - 1) + "-A[i]" + ")" * (MAX_DEPTH - 1)
    assert parse(text).run({"A": np.ones(2)})["B"].shape == (2,)


def test_many_unary_minuses_are_a_cascade_error():
    with pytest.raises(CascadeError, match="deeper than") as info:
        parse("input A[i]\nB[i] = " + "-" * 1_000 + "A[i]")
    assert (info.value.line, info.value.col) == (2, 8 + MAX_DEPTH)
    assert parse("input A[i]\nB[i] = " + "-" * 10 + "A[i]").run({"A": np.ones(1)})["B"][0] == 1.0


def test_long_operator_chain_is_bounded_too():
    # `a + b + c + ...` is a left-leaning tree as deep as it is long; the executor walks it.
    ok = "input A[i]\nB[i] = " + " + ".join(["A[i]"] * MAX_DEPTH)
    assert parse(ok).run({"A": np.ones(1)})["B"][0] == MAX_DEPTH
    with pytest.raises(CascadeError, match="split it into several statements") as info:
        parse("input A[i]\nB[i] = " + " * ".join(["A[i]"] * 5_000))
    assert info.value.line == 2


def test_huge_shape_constant_is_a_cascade_error_with_position():
    with pytest.raises(CascadeError, match="too large") as info:
        parse("input A[i]\nT = " + "9" * 5_000 + "\nB[i] = A[i]")
    assert (info.value.line, info.value.col) == (2, 5)
    with pytest.raises(CascadeError, match="too large"):
        parse(f"input A[i]\nT = {MAX_SHAPE + 1}\nB[i] = A[i]")
    assert parse(f"input A[i]\nT = 000{MAX_SHAPE}\nB[i] = A[i]").shapes == {"T": MAX_SHAPE}
    with pytest.raises(CascadeError, match="positive integer"):
        parse("input A[i]\nT = " + "0" * 50 + "\nB[i] = A[i]")
