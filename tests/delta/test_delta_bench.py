"""`frugalnn bench delta`: the step sets the density, and a tiny run produces complete, checked rows."""
import pytest

from frugalnn.bench.harness import BenchArgs
from frugalnn.delta import bench


def test_a_larger_step_means_fewer_changes():
    from frugalnn.data.moving import moving_clips
    from frugalnn.delta.engine import compile as compile_stream

    _, delta = bench.model_pair()
    clip = moving_clips(1, frames=4, seed=1)[0][0]
    macs = []
    for step in (0.05, 0.8):
        bench.set_steps(delta, step)
        s = compile_stream(delta, (1, 64, 64))
        s.run(clip)
        macs.append(s.total_macs)
    assert macs[1] < macs[0]


def test_tiny_run():
    report = bench.bench_delta(BenchArgs(quick=True, threads=[1], repeats=1, options={"steps": [0.8],
                                                                                     "video_steps": [0.8]}))
    impls = {r.impl for r in report.rows}
    assert impls == {bench.BASELINE, "torch dense per frame, channels-last", "engine", "engine, every element changed"}
    assert all(r.median_ms > 0 and 0 <= r.extra["MAC density"] <= 1 for r in report.rows)
    assert {r.case for r in report.rows} == {"step 0.8", "video step 0.8"}
    with pytest.raises(ValueError, match="steps"):
        bench.bench_delta(BenchArgs(quick=True, threads=[1], repeats=1, options={"steps": [0.0]}))
