import json

import pytest

from frugalnn.report import MEASURED, Context, Figure, ExperimentResult, Row, experiment
from frugalnn.report.discover import select
from frugalnn.report.registry import registered
from frugalnn.report.runner import run_one, write


def _fig():
    from frugalnn.report.figures import figure

    fig, ax = figure()
    ax.plot([0, 1], [1, 0])
    return Figure.from_matplotlib(fig, "line", "a line")


@experiment("test-ok", title="an experiment that works")
def _ok(ctx: Context) -> ExperimentResult:
    ctx.step(0.5, "halfway")
    return ExperimentResult(rows=[Row("Testing", "test-ok", "answer", 42, 42.0, "", MEASURED)], figures=[_fig()])


@experiment("test-broken", title="an experiment that raises")
def _broken(ctx: Context) -> ExperimentResult:
    raise RuntimeError("boom")


def test_failing_experiment_is_reported_and_others_still_run(tmp_path):
    exps = registered()
    outcomes = [run_one(exps["test-broken"], Context()), run_one(exps["test-ok"], Context(quick=True))]
    assert [o.status for o in outcomes] == ["failed", "ok"]
    assert "RuntimeError: boom" in outcomes[0].error
    write(outcomes, {"created": "now", "quick": True, "seed": 0,
                     "machine": __import__("frugalnn.info").info.collect()}, tmp_path)
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["experiments"][1]["rows"][0]["measured"] == 42.0
    html = (tmp_path / "index.html").read_text()
    assert "data:image/png;base64," in html and "boom" in html
    assert (tmp_path / "figures" / "test-ok-line.png").stat().st_size > 1000


def test_select_by_name_and_unknown():
    exps = registered()
    assert [e.name for e in select(exps, ["test-ok"])] == ["test-ok"]
    with pytest.raises(ValueError, match="no experiment named 'nope'"):
        select(exps, ["nope"])


def test_row_rejects_unknown_verdict():
    with pytest.raises(ValueError, match="verdict"):
        Row("t", "e", "m", 1, 1, verdict="great")


def test_formats_report_end_to_end(tmp_path):
    from frugalnn.cli import main

    assert main(["report", "--quick", "--only", "formats", "--out", str(tmp_path)]) == 0
    doc = json.loads((tmp_path / "results.json").read_text())
    (exp,) = doc["experiments"]
    assert exp["status"] == "ok", exp["error"]
    assert exp["tables"][0]["rows"] and exp["figures"]
    assert all(r["verdict"] != "not reproduced" for r in exp["rows"])
    assert "data:image/png;base64," in (tmp_path / "index.html").read_text()


def test_console_summary_styles_every_verdict(tiny_outcomes):
    import io

    from rich.console import Console

    from frugalnn.report import tables
    from frugalnn.report.verdicts import VERDICTS

    assert set(tables.VERDICT_STYLE) == set(VERDICTS)
    console = Console(file=io.StringIO(), width=120)
    tables.print_summary(tiny_outcomes, console)
    text = console.file.getvalue()
    assert "derived" in text and "not measured" in text and "boom in fusemax" in text


def test_list_names_planned_techniques(capsys):
    from frugalnn.cli import main
    from frugalnn.techniques import TECHNIQUES

    assert main(["report", "--list"]) == 0
    out = capsys.readouterr().out
    for t in TECHNIQUES:
        if t.status == "planned":
            assert f"{t.name}" in out and f"{t.title} (planned: no experiment yet)" in out
