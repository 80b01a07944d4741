"""profile() against closed-form counts, layer type by layer type, and its attribution and errors."""
import math
import time

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from frugalnn.cost import Profiler, profile


def conv_out(n, k, s, p, d):
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


@pytest.mark.parametrize("c_in,c_out,k,s,p,d,g,bias,h,w", [
    (3, 8, 3, 1, 1, 1, 1, False, 9, 7),      # plain, odd spatial
    (8, 16, 3, 2, 1, 1, 1, True, 10, 10),    # strided, bias (bias adds are free)
    (8, 8, 5, 1, 4, 2, 1, False, 11, 9),     # dilated
    (12, 18, 3, 2, 0, 1, 3, False, 13, 8),   # grouped, no padding
    (16, 16, 3, 1, 1, 1, 16, False, 8, 8),   # depthwise
    (16, 32, 5, 2, 2, 1, 16, False, 9, 9),   # depthwise multiplier 2, strided
    (4, 6, 1, 1, 0, 1, 2, True, 5, 3),       # grouped 1x1
])
def test_conv2d_exact(c_in, c_out, k, s, p, d, g, bias, h, w):
    conv = nn.Conv2d(c_in, c_out, k, stride=s, padding=p, dilation=d, groups=g, bias=bias)
    n = 2
    prof = profile(conv, torch.randn(n, c_in, h, w))
    ho, wo = conv_out(h, k, s, p, d), conv_out(w, k, s, p, d)
    assert prof.macs == n * c_out * (c_in // g) * k * k * ho * wo
    assert prof.flops == 2 * prof.macs
    assert prof.acts == n * c_out * ho * wo
    assert prof.params == c_out * (c_in // g) * k * k + (c_out if bias else 0)
    assert prof.unsupported() == {}


@given(c=st.integers(1, 4), g=st.sampled_from([1, 2, 3]), m=st.integers(1, 3), k=st.integers(1, 4),
       s=st.integers(1, 3), d=st.integers(1, 2), p=st.integers(0, 2), size=st.integers(6, 12))
def test_conv_property(c, g, m, k, s, d, p, size):
    c_in, c_out = c * g, m * g
    if d * (k - 1) + 1 > size + 2 * p:
        return
    for dim, conv_cls in ((1, nn.Conv1d), (2, nn.Conv2d), (3, nn.Conv3d)):
        conv = conv_cls(c_in, c_out, k, stride=s, padding=p, dilation=d, groups=g)
        prof = profile(conv, torch.randn(1, c_in, *([size] * dim)))
        out = conv_out(size, k, s, p, d) ** dim
        assert prof.macs == c_out * (c_in // g) * k ** dim * out


def test_conv_transpose_counts_input_positions():
    conv = nn.ConvTranspose2d(6, 4, 3, stride=2, padding=1, groups=2)
    prof = profile(conv, torch.randn(1, 6, 5, 7))
    # each input position scatters a (c_out/g) x k x k patch per input channel
    assert prof.macs == 6 * (4 // 2) * 9 * 5 * 7


@pytest.mark.parametrize("shape", [(5, 7), (2, 3, 7), (2, 3, 4, 7), (7,)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_exact(shape, bias):
    layer = nn.Linear(7, 11, bias=bias)
    prof = profile(layer, torch.randn(*shape))
    rows = math.prod(shape[:-1])
    assert prof.macs == rows * 7 * 11
    assert prof.acts == rows * 11
    assert prof.params == 77 + (11 if bias else 0)


class Fn(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, *args):
        return self.fn(*args)


@pytest.mark.parametrize("fn,shapes,macs", [
    (torch.matmul, [(3, 4), (4, 5)], 3 * 4 * 5),
    (torch.matmul, [(2, 3, 4), (4, 5)], 2 * 3 * 4 * 5),
    (torch.matmul, [(3, 4), (2, 4, 5)], 2 * 3 * 4 * 5),          # broadcast: every batch is a real product
    (torch.matmul, [(6, 1, 3, 4), (2, 4, 5)], 6 * 2 * 3 * 4 * 5),
    (torch.matmul, [(4,), (4, 5)], 4 * 5),
    (torch.matmul, [(3, 4), (4,)], 3 * 4),
    (torch.matmul, [(4,), (4,)], 4),
    (torch.bmm, [(3, 2, 4), (3, 4, 6)], 3 * 2 * 4 * 6),
    (lambda a, b, c: torch.baddbmm(a, b, c), [(3, 2, 6), (3, 2, 4), (3, 4, 6)], 3 * 2 * 4 * 6),
    (lambda a, b: torch.einsum("bij,bjk->bik", a, b), [(2, 3, 4), (2, 4, 5)], 2 * 3 * 4 * 5),
    (lambda a, b: torch.einsum("nhqd,nhkd->nhqk", a, b), [(2, 3, 5, 8), (2, 3, 6, 8)], 2 * 3 * 5 * 6 * 8),
    (lambda a, b: torch.einsum("ij,jk->ik", a, b), [(3, 4), (4, 5)], 3 * 4 * 5),
    (lambda a, b: torch.einsum("ij,ij->i", a, b), [(3, 4), (3, 4)], 3 * 4),
])
def test_matmul_family_exact(fn, shapes, macs):
    prof = profile(Fn(fn), *[torch.randn(*s) for s in shapes])
    assert prof.macs == macs
    assert prof.unsupported() == {}


@pytest.mark.parametrize("kwargs", [{}, {"is_causal": True}, {"attn_mask": "bool"}, {"attn_mask": "float"}])
def test_sdpa_exact(kwargs):
    b, h, s_q, s_k, d, d_v = 2, 3, 5, 7, 8, 6
    q, k, v = torch.randn(b, h, s_q, d), torch.randn(b, h, s_k, d), torch.randn(b, h, s_k, d_v)
    if kwargs.get("attn_mask") == "bool":
        kwargs = {"attn_mask": torch.rand(s_q, s_k) > 0.3}
    elif kwargs.get("attn_mask") == "float":
        kwargs = {"attn_mask": torch.randn(s_q, s_k)}
    elif kwargs.get("is_causal"):
        k, v = torch.randn(b, h, s_q, d), torch.randn(b, h, s_q, d_v)
        s_k = s_q
    prof = profile(Fn(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, **kwargs)), q, k, v)
    assert prof.macs == b * h * s_q * s_k * (d + d_v)  # q @ k^T, then weights @ v; the mask saves nothing
    assert prof.unsupported() == {}


def test_multihead_attention_is_projections_plus_attention():
    e, heads, s, n = 16, 4, 5, 2
    mha = nn.MultiheadAttention(e, heads, batch_first=True)
    x = torch.randn(n, s, e)
    prof = profile(Fn(lambda x: mha(x, x, x, need_weights=False)[0]), x)
    projections = n * s * e * 3 * e + n * s * e * e
    attention = n * heads * s * s * (e // heads) * 2
    assert prof.macs == projections + attention


def test_module_attribution_and_functional_calls():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 3, padding=1, bias=False)
            self.w = nn.Parameter(torch.randn(4, 4))

        def forward(self, x):  # a functional matmul belongs to Block itself
            y = self.conv(x)
            return torch.einsum("nchw,dc->ndhw", y, self.w)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = Block()
            self.b = Block()
            self.head = nn.Linear(4, 3)

        def forward(self, x):
            x = self.b(self.a(x))
            x = self.a(x)  # a shared module called twice accumulates
            return self.head(x.mean((2, 3)))

    prof = profile(Net(), torch.randn(1, 4, 6, 6))
    conv, mix = 4 * 4 * 9 * 36, 4 * 4 * 36
    by = prof.by_module()
    assert by["a.conv"].macs == 2 * conv and by["a"].macs == 2 * (conv + mix)
    assert by["b"].macs == conv + mix and by["head"].macs == 12
    assert by[""].macs == prof.macs == 3 * (conv + mix) + 12
    assert by["a"].params == 4 * 4 * 9 + 16 and by[""].params == prof.params
    assert prof.by_operator("a") == {"aten::convolution": 2 * conv, "aten::bmm": 2 * mix}
    with pytest.raises(KeyError, match="no module named 'nope'"):
        prof.by_operator("nope")


def test_shared_parameters_count_once():
    lin = nn.Linear(5, 5)
    net = nn.Sequential(lin, nn.ReLU(), lin)
    prof = profile(net, torch.randn(2, 5))
    assert prof.params == 30 and prof.macs == 2 * 2 * 25


def test_free_ops_are_not_unsupported_and_acts_all_counts_them():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.SiLU(), nn.MaxPool2d(2), nn.Dropout(0.1),
                        nn.Flatten(), nn.LayerNorm(4 * 3 * 3), nn.Softmax(-1))
    prof = profile(net.train(), torch.randn(2, 3, 8, 8))
    assert prof.unsupported() == {}
    assert prof.acts == 2 * 4 * 6 * 6
    assert prof.acts_all > 4 * prof.acts  # norm, activation, pool, ... outputs


def test_train_and_eval_mode_count_alike():
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 36, 2))
    x = torch.randn(2, 3, 8, 8)
    assert profile(net.train(), x).macs == profile(net.eval(), x).macs


def test_fake_mode_counts_like_real_without_computing():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, groups=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3, groups=8),
                        nn.Flatten(), nn.Linear(8 * 16, 10)).eval()
    x = torch.randn(2, 3, 8, 8)
    real, fake = profile(net, x), Profiler(fake=True)(net, x)
    assert (real.macs, real.params, real.acts, real.acts_all) == (fake.macs, fake.params, fake.acts, fake.acts_all)


