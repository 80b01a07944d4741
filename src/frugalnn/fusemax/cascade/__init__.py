"""Extended-Einsum cascades (FuseMax / TeAAL style): parse, execute on numpy, count passes.

    from frugalnn.fusemax import cascade
    c = cascade.parse(cascade.ATTENTION_1PASS)
    out = c.run({"Q": q, "K": k, "V": v}, M0=64)["AV"]     # q [E,P], k [E,M], v [F,M]
    print(c.passes("m", shapes={"M": 4096, "M0": 64, "F": 64}))

Grammar (one statement per line; `#` starts a comment; blank lines are ignored):

    line       := input | shape | einsum
    input      := "input" ref {"," ref}             input Q[e,p], K[e,m], V[f,m]
    shape      := SHAPE "=" INT                     M0 = 64   (a tile size; also run(..., M0=64))
    einsum     := ref "=" [reduce] expr             QK[m,p] = Q[e,p] * K[e,m]
    reduce     := ("sum"|"max"|"min") "(" rank {"," rank} ")"      GM[p] = max(m) QK[m,p]
    ref        := TENSOR "[" [index {"," index}] "]"
    index      := rank          plain rank                   QK[m,p]
                | rank "+1"    next step of an iterative rank  RM[m1+1,p] (outputs only)
                | "0"          initial value                RM[0,p] = -inf
                | SHAPE        final step (rank's extent)   RNV[f,M1,p]
                | rank "*" SHAPE "+" rank   partitioned rank  BK[e,m1,m0] = K[e,m1*M0+m0]
    expr       := term {("+"|"-") term};  term := unary {("*"|"/") unary}
    unary      := "-" unary | NUMBER | "inf" | ref | "(" expr ")"
                | "exp(" expr ")" | "max(" expr "," expr ")" | "min(" expr "," expr ")"

Ranks are lower-case names; a rank's extent is its upper-case name (m -> M, m1 -> M1). Ranks on
the right-hand side and not in the output are reduced: with the listed reducer, or by sum when
none is given (the Einsum convention). An iterative tensor has one axis along a rank r with
R+1 entries: `T[...0...] = ...` sets entry 0 and `T[...r+1...] = f(T[...r...], ...)` each next
one; T[...R...] is the final value. Errors (CascadeError, a ValueError) give line and column.

Limits (parser.MAX_DEPTH, parser.MAX_SHAPE): an expression nests at most 100 levels -- each
parenthesis, function call, unary minus and each operator of a chain such as a + b + c counts one --
and a shape constant is at most 2^62; past either, a CascadeError. Parsing and the checks are linear
in the number of statements, and no statement order or chain length reaches Python's recursion limit.
"""
from frugalnn.fusemax.cascade.check import parse
from frugalnn.fusemax.cascade.library import (ATTENTION, ATTENTION_1PASS, ATTENTION_2PASS, ATTENTION_3PASS,
                                      ATTENTION_3PASS_DEFERRED, MATMUL, SOFTMAX_3PASS, SOFTMAX_ONLINE)
from frugalnn.fusemax.cascade.parser import Cascade, CascadeError
from frugalnn.fusemax.cascade.passes import PassAnalysis

__all__ = ["ATTENTION", "ATTENTION_1PASS", "ATTENTION_2PASS", "ATTENTION_3PASS", "ATTENTION_3PASS_DEFERRED",
           "MATMUL", "SOFTMAX_3PASS", "SOFTMAX_ONLINE", "Cascade", "CascadeError", "PassAnalysis", "parse",
           "attention"]


def attention(variant: str, q, k, v, tile: int = 64):
    """Run a built-in attention cascade on q [P,E], k [M,E], v [M,F] (rows are tokens); returns [P,F].

    The 1/sqrt(E) scale is applied to q first. The tiled variants need `tile` to divide M.
    """
    import numpy as np

    if variant not in ATTENTION:
        raise ValueError(f"variant: expected one of {sorted(ATTENTION)}, got {variant!r}")
    q, k, v = (np.asarray(x, dtype=np.float64) for x in (q, k, v))
    c = parse(ATTENTION[variant])
    shapes = {"M0": tile} if c.partitions else {}
    out = c.run({"Q": (q / np.sqrt(q.shape[1])).T, "K": k.T, "V": v.T}, **shapes)
    return out["AV"].T
