"""A self-contained index.html: summary rows, detail tables and figures embedded as base64 PNG."""
from __future__ import annotations

import base64
import html as _html

from frugalnn.report.tables import fmt

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222;padding:0 1em}
table{border-collapse:collapse;margin:.6em 0 1.4em;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f3f3f3} td.num{text-align:right;font-variant-numeric:tabular-nums}
.reproduced{background:#e3f6e3}.not-reproduced{background:#fbe2e2}.partly-reproduced{background:#fff4d6}
.failed{color:#a00}.skipped{color:#a60} pre{background:#f7f7f7;padding:.6em;overflow:auto;font-size:.8em}
figure{display:inline-block;margin:.5em 1em .5em 0} figure img{max-width:560px;border:1px solid #ddd}
.meta{font-size:.85em;color:#555}
"""


def _e(v) -> str:
    return _html.escape(fmt(v) if not isinstance(v, str) else v)


def _cell(v) -> str:
    cls = ' class="num"' if isinstance(v, (int, float)) and not isinstance(v, bool) else ""
    return f"<td{cls}>{_e(v)}</td>"


def _table(columns, rows) -> str:
    head = "".join(f"<th>{_html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(_cell(v) for v in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def render(outcomes, meta: dict) -> str:
    m = meta["machine"]
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>frugalnn report</title><style>{_CSS}</style>"
             "</head><body><h1>frugalnn report</h1>",
             f"<p class='meta'>{_e(meta['created'])} &middot; {'quick' if meta['quick'] else 'full'} mode &middot; "
             f"{_e(m['cpu']['model'])} ({m['cpu']['logical_cores']} cores, kernels: {_e(m['kernel_backend'])}) "
             f"&middot; frugalnn {_e(m['frugalnn'])}, torch {_e(m['versions'].get('torch') or '-')}, "
             f"numpy {_e(m['versions'].get('numpy') or '-')}</p>"]

    summary = ["<tr><th>technique</th><th>experiment</th><th>metric</th><th>paper</th><th>ours</th>"
               "<th>unit</th><th>verdict</th><th>notes</th></tr>"]
    for o in outcomes:
        if o.status != "ok":
            last = o.error.strip().splitlines()[-1] if o.error.strip() else ""
            summary.append(f"<tr class='{o.status}'><td></td><td>{_e(o.name)}</td><td colspan='6'>"
                           f"{o.status}: {_e(last)}</td></tr>")
        for r in o.result.rows:
            summary.append(f"<tr class='{r.verdict.replace(' ', '-')}'><td>{_e(r.technique)}</td>"
                           f"<td>{_e(r.experiment)}</td><td>{_e(r.metric)}</td>{_cell(r.paper)}{_cell(r.measured)}"
                           f"<td>{_e(r.unit)}</td><td>{_e(r.verdict)}</td><td>{_e(r.notes)}</td></tr>")
    parts.append("<h2>Summary</h2><table>" + "".join(summary) + "</table>")

    for o in outcomes:
        title = o.experiment.title if o.experiment else o.name
        parts.append(f"<h2 id='{_e(o.name)}'>{_e(title)} <small>({_e(o.name)}, {o.seconds:.1f} s)</small></h2>")
        if o.status != "ok":
            parts.append(f"<p class='{o.status}'>{o.status}</p><pre>{_html.escape(o.error)}</pre>")
            continue
        for t in o.result.tables:
            parts.append(f"<h3>{_e(t.title)}</h3>" + _table(t.columns, t.rows))
            if t.notes:
                parts.append(f"<p class='meta'>{_e(t.notes)}</p>")
        for f in o.result.figures:
            b64 = base64.b64encode(f.png).decode()
            parts.append(f"<figure><img alt='{_e(f.title)}' src='data:image/png;base64,{b64}'>"
                         f"<figcaption>{_e(f.title)}</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts)
