import io
import json
import re

from rich.console import Console

from frugalnn.report import Context, ExperimentResult, Row, experiment
from frugalnn.report.runner import quiet_progress_bars, run_report
from frugalnn.report.verdicts import measured


@experiment("test-lines-ok", title="an experiment for the log lines")
def _ok(ctx: Context) -> ExperimentResult:
    ctx.step(0.5, "halfway")
    return ExperimentResult(rows=[Row("Testing", "test-lines-ok", "answer", None, 1, **measured())],
                            peers={"a peer": {"isa": "NEON"}})


@experiment("test-lines-broken", title="an experiment that fails, for the log lines")
def _broken(ctx: Context) -> ExperimentResult:
    raise ValueError("bad input 7")


def _run(console: Console, out=None) -> str:
    run_report(only=["test-lines-ok", "test-lines-broken"], out=out, console=console,
               summary_console=Console(file=io.StringIO()))
    return console.file.getvalue()


def test_not_a_terminal_gives_one_flushed_line_per_start_and_end(tmp_path):
    log = _run(Console(file=io.StringIO()), out=tmp_path)  # a StringIO is not a terminal, like a log or a pipe
    lines = log.splitlines()
    assert len(lines) == 4, log
    assert re.fullmatch(r"\d\d:\d\d:\d\d report \[1/2\] test-lines-ok: started \(an experiment for the log lines\)",
                        lines[0])
    assert re.fullmatch(r"\d\d:\d\d:\d\d report \[1/2\] test-lines-ok: ok in \d+\.\d s", lines[1])
    assert "[2/2] test-lines-broken: started" in lines[2]
    assert re.search(r"\[2/2\] test-lines-broken: failed in \d+\.\d s: ValueError: bad input 7$", lines[3])
    assert "\x1b[" not in log and "━" not in log  # no escape codes or bar glyphs in a log
    meta = json.loads((tmp_path / "results.json").read_text())["meta"]
    assert meta["peers"] == {"a peer": {"isa": "NEON"}}  # what experiments' peers reported, for the machine section
    assert meta["machine"]["torch_isa"] and meta["machine"]["kernel_backend"]


def test_a_terminal_keeps_the_progress_bar():
    log = _run(Console(file=io.StringIO(), force_terminal=True, width=100))
    assert "━" in log and "started" not in log


def test_third_party_progress_bars_are_silenced_while_experiments_run():
    from tqdm import tqdm

    def bar_output() -> str:
        buf = io.StringIO()
        assert list(tqdm(range(3), desc="Converting and de-quantizing GGUF tensors", file=buf)) == [0, 1, 2]
        return buf.getvalue()

    with quiet_progress_bars():
        assert bar_output() == ""
    assert "Converting" in bar_output()  # restored afterwards
