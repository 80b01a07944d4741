"""The delta-inference engine (csrc/delta) against its numpy reference (kernels/delta_ref.py): per-frame
outputs equal a dense evaluation of the quantized network, counters equal the reference's, over 32-frame
clips with a cut and a static clip, on both backends and several thread counts."""
import numpy as np
import pytest

from frugalnn.kernels import delta as kdelta
from frugalnn.kernels.delta_ref import Program, RefStream, dense


def random_program(seed=0, threshold=0.0, quantize=True, c_in=2, h=11, w=9):
    """input -> conv3x3/s2 relu -> conv3x3 relu -> conv1x1 + skip relu -> conv2x2/s2 relu -> mean -> linear."""
    rng = np.random.default_rng(seed)

    def step(c):
        return rng.uniform(0.05, 0.2, c) if quantize else None

    def wts(k, ci, co):
        return (rng.standard_normal((k, k, ci, co)) / np.sqrt(k * k * ci)).astype(np.float32)

    p = Program()
    i = p.layer(c_in, h, w, False, step(c_in), threshold)
    h1, w1 = (h + 2 - 3) // 2 + 1, (w + 2 - 3) // 2 + 1
    a = p.layer(5, h1, w1, True, step(5), threshold, rng.normal(0, 0.1, 5))
    p.conv(a, i, wts(3, c_in, 5), 2, 1)
    b = p.layer(5, h1, w1, True, step(5), threshold, rng.normal(0, 0.1, 5))
    p.conv(b, a, wts(3, 5, 5), 1, 1)
    r = p.layer(5, h1, w1, True, step(5), threshold, rng.normal(0, 0.1, 5))
    p.conv(r, b, wts(1, 5, 5), 1, 0)
    p.identity(r, a)
    h2, w2 = (h1 - 2) // 2 + 1, (w1 - 2) // 2 + 1
    d = p.layer(7, h2, w2, True, step(7), threshold, rng.normal(0, 0.1, 7))
    p.conv(d, r, wts(2, 5, 7), 2, 0)
    g = p.layer(7, 1, 1)
    p.mean(g, d)
    o = p.layer(3, 1, 1, bias=rng.normal(0, 0.1, 3))
    p.conv(o, g, wts(1, 7, 3), 1, 0)
    return p


def clip(seed=0, frames=32, c=2, h=11, w=9, cut=None, static=False):
    """A smooth clip: a fixed scene plus a small blob that moves; `cut`: from that frame on, another scene."""
    rng = np.random.default_rng(seed)
    scene, other = rng.uniform(0, 1, (c, h, w)), rng.uniform(0, 1, (c, h, w))
    yy, xx = np.mgrid[0:h, 0:w]
    out = []
    for t in range(frames):
        base = other if cut is not None and t >= cut else scene
        if static:
            out.append(base)
            continue
        cy, cx = 2 + 0.2 * t, 2 + 0.15 * t
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 2.0)
        out.append(base + 0.8 * blob[None])
    return np.asarray(out, np.float32)


def run(stream, frames, dense_mode=False):
    stream.reset()
    outs, macs, nnz = [], [], []
    for f in frames:
        outs.append(stream.push(f, dense_mode))
        macs.append(list(stream.layer_macs))
        nnz.append(list(stream.nonzeros))
    return np.array(outs), np.array(macs), np.array(nnz)


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("kind", ["moving", "cut", "static"])
def test_engine_equals_dense_evaluation_and_the_reference(backend, threads, kind):
    prog = random_program(1)
    frames = clip(2, cut=16 if kind == "cut" else None, static=kind == "static")
    outs, macs, nnz = run(kdelta.NativeStream(prog, threads), frames)
    want = np.array([dense(prog, f) for f in frames])
    np.testing.assert_allclose(outs, want, rtol=1e-6, atol=1e-6)
    r_outs, r_macs, r_nnz = run(kdelta.NumpyStream(prog), frames)
    np.testing.assert_allclose(outs, r_outs, rtol=1e-6, atol=1e-6)
    assert np.array_equal(macs, r_macs) and np.array_equal(nnz, r_nnz)
    dense_macs = prog.dense_macs()
    assert 0 < macs[0].sum() <= dense_macs
    if kind == "static":
        assert macs[1:].sum() == 0 and nnz[1:].sum() == 0          # zero work after frame 1
    else:
        assert 0 < macs[1:].sum(1).mean() < 0.8 * dense_macs
    if kind == "cut":
        assert macs[16].sum() > 2 * macs[15].sum()


