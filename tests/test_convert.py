from dataclasses import dataclass

import pytest
import torch

from frugalnn import convert_
from frugalnn.convert import register_handler, swap_modules


@dataclass
class _DoubleConfig:
    factor: float = 2.0


class _Scaled(torch.nn.Module):
    def __init__(self, inner, factor):
        super().__init__()
        self.inner, self.factor = inner, factor

    def forward(self, x):
        return self.inner(x) * self.factor


@register_handler(_DoubleConfig)
def _convert_double(model, config, filter_fn):
    keep = filter_fn or (lambda m, fqn: True)
    swap_modules(model, lambda m, fqn: isinstance(m, torch.nn.Linear) and keep(m, fqn),
                 lambda m, fqn: _Scaled(m, config.factor))
    return model


def test_convert_swaps_in_place_with_filter():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Sequential(torch.nn.Linear(4, 2)))
    out = convert_(model, _DoubleConfig(), filter_fn=lambda m, fqn: fqn != "0")
    assert out is model
    assert isinstance(model[0], torch.nn.Linear) and isinstance(model[2][0], _Scaled)
    assert "_Scaled" in repr(model)


def test_convert_bad_input():
    with pytest.raises(TypeError, match="model: expected a torch.nn.Module"):
        convert_(object(), _DoubleConfig())
    with pytest.raises(TypeError, match="config: no converter for int"):
        convert_(torch.nn.Linear(2, 2), 3)
    with pytest.raises(TypeError, match="filter_fn: expected a callable"):
        convert_(torch.nn.Linear(2, 2), _DoubleConfig(), filter_fn=5)
