"""Cost accounting: count MACs/params/activations of any torch model, and scale model configs.

    from frugalnn.cost import profile, scale
    p = profile(model, x)              # p.macs, p.flops, p.params, p.acts, p.by_module(), p.table()
    bigger = scale(config, 4, "dWr")   # fast compound scaling (Dollar et al. 2021), alpha=0.8
"""
from frugalnn.cost.analytic import Complexity
from frugalnn.cost.profile import CONVENTIONS, ModuleCost, Profile, Profiler, profile
from frugalnn.cost.strategies import STRATEGIES, achieved, register_scaler, scale, theory_exponents

__all__ = ["CONVENTIONS", "STRATEGIES", "Complexity", "ModuleCost", "Profile", "Profiler", "achieved", "profile",
           "register_scaler", "scale", "theory_exponents"]
