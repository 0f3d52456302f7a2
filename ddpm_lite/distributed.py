"""Data-parallel training across processes, with PyTorch's engine (torchrun + DDP).

`torchrun --nproc_per_node=N -m ddpm_lite train ...` starts N processes and tells each
its rank and the world size through the environment; a plain `python -m ddpm_lite
train` is a world of one, and nothing here changes it. Every rank draws the same global
batch (the same seeded generator) and trains on its own slice of it, so N ranks of
batch B / N take the steps one rank of batch B would: DDP averages their gradients.
Rank 0 alone keeps the EMA, logs and writes checkpoints.
"""

from __future__ import annotations

import os
from typing import NamedTuple

import torch
from torch import Tensor


class World(NamedTuple):
    rank: int  # this process, 0 .. size - 1
    size: int  # the number of processes

    @property
    def main(self) -> bool:
        """Rank 0: the one that logs and writes checkpoints."""
        return self.rank == 0


SINGLE = World(0, 1)


def join_world(device: torch.device) -> World:
    """The world torchrun describes in WORLD_SIZE and RANK (gloo on the CPU, nccl on
    CUDA, where each rank takes the GPU LOCAL_RANK names); SINGLE when there is none."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return SINGLE
    rank = int(os.environ["RANK"])
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    if not torch.distributed.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        torch.distributed.init_process_group(backend, rank=rank, world_size=size)
    return World(rank, size)


def leave_world(world: World) -> None:
    if world.size > 1 and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def local_device(device: torch.device, world: World) -> torch.device:
    """On CUDA, rank r of a node uses the GPU LOCAL_RANK names; the CPU is shared."""
    if device.type == "cuda" and world.size > 1:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def per_rank_batch(batch_size: int, world: World) -> int:
    """The slice of each global batch that one rank trains on."""
    if batch_size % world.size:
        raise ValueError(
            f"batch_size={batch_size} must be divisible by the world size {world.size} "
            "(every rank takes an equal slice of each global batch)"
        )
    return batch_size // world.size


def my_slice(x: Tensor, world: World) -> Tensor:
    """This rank's rows of a global batch (B, ...): rank * B/N to (rank + 1) * B/N."""
    share = x.shape[0] // world.size
    return x[world.rank * share : (world.rank + 1) * share]


def mean_across(x: Tensor, world: World) -> Tensor:
    """The mean of x over the ranks (x itself in a world of one)."""
    if world.size == 1:
        return x
    x = x.clone()
    torch.distributed.all_reduce(x)
    return x / world.size


def check_same_data(data: Tensor, world: World) -> None:
    """Every rank must hold the same training images: a rank with other data (or none)
    would train on other examples than its slice of the global batch names."""
    if world.size == 1:
        return
    summary = torch.tensor(
        [float(data.shape[0]), float(data.double().sum())], dtype=torch.float64
    ).to(data.device)
    gathered = [torch.zeros_like(summary) for _ in range(world.size)]
    torch.distributed.all_gather(gathered, summary)
    rows = [g.tolist() for g in gathered]
    if any(r != rows[0] for r in rows):
        sizes = [f"rank {k}: {int(n)} images" for k, (n, _) in enumerate(rows)]
        described = ", ".join(sizes)
        raise ValueError(f"the ranks hold different training data ({described})")
