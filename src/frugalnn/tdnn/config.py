"""Configs: the supernet's shape and search space, and one subnet's `(depth, [widths], [kernels], cat)`.

A subnet of depth d has d + 1 widths and d + 1 kernels: index 0 is the first layer (its output width is
also the residual width every block reads and writes), index i >= 1 is block i's Res2Net middle width and
kernel. `cat` is the output width of the multi-layer aggregation 1x1 conv, which pooling and the embedding
layer read. The paper's three subnets (Wang et al., TASLP'22, table of found models) are BASE, MOBILE, SMALL.
"""
from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field

SCALE = 8  # Res2Net splits; every width is a multiple of it (and of 4, the SE reduction)


def _make_divisible(v: float, divisor: int = SCALE) -> int:
    """Round to a multiple of `divisor`, never more than 10% down (MobileNet's rule, which the authors use)."""
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


def _int(name: str, v) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"{name}: expected an int, got {v!r}")
    return v


@dataclass(frozen=True)
class SubnetConfig:
    depth: int
    widths: tuple[int, ...]
    kernels: tuple[int, ...]
    cat: int

    def __post_init__(self):
        _int("depth", self.depth)
        if self.depth < 1:
            raise ValueError(f"depth: expected >= 1 block, got {self.depth}")
        for name in ("widths", "kernels"):
            v = getattr(self, name)
            if not isinstance(v, (list, tuple)):
                raise TypeError(f"{name}: expected a list of {self.depth + 1} ints, got {v!r}")
            object.__setattr__(self, name, tuple(v))
            if len(v) != self.depth + 1:
                raise ValueError(f"{name}: depth {self.depth} needs {self.depth + 1} entries (first layer + "
                                 f"{self.depth} blocks), got {len(v)}: {list(v)}")
        for i, w in enumerate(self.widths):
            _int(f"widths[{i}]", w)
            if w <= 0 or w % SCALE:
                raise ValueError(f"widths[{i}]: expected a positive multiple of {SCALE}, got {w}")
        for i, k in enumerate(self.kernels):
            _int(f"kernels[{i}]", k)
            if k <= 0 or k % 2 == 0:
                raise ValueError(f"kernels[{i}]: expected a positive odd kernel size, got {k}")
        _int("cat", self.cat)
        if self.cat <= 0 or self.cat % SCALE:
            raise ValueError(f"cat: expected a positive multiple of {SCALE}, got {self.cat}")

    @classmethod
    def of(cls, cfg) -> "SubnetConfig":
        """From a SubnetConfig, a (depth, widths, kernels, cat) tuple, or a dict."""
        if isinstance(cfg, SubnetConfig):
            return cfg
        if isinstance(cfg, dict):
            return cls(**cfg)
        if isinstance(cfg, (tuple, list)) and len(cfg) == 4:
            return cls(*cfg)
        raise TypeError(f"cfg: expected a SubnetConfig or (depth, [widths], [kernels], cat), got {cfg!r}")

    def to_tuple(self) -> tuple:
        return (self.depth, list(self.widths), list(self.kernels), self.cat)

    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict) -> "SubnetConfig":
        return cls(**d)

    def scaled(self, ratio: float) -> "SubnetConfig":
        """The same shape with every width times `ratio` (multiples of 8): the quick mode's width-scaled nets."""
        return SubnetConfig(self.depth, tuple(_make_divisible(w * ratio) for w in self.widths), self.kernels,
                            _make_divisible(self.cat * ratio))

    def __str__(self) -> str:
        return f"({self.depth}, {list(self.widths)}, {list(self.kernels)}, {self.cat})"


# The paper's found subnets (PAPERS.md section 7; the authors' sugar repo writes them the same way).
BASE = SubnetConfig(3, (512, 512, 512, 512), (5, 3, 3, 3), 1536)
MOBILE = SubnetConfig(3, (384, 256, 256, 256), (5, 3, 3, 3), 768)
SMALL = SubnetConfig(2, (256, 256, 256), (3, 3, 3), 400)
PAPER = {"Base": BASE, "Mobile": MOBILE, "Small": SMALL}
PAPER_MACS = {"Base": 1.45e9, "Mobile": 571e6, "Small": 204e6}     # at 3 s input (301 frames)
PAPER_EER = {"Base": 0.94, "Mobile": 1.41, "Small": 2.20}          # VoxCeleb1-O, %, Small with score norm
WIDTH_RATIOS = (0.25, 0.35, 0.5, 0.75, 1.0)                        # the authors' coarse width choices


