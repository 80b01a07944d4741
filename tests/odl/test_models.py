"""ResNet8 / DS-CNN (frugalnn.models.tiny): the paper's weight and MAC counts, exactly, from cost.profile."""
import pytest
import torch

from frugalnn.cost import profile
from frugalnn.models import tiny

CASES = [(tiny.resnet8, tiny.RESNET8_WEIGHTS, 12.50e6, tiny.RESNET8_MACS, 37.06e6, tiny.RESNET8_STEP_MACS),
         (tiny.dscnn, tiny.DSCNN_WEIGHTS, 2.66e6, tiny.DSCNN_MACS, 7.65e6, tiny.DSCNN_STEP_MACS)]


@pytest.mark.parametrize("ctor, weights, paper_fwd, fwd, paper_step, step", CASES)
def test_counts_match_the_paper(ctor, weights, paper_fwd, fwd, paper_step, step):
    model = ctor().eval()
    x = tiny.example_input(model)
    p = profile(model, x)
    assert tiny.weight_count(model) == weights
    assert p.macs == fwd and round(fwd / 1e4) * 1e4 == paper_fwd
    assert tiny.step_macs(model, x) == step and round(step / 1e4) * 1e4 == paper_step


def test_step_count_formula():
    """step = forward + weight grad (= forward) + input grad of every layer but the first."""
    model = tiny.dscnn().eval()
    first = 25 * 5 * 64 * 10 * 4  # the 10x4 stride-2 conv over 1x49x10 -> 64x25x5
    assert tiny.step_macs(model) == 3 * tiny.DSCNN_MACS - first


@pytest.mark.parametrize("size, k, stride, want", [(32, 3, 2, (0, 1)), (32, 3, 1, (1, 1)), (49, 10, 2, (4, 5)),
                                                   (10, 4, 2, (1, 1)), (32, 1, 2, (0, 0)), (7, 3, 2, (1, 1))])
def test_tf_same_padding(size, k, stride, want):
    assert tiny.same_padding(size, k, stride) == want


def test_shapes():
    r, d = tiny.resnet8().eval(), tiny.dscnn().eval()
    assert r(torch.randn(1, 3, 32, 32)).shape == (1, 10)
    assert d(torch.randn(1, 1, 49, 10)).shape == (1, 12)
    # stride-2 stacks halve the map: 32 -> 16 -> 8 (asymmetric same padding keeps it exact)
    assert r.stack2.conv1(torch.randn(1, 16, 32, 32)).shape == (1, 32, 16, 16)
