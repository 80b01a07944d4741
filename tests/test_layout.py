"""One technique, one name: every built technique has its package, report experiments, benchmark,
docs page, tests folder and benchmark script under the same name, and the old names are gone."""
import importlib
from pathlib import Path

import pytest

from frugalnn.bench import load_benchmarks
from frugalnn.report.discover import load_experiments
from frugalnn.techniques import TECHNIQUES, technique_of

ROOT = Path(__file__).parents[1]
BUILT = [t.name for t in TECHNIQUES if t.status == "built"]


def test_the_built_techniques():
    assert {"tmac", "lmul", "fusemax", "scaling", "llm"} <= set(BUILT)


@pytest.mark.parametrize("name", BUILT)
def test_one_name_everywhere(name):
    experiments, errors = load_experiments()
    assert not errors, errors
    assert any(e.technique == name for e in experiments.values()), f"report --only {name}"
    benchmarks, errors = load_benchmarks()
    assert not errors, errors
    assert name in benchmarks, f"frugalnn bench {name}"
    assert (ROOT / "tests" / name).is_dir(), f"tests/{name}/"
    assert (ROOT / "benchmarks" / f"bench_{name}.py").is_file(), f"benchmarks/bench_{name}.py"
    if name != "formats":  # the shared number formats are documented in the README
        assert (ROOT / "docs" / f"{name}.md").is_file(), f"docs/{name}.md"


@pytest.mark.parametrize("old", ["frugalnn.lut", "frugalnn.cascade", "frugalnn.arith", "frugalnn.experiments",
                                 "frugalnn.nn", "frugalnn.models.llama"])
def test_old_names_are_gone(old):
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module(old)


def test_tmac_public_api_lives_in_tmac_only():
    """No module outside frugalnn/tmac/ defines LUTWeight, LUTLinear or LUTConfig."""
    src = ROOT / "src" / "frugalnn"
    for path in src.rglob("*.py"):
        if path.is_relative_to(src / "tmac"):
            continue
        text = path.read_text()
        for name in ("LUTWeight", "LUTLinear", "LUTConfig"):
            assert f"class {name}" not in text, f"{path} defines {name}"


def test_technique_of():
    assert technique_of("frugalnn.tmac.experiment") == "tmac"
    assert technique_of("frugalnn.report.runner") == ""
    assert technique_of("tests.report.test_report") == ""


def test_registry_refuses_a_name_registered_from_two_places():
    from frugalnn.techniques import Registry

    r = Registry("experiment")
    r.add("x", 1, "a.f")
    r.add("x", 1, "a.f")  # a re-import is not a duplicate
    with pytest.raises(ValueError, match="registered twice"):
        r.add("x", 2, "b.g")


def test_a_technique_that_fails_to_import_is_reported_not_raised(monkeypatch):
    from frugalnn import techniques

    real = importlib.import_module

    def broken(name, *args):
        if name == "frugalnn.tmac.bench":
            raise ImportError("simulated")
        return real(name, *args)

    monkeypatch.setattr(techniques.importlib, "import_module", broken)
    errors = techniques.discover("bench")
    assert "simulated" in errors["tmac"]


def test_planned_techniques_have_no_package_yet():
    from frugalnn.techniques import BY_NAME

    from frugalnn.techniques import has_module

    # (tdnn was the planned example until issue 16 built it; any technique without experiment.py is planned)
    assert BY_NAME["tmac"].status == "built" and BY_NAME["tdnn"].status == "built"
    for name, t in BY_NAME.items():
        assert (t.status == "planned") == (not has_module(f"frugalnn.{name}.experiment")), name
    with pytest.raises(ValueError, match="name"):
        __import__("frugalnn.techniques").techniques.has_module("tmac.bench")


def test_test_file_names_are_unique():
    """pytest imports test modules by basename from directories without __init__.py (rootdir conftest style):
    two tests/<x>/test_bench.py collide ("import file mismatch") and the whole run stops at collection."""
    seen: dict[str, Path] = {}
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        if (path.parent / "__init__.py").is_file():
            continue  # a package (tests/fuzz): its modules are imported by their dotted name
        assert path.name not in seen, f"{path.relative_to(ROOT)} and {seen[path.name].relative_to(ROOT)} share a name"
        seen[path.name] = path