def test_backends_and_thread_counts_agree_bit_for_bit():
    from frugalnn.kernels import available_backends, use_backend

    prog, frames = random_program(3), clip(4, cut=10)
    results = []
    for b in available_backends():
        with use_backend(b):
            for t in (1, 2, 5):
                results.append(run(kdelta.NativeStream(prog, t), frames))
    for o, m, n in results[1:]:
        assert np.array_equal(o, results[0][0]) and np.array_equal(m, results[0][1]) and np.array_equal(n, results[0][2])


def test_dense_mode_does_the_dense_macs_every_frame(backend):
    prog, frames = random_program(5), clip(6, frames=4)
    outs, macs, _ = run(kdelta.NativeStream(prog), frames, dense_mode=True)
    assert all(m.sum() == prog.dense_macs() for m in macs)
    np.testing.assert_allclose(outs, [dense(prog, f) for f in frames], rtol=1e-6, atol=1e-6)


def test_unquantized_network_is_exact_too(backend):
    prog, frames = random_program(7, quantize=False), clip(8, frames=6)
    outs, _, _ = run(kdelta.NativeStream(prog), frames)
    np.testing.assert_allclose(outs, [dense(prog, f) for f in frames], rtol=1e-6, atol=1e-6)


def test_threshold_mode_matches_the_reference_and_skips_small_changes(backend):
    prog, frames = random_program(9, threshold=0.05, quantize=False), clip(10)
    outs, macs, nnz = run(kdelta.NativeStream(prog, 2), frames)
    r_outs, r_macs, r_nnz = run(kdelta.NumpyStream(prog), frames)
    np.testing.assert_allclose(outs, r_outs, rtol=1e-5, atol=1e-6)
    assert np.array_equal(macs, r_macs) and np.array_equal(nnz, r_nnz)
    exact_macs = run(kdelta.NativeStream(random_program(9, quantize=False)), frames)[1]
    assert macs[1:].sum() < exact_macs[1:].sum()
    err = np.abs(outs - np.array([dense(prog, f) for f in frames])).max()
    assert 0 < err < 1.0                                     # approximate, bounded


def test_bad_input_raises_clear_errors():
    prog = random_program(0)
    s = kdelta.NativeStream(prog)
    with pytest.raises(ValueError, match="frame: expected shape"):
        s.push(np.zeros((2, 5, 5), np.float32))
    with pytest.raises(ValueError, match="non-finite"):
        s.push(np.full((2, 11, 9), np.nan, np.float32))
    with pytest.raises(ValueError, match="threads"):
        kdelta.NativeStream(prog, threads=0)
    with pytest.raises(TypeError, match="Program"):
        kdelta.NativeStream("net")
    bad = Program()
    bad.layer(1, 4, 4)
    x = bad.layer(2, 4, 4)
    with pytest.raises(ValueError, match="conv"):
        bad.conv(x, 0, np.zeros((3, 3, 1, 2), np.float32), 2, 1)
        kdelta.build_engine(bad)
    with pytest.raises(ValueError, match="step"):
        p = Program()
        p.layer(1, 2, 2, step=np.array([0.0]))
        kdelta.build_engine(p)


@pytest.mark.parametrize("c", [1, 3, 12, 21])
def test_quantization_rounds_like_the_division_at_ties(backend, c):
    """The SIMD activation rounds a * (1 / step) and falls back to a / step near a half-integer. States
    exactly on a half step ((x + 0.5) * step: integer input x through a 1x1 conv whose weight is the
    step, bias step / 2; where a * (1 / step) can miss the tie) and an ulp beside it (first frames)
    must round as the division does (half to even): one channel (positions 8 / 4 to a vector) and 8 / 4 / 1-lane
    channel blocks."""
    rng = np.random.default_rng(c)
    steps = np.array([0.1, 0.3, 0.7, 0.05, 0.15, 1 / 3, 0.2, 0.9, 0.11, 0.013] * 3, np.float32)[:c].astype(np.float64)
    h, w = 4, 6
    outs, want = [], []
    for nudge in (0.0, -np.inf, np.inf):
        p = Program()
        i = p.layer(c, h, w)
        o = p.layer(c, h, w, False, steps, 0.0, np.nextafter(steps / 2, nudge) if nudge else steps / 2)
        p.conv(o, i, np.diag(steps).astype(np.float32)[None, None], 1, 0)
        frames = rng.integers(-60, 60, (5, c, h, w)).astype(np.float32)
        s = kdelta.NativeStream(p)   # each frame after a reset: a delta sum would round the nudge away
        outs.append([run(s, f[None])[0][0] for f in frames])
        want.append(np.array([dense(p, f) for f in frames]).astype(np.float32))
    assert np.array_equal(np.array(outs), np.array(want))
