"""Fast and Accurate Model Scaling (Dollar, Singh, Girshick, CVPR'21): scaling strategies over
depth, width and resolution, checked against the paper with `frugalnn.cost.profile`.

    from frugalnn.scaling import scale, achieved
    from frugalnn import models
    bigger = scale(models.config("regnety-400mf"), 4, "dWr")   # fast compound scaling, alpha=0.8
    achieved(models.config("regnety-400mf"), bigger)           # flops/params/acts growth after rounding
"""
from frugalnn.scaling.strategies import STRATEGIES, ScaleFactors, achieved, register_scaler, scale, scale_factors, \
    theory_exponents

__all__ = ["STRATEGIES", "ScaleFactors", "achieved", "register_scaler", "scale", "scale_factors", "theory_exponents"]
