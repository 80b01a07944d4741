"""Pass analysis: how many traversals of a rank's fibers the dependencies of a cascade force.

A pass over rank r is one traversal of every element of a fiber of r (FuseMax, Sec. 3). When r
is partitioned (m read as m1*M0+m0), the fiber is walked tile by tile along the outer part m1,
and a pass is one walk over all the tiles; re-reading the current tile is a pass over the inner
part m0 only, which needs a tile-sized buffer, not an M-sized one.

Rule. A statement *traverses* r when its iteration space holds r (or r's outer part). Its result
is *complete* (a value for the whole fiber, not per position) when it traverses r and r is not
among its output ranks -- a reduction over r -- or when it reads an iterative tensor's final step
T[M1] (the end of a recurrence along r). A statement that traverses r and reads a complete value
cannot start before the pass that completed it has ended: it lands in the next pass. Everything
else runs in the pass of its latest input. So a chain of N reductions feeding later traversals
gives N+1 passes.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from frugalnn.fusemax.cascade.check import dependencies
from frugalnn.fusemax.cascade.parser import Cascade, Statement


@dataclass
class PassAnalysis:
    rank: str
    passes: int
    pass_of: dict[str, int]               # statement output tensor -> pass (0: does not traverse rank)
    reasons: list[str]                    # why each extra pass exists
    fiber_buffers: dict[str, str]         # tensor -> extent of the fiber kept live across passes
    running_state: dict[str, str]         # recurrence tensor -> extent carried from tile to tile
    tile_passes: int | None = None        # passes over the inner part of a partitioned rank
    footprint: str = ""
    footprint_elements: int | None = None
    notes: list[str] = field(default_factory=list)

    def explain(self) -> str:
        lines = [f"{self.passes} pass{'es' if self.passes != 1 else ''} over rank {self.rank}"]
        lines += [f"  - {r}" for r in self.reasons]
        lines.append(f"  live footprint per fiber: {self.footprint}"
                     + (f" = {self.footprint_elements} elements" if self.footprint_elements is not None else ""))
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.explain()


def _parts(cascade: Cascade, rank: str) -> tuple[str, str | None]:
    if rank in cascade.partitions:
        outer, inner, _ = cascade.partitions[rank]
        return outer, inner
    return rank, None


def _assign(cascade: Cascade, ranks: set[str]) -> tuple[dict[int, int], dict[int, bool], dict[int, str]]:
    """pass number, completeness and the reason of each statement, for the rank set `ranks`."""
    passes: dict[int, int] = {}
    complete: dict[int, bool] = {}
    reason: dict[int, str] = {}
    order = _topological(cascade)
    for s in order:
        if _is_relayout(cascade, s):  # a view of an input (BK[e,m1,m0] = K[e,m1*M0+m0]): no work of its own
            passes[id(s)], complete[id(s)] = 0, False
            continue
        traverses = bool(s.ranks & ranks)
        p, why = (1 if traverses else 0), ""
        for d, how in dependencies(cascade, s):
            if d is None or how == "carried" and d is s:
                continue
            dp = passes.get(id(d), 0)
            done = complete.get(id(d), False) or (how == "final" and bool(d.ranks & ranks))
            need = dp + 1 if (done and traverses and dp > 0) else dp
            if need > p:
                p = need
                if done and traverses:
                    over = "/".join(sorted(ranks & d.ranks))
                    what = ("the final step" if how == "final" else
                            f"a reduction over {over}" if over else "a value derived from a reduction")
                    why = (f"line {s.line}: {s.out.tensor} needs {d.out.tensor} (line {d.line}), {what}, complete "
                           f"only after pass {dp}: its fiber is read again in pass {need}")
        passes[id(s)] = p
        complete[id(s)] = (traverses and not (s.out_ranks & ranks)) or (not traverses and p > 0)
        if why:
            reason[id(s)] = why
    return passes, complete, reason


def _is_relayout(cascade: Cascade, s: Statement) -> bool:
    return hasattr(s.expr, "tensor") and s.expr.tensor in cascade.inputs and s.reducer is None


def _topological(cascade: Cascade) -> list[Statement]:
    from frugalnn.fusemax.cascade.executor import _groups

    return [s for group in _groups(cascade) for s in sorted(group, key=lambda x: x.line)]


def analyse(cascade: Cascade, rank: str, shapes: dict | None = None) -> PassAnalysis:
    all_ranks = {r for s in cascade.statements for r in s.ranks} | set(cascade.partitions)
    if rank not in all_ranks:
        raise ValueError(f"rank: {rank!r} does not occur in the cascade (ranks: {', '.join(sorted(all_ranks))})")
    outer, inner = _parts(cascade, rank)
    top = {rank, outer}
    passes, complete, reason = _assign(cascade, top)
    traversing = [s for s in cascade.statements if s.ranks & top]
    count = max((passes[id(s)] for s in traversing), default=0)
    reasons, seen = [], set()
    for s in cascade.statements:
        if id(s) in reason and passes[id(s)] not in seen:
            seen.add(passes[id(s)])
            reasons.append(reason[id(s)])
    if not reasons:
        reasons.append("no statement that walks this rank needs a value completed by an earlier walk")

    # Tensors indexed by the rank that are produced in one pass and read in a later one must be
    # kept (or spilled, or recomputed) for the whole fiber.
    extent = {r: r.upper() for r in all_ranks}
    # Per-fiber accounting: ranks shared by every statement that walks the rank (p for attention),
    # ignoring pure re-layouts of an input (BK[e,m1,m0] = K[e,m1*M0+m0]).
    compute = [s for s in traversing if not _is_relayout(cascade, s)]
    batch = set.intersection(*(set(s.ranks) for s in compute)) - {rank, outer, inner} if compute else set()
    fiber, running = {}, {}
    for s in cascade.statements:
        for d, how in dependencies(cascade, s):
            if d is None or how in ("init", "final") or not (d.out_ranks & top) or _is_relayout(cascade, d):
                continue
            if how == "carried":
                if d.step_rank in top:
                    dims = [r for r in cascade.axes[d.out.tensor] if r not in top | batch]
                    running[d.out.tensor] = "*".join(extent[r] for r in dims) or "1"
                continue
            if passes[id(s)] > passes[id(d)] and s.ranks & top:
                dims = [r for r in cascade.axes[d.out.tensor] if r not in batch and r != inner]
                fiber[d.out.tensor] = "*".join(extent.get(r, r.upper()) for r in dims)
    result = PassAnalysis(rank, count, {s.out.tensor: passes[id(s)] for s in cascade.statements if not s.is_init},
                          reasons, fiber, running)
    terms = list(fiber.values()) + list(running.values())
    if inner is not None:
        tile_passes, _, _ = _assign(cascade, {inner})
        result.tile_passes = max((tile_passes[id(s)] for s in cascade.statements if inner in s.ranks), default=0)
        if result.tile_passes > 1:
            tile_tensors = {d.out.tensor for s in cascade.statements for d, how in dependencies(cascade, s)
                            if d is not None and inner in d.out_ranks and how == "same"
                            and not _is_relayout(cascade, d) and tile_passes[id(s)] > tile_passes[id(d)]}
            terms.append(extent[inner])
            result.notes.append(f"{result.tile_passes} passes over each {inner} tile "
                                f"({', '.join(sorted(tile_tensors)) or 'tile'} re-read from a {inner.upper()}-sized buffer)")
    result.footprint = " + ".join(terms) if terms else "0"
    if batch:
        result.notes.append(f"footprint counted per fiber, i.e. per value of {', '.join(sorted(batch))}")
    if shapes is not None:
        values = {k.lower(): v for k, v in shapes.items()}
        for whole, (o, i, sym) in cascade.partitions.items():
            if whole in values and sym.lower() in values:
                values.setdefault(i, values[sym.lower()])
                values.setdefault(o, values[whole] // values[sym.lower()])
        try:
            result.footprint_elements = sum(_product(t, values) for t in terms)
        except KeyError as e:
            raise ValueError(f"shapes: no value for {e.args[0].upper()} (needed by footprint {result.footprint})")
    return result


def _product(term: str, values: dict[str, int]) -> int:
    out = 1
    for sym in term.split("*"):
        if sym != "1":
            out *= values[sym.lower()]
    return out
