"""DFP16 layers: the quantizer against formats.DFP, gradients against fp32 autograd within the DFP error
bound, the non-finite error, convert_ and print(model), torch.compile and opcheck of the custom ops."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import frugalnn
from frugalnn.dfp import DFPConfig, DFPConv1d, DFPConv2d, DFPLinear, DFPNonFiniteError, capture_operands
from frugalnn.dfp.nn import dfp_conv2d_op, dfp_linear_op
from frugalnn.dfp.quantize import dequantize, exponent_for, quantize
from frugalnn.formats.dfp import DFP
from frugalnn.train import fit

U32 = 2.0 ** -24  # float32 unit roundoff


@pytest.mark.parametrize("make", [
    lambda g: torch.randn(1000, generator=g),
    lambda g: torch.randn(64, 33, generator=g) * torch.exp(3 * torch.randn(64, 33, generator=g)),
    lambda g: torch.relu(torch.randn(4, 3, 5, 5, generator=g)) * 1e-30,
    lambda g: torch.randn(300, generator=g) * 1e37,
    lambda g: torch.tensor([1e-40, -3e-42, 0.0]),                   # subnormal max: the float64 path
    lambda g: torch.tensor([8191.5, 8190.5, -0.5, 1.5, 2.5]),        # ties: half to even
    lambda g: torch.zeros(7),
    lambda g: torch.tensor([1 - 2.0 ** -20, 0.25]),                  # rounds up to exactly 2^13
])
def test_quantize_equals_formats_dfp(make):
    x = make(torch.Generator().manual_seed(0)).float()
    m, e = quantize(x)
    ref = DFP.from_float(x.numpy(), bits=16, headroom=2)
    assert np.array_equal(m.numpy(), ref.mantissa) and e == int(ref.exponent[0])
    assert np.array_equal(dequantize(m, e).numpy(), ref.dequantize())
    m0, e0 = quantize(x, headroom=0)
    ref0 = DFP.from_float(x.numpy(), bits=16, headroom=0)
    assert np.array_equal(m0.numpy(), ref0.mantissa) and e0 == int(ref0.exponent[0])
    m8, e8 = quantize(x, bits=8, headroom=1)
    ref8 = DFP.from_float(x.numpy(), bits=8, headroom=1)
    assert np.array_equal(m8.numpy(), ref8.mantissa.astype(np.int16)) and e8 == int(ref8.exponent[0])


def test_stochastic_rounding_is_unbiased_and_within_one_step():
    x = torch.full((200_000,), 0.3)
    x[-1] = 8000.0  # sets the exponent to 0: one mantissa step is 1.0
    m, e = quantize(x, stochastic=True)
    assert e == 0 and m[-1] == 8000
    assert set(m[:-1].tolist()) == {0, 1}
    assert abs(float(m[:-1].float().mean()) - 0.3) < 0.005  # P(up) = the fraction: unbiased
    torch.manual_seed(3)
    a = quantize(x, stochastic=True)[0]
    torch.manual_seed(3)
    assert torch.equal(a, quantize(x, stochastic=True)[0])  # the torch RNG drives it (checkpointed by fit)


def _bound(a, b, ha, hb, k):
    """|Q(a) @ Q(b) - a @ b| elementwise bound, a [M, K], b [K, N] (float64), plus float32 rounding of both sides."""
    a, b = a.double().abs(), b.double().abs()
    quant = hb * a.sum(1, keepdim=True) + ha * b.sum(0, keepdim=True) + k * ha * hb
    return quant + (2 * k + 4) * U32 * (a + ha) @ (b + hb)


def _h(t):
    return 2.0 ** (exponent_for(float(t.abs().max()), 16, 2) - 1)  # half a mantissa step


def test_linear_gradients_within_the_dfp_bound():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(37, 50, generator=g) * torch.exp(torch.randn(37, 50, generator=g))
    lin = nn.Linear(50, 23)
    dfp = DFPLinear.convert(nn.Linear(50, 23), DFPConfig(), "lin")
    dfp.load_state_dict(lin.state_dict())
    dy = torch.randn(37, 23, generator=g)
    xr, xd = x.clone().requires_grad_(), x.clone().requires_grad_()
    yr, yd = lin(xr), dfp(xd)
    yr.backward(dy)
    yd.backward(dy)
    w = lin.weight.detach()
    checks = [(yd, yr, _bound(x, w.t(), _h(x), _h(w), 50)),
              (xd.grad, xr.grad, _bound(dy, w, _h(dy), _h(w), 23)),
              (dfp.weight.grad, lin.weight.grad, _bound(dy.t(), x, _h(dy), _h(x), 37))]
    for got, ref, bound in checks:
        err = (got - ref).detach().abs().double()
        assert (err <= bound).all(), float((err / bound).max())
        assert float(err.max()) > 0  # the GEMMs really ran in DFP
    assert torch.allclose(dfp.bias.grad, lin.bias.grad)  # the bias stays fp32


@pytest.mark.parametrize("kw", [dict(stride=1, padding=1), dict(stride=2, padding=0, bias=True),
                                dict(padding="same", dilation=2)])
def test_conv2d_gradients_within_the_dfp_bound(kw):
    g = torch.Generator().manual_seed(2)
    conv = nn.Conv2d(5, 7, 3, **{"bias": False, **kw})
    dfp = DFPConv2d.convert(nn.Conv2d(5, 7, 3, **{"bias": False, **kw}), DFPConfig(), "conv")
    dfp.load_state_dict(conv.state_dict())
    x = torch.relu(torch.randn(3, 5, 11, 9, generator=g))
    xr, xd = x.clone().requires_grad_(), x.clone().requires_grad_()
    yr, yd = conv(xr), dfp(xd)
    assert yd.shape == yr.shape
    dy = torch.randn(yr.shape, generator=g)
    yr.backward(dy)
    yd.backward(dy)
    dil, pad = conv.dilation, conv.padding
    if isinstance(pad, str):
        xp = F.pad(x, (2, 2, 2, 2))
        pad = (0, 0)
    else:
        xp = x
    cols = F.unfold(xp, 3, dilation=dil, padding=pad, stride=conv.stride).transpose(1, 2).reshape(-1, 45)
    w = conv.weight.detach().reshape(7, 45)
    dy2 = dy.permute(0, 2, 3, 1).reshape(-1, 7)
    fwd = _bound(cols, w.t(), _h(cols), _h(w), 45)
    err = (yd - yr).detach().abs().double().permute(0, 2, 3, 1).reshape(-1, 7)
    assert (err <= fwd).all() and float(err.max()) > 0
    dcol_bound = _bound(dy2, w, _h(dy2), _h(w), 7)  # [B*L, 45], then summed by col2im like dx itself
    dx_bound = F.fold(dcol_bound.reshape(3, -1, 45).transpose(1, 2), xp.shape[2:], 3, dilation=dil, padding=pad,
                      stride=conv.stride)
    if isinstance(conv.padding, str):
        dx_bound = dx_bound[:, :, 2:-2, 2:-2]
    assert ((xd.grad - xr.grad).abs().double() <= dx_bound * (1 + 1e-6)).all()
    dw_bound = _bound(dy2.t(), cols, _h(dy2), _h(cols), cols.shape[0]).reshape(conv.weight.shape)
    assert ((dfp.weight.grad - conv.weight.grad).abs().double() <= dw_bound).all()


def test_conv1d_matches_conv1d():
    conv = nn.Conv1d(4, 6, 5, stride=2, padding=2)
    dfp = DFPConv1d.convert(nn.Conv1d(4, 6, 5, stride=2, padding=2), DFPConfig(), "c1")
    dfp.load_state_dict(conv.state_dict())
    x = torch.randn(2, 4, 40)
    y, ref = dfp(x), conv(x)
    assert y.shape == ref.shape
    assert torch.allclose(y, ref, rtol=0, atol=2e-3 * float(ref.detach().abs().max()))


def test_nonfinite_values_name_the_layer_the_tensor_and_the_step():
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    frugalnn.convert_(net, DFPConfig(keep_fp32=()))
    x = torch.randn(5, 4)
    x[2, 1] = float("nan")
    with pytest.raises(DFPNonFiniteError, match=r"DFP layer '0': non-finite activation .*outside "
                                                r"frugalnn.train.fit.*first: nan at index \(2, 1\)"):
        net(x)
    with torch.no_grad():
        net[2].weight[1, 1] = float("inf")
    with pytest.raises(DFPNonFiniteError, match=r"DFP layer '2': non-finite weight .*1 of 24 values"):
        net(torch.randn(5, 4))
    with torch.no_grad():
        net[2].weight[1, 1] = 0.0
    y = net(torch.randn(5, 4))
    with pytest.raises(DFPNonFiniteError, match=r"DFP layer '2': non-finite gradient"):
        y.backward(torch.full_like(y, float("inf")))

    def poison(info):
        if info["step"] == 2:
            with torch.no_grad():
                net[0].weight[0, 0] = float("nan")

    data = (torch.randn(32, 4), torch.randint(0, 3, (32,)))
    with pytest.raises(DFPNonFiniteError, match=r"DFP layer '0': non-finite weight .* at training step 2:"):
        fit(net, torch.optim.SGD(net.parameters(), lr=0.01), data, F.cross_entropy, batch_size=8, steps=4,
            progress=False, callback=poison)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.body = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, groups=2, padding=1))
        self.seq = nn.Conv1d(4, 4, 3, padding=1)
        self.head = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))

    def forward(self, x):
        x = self.body(self.stem(x)).mean(3)
        return self.head(self.seq(x).mean(2))


def test_convert_keeps_first_conv_and_last_linear_and_prints():
    net = Net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    params = list(net.parameters())
    frugalnn.convert_(net, DFPConfig())
    assert type(net.stem) is nn.Conv2d and type(net.head[2]) is nn.Linear  # the paper's fp32 layers
    assert type(net.body[0]) is DFPConv2d and type(net.seq) is DFPConv1d and type(net.head[0]) is DFPLinear
    assert type(net.body[2]) is nn.Conv2d  # grouped: left in fp32
    assert list(net.parameters()) == params and all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    text = str(net)
    assert "DFPConv2d(4, 4, kernel_size=(3, 3)" in text and "dfp=int16, headroom=2, chunk=31, rounding=nearest" in text
    assert net(torch.randn(2, 1, 6, 6)).shape == (2, 2)

    everything = frugalnn.convert_(Net(), DFPConfig(keep_fp32=(), rounding="stochastic"))
    assert type(everything.stem) is DFPConv2d and type(everything.head[2]) is DFPLinear
    named = frugalnn.convert_(Net(), DFPConfig(keep_fp32=("head.0",)), filter_fn=lambda m, fqn: fqn != "seq")
    assert type(named.head[0]) is nn.Linear and type(named.seq) is nn.Conv1d and type(named.stem) is DFPConv2d
    with pytest.raises(ValueError, match="'nope' is neither"):
        frugalnn.convert_(Net(), DFPConfig(keep_fp32=("nope",)))


def test_config_validation_and_round_trip():
    c = DFPConfig(chunk=16, rounding="stochastic", keep_fp32=["first_conv"])
    assert c.keep_fp32 == ("first_conv",) and DFPConfig.from_dict(c.to_dict()) == c
    assert DFPConfig().effective_chunk == 31 and DFPConfig(bits=8).effective_chunk > 10**6
    for bad, err in [(dict(bits=12), ValueError), (dict(bits=16.0), TypeError), (dict(headroom=15), ValueError),
                     (dict(rounding="up"), ValueError), (dict(chunk=0), ValueError), (dict(chunk=32), ValueError),
                     (dict(keep_fp32="first_conv"), TypeError), (dict(keep_fp32=("",)), ValueError)]:
        with pytest.raises(err):
            DFPConfig(**bad)
    with pytest.raises(ValueError, match="unknown keys"):
        DFPConfig.from_dict({"bits": 16, "block": 4})


def test_compile_and_opcheck():
    torch.manual_seed(0)
    net = frugalnn.convert_(nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 16, 3)),
                            DFPConfig(keep_fp32=()))
    x = torch.randn(3, 2, 6, 6)
    compiled = torch.compile(net, backend="aot_eager", fullgraph=True)
    y, yc = net(x), compiled(x)
    assert torch.equal(y, yc)
    yc.sum().backward()
    g = net[0].weight.grad.clone()
    net.zero_grad()
    y.sum().backward()
    assert torch.equal(g, net[0].weight.grad)
    args = (torch.randn(5, 6, requires_grad=True), torch.randn(4, 6, requires_grad=True), torch.randn(4),
            "op", 16, 2, 31, False)
    torch.library.opcheck(dfp_linear_op, args)
    conv_args = (torch.randn(2, 3, 7, 6, requires_grad=True), torch.randn(4, 3, 3, 3, requires_grad=True), None,
                 [2, 1], [1, 0], [1, 2], "conv", 16, 2, 31, False)
    torch.library.opcheck(dfp_conv2d_op, conv_args)


def test_capture_records_the_three_gemms_per_layer():
    net = frugalnn.convert_(nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 2)), DFPConfig(keep_fp32=()))
    x = torch.randn(4, 6)
    with capture_operands() as ops:
        net(x).sum().backward()
    shapes = [(tuple(o.a.shape), tuple(o.b.shape)) for o in ops]
    assert [(o.layer, o.gemm) for o in ops] == [("0", "forward"), ("2", "forward"), ("2", "input_gradient"),
                                                ("2", "weight_gradient"), ("0", "weight_gradient")]
    # forward of both layers, then backward: input and weight gradient of the last layer, weight gradient
    # of the first (its input needs no gradient)
    assert shapes == [((4, 6), (6, 5)), ((4, 5), (5, 2)), ((4, 2), (2, 5)), ((2, 4), (4, 5)), ((5, 4), (4, 6))]
    assert all(o.a.dtype == torch.int16 and o.b.dtype == torch.int16 for o in ops)
    _, _, a, b, ea, eb = ops[0]
    y = (a.double() @ b.double()) * 2.0 ** (ea + eb) + net[0].bias.double()
    assert torch.allclose(y.float(), net[0](x), rtol=0, atol=1e-6)
