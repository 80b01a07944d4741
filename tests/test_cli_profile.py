import json

import pytest

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


# ---- issue 19, item 13: sizes are bounded before allocating; every failure is one line, exit 2 -------

MISMATCHED = '''
import torch


def mismatch():
    return torch.nn.Linear(3, 4), torch.randn(2, 5)


def raises():
    raise KeyError("no model here")
'''


def _one_line_error(capsys, argv, *needles):
    assert main(argv) == 2, argv
    captured = capsys.readouterr()
    err = captured.err
    assert err.count("\n") == 1 and "Traceback" not in err, (argv, err)
    for needle in needles:
        assert needle in err, (argv, err)
    return err


@pytest.fixture
def limit_16gib(monkeypatch):
    """The same answer on every machine: 16 GiB available."""
    from frugalnn.commands import profile

    monkeypatch.setattr(profile, "available_memory", lambda: 16 << 30)


def test_profile_refuses_inputs_that_do_not_fit_in_memory(capsys, limit_16gib):
    # Before: torch's allocator error and a traceback, even with --fake (the input is real).
    _one_line_error(capsys, ["profile", "regnety-200mf", "--resolution", "100000", "--fake"],
                    "resolution 100000", "GiB", "memory available")
    _one_line_error(capsys, ["profile", "regnety-200mf", "--resolution", "100000"], "resolution 100000")
    _one_line_error(capsys, ["profile", "effnet-b0", "--batch", "100000000", "--fake"], "batch 100000000", "GiB")


def test_profile_refuses_scaled_models_that_are_too_big(capsys, limit_16gib):
    _one_line_error(capsys, ["profile", "regnety-200mf", "--scale", "dWr:1e9", "--fake"], "dWr x1e+09", "GiB")
    # depth scaling: refused by block count before the closed-form walk over every block
    _one_line_error(capsys, ["profile", "regnety-200mf", "--scale", "d:1e9", "--fake"], "blocks", "at most")
    _one_line_error(capsys, ["profile", "effnet-b0", "--scale", "dwr:1e200", "--fake"], "dwr x1e+200")
    # near float's limit a stage's depth becomes inf inside the scaler (an OverflowError before)
    _one_line_error(capsys, ["profile", "effnet-b0", "--scale", "d:1.7e308", "--fake"], "'d:1.7e308'")


def test_profile_size_estimate_is_the_closed_form(monkeypatch):
    from frugalnn import models
    from frugalnn.commands import profile

    cfg = models.config("regnety-200mf", resolution=64)
    cx = cfg.complexity()
    monkeypatch.setattr(profile, "available_memory", lambda: 4 * (cx.params + 3 * 64 * 64 + cx.acts))
    profile.check_size(cfg, 1, False, "exactly fits")
    with pytest.raises(ValueError, match="batch 2: needs about"):
        profile.check_size(cfg, 2, False, "batch 2")
    profile.check_size(cfg, 2, True, "fake: no activations")
    monkeypatch.undo()
    assert isinstance(profile.available_memory(), int) and profile.available_memory() > 0


def test_profile_spec_model_and_input_mismatch_is_one_line(tmp_path, monkeypatch, capsys):
    (tmp_path / "mismatched.py").write_text(MISMATCHED)
    monkeypatch.chdir(tmp_path)
    _one_line_error(capsys, ["profile", "mismatched:mismatch"], "mismatched:mismatch", "fails on its example input",
                    "cannot be multiplied")
    _one_line_error(capsys, ["profile", "mismatched:raises"], "raises() failed", "KeyError")
    (tmp_path / "broken.py").write_text("def f(:\n")
    _one_line_error(capsys, ["profile", str(tmp_path / "broken.py") + ":f"], "SyntaxError")


@pytest.mark.parametrize("argv", [["generate", "--seed", str(2**70), "hi"], ["report", "--seed", "-1", "--list"],
                                  ["report", "--seed", str(2**64), "--list"]])
def test_out_of_range_seed_is_one_line(argv, capsys):
    # Before: generate reached torch's "Overflow when unpacking long long" with a traceback.
    _one_line_error(capsys, argv, "--seed", argv[2])


def test_argparse_errors_are_one_line(capsys):
    for argv in (["profile", "regnety-200mf", "--resolution", "abc"], ["profile", "--convention", "x"],
                 ["no-such-command"]):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "usage" not in err, err
