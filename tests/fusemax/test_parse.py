"""The cascade language: what parses, and errors that point at the line and column."""
import pytest

from frugalnn.fusemax import cascade
from frugalnn.fusemax.cascade import CascadeError, parse


def test_builtin_cascades_parse_with_expected_structure():
    c = parse(cascade.ATTENTION_1PASS)
    assert c.inputs == {"Q": ("e", "p"), "K": ("e", "m"), "V": ("f", "m")}
    assert c.partitions == {"m": ("m1", "m0", "M0")}
    assert c.iterative == {"RM": 0, "RD": 0, "RNV": 1}
    assert c.outputs == ["AV"]
    gm = parse(cascade.ATTENTION_3PASS).producers("GM")[0]
    assert (gm.reducer, gm.reduced) == ("max", ("m",))


def test_comments_blank_lines_and_shape_constants():
    c = parse("# a comment\n\ninput A[i]\nT = 4\nB[i] = exp(A[i]) * 2 - -1  # trailing\n")
    assert c.shapes == {"T": 4} and [s.out.tensor for s in c.statements] == ["B"]


@pytest.mark.parametrize("text,line,col,message", [
    ("input Q[e,p]\nX[p] = Q[e,p] * Z[e]", 2, 17, "unknown tensor Z"),
    ("input Q[e,p]\nQ[e,p] = Q[e,p]", 2, 1, "is an input"),
    ("input A[i]\nB[i] = A[i]\nB[i] = A[i] * 2", 3, 1, "defined twice"),
    ("input A[i,j]\nB[i] = A[i]", 2, 8, "has 2 axes"),
    ("input A[i], C[j]\nB[i] = A[j] * C[j]", 2, 10, "rank used inconsistently"),
    ("input A[i]\nB[i] = C[i]\nC[i] = B[i] + A[i]", 2, 1, "dependency cycle"),
    ("input A[i]\nB[i] = A[i] $ 2", 2, 13, "unexpected character"),
    ("input A[i]\nB[i] = A[i] +", 2, 14, "expected a value"),
    ("input A[i]\nB[i = A[i]", 2, 5, "expected ']'"),
    ("input A[i]\nR[i+1] = R[i] + A[i]", 2, 1, "no initial value"),
    ("input A[i]\nR[0] = 0", 2, 1, r"no R\[...\+1\] = ... statement"),
    ("input A[i]\nB[i] = A[i+2]", 2, 12, "advances by 1"),
    ("input A[i], C[j]\nB[i] = max(j) A[i]", 2, 1, "does not appear"),
    ("input A[i,j]\nB[i] = max(i) A[i,j]", 2, 1, "kept in the output"),
    ("input A[i,j], C[j,k]\nB[i] = max(j) A[i,j] * C[j,k]", 2, 1, "reduced but not listed"),
    ("input A[i]\nB[i] = foo(A[i])", 2, 8, "unknown name 'foo'"),
    ("input A[i]\nB[i] = exp(A[i], A[i])", 2, 8, "takes 1 argument"),
    ("input A[i]\nB[I] = A[i]", 2, 3, "an output subscript"),
    ("input A[i]\nB[i] = A[I]", 2, 10, "not iterative"),
    ("input A[m], C[m]\nB[m1,m0] = A[m1*M0+m0] + C[m0*M1+m1]", 2, 28, "partitioned as"),
    ("input A[i]\nT = 0\nB[i] = A[i]", 2, 5, "positive integer"),
    ("input A[i]\n", 1, 1, "no Einsum statement"),
])
def test_malformed_cascades_report_line_and_column(text, line, col, message):
    with pytest.raises(CascadeError, match=message) as info:
        parse(text)
    assert (info.value.line, info.value.col) == (line, col), str(info.value)
    assert str(info.value).startswith(f"line {line}, column {col}:")


def test_parse_rejects_non_text():
    with pytest.raises(TypeError, match="expected a str"):
        parse(b"input A[i]")
