import pytest
import torch
import torch.nn.functional as F

from frugalnn.routing import SDPA, RoutedModule, route_


class SelfAttention(torch.nn.Module):
    def __init__(self, d=8):
        super().__init__()
        self.qkv = torch.nn.Linear(d, 3 * d)

    def forward(self, x):
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        return F.scaled_dot_product_attention(q, k, v, is_causal=True) + torch.matmul(q, k.transpose(-1, -2)).sum()


def test_routes_sdpa_and_matmul_inside_selected_modules_only():
    calls = []

    def my_sdpa(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
        calls.append(("sdpa", is_causal))
        return SDPA(q, k, v, attn_mask=attn_mask, is_causal=is_causal, scale=scale)

    def my_matmul(a, b):
        calls.append(("matmul",))
        return a @ b

    model = torch.nn.Sequential(SelfAttention(), torch.nn.Linear(8, 8))
    x = torch.randn(2, 5, 8)
    ref = model(x)
    assert route_(model, {SDPA: my_sdpa, torch.matmul: my_matmul}, "test") == 1
    assert isinstance(model[0], RoutedModule) and "routes scaled_dot_product_attention" in repr(model)
    torch.testing.assert_close(model(x), ref)
    assert calls == [("sdpa", True), ("matmul",)]
    calls.clear()
    F.scaled_dot_product_attention(x, x, x)  # outside the routed module: untouched
    assert calls == []


def test_nothing_selected_is_an_error():
    with pytest.raises(ValueError, match="no module selected for test"):
        route_(torch.nn.Sequential(torch.nn.Linear(2, 2)), {SDPA: SDPA}, "test")


def test_converting_twice_does_not_double_wrap():
    model = torch.nn.Sequential(SelfAttention())
    route_(model, {SDPA: SDPA}, "a")
    with pytest.raises(ValueError, match="already routed to a"):
        route_(model, {SDPA: SDPA}, "b")
