import json
import subprocess
import sys

from frugalnn.cli import main


def test_info_json(capsys):
    assert main(["info", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    from frugalnn.kernels import available_backends

    assert data["kernel_backend"] in available_backends() and data["versions"]["numpy"]
    assert set(data["op_backends"].values()) <= set(available_backends())


def test_python_dash_m_runs():
    out = subprocess.run([sys.executable, "-m", "frugalnn", "info"], capture_output=True, text=True, check=True)
    assert "kernel backend" in out.stdout


def test_user_errors_are_one_line(capsys):
    assert main(["report", "--only", "does-not-exist", "--out", "/tmp/frugalnn-never"]) == 2
    err = capsys.readouterr().err
    assert "no experiment named 'does-not-exist'" in err and "Traceback" not in err


def test_bench_formats_quick(tmp_path, capsys):
    out = tmp_path / "b.json"
    assert main(["bench", "formats", "--quick", "--threads", "1", "--repeats", "1", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "| case | impl |" in text
    doc = json.loads(out.read_text())
    impls = {r["impl"] for r in doc["rows"]}
    assert {"numpy", "serial"} <= impls and doc["meta"]["machine"]["cpu"]
