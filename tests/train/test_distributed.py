"""Two processes under torchrun (gloo, localhost) against one process over the same global batches."""
import torch

from train_launch import run_script


def _weights(path):
    return torch.load(path, weights_only=True)


def test_two_ranks_match_one_process(tmp_path):
    ddp, single = tmp_path / "ddp", tmp_path / "single"
    ddp.mkdir()
    single.mkdir()
    run_script(ddp, "--runs", "fp32:1,dfp:1", nproc=2)
    run_script(single, "--runs", "fp32:1,dfp:1,dfp:2")
    a, b = _weights(ddp / "fp32-m1.pt"), _weights(single / "fp32-m1.pt")
    assert a["world"] == 2 and b["world"] == 1
    for k in a["state"]:
        assert torch.allclose(a["state"][k], b["state"][k], rtol=0, atol=1e-6), k
    assert a["losses"][-1][1] < a["losses"][0][1]

    # DFP exponents are per tensor, and each rank quantizes its own shard: two ranks are bit-equal to one
    # process that accumulates the same two shards (micro_batches=2), and only close to one GEMM over both.
    d2, dm2, dm1 = _weights(ddp / "dfp-m1.pt"), _weights(single / "dfp-m2.pt"), _weights(single / "dfp-m1.pt")
    for k in d2["state"]:
        assert torch.equal(d2["state"][k], dm2["state"][k]), k
        assert torch.allclose(d2["state"][k], dm1["state"][k], rtol=0, atol=2e-3), k
    assert any(not torch.equal(d2["state"][k], dm1["state"][k]) for k in d2["state"])
    assert [l for _, l in d2["losses"]] == [l for _, l in dm2["losses"]]
