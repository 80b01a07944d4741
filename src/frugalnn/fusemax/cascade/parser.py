"""Parser of the extended-Einsum cascade language (grammar in frugalnn/cascade/__init__.py).

Produces a `Cascade`: input declarations, shape constants and statements, each statement an
output reference, an optional reduction and an expression tree. Every error is a CascadeError
that names the line and column.

Limits (each refused with a CascadeError at the offending token, never a RecursionError): an
expression nests at most MAX_DEPTH levels, counting parentheses, function calls and unary minus
while parsing, and the depth of the resulting tree, where each binary operator of a chain
(`a + b + c` is `(a + b) + c`) is one level; a shape constant is at most MAX_SHAPE. The parser
and everything that walks a tree (executor, pass analysis) recurse, so the bound keeps them far
from Python's recursion limit.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

REDUCERS = ("sum", "max", "min")
FUNCTIONS = ("exp", "max", "min")
MAX_DEPTH = 100  # expression nesting (see the module docstring); real cascades use under 10
MAX_SHAPE = 2**62  # shape constants: far above any extent, small enough for int64 index arithmetic


class CascadeError(ValueError):
    def __init__(self, message: str, line: int, col: int):
        super().__init__(f"line {line}, column {col}: {message}")
        self.line, self.col, self.message = line, col, message


@dataclass(frozen=True)
class Index:
    """One subscript: `m` (rank), `m+1` (next step of an iterative rank), `0`, `M1` (a rank's
    final step), or `m1*M0+m0` (a partitioned rank read through its parts)."""
    kind: str  # "rank" | "next" | "zero" | "last" | "split"
    rank: str = ""          # rank / next / last: the rank name (lower case); split: outer part
    inner: str = ""         # split: inner part
    shape: str = ""         # split: inner extent symbol (M0)
    col: int = 0

    def ranks(self) -> tuple[str, ...]:
        if self.kind in ("rank", "next"):
            return (self.rank,)
        if self.kind == "split":
            return (self.rank, self.inner)
        return ()

    def __str__(self) -> str:
        return {"rank": self.rank, "next": f"{self.rank}+1", "zero": "0", "last": self.rank.upper(),
                "split": f"{self.rank}*{self.shape}+{self.inner}"}[self.kind]


@dataclass(frozen=True)
class Ref:
    tensor: str
    indices: tuple[Index, ...]
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.tensor}[{','.join(map(str, self.indices))}]"


@dataclass(frozen=True)
class Const:
    value: float


@dataclass(frozen=True)
class Op:
    op: str  # + - * / neg exp max min
    args: tuple
    depth: int = field(default=1, compare=False, repr=False)  # levels of Op below and including this one


@dataclass
class Statement:
    out: Ref
    reducer: str | None
    reduced: tuple[str, ...]
    expr: object
    line: int
    text: str
    refs: list[Ref] = field(default_factory=list)

    @property
    def ranks(self) -> set[str]:
        """The iteration space: every rank in the output or on the right-hand side."""
        out = {r for ix in self.out.indices for r in ix.ranks()}
        return out | {r for ref in self.refs for ix in ref.indices for r in ix.ranks()}

    @property
    def out_ranks(self) -> set[str]:
        return {r for ix in self.out.indices for r in ix.ranks()}

    @property
    def is_init(self) -> bool:
        return any(ix.kind == "zero" for ix in self.out.indices)

    @property
    def step_rank(self) -> str | None:
        """The rank this statement advances (`T[m1+1] = ...`), if any."""
        return next((ix.rank for ix in self.out.indices if ix.kind == "next"), None)

    def __str__(self) -> str:
        return self.text


@dataclass
class Cascade:
    text: str
    inputs: dict[str, tuple[str, ...]]        # tensor -> rank of each axis
    shapes: dict[str, int]                    # constants set in the text (M0 = 64)
    statements: list[Statement]
    axes: dict[str, list[str]]                # every tensor -> rank of each axis
    iterative: dict[str, int]                 # tensor -> axis that is iterated (has R+1 entries)
    partitions: dict[str, tuple[str, str, str]]  # rank -> (outer, inner, inner extent symbol)
    _by_output: dict | None = field(default=None, init=False, repr=False, compare=False)

    def producers(self, tensor: str) -> list[Statement]:
        """Statements that write `tensor` (its step and its initial value), in text order.

        Indexed once on first use: the checks and analyses ask this for every reference, and a
        scan per call made parsing quadratic in the number of statements."""
        if self._by_output is None:
            index: dict[str, list[Statement]] = {}
            for s in self.statements:
                index.setdefault(s.out.tensor, []).append(s)
            self._by_output = index
        return list(self._by_output.get(tensor, ()))

    @property
    def outputs(self) -> list[str]:
        read = {r.tensor for s in self.statements for r in s.refs}
        return [s.out.tensor for s in self.statements if s.out.tensor not in read and not s.is_init]

    def passes(self, rank: str, shapes: dict | None = None):
        from frugalnn.fusemax.cascade.passes import analyse

        return analyse(self, rank, shapes)

    def run(self, inputs: dict, **shapes):
        from frugalnn.fusemax.cascade.executor import run

        return run(self, inputs, **shapes)

    def __str__(self) -> str:
        return self.text


# One alternation for every token, whitespace and any other character (an error), so a line is
# tokenized by one finditer pass.
_TOKEN = re.compile(r"(?P<num>\d+\.\d*(?:[eE][-+]?\d+)?|\d+(?:[eE][-+]?\d+)?)|(?P<name>[A-Za-z_]\w*)"
                    r"|(?P<sym>[\[\](),=+\-*/])|(?P<space>\s+)|(?P<bad>.)", re.DOTALL)


class _Line:
    """Tokens of one line with their 1-based columns."""

    def __init__(self, text: str, line: int):
        self.line, self.tokens, self.pos, self.nesting = line, [], 0, 0
        for m in _TOKEN.finditer(text):
            kind = m.lastgroup
            if kind == "space":
                continue
            if kind == "bad":
                raise CascadeError(f"unexpected character {m.group()!r}", line, m.start() + 1)
            self.tokens.append((kind, m.group(), m.start() + 1))
        self.end_col = len(text) + 1

    def peek(self, k: int = 0):
        j = self.pos + k
        return self.tokens[j] if j < len(self.tokens) else ("end", "", self.end_col)

    def take(self, value: str | None = None, kind: str | None = None):
        tok = self.peek()
        if (value is not None and tok[1] != value) or (kind is not None and tok[0] != kind):
            want = repr(value) if value is not None else kind
            got = "end of line" if tok[0] == "end" else repr(tok[1])
            raise CascadeError(f"expected {want}, got {got}", self.line, tok[2])
        self.pos += 1
        return tok

    def error(self, message: str, col: int | None = None):
        return CascadeError(message, self.line, col if col is not None else self.peek()[2])

    def enter(self, col: int) -> None:
        """One more level of parenthesis / call / unary minus; refused past MAX_DEPTH."""
        self.nesting += 1
        if self.nesting > MAX_DEPTH:
            raise CascadeError(f"expression nests deeper than {MAX_DEPTH} levels", self.line, col)

    def leave(self) -> None:
        self.nesting -= 1


def _op(t: _Line, op: str, args: tuple, col: int) -> Op:
    depth = 1 + max((a.depth for a in args if isinstance(a, Op)), default=0)
    if depth > MAX_DEPTH:
        raise CascadeError(f"expression nests deeper than {MAX_DEPTH} levels (each operator of a chain such as "
                           f"a + b + c counts one level; split it into several statements)", t.line, col)
    return Op(op, args, depth)


def _index(t: _Line) -> Index:
    kind, value, col = t.peek()
    if kind == "num":
        t.take()
        if value != "0":
            raise t.error(f"a numeric subscript must be 0 (an initial value), got {value}", col)
        return Index("zero", col=col)
    if kind != "name":
        raise t.error(f"expected a rank name, got {value or 'end of line'!r}", col)
    t.take()
    if value[0].isupper():
        return Index("last", rank=value.lower(), col=col)
    if t.peek()[1] == "+":
        t.take("+")
        one = t.take(kind="num")
        if one[1] != "1":
            raise t.error(f"an iterative rank advances by 1 ({value}+1), got {value}+{one[1]}", one[2])
        return Index("next", rank=value, col=col)
    if t.peek()[1] == "*":
        t.take("*")
        shape = t.take(kind="name")
        t.take("+")
        inner = t.take(kind="name")
        if not shape[1][0].isupper() or inner[1][0].isupper():
            raise t.error("a partitioned subscript reads outer*INNER_EXTENT+inner, e.g. m1*M0+m0", col)
        return Index("split", rank=value, inner=inner[1], shape=shape[1], col=col)
    return Index("rank", rank=value, col=col)


def _ref(t: _Line) -> Ref:
    name, col = t.peek()[1], t.peek()[2]
    t.take(kind="name")
    t.take("[")
    indices = []
    if t.peek()[1] != "]":
        indices.append(_index(t))
        while t.peek()[1] == ",":
            t.take(",")
            indices.append(_index(t))
    t.take("]")
    return Ref(name, tuple(indices), t.line, col)


def _atom(t: _Line, refs: list):
    kind, value, col = t.peek()
    if kind == "num":
        t.take()
        return Const(float(value))
    if value == "(":
        t.enter(col)
        t.take("(")
        e = _expr(t, refs)
        t.take(")")
        t.leave()
        return e
    if value == "-":
        t.enter(col)
        t.take("-")
        e = _op(t, "neg", (_atom(t, refs),), col)
        t.leave()
        return e
    if kind == "name":
        if value == "inf":
            t.take()
            return Const(float("inf"))
        nxt = t.peek(1)[1]
        if nxt == "[":
            r = _ref(t)
            refs.append(r)
            return r
        if nxt == "(" and value in FUNCTIONS:
            t.enter(col)
            t.take()
            t.take("(")
            args = [_expr(t, refs)]
            while t.peek()[1] == ",":
                t.take(",")
                args.append(_expr(t, refs))
            t.take(")")
            want = 1 if value == "exp" else 2
            if len(args) != want:
                raise t.error(f"{value}() takes {want} argument{'s' * (want > 1)}, got {len(args)}", col)
            t.leave()
            return _op(t, value, tuple(args), col)
        raise t.error(f"unknown name {value!r} (tensors are written T[...], functions exp/max/min)", col)
    raise t.error(f"expected a value, got {value or 'end of line'!r}", col)


def _term(t: _Line, refs: list):
    e = _atom(t, refs)
    while t.peek()[1] in ("*", "/"):
        _, op, col = t.take()
        e = _op(t, op, (e, _atom(t, refs)), col)
    return e


def _expr(t: _Line, refs: list):
    e = _term(t, refs)
    while t.peek()[1] in ("+", "-"):
        _, op, col = t.take()
        e = _op(t, op, (e, _term(t, refs)), col)
    return e


def _looks_like_reduction(t: _Line) -> bool:
    """`max(m) X[...]` (reduce over ranks) rather than `max(X[...], Y[...])` (elementwise)."""
    if t.peek()[1] not in REDUCERS or t.peek(1)[1] != "(":
        return False
    k = 2
    while True:
        kind, value, _ = t.peek(k)
        if kind != "name" or value[0].isupper() or t.peek(k + 1)[1] not in (",", ")"):
            return False
        if t.peek(k + 1)[1] == ")":
            return True
        k += 2


def parse_lines(text: str):
    """Yield (line number, raw line, tokens) of non-empty lines, comments stripped."""
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].rstrip()
        if line.strip():
            yield number, raw.strip(), _Line(line, number)


def parse_statement(t: _Line, raw: str) -> Statement:
    out = _ref(t)
    t.take("=")
    reducer, reduced = None, ()
    if _looks_like_reduction(t):
        reducer = t.take()[1]
        t.take("(")
        names = [t.take(kind="name")[1]]
        while t.peek()[1] == ",":
            t.take(",")
            names.append(t.take(kind="name")[1])
        t.take(")")
        reduced = tuple(names)
    refs: list[Ref] = []
    expr = _expr(t, refs)
    if t.peek()[0] != "end":
        raise t.error(f"unexpected {t.peek()[1]!r} after the expression")
    return Statement(out, reducer, reduced, expr, t.line, raw, refs)
