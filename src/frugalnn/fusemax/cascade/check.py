"""`parse(text) -> Cascade`: the parser plus the checks that make a cascade well formed.

Checked here, each failure a CascadeError with line and column: unknown tensors, assignments to
inputs, tensors defined twice, a recurrence without its initial value (or the reverse), a rank
used inconsistently (a tensor axis read through another rank, a wrong number of subscripts, a
partition declared two ways), reductions naming ranks that are not reduced, and dependency
cycles that do not go through an iterative rank's previous step.
"""
from __future__ import annotations

from frugalnn.fusemax.cascade.parser import (MAX_SHAPE, Cascade, CascadeError, Ref, Statement, parse_lines,
                                             parse_statement)


def parse(text: str) -> Cascade:
    if not isinstance(text, str):
        raise TypeError(f"text: expected a str, got {type(text).__name__}")
    inputs: dict[str, tuple[str, ...]] = {}
    declared_at: dict[str, tuple[int, int]] = {}
    shapes: dict[str, int] = {}
    statements: list[Statement] = []
    for number, raw, t in parse_lines(text):
        kind, value, col = t.peek()
        if kind == "name" and value == "input" and t.peek(1)[0] == "name":
            t.take()
            while True:
                ref = _input_ref(t)
                if ref.tensor in inputs:
                    raise CascadeError(f"input {ref.tensor} is declared twice", number, ref.col)
                inputs[ref.tensor] = tuple(ix.rank for ix in ref.indices)
                declared_at[ref.tensor] = (number, ref.col)
                if t.peek()[1] != ",":
                    break
                t.take(",")
            if t.peek()[0] != "end":
                raise t.error(f"unexpected {t.peek()[1]!r} in the input declaration")
        elif kind == "name" and value[0].isupper() and t.peek(1)[1] == "=":
            t.take()
            t.take("=")
            num = t.take(kind="num")
            # Significant digits, length-checked before int(): int() of a long digit string is slow,
            # and past 4300 digits it fails with an error that names no line.
            sig = num[1].lstrip("0")
            if "." in num[1] or "e" in num[1].lower() or not sig:
                raise CascadeError(f"shape {value} must be a positive integer, got {num[1]}", number, num[2])
            if len(sig) > len(str(MAX_SHAPE)) or int(sig) > MAX_SHAPE:
                digits = num[1] if len(num[1]) <= 24 else f"{num[1][:12]}... ({len(num[1])} digits)"
                raise CascadeError(f"shape {value} = {digits} is too large (at most {MAX_SHAPE})", number, num[2])
            shapes[value] = int(sig)
            if t.peek()[0] != "end":
                raise t.error(f"unexpected {t.peek()[1]!r} after the shape")
        else:
            statements.append(parse_statement(t, raw))
    if not statements:
        raise CascadeError("the cascade has no Einsum statement", 1, 1)
    axes, iterative = _axes(statements, inputs)
    partitions = _check_refs(statements, inputs, axes, iterative, declared_at)
    _check_reductions(statements)
    cascade = Cascade(text, inputs, shapes, statements, axes, iterative, partitions)
    _check_cycles(cascade)
    return cascade


def _input_ref(t) -> Ref:
    from frugalnn.fusemax.cascade.parser import _ref

    ref = _ref(t)
    for ix in ref.indices:
        if ix.kind != "rank":
            raise CascadeError(f"an input's axes are plain ranks, got {ix}", t.line, ix.col)
    return ref


def _axes(statements: list[Statement], inputs: dict) -> tuple[dict, dict]:
    axes: dict[str, list[str]] = {name: list(r) for name, r in inputs.items()}
    iterative: dict[str, int] = {}
    main: dict[str, Statement] = {}
    init: dict[str, Statement] = {}
    for s in statements:
        name = s.out.tensor
        if name in inputs:
            raise CascadeError(f"{name} is an input and cannot be assigned", s.line, s.out.col)
        for ix in s.out.indices:
            if ix.kind in ("last", "split"):
                raise CascadeError(f"an output subscript is a rank, rank+1 or 0, got {ix}", s.line, ix.col)
        table = init if s.is_init else main
        if name in table:
            raise CascadeError(f"{name} is defined twice (first on line {table[name].line})", s.line, s.out.col)
        if s.is_init and any(ix.kind == "next" for ix in s.out.indices):
            raise CascadeError(f"{s.out} mixes an initial value (0) and a step (+1)", s.line, s.out.col)
        if sum(ix.kind == "next" for ix in s.out.indices) > 1 or sum(ix.kind == "zero" for ix in s.out.indices) > 1:
            raise CascadeError("at most one iterative axis per tensor", s.line, s.out.col)
        table[name] = s
    for name, s in init.items():
        if name not in main:
            raise CascadeError(f"initial value of {name} but no {name}[...+1] = ... statement", s.line, s.out.col)
    for name, s in main.items():
        step = [i for i, ix in enumerate(s.out.indices) if ix.kind == "next"]
        if step and name not in init:
            raise CascadeError(f"{name} advances along {s.out.indices[step[0]].rank} but has no initial value "
                               f"({name}[...0...] = ...)", s.line, s.out.col)
        if name in init and not step:
            raise CascadeError(f"{name} has an initial value but no step ({name}[...+1...])", s.line, s.out.col)
        axes[name] = [ix.rank for ix in s.out.indices]
        if step:
            iterative[name] = step[0]
    for name, s in init.items():
        zero = next(i for i, ix in enumerate(s.out.indices) if ix.kind == "zero")
        if len(s.out.indices) != len(axes[name]) or zero != iterative[name]:
            raise CascadeError(f"the initial value {s.out} does not match {main[name].out} (line {main[name].line})",
                               s.line, s.out.col)
    return axes, iterative