@dataclass(frozen=True)
class SupernetConfig:
    """The largest network and its elastic space. Defaults: the paper's supernet (4 blocks, 512 channels,
    kernel 5 everywhere, cat 1536). `channels=128, cat=384` is the quick mode's width-scaled supernet."""
    in_feats: int = 80
    channels: int = 512
    blocks: int = 4
    kernel: int = 5
    cat: int = 1536
    embed: int = 192
    attention: int = 128
    depths: tuple[int, ...] = (2, 3, 4)
    kernels: tuple[int, ...] = (1, 3, 5)
    width_ratios: tuple[float, ...] = field(default=WIDTH_RATIOS)

    def __post_init__(self):
        for name in ("in_feats", "channels", "blocks", "kernel", "cat", "embed", "attention"):
            if _int(name, getattr(self, name)) <= 0:
                raise ValueError(f"{name}: expected a positive int, got {getattr(self, name)}")
        for name in ("channels", "cat"):
            if getattr(self, name) % SCALE:
                raise ValueError(f"{name}: expected a multiple of {SCALE}, got {getattr(self, name)}")
        if self.kernel % 2 == 0:
            raise ValueError(f"kernel: expected an odd size, got {self.kernel}")
        object.__setattr__(self, "depths", tuple(self.depths))
        object.__setattr__(self, "kernels", tuple(self.kernels))
        object.__setattr__(self, "width_ratios", tuple(self.width_ratios))
        if not self.depths or any(not 1 <= d <= self.blocks for d in self.depths):
            raise ValueError(f"depths: expected values in 1..{self.blocks}, got {self.depths}")
        if not self.kernels or any(k % 2 == 0 or not 1 <= k <= self.kernel for k in self.kernels):
            raise ValueError(f"kernels: expected odd values in 1..{self.kernel}, got {self.kernels}")
        if not self.width_ratios or any(not 0 < r <= 1 for r in self.width_ratios):
            raise ValueError(f"width_ratios: expected values in (0, 1], got {self.width_ratios}")

    @property
    def width_choices(self) -> tuple[int, ...]:
        return tuple(sorted({min(_make_divisible(r * self.channels), self.channels) for r in self.width_ratios}))

    @property
    def cat_choices(self) -> tuple[int, ...]:
        return tuple(sorted({min(_make_divisible(r * self.cat), self.cat) for r in self.width_ratios}))

    @property
    def min_width(self) -> int:
        return min(self.width_choices)

    @property
    def min_cat(self) -> int:
        return min(self.cat_choices)

    def largest(self) -> SubnetConfig:
        return SubnetConfig(self.blocks, (self.channels,) * (self.blocks + 1), (self.kernel,) * (self.blocks + 1),
                            self.cat)

    def check(self, cfg) -> SubnetConfig:
        """`cfg` as a SubnetConfig, or a ValueError naming the field that this supernet cannot hold.

        Any multiple of 8 between the smallest width choice and the full width is accepted (the paper's
        Small has cat 400, off the coarse ratio grid: the authors' fine space steps by 8)."""
        cfg = SubnetConfig.of(cfg)
        if cfg.depth not in self.depths:
            raise ValueError(f"depth: {cfg.depth} is not one of this supernet's depths {list(self.depths)}")
        for i, w in enumerate(cfg.widths):
            if not self.min_width <= w <= self.channels:
                raise ValueError(f"widths[{i}]: {w} is outside this supernet's range "
                                 f"[{self.min_width}, {self.channels}] (multiples of {SCALE})")
        for i, k in enumerate(cfg.kernels):
            if k not in self.kernels:
                raise ValueError(f"kernels[{i}]: {k} is not one of this supernet's kernels {list(self.kernels)}")
        if not self.min_cat <= cfg.cat <= self.cat:
            raise ValueError(f"cat: {cfg.cat} is outside this supernet's range [{self.min_cat}, {self.cat}] "
                             f"(multiples of {SCALE})")
        return cfg

    def sample(self, rng: random.Random, *, depths=None, kernels=None, width_ratios=None) -> SubnetConfig:
        """A random subnet; the optional arguments narrow the space (progressive shrinking's stages)."""
        depths = tuple(depths or self.depths)
        kernels = tuple(kernels or self.kernels)
        widths = self.width_choices if width_ratios is None else tuple(
            sorted({min(_make_divisible(r * self.channels), self.channels) for r in width_ratios}))
        cats = self.cat_choices if width_ratios is None else tuple(
            sorted({min(_make_divisible(r * self.cat), self.cat) for r in width_ratios}))
        d = rng.choice(depths)
        return SubnetConfig(d, tuple(rng.choice(widths) for _ in range(d + 1)),
                            tuple(rng.choice(kernels) for _ in range(d + 1)), rng.choice(cats))

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "SupernetConfig":
        return cls(**d)