def test_kwargs_reach_the_model():
    class Takes(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 3)

        def forward(self, x, twice=False):
            return self.lin(self.lin(x)) if twice else self.lin(x)

    assert profile(Takes(), torch.randn(1, 3), twice=True).macs == 18


def test_error_is_reraised_with_module_path():
    net = nn.Sequential(nn.Linear(4, 4), nn.Sequential(nn.ReLU(), nn.Linear(5, 2)))
    with pytest.raises(RuntimeError, match=r"in module '1\.1' \(Linear\)") as info:
        profile(net, torch.randn(3, 4))
    assert info.value.module_path == "1.1"
    assert "cannot be multiplied" in str(info.value) and isinstance(info.value.__cause__, RuntimeError)

    class Raises(nn.Module):
        def forward(self, x):
            raise ValueError("bad input scale")

    with pytest.raises(ValueError, match=r"the model's forward \(Raises\): bad input scale"):
        profile(Raises(), torch.randn(1))
    # hooks are gone afterwards: a normal profile still works and counts from zero
    assert profile(nn.Linear(2, 2), torch.randn(1, 2)).macs == 4


def test_bad_arguments():
    with pytest.raises(TypeError, match="torch.nn.Module"):
        profile(lambda x: x, torch.randn(2))
    with pytest.raises(ValueError, match="convention"):
        Profiler(convention="gflops")
    prof = profile(nn.Linear(2, 2), torch.randn(1, 2))
    with pytest.raises(ValueError, match="max_depth"):
        prof.table(max_depth=-1)


