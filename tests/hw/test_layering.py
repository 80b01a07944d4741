"""hw is core: it imports nothing above it (no technique package; `formats` is core too)."""
import ast
from pathlib import Path

import frugalnn.hw
from frugalnn.techniques import TECHNIQUES


def test_hw_imports_no_technique():
    names = {t.name for t in TECHNIQUES if t.name != "formats"}
    for path in Path(frugalnn.hw.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                for mod in mods:
                    parts = mod.split(".")
                    assert not (parts[0] == "frugalnn" and len(parts) > 1 and parts[1] in names), f"{path.name}: {mod}"
