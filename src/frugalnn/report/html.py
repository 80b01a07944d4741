"""A self-contained index.html: one card per technique, a legend, a section per technique (summary rows
with verdict and rule, tables, figures as base64 PNG) and the machine the figures were taken on.

No external resources (no fonts, scripts or stylesheets from elsewhere): the file is read offline, mailed,
attached to issues.
"""
from __future__ import annotations

import base64
import html as _html
from dataclasses import dataclass, field

from frugalnn.report.tables import fmt, last_line
from frugalnn.report.verdicts import DERIVED, MEASURED, NOT_MEASURED, NOT_REPRODUCED, PARTLY, REPRODUCED, VERDICTS
from frugalnn.techniques import TECHNIQUES, Technique

LEGEND = {
    REPRODUCED: "the measured figure meets the paper's claim under the row's rule (the rule column states the "
                "threshold)",
    PARTLY: "meets the rule's looser threshold, not the full one",
    NOT_REPRODUCED: "misses even the looser threshold: the claim does not hold here",
    DERIVED: "arithmetic on the paper's own inputs, not a measurement; never counted as reproduced",
    MEASURED: "a figure measured here with no claim to hold it against",
    NOT_MEASURED: "not measured: a peer or an input was absent or failed; the row says why",
}
OTHER = "other"  # section for experiments registered outside a technique package (tests, scripts)

