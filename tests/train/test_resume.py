"""A run SIGKILLed mid-epoch and resumed from its last checkpoint ends where an uninterrupted run ends."""
import signal

import torch

from frugalnn.train import list_checkpoints, read_log
from train_launch import run_script


def test_sigkill_mid_epoch_then_resume_matches_uninterrupted(tmp_path):
    # 64 examples, global batch 16: 4 steps per epoch. Checkpoints at steps 3 and 6 (epoch 1, batch 2);
    # the kill comes after step 7, mid-epoch, so the resumed run replays step 7 from checkpoint 6.
    # Stochastic rounding and dropout make the run depend on the restored RNG states, not only the weights.
    common = ["--runs", "dfp:1", "--steps", "10", "--stochastic", "--dropout", "0.2"]
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    whole.mkdir()
    broken.mkdir()
    run_script(whole, *common)
    ckpt = tmp_path / "ckpt"
    killed = run_script(broken, *common, "--checkpoint-dir", str(ckpt), "--kill-at", "7", check=False)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert not (broken / "dfp-m1.pt").exists()
    assert [p.name for p in list_checkpoints(ckpt)] == ["ckpt-000000003.pt", "ckpt-000000006.pt"]
    run_script(broken, *common, "--checkpoint-dir", str(ckpt))

    a = torch.load(whole / "dfp-m1.pt", weights_only=True)
    b = torch.load(broken / "dfp-m1.pt", weights_only=True)
    assert b["resumed_from"].endswith("ckpt-000000006.pt")
    for k in a["state"]:
        assert torch.equal(a["state"][k], b["state"][k]), k
    assert b["losses"] == a["losses"]  # the history carried in the checkpoint plus the resumed steps
    events = [r["event"] for r in read_log(broken / "dfp-m1.jsonl")]
    assert events.count("resume") == 1 and events.count("start") == 1
