"""The benchmark's memory probe measures real allocations: naive O(seq^2) vs fused O(seq)."""
from frugalnn.fusemax.bench import measure_memory, naive_three_pass, make_inputs
import torch


def test_memory_probe_separates_naive_from_fused():
    seq = 1024
    naive = measure_memory("naive 3-pass", seq, 64, 1)
    fused = measure_memory("fused 1-pass (ours)", seq, 64, 1)
    scores = seq * seq * 4
    assert naive >= 2 * scores  # at least the scores and the exponentials coexist
    assert fused < scores / 4  # the output (256 KiB) and scratch, nothing L x S


def test_naive_reference_is_attention():
    q, k, v = make_inputs(33, 8)
    torch.testing.assert_close(naive_three_pass(q, k, v), torch.nn.functional.scaled_dot_product_attention(q, k, v))
