"""The data order: a permutation per epoch from (seed, epoch) alone, so a resumed run, a run on N ranks
and a run in one process all see the same global batches in the same order.

A global batch of `batch_size` examples is cut into `world_size * micro_batches` equal shards; rank r
takes shards r*micro_batches ... (r+1)*micro_batches - 1. One process with micro_batches = N therefore
computes exactly what N ranks with micro_batches = 1 compute, shard for shard. The last incomplete
global batch of an epoch is dropped (equal shards keep the DDP gradient average equal to the mean
over the global batch).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def _positive(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: expected an int >= 1, got {value!r}")
    return value


@dataclass(frozen=True)
class BatchOrder:
    n_examples: int
    batch_size: int  # global, over all ranks and micro-batches
    seed: int = 0
    world_size: int = 1
    rank: int = 0
    micro_batches: int = 1
    shuffle: bool = True

    def __post_init__(self):
        _positive("n_examples", self.n_examples)
        _positive("batch_size", self.batch_size)
        _positive("world_size", self.world_size)
        _positive("micro_batches", self.micro_batches)
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank: expected 0 <= rank < {self.world_size}, got {self.rank}")
        shards = self.world_size * self.micro_batches
        if self.batch_size % shards:
            raise ValueError(f"batch_size: expected a multiple of world_size * micro_batches = {shards} "
                             f"(equal shards per rank), got {self.batch_size}")
        if self.batch_size > self.n_examples:
            raise ValueError(f"batch_size: expected at most the {self.n_examples} examples, got {self.batch_size}")

    @property
    def steps_per_epoch(self) -> int:
        return self.n_examples // self.batch_size

    @property
    def shard_size(self) -> int:
        return self.batch_size // (self.world_size * self.micro_batches)

    def permutation(self, epoch: int):
        import torch

        if not self.shuffle:
            return torch.arange(self.n_examples)
        # A private generator: the global torch RNG (dropout, stochastic rounding) is left alone.
        g = torch.Generator().manual_seed((int(self.seed) * 1_000_003 + int(epoch)) % (1 << 63))
        return torch.randperm(self.n_examples, generator=g)

    def micro_batch_indices(self, epoch: int, batch: int) -> list:
        """This rank's index tensors (one per micro-batch) for global batch `batch` of `epoch`."""
        if not 0 <= batch < self.steps_per_epoch:
            raise ValueError(f"batch: expected 0 <= batch < {self.steps_per_epoch}, got {batch}")
        perm = self.permutation(epoch)
        start = batch * self.batch_size + self.rank * self.micro_batches * self.shard_size
        return [perm[start + i * self.shard_size: start + (i + 1) * self.shard_size]
                for i in range(self.micro_batches)]


def dataset_length(data) -> int:
    if isinstance(data, (tuple, list)) and data and all(hasattr(t, "shape") for t in data):
        n = {int(t.shape[0]) for t in data}
        if len(n) != 1:
            raise ValueError(f"train_data: expected tensors with one first dimension, got lengths {sorted(n)}")
        return n.pop()
    if hasattr(data, "__len__") and hasattr(data, "__getitem__"):
        return len(data)
    raise TypeError(f"train_data: expected a tuple of tensors or a map-style dataset, got {type(data).__name__}")


def fetch(data, idx) -> Any:
    """The examples at `idx`: indexed tensors for a tuple of tensors, collated items for a dataset."""
    if isinstance(data, (tuple, list)) and all(hasattr(t, "shape") for t in data):
        return tuple(t[idx] for t in data)
    from torch.utils.data import default_collate

    return default_collate([data[int(i)] for i in idx])
