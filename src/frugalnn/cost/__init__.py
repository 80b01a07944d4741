"""Cost accounting: count MACs/params/activations of any torch model.

    from frugalnn.cost import profile
    p = profile(model, x)              # p.macs, p.flops, p.params, p.acts, p.by_module(), p.table()

Scaling model configs by these counts is the `frugalnn.scaling` technique.
"""
from frugalnn.cost.analytic import Complexity
from frugalnn.cost.profile import CONVENTIONS, ModuleCost, Profile, Profiler, profile

__all__ = ["CONVENTIONS", "Complexity", "ModuleCost", "Profile", "Profiler", "profile"]
