"""Numpy executor: evaluates any parsed cascade on arrays (float64 by default).

Statements run in dependency order. A statement is evaluated over its whole iteration space at
once (np.einsum for plain sum-of-products, broadcasting + reduction otherwise); the statements of
a recurrence (a strongly connected group tied together by reads of an iterative tensor's previous
step) run step by step along their iterative rank, each step vectorised over the other ranks.

Rank extents come from the input arrays (an input's axis r has extent R), from shape constants
(`M0 = 64` in the text, or run(..., M0=64)), and from partitions: m read as m1*M0+m0 gives
M1 = M / M0, which must divide exactly.
"""
from __future__ import annotations

import string

import numpy as np

from frugalnn.fusemax.cascade.check import dependencies
from frugalnn.fusemax.cascade.parser import Cascade, Const, Op, Ref, Statement


def _symbol(rank: str) -> str:
    return rank.upper()


def rank_extents(cascade: Cascade, arrays: dict[str, np.ndarray], shapes: dict[str, int]) -> dict[str, int]:
    ext: dict[str, int] = {}
    for name, ranks in cascade.inputs.items():
        a = arrays[name]
        if a.ndim != len(ranks):
            raise ValueError(f"input {name}: expected {len(ranks)} axes [{','.join(ranks)}], got shape {a.shape}")
        for r, n in zip(ranks, a.shape):
            if n == 0:
                raise ValueError(f"input {name}: rank {r} has extent 0 (shape {a.shape}); every rank needs >= 1")
            if r in ext and ext[r] != n:
                raise ValueError(f"input {name}: rank {r} has extent {ext[r]} elsewhere, {n} here (shape {a.shape})")
            ext[r] = n
    consts = {**cascade.shapes, **shapes}
    for sym, n in consts.items():
        r = sym.lower()
        if r in ext and ext[r] != n:
            raise ValueError(f"shape {sym}={n} contradicts the inputs ({sym}={ext[r]})")
        ext[r] = n
    for whole, (outer, inner, inner_sym) in cascade.partitions.items():
        if inner_sym.lower() not in ext:
            raise ValueError(f"rank {whole} is tiled as {outer}*{inner_sym}+{inner}: give the tile size "
                             f"{inner_sym} (e.g. run(..., {inner_sym}=64))")
        tile = ext[inner_sym.lower()]
        if whole not in ext:
            raise ValueError(f"rank {whole} is partitioned but its extent is unknown")
        if ext[whole] % tile:
            raise ValueError(f"tile size {inner_sym}={tile} does not divide {whole.upper()}={ext[whole]} "
                             f"(pad the sequence or pick a divisor)")
        ext[inner] = tile
        ext[outer] = ext[whole] // tile
    for s in cascade.statements:
        for r in s.ranks:
            if r not in ext:
                raise ValueError(f"line {s.line}: the extent of rank {r} is unknown (give {_symbol(r)}=...)")
    return ext


def _index_array(ix, ext, order, bound):
    def axis_values(rank, offset=0):
        if rank in bound:
            return bound[rank] + offset
        shape = [1] * len(order)
        shape[order.index(rank)] = ext[rank]
        return np.arange(ext[rank]).reshape(shape) + offset

    if ix.kind == "rank":
        return axis_values(ix.rank)
    if ix.kind == "next":
        return axis_values(ix.rank, 1)
    if ix.kind == "zero":
        return 0
    if ix.kind == "last":
        return ext[ix.rank]
    return axis_values(ix.rank) * ext[ix.inner] + axis_values(ix.inner)


def _evaluate(expr, env, ext, order, bound):
    if isinstance(expr, Const):
        return expr.value
    if isinstance(expr, Ref):
        idx = tuple(_index_array(ix, ext, order, bound) for ix in expr.indices)
        return env[expr.tensor][idx] if idx else env[expr.tensor][()]
    args = [_evaluate(a, env, ext, order, bound) for a in expr.args]
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        if expr.op == "+":
            return args[0] + args[1]
        if expr.op == "-":
            return args[0] - args[1]
        if expr.op == "*":
            return args[0] * args[1]
        if expr.op == "/":
            return args[0] / args[1]
        if expr.op == "neg":
            return -args[0]
        if expr.op == "exp":
            return np.exp(args[0])
        if expr.op == "max":
            return np.maximum(args[0], args[1])
        return np.minimum(args[0], args[1])


def _product_refs(expr) -> list[Ref] | None:
    if isinstance(expr, Ref):
        return [expr]
    if isinstance(expr, Op) and expr.op == "*":
        left, right = _product_refs(expr.args[0]), _product_refs(expr.args[1])
        return left + right if left is not None and right is not None else None
    return None


def _einsum(s: Statement, env) -> np.ndarray | None:
    """Plain sum of products over unbound, unshifted ranks: hand it to np.einsum."""
    refs = _product_refs(s.expr)
    if refs is None or s.reducer not in (None, "sum") or any(ix.kind != "rank" for ix in s.out.indices):
        return None
    if any(ix.kind != "rank" for r in refs for ix in r.indices):
        return None
    letters = dict(zip(sorted(s.ranks), string.ascii_letters))
    spec = ",".join("".join(letters[ix.rank] for ix in r.indices) for r in refs)
    out = "".join(letters[ix.rank] for ix in s.out.indices)
    if not set(out) <= set("".join(spec.split(","))):
        return None
    return np.einsum(f"{spec}->{out}", *(env[r.tensor] for r in refs), optimize=True)