_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1200px;color:#1f2328;padding:0 1em;line-height:1.4}
a{color:#0969da} h2{margin-top:2em;border-bottom:1px solid #d0d7de;padding-bottom:.2em} h3{margin-top:1.4em}
small,.meta{color:#57606a;font-weight:normal} .meta{font-size:.85em}
.scroll{overflow-x:auto}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.88em}
th,td{border:1px solid #d0d7de;padding:.25em .55em;text-align:left;vertical-align:top}
th{background:#f6f8fa} td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.rule{color:#57606a;font-size:.92em}
pre{background:#f6f8fa;padding:.6em;overflow:auto;font-size:.8em}
figure{display:inline-block;margin:.5em 1em .5em 0;max-width:100%} figure img{max-width:100%;border:1px solid #d0d7de}
figcaption{font-size:.85em;color:#57606a}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(270px,1fr));gap:12px;margin:1em 0}
.card{display:block;border:1px solid #d0d7de;border-radius:8px;padding:.7em .8em;color:inherit;text-decoration:none;
      background:#fff}
.card:hover{border-color:#0969da;box-shadow:0 1px 4px rgba(0,0,0,.12)}
.card.planned{background:#f6f8fa;color:#57606a}
.card-head{display:flex;justify-content:space-between;align-items:baseline;gap:.5em}
.card-title{font-weight:600;font-size:1.05em} .card-paper{font-size:.82em;color:#57606a;margin-bottom:.5em}
.status{font-size:.72em;border-radius:1em;padding:.05em .6em;border:1px solid #d0d7de;white-space:nowrap}
.status.built{background:#dafbe1;border-color:#1a7f37;color:#1a7f37}
.headline{border-radius:6px;padding:.4em .5em;margin:.3em 0;font-size:.9em}
.headline .figure{font-size:1.25em;font-weight:600} .headline .vs{font-size:.8em;color:#57606a;font-weight:normal}
.headline .none{color:#57606a;font-style:italic} .headline.failed{background:#ffebe9}
.headline .badge{background:rgba(255,255,255,.75);font-weight:600;margin-top:.2em}
a.top{font-size:.6em;font-weight:normal;float:right;text-decoration:none}
.counts{display:flex;flex-wrap:wrap;gap:4px;margin:.4em 0 0;padding:0;list-style:none;font-size:.75em}
.counts li{border-radius:4px;padding:.05em .4em} .counts li.zero{background:none;color:#8c959f}
.warn{color:#cf222e;font-size:.82em}
.badge{display:inline-block;border-radius:4px;padding:0 .4em;font-size:.85em;white-space:nowrap}
.v-reproduced{background:#dafbe1} .v-partly-reproduced{background:#fff8c5} .v-not-reproduced{background:#ffebe9}
.v-derived{background:#fbefff} .v-measured{background:#ddf4ff} .v-not-measured{background:#eaeef2}
.failed{color:#cf222e} .skipped{color:#9a6700}
dl.legend{display:grid;grid-template-columns:max-content 1fr;gap:.3em 1em;font-size:.9em} dl.legend dd{margin:0}
"""


def _e(v) -> str:
    return _html.escape(v if isinstance(v, str) else fmt(v))


def _vclass(verdict: str) -> str:
    return "v-" + verdict.replace(" ", "-")


def _cell(v) -> str:
    cls = ' class="num"' if isinstance(v, (int, float)) and not isinstance(v, bool) else ""
    return f"<td{cls}>{_e(v)}</td>"


def _with_unit(v, unit: str) -> str:
    return _e(v) + (f" {_e(unit)}" if unit and v is not None and not isinstance(v, str) else "")


def _table(columns, rows) -> str:
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(_cell(v) for v in r) + "</tr>" for r in rows)
    return f"<div class='scroll'><table><tr>{head}</tr>{body}</table></div>"


@dataclass
class TechniqueView:
    """What one technique's card and section show, gathered from the outcomes of its experiments."""
    technique: Technique
    outcomes: list = field(default_factory=list)

    @property
    def rows(self) -> list:
        return [r for o in self.outcomes for r in o.result.rows]

    @property
    def counts(self) -> dict[str, int]:
        tally = dict.fromkeys(VERDICTS, 0)
        for r in self.rows:
            tally[r.verdict] += 1
        return tally

    @property
    def headlines(self) -> list:
        return [r for r in self.rows if r.headline]

    @property
    def not_ok(self) -> list:
        return [o for o in self.outcomes if o.status != "ok"]


def technique_of_outcome(outcome) -> str:
    """The technique an outcome belongs to: its experiment's, or the package whose import failed."""
    if outcome.experiment is not None:
        return outcome.experiment.technique or OTHER
    if outcome.name.startswith("import:"):
        return outcome.name.removeprefix("import:")
    return OTHER


def group(outcomes) -> tuple[list[TechniqueView], list]:
    """(a view per technique in TECHNIQUES order, outcomes outside any technique)."""
    views = {t.name: TechniqueView(t) for t in TECHNIQUES}
    other = []
    for o in outcomes:
        name = technique_of_outcome(o)
        (views[name].outcomes if name in views else other).append(o)
    return list(views.values()), other


def _number(t: Technique) -> str:
    # 0 (shared formats) and 10 (the LLM application) are not among the nine papers: no number shown
    return f"{t.number}. " if 1 <= t.number <= 9 else ""


def _card(v: TechniqueView) -> str:
    t = v.technique
    status = t.status
    parts = [f"<a class='card {status}' id='card-{t.name}' href='#{t.name}' data-technique='{t.name}'>",
             f"<div class='card-head'><span class='card-title'>{_number(t)}{_e(t.title)}</span>"
             f"<span class='status {status}'>{status}</span></div>",
             f"<div class='card-paper'>{_e(t.paper)} &middot; <code>{t.name}</code></div>"]
    if status == "planned":
        parts.append(f"<div class='headline'><span class='none'>planned: {_e(t.summary)}</span></div>")
    elif not v.outcomes:
        parts.append(f"<div class='headline'><span class='none'>not run in this report "
                     f"(frugalnn report --only {t.name})</span></div>")
    else:
        heads = v.headlines
        if heads:
            h = heads[0]
            vs = "" if h.paper is None else f"<span class='vs'>paper {_with_unit(h.paper, h.unit)}</span>"
            parts.append(f"<div class='headline {_vclass(h.verdict)}' title='{_e(h.rule)}'>"
                         f"<div>{_e(h.metric)}</div>"
                         f"<div class='figure'>{_with_unit(h.measured, h.unit)} {vs}</div>"
                         f"<span class='badge'>{_e(h.verdict)}</span></div>")
            if len(heads) > 1:
                parts.append(f"<div class='warn'>{len(heads)} rows marked headline; showing the first</div>")
        elif v.not_ok and not v.rows:
            o = v.not_ok[0]
            parts.append(f"<div class='headline {o.status}'>{_e(o.name)} {o.status}: "
                         f"{_e(last_line(o.error))}</div>")
        else:
            parts.append("<div class='headline'><span class='none'>no headline row</span></div>")
        parts.append("<ul class='counts'>" + "".join(
            f"<li class='{_vclass(verdict) if n else 'zero'}' data-verdict='{verdict}' data-count='{n}'>"
            f"{n} {verdict}</li>" for verdict, n in v.counts.items()) + "</ul>")
        if v.rows:  # otherwise the failure is already the card's headline
            parts += [f"<div class='warn'>{_e(o.name)}: {o.status}</div>" for o in v.not_ok]
    parts.append("</a>")
    return "".join(parts)


def _summary_rows(outcomes) -> str:
    head = ("<tr><th>experiment</th><th>metric</th><th>paper</th><th>ours</th><th>unit</th><th>verdict</th>"
            "<th>rule</th><th>notes</th></tr>")
    body = []
    for o in outcomes:
        if o.status != "ok":
            body.append(f"<tr class='{o.status}'><td>{_e(o.name)}</td><td colspan='7'>{o.status}: "
                        f"{_e(last_line(o.error))}</td></tr>")
        for r in o.result.rows:
            star = " <span title='headline: shown on the card'>&#9733;</span>" if r.headline else ""
            body.append(f"<tr class='{_vclass(r.verdict)}'><td>{_e(r.experiment)}</td><td>{_e(r.metric)}{star}</td>"
                        f"{_cell(r.paper)}{_cell(r.measured)}<td>{_e(r.unit)}</td><td>{_e(r.verdict)}</td>"
                        f"<td class='rule'>{_e(r.rule)}</td><td>{_e(r.notes)}</td></tr>")
    return f"<div class='scroll'><table>{head}{''.join(body)}</table></div>" if body else ""


def _details(o) -> str:
    title = o.experiment.title if o.experiment else o.name
    parts = [f"<h3 id='exp-{_e(o.name)}'>{_e(title)} <small>({_e(o.name)}, {o.seconds:.1f} s)</small></h3>"]
    if o.status != "ok":
        parts.append(f"<p class='{o.status}'>{o.status}</p><pre>{_e(o.error)}</pre>")
        return "".join(parts)
    for t in o.result.tables:
        parts.append(f"<h4>{_e(t.title)}</h4>" + _table(t.columns, t.rows))
        if t.notes:
            parts.append(f"<p class='meta'>{_e(t.notes)}</p>")
    for f in o.result.figures:
        b64 = base64.b64encode(f.png).decode()
        parts.append(f"<figure><img alt='{_e(f.title)}' src='data:image/png;base64,{b64}'>"
                     f"<figcaption>{_e(f.title)}</figcaption></figure>")
    return "".join(parts)


def _section(v: TechniqueView) -> str:
    t = v.technique
    parts = [f"<section id='{t.name}' class='technique'>",
             f"<h2>{_number(t)}{_e(t.title)} <small>{_e(t.paper)} &middot; <code>frugalnn.{t.name}</code> &middot; "
             f"{t.status}</small><a class='top' href='#top'>&uarr; cards</a></h2><p>{_e(t.summary)}.</p>"]
    if t.status == "planned":
        parts.append("<p class='meta'>Planned: no experiment yet.</p>")
    elif not v.outcomes:
        parts.append(f"<p class='meta'>Not run in this report: <code>frugalnn report --only {t.name}</code>.</p>")
    else:
        parts.append(_summary_rows(v.outcomes))
        parts += [_details(o) for o in v.outcomes]
    parts.append("</section>")
    return "".join(parts)


def _kv(pairs) -> str:
    return "<table>" + "".join(f"<tr><th>{_e(k)}</th><td>{_e(val)}</td></tr>" for k, val in pairs) + "</table>"


def _machine(meta: dict) -> str:
    m = meta["machine"]
    c = m["cpu"]
    threads = f"{m.get('threads')} for our kernels (hardware: {m.get('hardware_threads')})"
    if m.get("torch_threads") is not None:
        threads += f"; torch: {m['torch_threads']}"
    pairs = [("CPU", f"{c['model']} ({c['machine']}, {c['logical_cores']} logical cores)"),
             ("CPU features", " ".join(c.get("features", [])) or "-"),
             ("ISA of our kernels", f"{m['kernel_backend']} (available: {', '.join(m.get('available_backends', []))})"),
             ("ISA of torch", m.get("torch_isa", "-")),
             ("threads", threads),
             ("python", f"{m.get('python', '-')} on {m.get('platform', '-')}"),
             ("frugalnn", m.get("frugalnn", "-"))]
    parts = ["<section id='machine'><h2>Machine</h2>", _kv(pairs)]
    peers = meta.get("peers", {})
    if peers:
        parts.append("<h3>Peers</h3><p class='meta'>What each peer reported about itself in this run.</p>")
        parts.append(_kv((name, ", ".join(f"{k}: {fmt(x)}" for k, x in d.items()) if isinstance(d, dict) else d)
                         for name, d in peers.items()))
    parts.append("<h3>Versions</h3>" + _kv((p, ver or "not installed") for p, ver in m.get("versions", {}).items()))
    parts.append("</section>")
    return "".join(parts)


def _legend() -> str:
    items = "".join(f"<dt><span class='badge {_vclass(v)}'>{_e(v)}</span></dt><dd>{_e(LEGEND[v])}</dd>"
                    for v in VERDICTS)
    return f"<section id='legend'><h2>Verdicts</h2><dl class='legend'>{items}</dl></section>"


def render(outcomes, meta: dict) -> str:
    m = meta["machine"]
    views, other = group(outcomes)
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
             f"<meta name='viewport' content='width=device-width,initial-scale=1'><title>frugalnn report</title>"
             f"<style>{_CSS}</style></head><body><h1 id='top'>frugalnn report</h1>",
             f"<p class='meta'>{_e(meta['created'])} &middot; {'quick' if meta['quick'] else 'full'} mode &middot; "
             f"seed {_e(meta.get('seed', 0))} &middot; {_e(m['cpu']['model'])}, our kernels: {_e(m['kernel_backend'])},"
             f" torch: {_e(m.get('torch_isa', '-'))}, {_e(m.get('threads'))} threads &middot; "
             f"<a href='#legend'>verdicts</a> &middot; <a href='#machine'>machine</a></p>",
             "<div class='cards'>" + "".join(_card(v) for v in views) + "</div>",
             _legend()]
    parts += [_section(v) for v in views]
    if other:
        parts.append(f"<section id='{OTHER}'><h2>Other experiments</h2>{_summary_rows(other)}"
                     + "".join(_details(o) for o in other) + "</section>")
    parts.append(_machine(meta))
    parts.append("</body></html>")
    return "\n".join(parts)
