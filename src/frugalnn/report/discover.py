"""Find every experiment: import each technique's `experiment` module (one that fails to import is
reported as a failed experiment, not a crash of the whole report)."""
from __future__ import annotations

from frugalnn.report.registry import Experiment, registered
from frugalnn.techniques import discover


def load_experiments() -> tuple[dict[str, Experiment], dict[str, str]]:
    """(experiments by name, import errors by technique name)."""
    errors = discover("experiment")
    return registered(), errors


def select(experiments: dict[str, Experiment], only: list[str] | None) -> list[Experiment]:
    """Experiments whose name, module or technique matches one of `only` (all when None)."""
    if not only:
        return list(experiments.values())
    chosen, unknown = [], []
    for want in only:
        w = want.lower()
        hits = [e for e in experiments.values()
                if w in (e.name.lower(), e.technique.lower())]
        if not hits:
            unknown.append(want)
        chosen += [e for e in hits if e not in chosen]
    if unknown:
        names = sorted({e.name for e in experiments.values()} | {e.technique for e in experiments.values() if e.technique})
        raise ValueError(f"--only: no experiment named {', '.join(map(repr, unknown))}; known: {', '.join(names)}")
    return chosen
