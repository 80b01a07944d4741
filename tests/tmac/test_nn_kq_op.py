"""LUTLinear with two-level (K-quant) scales through torch.ops.frugalnn.lut_matmul_kq: torch.export,
torch.compile and fx tracing see the operator (not an opaque call), give eager's answer bit for bit, count
its flops, and a wrong input width fails with eager's message."""
import gguf
import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from frugalnn.tmac import LUTLinear, LUTWeight
from frugalnn.tmac.kquants import KQUANTS
from test_kquant import kquant_blocks

T = gguf.GGMLQuantizationType
RNG = np.random.default_rng(1718)
M, K = 40, 512
OP = torch.ops.frugalnn.lut_matmul_kq.default


def kq_layer(name: str, bias: bool = True) -> LUTLinear:
    if name in KQUANTS:
        data = kquant_blocks(name, M, K, rng=RNG)
    else:  # Q5_0 / Q5_1: one-level in the file, fmt "one" here
        data = gguf.quants.quantize(RNG.standard_normal((M, K)).astype(np.float32), T[name])
    w = LUTWeight.from_gguf(data, qtype=T[name], shape=(M, K))
    assert w.scales == "kq"
    b = torch.from_numpy(RNG.standard_normal(M).astype(np.float32)) if bias else None
    layer = LUTLinear(w, b, threads=1)
    view = layer.lut_weight  # the layer's own view of its buffers: the weight it was given
    assert view.kq.name == w.kq.name and view.source == w.source and view.nbytes == w.nbytes
    return layer


def model_of(layer: LUTLinear) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(layer, nn.ReLU(), nn.Linear(M, 8)).eval()


def ops_in(gm: torch.fx.GraphModule) -> list:
    return [n.target for n in gm.graph.nodes if n.op == "call_function"]


KQ_NAMES = [*KQUANTS, "Q5_0", "Q5_1"]  # every scale format: u8, nib, i8, one (with and without mins)


@pytest.mark.parametrize("name", KQ_NAMES)
def test_export_sees_the_operator_and_matches_eager(name):
    model = model_of(kq_layer(name))
    x = torch.from_numpy(RNG.standard_normal((3, K)).astype(np.float32))
    with torch.no_grad():
        want = model(x)
        ep = torch.export.export(model, (x,))
        assert OP in ops_in(ep.graph_module)
        torch.testing.assert_close(ep.module()(x), want, rtol=0, atol=0)


@pytest.mark.parametrize("backend_name", ["eager", "aot_eager"])
@pytest.mark.parametrize("name", ["Q2_K", "Q4_K", "Q6_K", "Q5_1"])
def test_compile_matches_eager(backend_name, name):
    model = model_of(kq_layer(name))
    torch._dynamo.reset()
    seen = []

    def spy(gm, example_inputs):  # records the graph dynamo hands the backend, then runs it that backend's way
        seen.extend(ops_in(gm))
        return torch._dynamo.lookup_backend(backend_name)(gm, example_inputs)

    compiled = torch.compile(model, backend=spy, fullgraph=True)
    with torch.no_grad():
        for rows in ((3, K), (1, K), (2, 5, K)):  # batched, one token (eager's lean path), 3-d
            x = torch.from_numpy(RNG.standard_normal(rows).astype(np.float32))
            torch.testing.assert_close(compiled(x), model(x), rtol=0, atol=0)
    assert torch.ops.frugalnn.lut_matmul_kq in seen or OP in seen, seen


def test_fx_traces_and_fake_tensors_see_the_operator():
    layer = kq_layer("Q4_K")
    x = torch.from_numpy(RNG.standard_normal((2, K)).astype(np.float32))
    gm = torch.fx.experimental.proxy_tensor.make_fx(layer)(torch.zeros(2, K))
    assert OP in ops_in(gm)
    torch.testing.assert_close(gm(x), layer(x), rtol=0, atol=0)
    one_level = LUTLinear.from_linear(nn.Linear(K, M), 4, 128, threads=1)
    for lay, op in ((layer, torch.ops.frugalnn.lut_matmul_kq), (one_level, torch.ops.frugalnn.lut_matmul)):
        st = torch.fx.symbolic_trace(lay)  # Proxy inputs: the operator, and the dtype rule as a call
        assert op in ops_in(st) or op.default in ops_in(st), ops_in(st)
        torch.testing.assert_close(st(x), lay(x), rtol=0, atol=0)
        assert st(x.to(torch.bfloat16)).dtype == torch.bfloat16
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode() as mode:
        fake = mode.from_tensor(torch.zeros(4, 7, K))
        out = torch.ops.frugalnn.lut_matmul_kq(fake, *(torch.zeros(1, dtype=torch.uint8),) * 5, M, K, 4, 256,
                                               "u8", 32, 0, None)
    assert tuple(out.shape) == (4, 7, M) and out.dtype == torch.float32


def test_flops_are_counted():
    layer = kq_layer("Q3_K", bias=False)
    with FlopCounterMode(display=False) as fc:
        layer(torch.zeros(5, K))
    assert fc.get_total_flops() == 2 * 5 * M * K


def test_wrong_width_is_named_in_eager_export_and_compile():
    layer = kq_layer("Q2_K")
    bad = torch.zeros(3, K + 4)
    msg = rf"x: expected shape \[\.\.\., {K}\], got \(3, {K + 4}\)"
    with pytest.raises(ValueError, match=msg):
        layer(bad)
    with pytest.raises(ValueError, match=msg):  # the operator itself (what a trace records)
        torch.ops.frugalnn.lut_matmul_kq(bad, layer.packed, layer.kq_sc, layer.kq_mn, layer.kq_d, layer.kq_dmin,
                                         M, K, layer.bits, layer.group_size, *layer.kq_meta[:3], 1)
    with pytest.raises(Exception, match=msg):  # torch.export wraps it, the message stays
        torch.export.export(layer, (bad,))
    torch._dynamo.reset()
    with pytest.raises(Exception, match=msg):
        torch.compile(layer, backend="eager", fullgraph=True)(bad)


def test_bad_scale_format_is_named():
    layer = kq_layer("Q4_K")
    with pytest.raises(ValueError, match="fmt"):
        torch.ops.frugalnn.lut_matmul_kq(torch.zeros(1, K), layer.packed, layer.kq_sc, layer.kq_mn, layer.kq_d,
                                         layer.kq_dmin, M, K, layer.bits, layer.group_size, "q4k", 32, 0, 1)


def test_wrong_sizes_and_dtypes_are_named_before_any_allocation():
    layer = kq_layer("Q4_K")
    args = [layer.packed, layer.kq_sc, layer.kq_mn, layer.kq_d, layer.kq_dmin]
    meta = (layer.bits, layer.group_size, *layer.kq_meta[:3], 1)
    with pytest.raises(ValueError, match="packed: expected"):  # M = 2^40 would be a 4 TiB output otherwise
        torch.ops.frugalnn.lut_matmul_kq(torch.zeros(1, K), *args, 2**40, K, *meta)
    with pytest.raises(TypeError, match="d: expected fp16 bit patterns"):
        torch.ops.frugalnn.lut_matmul_kq(torch.zeros(1, K), *args[:3], layer.kq_d.to(torch.int32), args[4], M, K,
                                         *meta)
