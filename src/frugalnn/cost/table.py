"""Plain-text table of a Profile: one row per module down to a depth, then per-op totals."""
from __future__ import annotations


def human(n: float) -> str:
    """1234 -> '1.23k', 4.5e9 -> '4.50G' (exact below a thousand)."""
    n = float(n)
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return f"{n:.0f}" if n == int(n) else f"{n:.1f}"


def render_table(prof, max_depth: int) -> str:
    total = prof.macs or 1
    rows = [("module", "type", "MACs", "params", "acts", "% MACs")]
    for name, cost in prof.by_module().items():
        depth = 0 if name == "" else name.count(".") + 1
        if depth > max_depth:
            continue
        label = "  " * depth + (name.rsplit(".", 1)[-1] if name else "(model)")
        rows.append((label, cost.type, human(cost.macs), human(cost.params), human(cost.acts),
                     f"{100 * cost.macs / total:.1f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    align = ["<", "<", ">", ">", ">", ">"]

    def line(r):
        return "  ".join(f"{c:{a}{w}}" for c, a, w in zip(r, align, widths)).rstrip()

    out = [line(rows[0]), "  ".join("-" * w for w in widths)] + [line(r) for r in rows[1:]]
    out.append("")
    out.append(f"total: {human(prof.macs)} MACs ({human(prof.flops)} FLOPs = 2 x MACs), "
               f"{human(prof.params)} params, {human(prof.acts)} acts "
               f"(all op outputs {human(prof.acts_all)}), convention {prof.convention!r}")
    ops = prof.by_operator()
    if ops:
        out.append("by operator: " + ", ".join(f"{op} {human(m)}" for op, m in ops.most_common()))
    bad = prof.unsupported()
    if bad:
        out.append("not counted (no FLOP formula): " + ", ".join(f"{op} x{n}" for op, n in bad.most_common()))
    return "\n".join(out)
