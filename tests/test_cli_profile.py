import json

from frugalnn.cli import main

SPEC_MODULE = '''
import torch


def make():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(4 * 36, 5))
    return net, torch.randn(2, 3, 8, 8)


def with_kwargs():
    class Takes(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(3, 3)

        def forward(self, x, scale=1.0):
            return self.lin(x) * scale
    return Takes(), {"x": torch.randn(4, 3), "scale": 2.0}


def not_a_pair():
    return torch.nn.Linear(2, 2)
'''


def test_profile_builtin_table(capsys):
    assert main(["profile", "regnety-200mf", "--resolution", "32", "--max-depth", "1"]) == 0
    out = capsys.readouterr().out
    assert "(model)" in out and "stages" in out and "2 x MACs" in out


def test_profile_builtin_scaled_json(capsys):
    assert main(["profile", "effnet-b0", "--resolution", "32", "--scale", "dWr:4", "--json", "--max-depth", "0"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["macs"] > 0 and "achieved flops" in doc["scaled"] and list(doc["modules"]) == [""]


def test_profile_module_function(tmp_path, monkeypatch, capsys):
    (tmp_path / "specmodels.py").write_text(SPEC_MODULE)
    monkeypatch.chdir(tmp_path)
    assert main(["profile", "specmodels:make", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["macs"] == 2 * (4 * 3 * 9 * 36 + 144 * 5)
    assert main(["profile", str(tmp_path / "specmodels.py") + ":with_kwargs", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["macs"] == 4 * 9


def test_profile_user_errors(tmp_path, monkeypatch, capsys):
    (tmp_path / "specmodels.py").write_text(SPEC_MODULE)
    monkeypatch.chdir(tmp_path)
    cases = [(["profile", "resnet-9000"], "unknown model 'resnet-9000'"),
             (["profile", "nosuchmodule:make"], "cannot import 'nosuchmodule'"),
             (["profile", "specmodels:missing"], "has no function 'missing'"),
             (["profile", "specmodels:not_a_pair"], "must return (model, example_input)"),
             (["profile", "specmodels:make", "--resolution", "64"], "built-in models only"),
             (["profile", "regnety-400mf", "--scale", "dwx:2"], "unknown 'dwx'"),
             (["profile", "regnety-400mf", "--scale", "w:big"], "expected STRATEGY:S"),
             (["profile", "regnety-400mf", "--max-depth", "-1"], "--max-depth"),
             (["profile"], "MODEL_SPEC is required")]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (argv, err)


def test_profile_list(capsys):
    assert main(["profile", "--list"]) == 0
    assert "regnety-400mf" in capsys.readouterr().out.split()
