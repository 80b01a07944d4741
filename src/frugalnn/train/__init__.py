"""The one training loop (core): epochs or steps, periodic evaluation, a JSON-lines log, seeds, a rich
progress bar, atomic checksummed checkpoints with resume, and DDP on gloo under torchrun.

    from frugalnn.train import fit
    fit(model, optimizer, (x, y), torch.nn.functional.cross_entropy, batch_size=128, epochs=3,
        checkpoint_dir="runs/a/ckpt", log_path="runs/a/log.jsonl")

Launch the same script with `torchrun --nproc-per-node 2 script.py` to train on two processes.
"""
from frugalnn.train.checkpoint import CheckpointError, list_checkpoints, load_checkpoint, save_checkpoint
from frugalnn.train.distributed import World
from frugalnn.train.log import read_log
from frugalnn.train.loop import FitResult, current_step, fit
from frugalnn.train.order import BatchOrder

__all__ = ["BatchOrder", "CheckpointError", "FitResult", "World", "current_step", "fit", "list_checkpoints",
           "load_checkpoint", "read_log", "save_checkpoint"]
