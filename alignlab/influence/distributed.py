"""Data parallel factor fitting and scoring with ``torch.distributed``.

Launch any ``alignlab influence`` command under ``torchrun --nproc_per_node N`` (gloo on CPU, nccl on GPUs):
each process takes a contiguous shard of the training sequences, covariance and correction sums are
all-reduced, and scores are gathered on rank 0, which alone writes files. Without torchrun every helper here is
a no-op, so the same code runs in one process.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist


def setup() -> tuple[int, int]:
    """Join the process group when launched by torchrun; returns ``(rank, world_size)``."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend)
    return dist.get_rank(), dist.get_world_size()


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def device_for_rank(device: str) -> str:
    """``cuda:<local rank>`` for nccl runs; otherwise the device as given."""
    if active() and device.startswith("cuda"):
        return f"cuda:{os.environ.get('LOCAL_RANK', '0')}"
    return device


def shard(indices: list[int], batch_size: int) -> list[int]:
    """This process's contiguous share of ``indices``, cut on batch boundaries so batches are identical."""
    if not active():
        return indices
    n_batches = -(-len(indices) // batch_size)
    per = -(-n_batches // dist.get_world_size())
    lo = rank() * per * batch_size
    return indices[lo:lo + per * batch_size]


def sum_tensors(tensors: dict[str, torch.Tensor]) -> None:
    """In-place all-reduce (sum) of every tensor, in a fixed (sorted) order on all ranks."""
    if not active():
        return
    for key in sorted(tensors):
        dist.all_reduce(tensors[key], op=dist.ReduceOp.SUM)


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj`` (rank order) on every rank."""
    if not active():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (e.g. the run directory it created)."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if active():
        dist.barrier()


def teardown() -> None:
    if active():
        dist.destroy_process_group()
