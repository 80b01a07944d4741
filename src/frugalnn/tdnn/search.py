"""Search: an MLP accuracy predictor on encoded subnets and an evolutionary search under MAC / params /
latency budgets, against random search with the same number of measured subnets.

    enc = Encoder(supernet_config)                    # config -> fixed-length vector
    pred = Predictor.fit(enc, configs, eers)          # small MLP, standardized targets
    found = evolve(space, pred.predict, cost, budget) # best predicted EER with cost(cfg) <= budget
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn as nn

from frugalnn.tdnn.config import SubnetConfig, SupernetConfig


class Encoder:
    """depth one-hot; per layer slot (first layer + every block): present flag, width / full width, kernel
    one-hot; cat / full cat. Absent blocks encode as zeros."""

    def __init__(self, config: SupernetConfig):
        self.config = config
        self.dim = len(config.depths) + (config.blocks + 1) * (2 + len(config.kernels)) + 1

    def __call__(self, cfg) -> np.ndarray:
        c = self.config
        cfg = SubnetConfig.of(cfg)
        v = np.zeros(self.dim, np.float32)
        v[c.depths.index(cfg.depth)] = 1
        o = len(c.depths)
        for i in range(c.blocks + 1):
            if i <= cfg.depth:
                v[o] = 1
                v[o + 1] = cfg.widths[i] / c.channels
                v[o + 2 + c.kernels.index(cfg.kernels[i])] = 1
            o += 2 + len(c.kernels)
        v[o] = cfg.cat / c.cat
        return v

    def many(self, cfgs) -> np.ndarray:
        return np.stack([self(c) for c in cfgs])


class Predictor(nn.Module):
    """MLP (in -> 64 -> 64 -> 1) predicting a subnet's EER from its encoding."""

    def __init__(self, encoder: Encoder, hidden: int = 64):
        super().__init__()
        self.encoder = encoder
        self.net = nn.Sequential(nn.Linear(encoder.dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, 1))
        self.register_buffer("y_mean", torch.zeros(()))
        self.register_buffer("y_std", torch.ones(()))

    @classmethod
    def fit(cls, encoder: Encoder, cfgs, eers, epochs: int = 400, lr: float = 3e-3, seed: int = 0) -> "Predictor":
        if len(cfgs) != len(eers) or len(cfgs) < 2:
            raise ValueError(f"cfgs/eers: expected two equal-length lists of >= 2, got {len(cfgs)} and {len(eers)}")
        torch.manual_seed(seed)
        p = cls(encoder)
        x = torch.from_numpy(encoder.many(cfgs))
        y = torch.tensor(np.asarray(eers, np.float32))
        p.y_mean.fill_(float(y.mean()))
        p.y_std.fill_(float(y.std()) or 1.0)
        opt = torch.optim.Adam(p.net.parameters(), lr=lr, weight_decay=1e-4)
        target = (y - p.y_mean) / p.y_std
        for _ in range(epochs):  # full batch: tens of samples
            opt.zero_grad()
            loss = torch.mean((p.net(x).squeeze(1) - target) ** 2)
            loss.backward()
            opt.step()
        return p.eval()

    @torch.no_grad()
    def predict(self, cfgs) -> np.ndarray:
        x = torch.from_numpy(self.encoder.many(cfgs))
        return (self.net(x).squeeze(1) * self.y_std + self.y_mean).numpy()


def kendall_tau(a, b) -> float:
    from scipy.stats import kendalltau

    return float(kendalltau(a, b).statistic)


def _mutate(space: SupernetConfig, cfg: SubnetConfig, rng: random.Random, p: float) -> SubnetConfig:
    widths, kernels = space.width_choices, space.kernels
    d = rng.choice(space.depths) if rng.random() < p else cfg.depth
    fresh = space.sample(rng)
    ws = [cfg.widths[i] if i < len(cfg.widths) and rng.random() >= p else rng.choice(widths) for i in range(d + 1)]
    ks = [cfg.kernels[i] if i < len(cfg.kernels) and rng.random() >= p else rng.choice(kernels) for i in range(d + 1)]
    cat = fresh.cat if rng.random() < p else cfg.cat
    return SubnetConfig(d, tuple(ws), tuple(ks), cat)


def _crossover(a: SubnetConfig, b: SubnetConfig, rng: random.Random) -> SubnetConfig:
    d = rng.choice((a.depth, b.depth))
    pick = lambda i, xa, xb: rng.choice([v for v in (xa[i] if i < len(xa) else None, xb[i] if i < len(xb) else None)
                                         if v is not None])
    return SubnetConfig(d, tuple(pick(i, a.widths, b.widths) for i in range(d + 1)),
                        tuple(pick(i, a.kernels, b.kernels) for i in range(d + 1)), rng.choice((a.cat, b.cat)))


def evolve(space: SupernetConfig, score: Callable, feasible: Callable, *, population: int = 64, generations: int = 30,
           parents: float = 0.25, mutate_p: float = 0.1, mutation_ratio: float = 0.5, seed: int = 0,
           max_tries: int = 10000) -> tuple[SubnetConfig, float]:
    """Once-for-All's evolution finder: keep the best `parents` share by `score` (lower is better), refill
    by mutation and crossover, only ever holding configs with feasible(cfg) True."""
    rng = random.Random(seed)

    def draw(make):
        for _ in range(max_tries):
            c = make()
            if feasible(c):
                return c
        raise ValueError("budget: no subnet in the space satisfies the constraints")

    pop = [draw(lambda: space.sample(rng)) for _ in range(population)]
    best, best_score = None, float("inf")
    n_par = max(2, int(parents * population))
    for _ in range(generations):
        s = score(pop)
        order = np.argsort(s)
        if s[order[0]] < best_score:
            best, best_score = pop[order[0]], float(s[order[0]])
        elite = [pop[i] for i in order[:n_par]]
        n_mut = int(mutation_ratio * (population - n_par))
        kids = [draw(lambda: _mutate(space, rng.choice(elite), rng, mutate_p)) for _ in range(n_mut)]
        kids += [draw(lambda: _crossover(rng.choice(elite), rng.choice(elite), rng))
                 for _ in range(population - n_par - n_mut)]
        pop = elite + kids
    return best, best_score


def pareto(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the non-dominated (cost, error) points, both minimized, by increasing cost."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], points[i][1]))
    out, best = [], float("inf")
    for i in order:
        if points[i][1] < best:
            out.append(i)
            best = points[i][1]
    return out


def best_under(points: list[tuple[float, float]], budget: float) -> float:
    """The lowest error among points costing at most `budget` (inf when none)."""
    return min((e for c, e in points if c <= budget), default=float("inf"))


@dataclass
class SearchResult:
    budgets: list[float]
    evolved: list[tuple[SubnetConfig, float, float]]   # (cfg, macs, measured EER) per budget
    random: list[tuple[SubnetConfig, float, float]]    # every random subnet measured
    tau: float                                         # predictor's Kendall tau on held-out subnets
    n_train: int
    n_heldout: int