def _check_refs(statements, inputs, axes, iterative, declared_at) -> dict:
    partitions: dict[str, tuple[str, str, str]] = {}
    first_use: dict[tuple[str, int], tuple[int, int]] = {}
    for s in statements:
        refs = list(s.refs) + ([s.out] if s.is_init else [])
        for ref in refs:
            if ref.tensor not in axes:
                raise CascadeError(f"unknown tensor {ref.tensor} (not an input and not defined by any statement)",
                                   ref.line, ref.col)
            want = axes[ref.tensor]
            if len(ref.indices) != len(want):
                raise CascadeError(f"{ref.tensor} has {len(want)} axes [{','.join(want)}], "
                                   f"indexed here with {len(ref.indices)}", ref.line, ref.col)
            for axis, (ix, rank) in enumerate(zip(ref.indices, want)):
                is_iter = iterative.get(ref.tensor) == axis
                where = declared_at.get(ref.tensor) or first_use.setdefault((ref.tensor, axis), (ref.line, ix.col))
                if ix.kind in ("zero", "last", "next") and not is_iter:
                    raise CascadeError(f"subscript {ix} on axis {axis} of {ref.tensor}, which is not iterative",
                                       ref.line, ix.col)
                if ix.kind == "split":
                    seen = partitions.setdefault(rank, (ix.rank, ix.inner, ix.shape))
                    if seen != (ix.rank, ix.inner, ix.shape):
                        raise CascadeError(f"rank {rank} is partitioned as {seen[0]}*{seen[2]}+{seen[1]} elsewhere, "
                                           f"here as {ix}", ref.line, ix.col)
                    continue
                if ix.kind in ("rank", "next", "last") and ix.rank != rank:
                    raise CascadeError(f"rank used inconsistently: axis {axis} of {ref.tensor} is rank {rank} "
                                       f"(line {where[0]}, column {where[1]}), indexed here by {ix}", ref.line, ix.col)
    return partitions


def _check_reductions(statements) -> None:
    for s in statements:
        rhs = {r for ref in s.refs for ix in ref.indices for r in ix.ranks()}
        reduced = rhs - s.out_ranks
        for r in s.reduced:
            if r not in rhs:
                raise CascadeError(f"{s.reducer}({r}): rank {r} does not appear on the right-hand side", s.line, 1)
            if r in s.out_ranks:
                raise CascadeError(f"{s.reducer}({r}): rank {r} is kept in the output {s.out}", s.line, 1)
        missing = sorted(reduced - set(s.reduced))
        if s.reducer and missing:
            raise CascadeError(f"rank{'s' * (len(missing) > 1)} {', '.join(missing)} reduced but not listed in "
                               f"{s.reducer}({','.join(s.reduced)})", s.line, 1)


def dependencies(cascade: Cascade, s: Statement) -> list[tuple[Statement, str]]:
    """(producer, how) for every read of s: how is "carried" (an iterative tensor's previous step,
    read inside its own recurrence), "init" (its initial value), "final" (its last step) or "same"."""
    out = []
    for ref in s.refs:
        producers = cascade.producers(ref.tensor)
        if not producers:
            continue
        main = next(p for p in producers if not p.is_init)
        init = next((p for p in producers if p.is_init), None)
        axis = cascade.iterative.get(ref.tensor)
        kind = ref.indices[axis].kind if axis is not None else "same"
        if kind == "zero":
            out.append((init, "init"))
        elif kind == "rank":
            out.append((main, "carried"))
            out.append((init, "init"))
        elif kind == "last":
            out.append((main, "final"))
        else:
            out.append((main, "same"))
    return out


def _check_cycles(cascade: Cascade) -> None:
    """A cycle of same-step dependencies has no order to evaluate in.

    Depth-first with an explicit stack: a chain of thousands of statements written in reverse
    order is as deep as it is long, past Python's recursion limit."""
    graph = {id(s): [d for d, how in dependencies(cascade, s) if how != "carried"] for s in cascade.statements}
    state: dict[int, int] = {}  # 1: on the current path, 2: done
    for root in cascade.statements:
        if id(root) in state:
            continue
        path: list[Statement] = [root]
        at: dict[int, int] = {id(root): 0}  # position of each statement of the path
        todo = [iter(graph[id(root)])]
        state[id(root)] = 1
        while todo:
            d = next(todo[-1], None)
            if d is None:
                todo.pop()
                done = path.pop()
                del at[id(done)]
                state[id(done)] = 2
                continue
            if state.get(id(d)) == 1:
                loop = path[at[id(d)]:] + [d]
                chain = " -> ".join(f"{x.out.tensor} (line {x.line})" for x in loop)
                raise CascadeError(f"dependency cycle {chain}: no statement can go first (a recurrence must "
                                   f"read the previous step, T[r], and write T[r+1])", d.line, d.out.col)
            if id(d) not in state:
                state[id(d)] = 1
                at[id(d)] = len(path)
                path.append(d)
                todo.append(iter(graph[id(d)]))
