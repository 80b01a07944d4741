"""`fit`: the one training loop every training technique uses.

    result = fit(model, optimizer, (x, y), F.cross_entropy, batch_size=128, epochs=5,
                 eval_fn=lambda m: {"accuracy": ...}, log_path="run/log.jsonl", checkpoint_dir="run/ckpt")

Run plainly it trains in this process; run under `torchrun --nproc-per-node N` it trains as DDP on
gloo, each rank on its shard of every global batch (see order.py), rank 0 alone logging, evaluating
and checkpointing. A checkpoint holds the model, optimizer, scheduler, every rank's RNG states and the
data position, so a resumed run (after a crash or a SIGKILL) continues bit for bit where it stopped.
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from frugalnn.train import distributed, rng
from frugalnn.train.checkpoint import CheckpointError, list_checkpoints, load_checkpoint, save_checkpoint
from frugalnn.train.log import JsonLog, ProgressBar
from frugalnn.train.order import BatchOrder, dataset_length, fetch

_STEP: int | None = None


def current_step() -> int | None:
    """The index (from 0) of the optimizer step `fit` is computing now; None outside `fit`.
    Layers use it to say where a failure happened (e.g. a non-finite value in DFP)."""
    return _STEP


@dataclass
class FitResult:
    steps: int                  # optimizer steps completed in total (including before a resume)
    epoch: int                  # epoch of the next step
    evals: list[dict] = field(default_factory=list)  # every evaluation: {"step", "epoch", **metrics}
    history: list[dict] = field(default_factory=list)  # rank 0's log records (step losses, evals)
    resumed_from: str | None = None
    refused: list[str] = field(default_factory=list)   # checkpoints refused on resume, with the reason
    world_size: int = 1
    seconds: float = 0.0

    @property
    def final_eval(self) -> dict | None:
        return self.evals[-1] if self.evals else None

    def losses(self) -> list[tuple[int, float]]:
        return [(r["step"], r["loss"]) for r in self.history if r.get("event") == "step"]


def _check_count(name: str, value, allow_none: bool = True):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: expected an int >= 1{' or None' if allow_none else ''}, got {value!r}")
    return value


def _unwrap(model):
    return getattr(model, "module", model)


def _resume(checkpoint_dir, resume, order: BatchOrder, log: JsonLog) -> tuple[dict | None, str | None, list[str]]:
    """The newest checkpoint that loads, falling back past refused ones (each refusal is reported)."""
    if resume is False or resume is None:
        return None, None, []
    if isinstance(resume, (str, Path)):  # an explicit file: refused means an error, no fallback
        return load_checkpoint(resume), str(resume), []
    if checkpoint_dir is None:
        return None, None, []
    refused = []
    for path in reversed(list_checkpoints(checkpoint_dir)):
        try:
            state = load_checkpoint(path)
        except CheckpointError as e:
            refused.append(str(e))
            log.write("checkpoint_refused", path=str(path), error=str(e))
            continue
        return state, str(path), refused
    if refused:
        raise CheckpointError("no usable checkpoint to resume from: " + "; ".join(refused))
    return None, None, []


def _check_compatible(state: dict, order: BatchOrder) -> None:
    for key, ours in (("n_examples", order.n_examples), ("batch_size", order.batch_size), ("seed", order.seed)):
        if state.get(key) != ours:
            raise ValueError(f"resume: the checkpoint was written with {key}={state.get(key)!r}, this run has "
                             f"{key}={ours!r} (the data order would differ); pass resume=False to start over")


def fit(model, optimizer, train_data, loss_fn: Callable, *, batch_size: int, epochs: int | None = None,
        steps: int | None = None, eval_fn: Callable | None = None, eval_every: int | None = None,
        log_path=None, log_every: int = 10, seed: int = 0, checkpoint_dir=None, checkpoint_every: int | None = None,
        keep_checkpoints: int = 2, resume: bool | str | Path = True, progress: bool = True, scheduler=None,
        micro_batches: int = 1, forward: Callable | None = None, callback: Callable[[dict], Any] | None = None,
        shuffle: bool = True) -> FitResult:
    """Train `model` in place; see the module docstring.

    train_data: (inputs, targets) tensors sharing the first dimension, or a map-style dataset of
    (input, target) items. batch_size: the global batch (all ranks, all micro-batches). Exactly one
    of epochs / steps. loss_fn(outputs, targets) -> scalar. forward(model, inputs) -> outputs
    (default model(inputs); e.g. to run under autocast). eval_fn(model) -> dict of floats, on rank 0
    in eval mode under no_grad, every `eval_every` steps (default: each epoch end) and at the end.
    Checkpoints every `checkpoint_every` steps (default: each epoch end) and at the end.
    resume: True = continue from the newest checkpoint in checkpoint_dir that passes its checksum,
    False = start over, a path = exactly that checkpoint. callback(info) runs after every step.
    """
    import torch

    global _STEP
    if (epochs is None) == (steps is None):
        raise ValueError(f"expected exactly one of epochs and steps, got epochs={epochs!r}, steps={steps!r}")
    _check_count("epochs", epochs)
    _check_count("steps", steps)
    _check_count("eval_every", eval_every)
    _check_count("log_every", log_every, allow_none=False)
    _check_count("checkpoint_every", checkpoint_every)
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")

    world = distributed.init()
    order = BatchOrder(dataset_length(train_data), batch_size, seed, world.size, world.rank, micro_batches, shuffle)
    spe = order.steps_per_epoch
    total = steps if steps is not None else epochs * spe
    log = JsonLog(log_path, enabled=world.main)
    t_start = time.perf_counter()

    state, resumed_from, refused = _resume(checkpoint_dir, resume, order, log)
    step, epoch, batch = 0, 0, 0
    history: list[dict] = []
    evals: list[dict] = []
    if state is None:
        rng.seed_everything(seed + world.rank)
    else:
        _check_compatible(state, order)
        _unwrap(model).load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state.get("scheduler") is not None:
            scheduler.load_state_dict(state["scheduler"])
        step, epoch, batch = state["step"], state["epoch"], state["batch"]
        history, evals = list(state.get("history", [])), list(state.get("evals", []))
        rngs = state["rng"]
        if len(rngs) == world.size:
            rng.restore(rngs[world.rank])
        else:  # another world size cannot continue the same random streams; reseed from the position
            rng.seed_everything(seed + 7919 * step + world.rank)
        history.append(log.write("resume", path=resumed_from, step=step, epoch=epoch, batch=batch,
                                 refused=refused, world_size=world.size))
    if state is None:
        history.append(log.write("start", steps=total, epochs=epochs, batch_size=batch_size, world_size=world.size,
                                 micro_batches=micro_batches, seed=seed, n_examples=order.n_examples))

    net = model
    if world.distributed:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model)
    model.train()
    bar = ProgressBar(total, step, enabled=progress and world.main)
    window = [0.0, 0]

    def evaluate() -> None:
        metrics = None
        if world.main and eval_fn is not None:
            inner = _unwrap(model)
            inner.eval()
            with torch.no_grad():
                metrics = {k: float(v) for k, v in eval_fn(inner).items()}
            inner.train()
        metrics = distributed.broadcast_object(metrics, world)
        if metrics is not None:
            record = {"step": step, "epoch": epoch, **metrics}
            evals.append(record)
            history.append(log.write("eval", **record))

    def checkpoint() -> None:
        rngs = distributed.gather_objects(rng.capture(), world)
        if world.main:
            payload = {"model": _unwrap(model).state_dict(), "optimizer": optimizer.state_dict(),
                       "scheduler": scheduler.state_dict() if scheduler is not None else None,
                       "rng": rngs, "step": step, "epoch": epoch, "batch": batch, "n_examples": order.n_examples,
                       "batch_size": order.batch_size, "seed": order.seed, "world_size": world.size,
                       "history": history, "evals": evals}
            path = save_checkpoint(payload, checkpoint_dir, step, keep=keep_checkpoints)
            history.append(log.write("checkpoint", step=step, path=str(path)))

    try:
        while step < total:
            _STEP = step
            optimizer.zero_grad(set_to_none=True)
            local = 0.0
            for i, idx in enumerate(order.micro_batch_indices(epoch, batch)):
                inputs, targets = fetch(train_data, idx)[:2]
                last = i == micro_batches - 1
                sync = contextlib.nullcontext() if last or not world.distributed else net.no_sync()
                with sync:
                    out = forward(net, inputs) if forward is not None else net(inputs)
                    loss = loss_fn(out, targets)
                    value = float(loss.detach())
                    if not math.isfinite(value):
                        raise FloatingPointError(f"loss is {value} at step {step} (epoch {epoch}, batch {batch}, "
                                                 f"rank {world.rank}, micro-batch {i})")
                    (loss / micro_batches if micro_batches > 1 else loss).backward()
                local += value / micro_batches
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            step, batch = step + 1, batch + 1
            epoch_end = batch == spe
            if epoch_end:
                epoch, batch = epoch + 1, 0
            window[0] += local
            window[1] += 1
            if step % log_every == 0 or step == total:
                summed, count = distributed.all_sum([window[0]], world)[0], window[1]
                mean = summed / world.size / count
                history.append(log.write("step", step=step, epoch=epoch, batch=batch, loss=mean,
                                         lr=optimizer.param_groups[0]["lr"],
                                         seconds=round(time.perf_counter() - t_start, 3)))
                bar.update(step, f"loss {mean:.4f}")
                window = [0.0, 0]
            else:
                bar.update(step, "")
            due_eval = (step % eval_every == 0) if eval_every else (epochs is not None and epoch_end)
            if due_eval or step == total:
                evaluate()
            if checkpoint_dir is not None:
                due = (step % checkpoint_every == 0) if checkpoint_every else epoch_end
                if due or step == total:
                    checkpoint()
            if callback is not None:
                callback({"step": step, "epoch": epoch, "batch": batch, "loss": local, "rank": world.rank})
        if state is not None and step == state["step"] and not evals:
            evaluate()  # resumed a finished run: still answer with its evaluation
    finally:
        _STEP = None
        bar.close()
        log.close()
    return FitResult(step, epoch, evals, history, resumed_from, refused, world.size,
                     time.perf_counter() - t_start)