def test_table_lists_modules_to_depth():
    net = nn.Sequential(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()), nn.Flatten(), nn.Linear(4 * 36, 2))
    prof = profile(net, torch.randn(1, 3, 8, 8))
    shallow, deep = prof.table(max_depth=1), prof.table(max_depth=2)
    assert "Conv2d" not in shallow and "Conv2d" in deep and "(model)" in shallow
    assert "2 x MACs" in shallow and "aten::convolution" in shallow
    d = prof.to_dict(max_depth=1)
    assert d["macs"] == prof.macs and set(d["modules"]) == {"", "0", "1", "2"}


def test_twenty_layer_cnn_profiles_well_under_a_second():
    layers, c = [], 3
    for i in range(20):
        o = 16 * (1 + i // 5)
        layers += [nn.Conv2d(c, o, 3, padding=1, stride=2 if i % 5 == 4 else 1), nn.BatchNorm2d(o), nn.ReLU()]
        c = o
    net = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 10)).eval()
    x = torch.randn(1, 3, 64, 64)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # CPU time of one thread: other tenants of a shared test machine do not count
    try:
        profile(net, x)  # first use imports torch's dispatch machinery once
        start = time.process_time()
        prof = profile(net, x)
        assert time.process_time() - start < 0.5
    finally:
        torch.set_num_threads(threads)
    assert prof.by_module()["0"].macs == 16 * 3 * 9 * 64 * 64


@pytest.mark.filterwarnings("ignore:The PyTorch API of nested tensors")
def test_fused_transformer_inference_paths_count_like_the_decomposed_ones():
    torch.manual_seed(0)
    e, f = 16, 40
    layer = nn.TransformerEncoderLayer(e, 4, f, batch_first=True, dropout=0.0).eval()
    x = torch.randn(3, 7, e)

    def expected(lengths):
        tokens = sum(lengths)
        return 4 * tokens * e * e + sum(2 * n * n for n in lengths) * e + 2 * tokens * e * f

    fused = profile(layer, x)  # no_grad + eval: torch takes its fused kernel
    assert "aten::_transformer_encoder_layer_fwd" in fused.by_operator() and fused.unsupported() == {}
    assert fused.macs == expected([7, 7, 7]) == Profiler(grad=True)(layer, x).macs  # grad on: plain ops

    # padded batch through the encoder: torch packs it into a nested tensor and skips the padding
    encoder = nn.TransformerEncoder(layer, 1, enable_nested_tensor=True).eval()
    mask = torch.zeros(3, 7, dtype=torch.bool)
    mask[1, 5:] = True
    mask[2, 3:] = True
    assert profile(encoder, x, src_key_padding_mask=mask).macs == expected([7, 5, 3])

    mha = nn.MultiheadAttention(e, 4, batch_first=True).eval()
    q = torch.randn(2, 5, e)
    fused = profile(mha, q, q, q)
    assert "aten::_native_multi_head_attention" in fused.by_operator()
    assert fused.macs == Profiler(grad=True)(mha, q, q, q).macs == 2 * 4 * 5 * e * e + 2 * 2 * 5 * 5 * e
