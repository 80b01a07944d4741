"""The VNNI switch of the avx512 backend (csrc/common/cpu.h vnni_slot): on by default exactly where
the CPU has AVX512-VNNI, refused where it does not, FRUGALNN_VNNI=0 turns it off for a process, and
the integer-GEMM ops (mixpe, dfp) report the ISA they really run."""
import os
import subprocess
import sys

import pytest

from frugalnn import _core, info
from frugalnn.kernels import available_backends, avx512_vnni, dfp, mixpe, op_backends, use_avx512_vnni, use_backend

HAS_VNNI = _core.cpu_supports_avx512_vnni()


def test_default_follows_the_cpu():
    assert avx512_vnni() == HAS_VNNI
    assert info.collect()["avx512_vnni"] == HAS_VNNI  # `frugalnn info` shows it


def test_switch_is_refused_without_vnni_and_restored():
    if HAS_VNNI:
        with use_avx512_vnni(False):
            assert not avx512_vnni()
        assert avx512_vnni()
    else:
        with pytest.raises(ValueError, match="lacks AVX512-VNNI"):
            _core.set_avx512_vnni(True)
        assert not avx512_vnni()
    with pytest.raises(TypeError):
        _core.set_avx512_vnni("yes")


def test_environment_turns_vnni_off():
    env = dict(os.environ, FRUGALNN_VNNI="0")
    out = subprocess.run([sys.executable, "-c", "import frugalnn.kernels as k; print(k.avx512_vnni())"], env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "False"


@pytest.mark.parametrize("name", ["serial", "avx2", "avx512"])
def test_integer_ops_report_their_isa(name):
    if name not in available_backends():
        pytest.skip(f"CPU lacks {name}")
    with use_backend(name):
        assert op_backends()["mixpe"] == op_backends()["dfp"] == name
        want = name + (" + VNNI" if name == "avx512" and HAS_VNNI else "")
        assert mixpe.isa() == dfp.isa() == want
        if name == "avx512":
            with use_avx512_vnni(False):
                assert mixpe.isa() == dfp.isa() == "avx512"
