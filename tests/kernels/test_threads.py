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
