"""A tiny report with every kind of row, built without running any real experiment."""
import pytest

from frugalnn.report import Context, ExperimentResult, Figure, Row, Table
from frugalnn.report.registry import Experiment
from frugalnn.report.runner import run_one, write
from frugalnn.report.verdicts import at_least, at_most, derived, measured, not_measured


def line_figure(name: str = "line") -> Figure:
    from frugalnn.report.figures import figure

    fig, ax = figure(4, 3)
    ax.plot([0, 1, 2], [1, 0, 2])
    return Figure.from_matplotlib(fig, name, f"a figure called {name}")


def _tmac(ctx: Context) -> ExperimentResult:
    return ExperimentResult(
        rows=[Row("T-MAC", "tiny-tmac", "2-bit GEMV speed-up vs llama.cpp Q2_K", 2.7, 2.9, "x", headline=True,
                  **at_least(2.9, 2.7)),
              Row("T-MAC", "tiny-tmac", "output NMSE vs fp32", 0.01, 0.05, "", **at_most(0.05, 0.01)),
              Row("T-MAC", "tiny-tmac", "llama.cpp Q4_0 GEMV", 1.08, None, "ms",
                  **not_measured("llama.cpp peer absent"))],
        tables=[Table("latency", ["bits", "ms"], [[2, 0.21], [4, 0.66]], notes="median of 7")],
        figures=[line_figure("latency")],
        peers={"llama.cpp": {"version": "0.0-test", "isa": "AVX2 FMA"}})


def _lmul(ctx: Context) -> ExperimentResult:
    return ExperimentResult(rows=[
        Row("L-Mul", "tiny-lmul", "energy per multiply, fp8", 0.37, 0.37, "pJ", **derived()),
        Row("L-Mul", "tiny-lmul", "energy per multiply, fp32", 3.7, 3.7, "pJ", **derived()),
        Row("L-Mul", "tiny-lmul", "relative error", None, 0.03, "", **measured())],
        figures=[line_figure("error")])


def _fusemax(ctx: Context) -> ExperimentResult:
    raise RuntimeError("boom in fusemax")


def _loose(ctx: Context) -> ExperimentResult:
    return ExperimentResult(rows=[Row("Testing", "tiny-other", "answer", 42, 42, **measured())])


TINY = (Experiment("tiny-tmac", "tmac", "tiny T-MAC experiment", _tmac, __name__),
        Experiment("tiny-lmul", "lmul", "tiny L-Mul experiment", _lmul, __name__),
        Experiment("tiny-fusemax", "fusemax", "tiny FuseMax experiment that fails", _fusemax, __name__),
        Experiment("tiny-other", "", "an experiment outside any technique", _loose, __name__))


@pytest.fixture(scope="session")
def tiny_outcomes():
    return [run_one(e, Context(quick=True)) for e in TINY]


@pytest.fixture
def tiny_meta():
    from frugalnn import info

    machine = info.collect()
    machine["torch_isa"] = info.torch_isa()
    return {"created": "now", "quick": True, "seed": 0, "machine": machine,
            "peers": {"llama.cpp": {"version": "0.0-test", "isa": "AVX2 FMA"}}}


@pytest.fixture
def tiny_report(tmp_path, tiny_outcomes, tiny_meta):
    """Directory holding results.json and index.html of the tiny report."""
    write(tiny_outcomes, tiny_meta, tmp_path)
    return tmp_path
