"""Custom ops: a formula registered with torch's register_flop_formula is honoured; none -> unsupported."""
import torch
from torch import nn
from torch.utils.flop_counter import register_flop_formula

from frugalnn.cost import profile


@torch.library.custom_op("frugalnn_cost_test::lut_linear", mutates_args=())
def lut_linear(x: torch.Tensor, codes: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Stand-in for a table-lookup GEMM: weights are table[codes] (out x in)."""
    return x @ table[codes.long()].t()


@lut_linear.register_fake
def _(x, codes, table):
    return x.new_empty(*x.shape[:-1], codes.shape[0])


@register_flop_formula(torch.ops.frugalnn_cost_test.lut_linear)
def _lut_linear_flops(x_shape, codes_shape, table_shape, *args, out_shape=None, **kwargs) -> int:
    rows = 1
    for n in x_shape[:-1]:
        rows *= n
    return 2 * rows * x_shape[-1] * codes_shape[0]  # torch's unit: 2 FLOPs per multiply-accumulate


@torch.library.custom_op("frugalnn_cost_test::mystery", mutates_args=())
def mystery(x: torch.Tensor) -> torch.Tensor:
    return x * 2


@mystery.register_fake
def _(x):
    return torch.empty_like(x)


class LUTLayer(nn.Module):
    def __init__(self, n_in, n_out):
        super().__init__()
        self.register_buffer("codes", torch.randint(0, 16, (n_out, n_in), dtype=torch.uint8))
        self.table = nn.Parameter(torch.randn(16))

    def forward(self, x):
        return lut_linear(x, self.codes, self.table)


def test_registered_formula_is_counted_and_attributed():
    net = nn.Sequential(nn.Linear(6, 8), LUTLayer(8, 5))
    prof = profile(net, torch.randn(3, 4, 6))
    lut = 3 * 4 * 8 * 5
    assert prof.by_operator()["frugalnn_cost_test::lut_linear"] == lut
    assert prof.by_module()["1"].macs == lut
    assert prof.macs == 3 * 4 * 6 * 8 + lut
    assert prof.acts == 3 * 4 * 8 + 3 * 4 * 5  # the custom op's output is a layer output too
    assert prof.unsupported() == {}


def test_op_without_formula_is_reported_unsupported():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 3)

        def forward(self, x):
            return mystery(mystery(self.lin(x)))

    prof = profile(Net(), torch.randn(2, 3))
    assert prof.unsupported() == {"frugalnn_cost_test::mystery": 2}
    assert prof.macs == 18
    assert "frugalnn_cost_test::mystery x2" in prof.table()
