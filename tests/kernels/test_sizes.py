"""Sizes computed from a caller's integers (issue 19, item 1): every product is checked against int64
(csrc/common/checked.h) and nothing is allocated from a bare integer, so a huge count is a
ValueError, never a wrapped size that passes the shape checks and writes out of bounds."""
import numpy as np
import pytest

from frugalnn import _core
from fuzz.harness import assert_no_crash, run_isolated

# The reproducer: with n_heads = 2^62, (n_heads + 2) * head_dim wrapped to 8 and n_heads *
# head_dim to 0, so every check passed and step() wrote out of bounds (SIGSEGV); with rope_dim = 0
# it looped over 2^62 heads instead.
REPRO = """
import numpy as np
from frugalnn._core.llama import Decoder
H, Hkv, hd, dim, ffn, vocab, maxp, rope = 2**62, 1, 4, 8, 8, 10, 4, {rope}
f = lambda *s: np.ones(s, np.float32)
try:
    d = Decoder(dim, 1, H, Hkv, hd, rope, ffn, vocab, maxp, 1e-5, f(vocab, dim), f(maxp, rope // 2, 2), f(dim), 1)
    d.set_norms(0, f(dim), f(dim)); d.add_dense(0, "qkv", f(8, dim), 1)
    d.add_dense(0, "o", np.zeros((dim, 0), np.float32), 1)
    d.add_dense(0, "gate_up", f(2 * ffn, dim), 1); d.add_dense(0, "down", f(dim, ffn), 1)
    d.add_dense(-1, "head", f(vocab, dim), 1)
    d.finish(); k = np.zeros((1, 1, Hkv, maxp, hd), np.float32); d.set_cache(k, np.zeros_like(k))
    d.step(0, 0, np.empty(vocab, np.float32))
    print("no error")
except ValueError as e:
    print("ValueError:", e)
"""


@pytest.mark.parametrize("rope", [4, 0])
def test_decoder_head_count_that_wraps_int64_is_refused(rope):
    rc, out, err = run_isolated(REPRO.format(rope=rope), timeout=20)
    assert_no_crash(rc, out, err, f"Decoder with n_heads = 2^62, rope_dim = {rope}")
    assert "ValueError: qkv rows ((n_heads + 2 n_kv_heads) x head_dim): 4611686018427387906 x 4" in out


def _tiny_decoder_args(**over):
    c = dict(dim=8, n_layers=1, n_heads=2, n_kv_heads=1, head_dim=4, rope_dim=4, ffn_dim=8, vocab=10, max_pos=4)
    c.update(over)
    f = lambda *s: np.ones(s, np.float32)  # noqa: E731
    return (*c.values(), 1e-5, f(10, 8), f(4, 2, 2), f(8))


@pytest.mark.parametrize("over", [dict(n_heads=2**40, rope_dim=0, head_dim=1), dict(ffn_dim=2**36),
                                  dict(n_heads=2**40, n_kv_heads=2**40), dict(head_dim=2**40)])
def test_decoder_allocates_nothing_from_bare_counts(over):
    # Sizes that fit int64 but no memory: the constructor allocated (n_heads + 2 n_kv_heads) head_dim
    # floats of scratch up front (std::bad_alloc, or pages touched until the OOM killer came);
    # now scratch waits for finish(), where real weights bound every size.
    rc, out, err = run_isolated(f"""
import os, resource, numpy as np
if "libasan" not in os.environ.get("LD_PRELOAD", ""):  # (ASan reserves terabytes of shadow memory)
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))  # a runaway allocation fails fast here
from frugalnn._core.llama import Decoder
f = lambda *s: np.ones(s, np.float32)
c = dict(dim=8, n_layers=1, n_heads=2, n_kv_heads=1, head_dim=4, rope_dim=4, ffn_dim=8, vocab=10, max_pos=4)
c.update({over!r})
try:
    d = Decoder(*c.values(), 1e-5, f(10, 8), f(4, c["rope_dim"] // 2, 2), f(8))
    d.set_norms(0, f(8), f(8))
    d.finish()
    print("no error")
except (ValueError, MemoryError) as e:
    print(type(e).__name__ + ":", e)
""", timeout=30)
    assert_no_crash(rc, out, err, f"Decoder with {over}")
    assert out.startswith("ValueError:"), out + err[-2000:]


def test_decoder_layer_count_is_bounded():
    with pytest.raises(ValueError, match="n_layers: expected at most 65536, got 131072"):
        _core.llama.Decoder(*_tiny_decoder_args(n_layers=2**17))


@pytest.mark.parametrize("m", [2**60, 2**62, 2**63 - 1])
def test_lut_layout_sizes_refuse_sizes_beyond_int64(m):
    # units x groups x steps x bits x 32 packed bytes wrapped around before
    with pytest.raises(ValueError, match="packed bytes"):
        _core.lut.layout_sizes(m, 8, 8, 8)
    assert _core.lut.layout_sizes(2**40, 8, 8, 8)[2] == 2**35 * 256  # large but representable: answered


def test_pack_row_bytes_refuse_sizes_beyond_int64():
    with pytest.raises(ValueError, match="K x bits"):
        _core.pack.packed_row_bytes(2**62, 8)
    with pytest.raises(ValueError, match="k: expected >= 0"):
        _core.pack.packed_row_bytes(-8, 8)
    assert _core.pack.packed_row_bytes(2**59, 8) == 2**59


def test_empty_array_with_huge_axis_cannot_wrap_packed_row_bytes():
    # numpy lets an empty array have a 2^60 axis; K x bits wrapped for it
    codes = np.zeros((0, 2**60), np.uint8)
    with pytest.raises(ValueError, match="K x bits"):
        _core.pack.pack_codes(codes, 8, np.zeros((0, 0), np.uint8), 1)


@pytest.mark.parametrize("e,ev", [(2**60, 1), (1, 2**62), (2**63 - 1, 2**63 - 1)])
def test_attention_workspace_bytes_refuse_sizes_beyond_int64(e, ev):
    with pytest.raises(ValueError, match="not a valid size"):
        _core.attention.workspace_bytes(e, ev)
