"""torch.distributed as `fit` uses it: a script launched by `torchrun --nproc-per-node N` becomes a DDP
run on the gloo backend (CPU) with no change to the script; launched plainly, it is one process.

torchrun sets WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; `init()` reads them through
`init_process_group("gloo")` (the env:// rendezvous). Only rank 0 writes logs and checkpoints.
"""
from __future__ import annotations

import atexit
import os
from dataclasses import dataclass


@dataclass(frozen=True)
class World:
    size: int = 1
    rank: int = 0
    created: bool = False  # this process group was created by `init` (so `shutdown` destroys it)

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}: expected an integer in the environment, got {raw!r}") from None
    if value < 0:
        raise ValueError(f"{name}: expected an integer >= 0 in the environment, got {value}")
    return value


def init() -> World:
    """The world this process is part of; joins the gloo process group when launched by torchrun."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return World(dist.get_world_size(), dist.get_rank(), created=False)
    size, rank = _env_int("WORLD_SIZE", 1), _env_int("RANK", 0)
    if size < 1 or rank >= size:
        raise ValueError(f"RANK={rank} and WORLD_SIZE={size}: expected 0 <= RANK < WORLD_SIZE")
    if size == 1:
        return World()
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    dist.init_process_group("gloo")
    world = World(dist.get_world_size(), dist.get_rank(), created=True)
    atexit.register(shutdown, world)  # the group outlives one fit (a script may call fit twice)
    return world


def shutdown(world: World) -> None:
    import torch.distributed as dist

    if world.created and dist.is_initialized():
        dist.destroy_process_group()


def all_sum(values: list[float], world: World) -> list[float]:
    """Element-wise sum of `values` over the ranks (float64; identity in one process)."""
    if not world.distributed:
        return list(values)
    import torch
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t)
    return t.tolist()


def gather_objects(obj, world: World) -> list:
    """[obj of rank 0, obj of rank 1, ...] on every rank."""
    if not world.distributed:
        return [obj]
    import torch.distributed as dist

    out = [None] * world.size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj, world: World):
    """Rank 0's `obj` on every rank."""
    if not world.distributed:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(world: World) -> None:
    if world.distributed:
        import torch.distributed as dist

        dist.barrier()
