"""Find every experiment: import each module of frugalnn.experiments (a module that fails to
import is reported as a failed experiment, not a crash of the whole report)."""
from __future__ import annotations

import importlib
import pkgutil
import traceback

from frugalnn.report.registry import Experiment, registered


def load_experiments() -> tuple[dict[str, Experiment], dict[str, str]]:
    """(experiments by name, import errors by module name)."""
    import frugalnn.experiments as pkg

    errors: dict[str, str] = {}
    for mod in pkgutil.iter_modules(pkg.__path__):
        if mod.name.startswith("_"):
            continue
        try:
            importlib.import_module(f"{pkg.__name__}.{mod.name}")
        except Exception:
            errors[mod.name] = traceback.format_exc()
    return registered(), errors


def select(experiments: dict[str, Experiment], only: list[str] | None) -> list[Experiment]:
    """Experiments whose name, module or technique matches one of `only` (all when None)."""
    if not only:
        return list(experiments.values())
    chosen, unknown = [], []
    for want in only:
        w = want.lower()
        hits = [e for e in experiments.values()
                if w in (e.name.lower(), e.module.rsplit(".", 1)[-1].lower(), e.technique.lower())]
        if not hits:
            unknown.append(want)
        chosen += [e for e in hits if e not in chosen]
    if unknown:
        names = sorted({e.name for e in experiments.values()} | {e.module.rsplit('.', 1)[-1] for e in experiments.values()})
        raise ValueError(f"--only: no experiment named {', '.join(map(repr, unknown))}; known: {', '.join(names)}")
    return chosen
