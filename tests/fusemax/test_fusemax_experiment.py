"""The FuseMax experiment's model parts (the CPU timing part runs in `frugalnn report`)."""
from frugalnn.fusemax import experiment as fusemax
from frugalnn.report import REPRODUCED, Context


def test_pass_rows_reproduce_the_paper():
    rows, table = fusemax._passes(Context(quick=True))
    assert [r.measured for r in rows] == [3, 2, 2, 1]
    assert all(r.verdict == REPRODUCED for r in rows)
    assert len(table.rows) == 7


def test_accelerator_rows_and_figures():
    rows, tables, figures, summary = fusemax._accelerator(Context(quick=True))
    assert {r.metric.split(": ", 1)[1] for r in rows} == set(fusemax.arch.PAPER)
    assert sum(r.verdict == REPRODUCED for r in rows) >= 7
    assert len(tables[0].rows) == 3 * 4 * 6 and all(f.png.startswith(b"\x89PNG") for f in figures)
