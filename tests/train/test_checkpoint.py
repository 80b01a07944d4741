"""Checkpoints: atomic writes, checksums, refusal of corrupted or truncated files, fallback to the previous."""
import os

import pytest
import torch
from torch import nn

from frugalnn.train import CheckpointError, fit, list_checkpoints, load_checkpoint, save_checkpoint
from frugalnn.train.order import BatchOrder


def _setup(seed=0):
    torch.manual_seed(seed)
    x = torch.randn(48, 6)
    y = (x[:, 0] > 0).long()
    net = nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 2))
    return net, torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9), (x, y)


def _fit(tmp_path, steps, **kw):
    net, opt, data = _setup()
    result = fit(net, opt, data, nn.functional.cross_entropy, batch_size=8, steps=steps, checkpoint_every=2,
                 checkpoint_dir=tmp_path / "ckpt", progress=False, log_every=1, **kw)
    return net, result


def test_save_load_round_trip_and_pruning(tmp_path):
    for step in (1, 2, 3):
        save_checkpoint({"step": step, "t": torch.arange(4) * step}, tmp_path, step, keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["ckpt-000000002.pt", "ckpt-000000003.pt"]
    state = load_checkpoint(list_checkpoints(tmp_path)[-1])
    assert state["step"] == 3 and torch.equal(state["t"], torch.arange(4) * 3)
    assert not list(tmp_path.glob(".*tmp*"))
    with pytest.raises(ValueError, match="keep"):
        save_checkpoint({}, tmp_path, 4, keep=0)
    with pytest.raises(ValueError, match="step"):
        save_checkpoint({}, tmp_path, -1)


def test_failed_write_keeps_the_previous_checkpoints(tmp_path, monkeypatch):
    save_checkpoint({"step": 1}, tmp_path, 1)
    before = (tmp_path / "ckpt-000000001.pt").read_bytes()

    def crash(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint({"step": 2}, tmp_path, 2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["ckpt-000000001.pt"]
    assert (tmp_path / "ckpt-000000001.pt").read_bytes() == before
    assert not list(tmp_path.glob(".*tmp*"))


@pytest.mark.parametrize("damage, message", [
    (lambda b: b[:-1] + bytes([b[-1] ^ 0x40]), "sha256"),        # one flipped bit at the end
    (lambda b: b[: len(b) // 2], "truncated"),                     # cut in the middle
    (lambda b: b[:20], "truncated"),                               # cut inside the header
    (lambda b: b + b"x", "after the declared end"),
    (lambda b: b"PK\x03\x04" + b[4:], "not a frugalnn checkpoint"),
])
def test_damaged_checkpoint_is_refused_and_the_previous_one_resumes(tmp_path, damage, message):
    uninterrupted, _ = _fit(tmp_path / "a", steps=8)
    _fit(tmp_path, steps=4)  # checkpoints at steps 2 and 4
    newest = tmp_path / "ckpt" / "ckpt-000000004.pt"
    newest.write_bytes(damage(newest.read_bytes()))
    with pytest.raises(CheckpointError, match=message) as err:
        load_checkpoint(newest)
    assert str(newest) in str(err.value)
    with pytest.raises(CheckpointError, match=message):
        _fit(tmp_path, steps=8, resume=newest)  # an explicit file is never silently replaced

    previous = tmp_path / "ckpt" / "ckpt-000000002.pt"
    assert load_checkpoint(previous)["step"] == 2  # kept, and whole
    net, result = _fit(tmp_path, steps=8)
    assert result.resumed_from == str(previous)
    assert len(result.refused) == 1 and message in result.refused[0]
    for p, q in zip(net.parameters(), uninterrupted.parameters()):
        assert torch.equal(p, q)


def test_all_checkpoints_damaged_is_an_error(tmp_path):
    _fit(tmp_path, steps=4)
    for p in list_checkpoints(tmp_path / "ckpt"):
        p.write_bytes(p.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="no usable checkpoint"):
        _fit(tmp_path, steps=8)


def test_resume_refuses_another_data_order(tmp_path):
    _fit(tmp_path, steps=4)
    net, opt, data = _setup()
    with pytest.raises(ValueError, match="batch_size"):
        fit(net, opt, data, nn.functional.cross_entropy, batch_size=12, steps=8, checkpoint_dir=tmp_path / "ckpt",
            progress=False)


def test_batch_order_shards_partition_the_global_batch():
    one = BatchOrder(50, 12, seed=3, micro_batches=4)
    ranks = [BatchOrder(50, 12, seed=3, world_size=2, rank=r, micro_batches=2) for r in range(2)]
    assert one.steps_per_epoch == 4  # the last 2 examples of an epoch are dropped
    for epoch in range(2):
        for b in range(4):
            flat = torch.cat(one.micro_batch_indices(epoch, b))
            assert torch.equal(flat, torch.cat([torch.cat(r.micro_batch_indices(epoch, b)) for r in ranks]))
            assert torch.equal(flat, one.permutation(epoch)[b * 12:(b + 1) * 12])
    assert not torch.equal(one.permutation(0), one.permutation(1))
    assert torch.equal(one.permutation(1), BatchOrder(50, 12, seed=3).permutation(1))
    with pytest.raises(ValueError, match="multiple of"):
        BatchOrder(50, 12, world_size=5)
    with pytest.raises(ValueError, match="at most"):
        BatchOrder(10, 12)
    with pytest.raises(ValueError, match="rank"):
        BatchOrder(50, 12, world_size=2, rank=2)
    with pytest.raises(ValueError, match="batch"):
        one.micro_batch_indices(0, 4)


def test_fit_arguments_and_nonfinite_loss(tmp_path):
    net, opt, data = _setup()
    loss = nn.functional.cross_entropy
    with pytest.raises(ValueError, match="exactly one of epochs and steps"):
        fit(net, opt, data, loss, batch_size=8, progress=False)
    with pytest.raises(ValueError, match="steps"):
        fit(net, opt, data, loss, batch_size=8, steps=0, progress=False)
    with pytest.raises(TypeError, match="model"):
        fit(lambda x: x, opt, data, loss, batch_size=8, steps=1, progress=False)
    with pytest.raises(ValueError, match="first dimension"):
        fit(net, opt, (data[0], data[1][:5]), loss, batch_size=8, steps=1, progress=False)
    with pytest.raises(FloatingPointError, match="loss is nan at step 0"):
        fit(net, opt, data, lambda out, y: out.sum() * float("nan"), batch_size=8, steps=1, progress=False)


def test_epochs_eval_and_log(tmp_path):
    net, opt, data = _setup()
    seen = []
    result = fit(net, opt, data, nn.functional.cross_entropy, batch_size=8, epochs=2, progress=False,
                 eval_fn=lambda m: {"acc": (m(data[0]).argmax(1) == data[1]).float().mean(), "training": m.training},
                 log_path=tmp_path / "log.jsonl", log_every=2, callback=seen.append)
    assert result.steps == 12 and [e["step"] for e in result.evals] == [6, 12]
    assert all(e["training"] == 0.0 for e in result.evals) and net.training
    assert [s["step"] for s in seen] == list(range(1, 13))
    assert len(result.losses()) == 6 and result.losses()[-1][1] < result.losses()[0][1]
    lines = (tmp_path / "log.jsonl").read_text().splitlines()
    assert len(lines) == 1 + 6 + 2  # start, six step records, two evaluations
