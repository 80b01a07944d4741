"""csrc/<op>/ uses the same file names for the same roles, and includes point one way
(csrc/README.md): bind.cpp -> driver.h -> avx512.h -> avx2.h -> serial.h -> layout.h -> common/*
(avx512.h and layout.h optional)."""
import re
from pathlib import Path

import pytest

CSRC = Path(__file__).parents[2] / "csrc"
OPS = sorted(p.name for p in CSRC.iterdir() if p.is_dir() and p.name != "common")
LEVEL = {"bind.cpp": 5, "driver.h": 4, "avx512.h": 3, "avx2.h": 2, "serial.h": 1, "layout.h": 0}
REQUIRED = {"bind.cpp", "driver.h", "avx2.h", "serial.h"}
# The only include that crosses ops: the Llama decoder's LUT layers call the T-MAC driver (an entry
# point, not kernels), and layout.h of any op is a contract others may read.
CROSS_OP = {("llama/driver.h", "lut/driver.h")}


def includes(path: Path) -> list[str]:
    return re.findall(r'^#include "([^"]+)"', path.read_text(), flags=re.M)


def violations(op_dir: Path) -> list[str]:
    """Every include of an op's files that is not allowed, as 'file -> target (why)'."""
    op, found = op_dir.name, []
    for f in sorted(op_dir.iterdir()):
        if f.name not in LEVEL:
            found.append(f"{op}/{f.name} (not one of {sorted(LEVEL)})")
            continue
        for target in includes(f):
            t_op, t_name = target.split("/", 1)
            edge = (f"{op}/{f.name}", target)
            if t_op == "common":
                if t_name == "arrays.h" and f.name != "bind.cpp":
                    found.append(f"{edge[0]} -> {target} (only bindings see nanobind)")
            elif t_op == op:
                if LEVEL.get(t_name, 99) >= LEVEL[f.name]:
                    found.append(f"{edge[0]} -> {target} (points up or sideways)")
            elif edge not in CROSS_OP and t_name != "layout.h":
                found.append(f"{edge[0]} -> {target} (another op's file)")
    return found


def test_there_are_ops():
    assert {"attention", "lmul", "lut", "pack", "llama"} <= set(OPS)


@pytest.mark.parametrize("op", OPS)
def test_every_op_has_the_same_roles(op):
    assert REQUIRED <= {f.name for f in (CSRC / op).iterdir()}


@pytest.mark.parametrize("op", OPS)
def test_includes_point_one_way(op):
    assert violations(CSRC / op) == []


@pytest.mark.parametrize("op", OPS)
def test_every_header_states_its_role_and_its_check(op):
    for f in (CSRC / op).glob("*.h"):
        head = " ".join(f.read_text().split("#pragma once")[0].replace("//", " ").split())
        assert "Role:" in head and "Checked against:" in head, f"{op}/{f.name}"


def test_the_rule_catches_a_kernel_that_includes_its_driver(tmp_path):
    bad = tmp_path / "op"
    bad.mkdir()
    (bad / "serial.h").write_text('#include "op/driver.h"\n#include "other/avx2.h"\n#include "common/arrays.h"\n')
    (bad / "matmul.h").write_text("")
    assert violations(bad) == [
        "op/matmul.h (not one of ['avx2.h', 'avx512.h', 'bind.cpp', 'driver.h', 'layout.h', 'serial.h'])",
        "op/serial.h -> op/driver.h (points up or sideways)",
        "op/serial.h -> other/avx2.h (another op's file)",
        "op/serial.h -> common/arrays.h (only bindings see nanobind)",
    ]


def test_the_rule_lets_avx512_use_avx2_but_not_the_reverse(tmp_path):
    op = tmp_path / "op"
    op.mkdir()
    (op / "avx512.h").write_text('#include "op/avx2.h"\n#include "op/serial.h"\n#include "op/layout.h"\n')
    (op / "avx2.h").write_text('#include "op/avx512.h"\n')
    (op / "driver.h").write_text('#include "op/avx512.h"\n#include "op/avx2.h"\n')
    assert violations(op) == ["op/avx2.h -> op/avx512.h (points up or sideways)"]


@pytest.mark.parametrize("op", OPS)
def test_avx512_kernels_carry_their_target_attribute(op):
    f = CSRC / op / "avx512.h"
    if f.exists():
        assert "FRUGALNN_AVX512" in f.read_text() and "#if FRUGALNN_X86" in f.read_text()
