"""The shared thread pool under stress: varying thread counts, concurrent callers from Python threads."""
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from frugalnn.kernels import pack


def test_varying_thread_counts_and_concurrent_callers(backend):
    rng = np.random.default_rng(0)
    weights = [rng.standard_normal((64 + 7 * i, 96)).astype(np.float32) for i in range(6)]
    expected = [pack.quantize_pack(w, 3, 32, False, threads=1) for w in weights]

    def job(i):
        w = weights[i % len(weights)]
        got = pack.quantize_pack(w, 3, 32, False, threads=1 + i % 5)  # 1..5: workers join and sit out
        return all(np.array_equal(a, b) for a, b in zip(got, expected[i % len(weights)]))

    for _ in range(3):
        assert all(job(i) for i in range(40))  # one caller, participants changing every region
    with ThreadPoolExecutor(4) as ex:  # callers racing for the pool; losers run inline
        assert all(ex.map(job, range(200)))


# ---- the thread-count bound (issue 19, item 18) ----------------------------------------------------

import pytest  # noqa: E402

from frugalnn import _core  # noqa: E402
from frugalnn.kernels import attention, llama, lmul, lut  # noqa: E402
from frugalnn.threads import resolve_threads  # noqa: E402


def max_threads():
    from frugalnn.threads import max_threads

    return max_threads()


def test_max_threads_is_documented_and_shared():
    assert max_threads() == max(256, 4 * _core.hardware_threads()) == _core.max_threads()
    assert resolve_threads(max_threads()) == max_threads()
    assert resolve_threads(None) == _core.hardware_threads()


def _calls(threads):
    """Every wrapper that takes threads, on tiny valid inputs."""
    x = np.ones((2, 8), np.float32)
    codes = np.zeros((4, 8), np.uint8)
    packed = lut.transform(codes, 2, 8)
    ws = np.ones((1, 1, 32), np.float32)
    q = np.ones((1, 2, 4), np.float32)
    return [lambda: pack.quantize_pack(x, 4, 8, threads=threads),
            lambda: lut.transform(codes, 2, 8, threads=threads),
            lambda: lut.matmul(x, packed, ws, ws, 4, 2, 8, False, threads=threads),
            lambda: lmul.elementwise(x[0], x[0], 3, True, 3, threads=threads),
            lambda: attention.fused_attention(q, q, q, threads=threads),
            lambda: llama.gemv(x, x[0], threads=threads)]


@pytest.mark.parametrize("threads", [2**31, 10**6, 2**63, -5, 0])
def test_thread_counts_beyond_the_bound_are_value_errors_everywhere(threads):
    with pytest.raises(ValueError, match="threads"):
        resolve_threads(threads)
    for call in _calls(threads):
        with pytest.raises(ValueError, match="threads"):
            call()


@pytest.mark.parametrize("threads", [2**31, 10**6, 300, -2])
def test_raw_bindings_check_any_python_int(threads):
    # an `int` parameter made nanobind answer 2**31 with "incompatible function arguments"
    codes = np.zeros((2, 16), np.uint8)
    with pytest.raises(ValueError, match=f"threads: expected a positive count up to {max_threads()} or -1 "
                                         f"\\(all cores\\), got {threads}"):
        _core.pack.pack_codes(codes, 8, np.zeros((2, 16), np.uint8), threads)


def test_the_bound_itself_runs_on_a_bounded_pool():
    # in a child: the pool keeps its workers for the life of the process
    from fuzz.harness import assert_no_crash, run_isolated

    rc, out, err = run_isolated("""
import os, numpy as np
from frugalnn import _core
from frugalnn.kernels import pack
from frugalnn.threads import max_threads
w = np.random.default_rng(0).standard_normal((3000, 64)).astype(np.float32)
for t in (max_threads(), 2, max_threads()):
    assert all(np.array_equal(a, b) for a, b in zip(pack.quantize_pack(w, 4, 32, threads=t),
                                                    pack.quantize_pack(w, 4, 32, threads=1)))
print(len(os.listdir("/proc/self/task")) - 1, 4 * _core.hardware_threads())
""", timeout=60)
    assert_no_crash(rc, out, err, "threads=max_threads()")
    extra, pool = map(int, out.split())
    assert extra <= pool + 8, f"{extra} threads besides the main one for a pool of {pool}"  # + numpy/BLAS's own
