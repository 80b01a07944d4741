"""How each built-in model family applies scale factors (pycls's rules); `strategies.scale` imports this
module, so the models themselves know nothing of scaling."""
from __future__ import annotations

from dataclasses import replace

from frugalnn.models.effnet import EffNetConfig
from frugalnn.models.regnet import RegNetConfig
from frugalnn.models.rounding import fit_group_widths, round_depth, round_group_width, round_resolution, round_width
from frugalnn.scaling.strategies import ScaleFactors, register_scaler


@register_scaler(EffNetConfig)
def _scale_effnet(config: EffNetConfig, f: ScaleFactors) -> EffNetConfig:
    """pycls's EfficientNet scaling: depths, widths, stem and head widths (multiples of 8), resolution."""
    return replace(config, depths=tuple(round_depth(d, f.depth) for d in config.depths),
                   widths=tuple(round_width(w, f.width) for w in config.widths),
                   stem_width=round_width(config.stem_width, f.width),
                   head_width=round_width(config.head_width, f.width),
                   resolution=round_resolution(config.resolution, f.resolution))


@register_scaler(RegNetConfig)
def _scale_regnet(config: RegNetConfig, f: ScaleFactors) -> RegNetConfig:
    """pycls's AnyNet scaling: depths, widths (multiples of 8), group widths, resolution; stem kept."""
    widths = [round_width(w, f.width) for w in config.widths]
    groups = [round_group_width(g, f.group_width) for g in config.group_widths]
    widths = fit_group_widths(widths, list(config.bottleneck_ratios), groups)
    return replace(config, depths=tuple(round_depth(d, f.depth) for d in config.depths), widths=tuple(widths),
                   group_widths=tuple(groups), resolution=round_resolution(config.resolution, f.resolution))