def _execute(s: Statement, env, ext, bound: dict[str, int]) -> None:
    target = env[s.out.tensor]
    if not bound and not s.is_init:
        fast = _einsum(s, env)
        if fast is not None:
            target[...] = fast
            return
    order = sorted(s.ranks - set(bound))
    value = np.asarray(_evaluate(s.expr, env, ext, order, bound), dtype=target.dtype)
    full = tuple(ext[r] for r in order)
    value = np.broadcast_to(value.reshape(value.shape + (1,) * (len(order) - value.ndim)) if value.ndim else value,
                            full)
    keep = [r for r in order if r in s.out_ranks]
    reduced = tuple(i for i, r in enumerate(order) if r not in s.out_ranks)
    if reduced:
        reducer = {"max": np.max, "min": np.min}.get(s.reducer or "sum", np.sum)
        value = reducer(value, axis=reduced)
    out_ranks = [ix.rank for ix in s.out.indices if ix.kind != "zero" and ix.rank not in bound]
    value = np.transpose(value, [keep.index(r) for r in out_ranks]) if out_ranks else value
    where = []
    for ix in s.out.indices:
        if ix.kind == "zero":
            where.append(0)
        elif ix.kind == "next":
            where.append(bound[ix.rank] + 1 if ix.rank in bound else slice(1, None))
        else:
            where.append(bound[ix.rank] if ix.rank in bound else slice(0, ext[ix.rank]))
    target[tuple(where)] = value


def _groups(cascade: Cascade) -> list[list[Statement]]:
    """Strongly connected groups of statements (Tarjan), dependencies first.

    Iterative (an explicit stack of dependency iterators, visiting in the same order as the
    recursive form): a chain of statements is as deep as it is long."""
    deps = {id(s): [d for d, _ in dependencies(cascade, s) if d is not None] for s in cascade.statements}
    index: dict[int, int] = {}
    low: dict[int, int] = {}
    stack: list[Statement] = []
    on_stack: set[int] = set()
    groups: list[list[Statement]] = []

    def open_(s):
        index[id(s)] = low[id(s)] = len(index)
        stack.append(s)
        on_stack.add(id(s))
        return (s, iter(deps[id(s)]))

    for root in cascade.statements:
        if id(root) in index:
            continue
        work = [open_(root)]
        while work:
            s, it = work[-1]
            d = next(it, None)
            if d is not None:
                if id(d) not in index:
                    work.append(open_(d))
                elif id(d) in on_stack:
                    low[id(s)] = min(low[id(s)], index[id(d)])
                continue
            work.pop()
            if work:  # the caller's low link takes the finished callee's
                parent = work[-1][0]
                low[id(parent)] = min(low[id(parent)], low[id(s)])
            if low[id(s)] == index[id(s)]:
                group = []
                while True:
                    x = stack.pop()
                    on_stack.discard(id(x))
                    group.append(x)
                    if x is s:
                        break
                groups.append(group)
    return groups


def _step_order(cascade: Cascade, group: list[Statement]) -> list[Statement]:
    """Order inside one step of a recurrence: same-step dependencies first, else text order
    (Kahn's algorithm, earliest line first; parse() has already refused same-step cycles)."""
    import heapq

    members = {id(s): s for s in group}
    waits = {id(s): {id(d) for d, how in dependencies(cascade, s) if how != "carried" and d is not None
                     and id(d) in members and d is not s} for s in group}
    users: dict[int, list[int]] = {}
    for k, needed in waits.items():
        for d in needed:
            users.setdefault(d, []).append(k)
    ready = [(s.line, id(s)) for s in group if not waits[id(s)]]
    heapq.heapify(ready)
    done: list[Statement] = []
    while ready:
        _, k = heapq.heappop(ready)
        done.append(members[k])
        for u in users.get(k, ()):
            waits[u].discard(k)
            if not waits[u]:
                heapq.heappush(ready, (members[u].line, u))
    return done


def run(cascade: Cascade, inputs: dict, dtype=np.float64, **shapes) -> dict[str, np.ndarray]:
    """Evaluate the cascade; returns every tensor (inputs included) by name."""
    missing = sorted(set(cascade.inputs) - set(inputs))
    if missing:
        raise ValueError(f"inputs: missing {', '.join(missing)} (the cascade declares {sorted(cascade.inputs)})")
    extra = sorted(set(inputs) - set(cascade.inputs))
    if extra:
        raise ValueError(f"inputs: {', '.join(extra)} not declared by the cascade (inputs {sorted(cascade.inputs)})")
    env = {name: np.asarray(a, dtype=dtype) for name, a in inputs.items()}
    ext = rank_extents(cascade, env, shapes)
    for name, ranks in cascade.axes.items():
        if name in env:
            continue
        shape = [ext[r] + (1 if cascade.iterative.get(name) == i else 0) for i, r in enumerate(ranks)]
        env[name] = np.full(shape, np.nan, dtype=dtype)
    for group in _groups(cascade):
        steps = {s.step_rank for s in group if s.step_rank}
        carried = any(how == "carried" and d in group for s in group for d, how in dependencies(cascade, s))
        if len(group) == 1 and not carried:
            _execute(group[0], env, ext, {})
            continue
        rank = steps.pop() if len(steps) == 1 else None
        if rank is None:
            raise ValueError(f"line {group[0].line}: statements {[s.out.tensor for s in group]} form a recurrence "
                             f"over {'several ranks' if steps else 'no rank'}; one iterative rank per recurrence")
        ordered = _step_order(cascade, group)
        for t in range(ext[rank]):
            for s in ordered:
                _execute(s, env, ext, {rank: t})
    return env
