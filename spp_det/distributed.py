"""Running the pipeline as several processes (``torchrun``): which process this is, and the few
collective steps the stages need.

Conventions: ``torchrun --nproc-per-node N [--nnodes M ...] tools/run_pipeline.py --config C`` starts
``N x M`` processes with ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` in their environment (standard
rendezvous; the work directory must be on a file system every node sees). Every rank walks the same
stage table and decides run or skip from the same manifests; a barrier after each stage keeps them in
step. Rank 0 (:attr:`Dist.main`) holds the work-directory lock and writes the config, manifests and
merged outputs. Per-image stages (proposals, conv5, test) give rank ``r`` the images
``records[r::world]`` (:meth:`Dist.shard`); fine-tuning shares each mini-batch's parts among the
ranks (DistributedDataParallel, ``finetune.micro_batches``); SVMs and box regressors share the
classes (:meth:`Dist.shard` of the class indices); the other stages run on rank 0 while the others
wait, rank 0 with their threads (:meth:`Dist.alone`). Barriers and small Python objects go through
gloo; gradients through gloo on CPU and nccl on GPU (the process group is ``cpu:gloo,cuda:nccl``
there); each rank uses the GPU of its ``LOCAL_RANK``.
"""
from __future__ import annotations

import datetime
import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Sequence, TypeVar

T = TypeVar("T")

# a barrier waits for the slowest rank's stage (rank 0 fine-tunes alone): far beyond gloo's 30 min default
BARRIER_TIMEOUT = datetime.timedelta(hours=48)


@dataclass(frozen=True)
class Dist:
    """This process's place among ``world`` processes (``rank`` 0 .. world - 1), ``local_world`` of them on
    this machine; the default is one process."""

    rank: int = 0
    world: int = 1
    local_world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def shard(self, items: Sequence[T]) -> list[T]:
        """This rank's share of ``items``: every ``world``-th item from position ``rank``."""
        return list(items)[self.rank::self.world]

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as td
            td.barrier()

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order, on rank 0 (other ranks get ``[]``)."""
        if self.world == 1:
            return [obj]
        import torch.distributed as td
        out = [None] * self.world if self.main else None
        td.gather_object(obj, out, dst=0)
        return out or []

    def all_gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order, on every rank."""
        if self.world == 1:
            return [obj]
        import torch.distributed as td
        out = [None] * self.world
        td.all_gather_object(out, obj)
        return out

    def sum(self, value: float) -> float:
        """The sum of every rank's ``value`` (float64), on every rank."""
        if self.world == 1:
            return value
        import torch
        import torch.distributed as td
        t = torch.tensor([value], dtype=torch.float64)
        td.all_reduce(t)
        return float(t[0])

    @contextmanager
    def alone(self):
        """For a stage that rank 0 runs while the other ranks wait at a barrier (blocked in gloo, not
        spinning): rank 0's torch thread count is multiplied by the ranks on its machine (at most its
        cores), so the waiting ranks' cores work; restored on exit. The other ranks are unchanged.

        torchrun gives each of N ranks on a machine 1 thread, so without this, fine-tuning on rank 0
        alone used 1 of 2 cores: 0.087 s/it on the demo, 0.051 with both, as in one process
        (docs/BENCHMARKS.md, "torchrun: 2 processes against 1")."""
        import torch
        before = torch.get_num_threads()
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        if self.main and self.local_world > 1:
            torch.set_num_threads(max(before, min(before * self.local_world, cores)))
        try:
            yield
        finally:
            if torch.get_num_threads() != before:
                torch.set_num_threads(before)

    @classmethod
    def from_env(cls) -> "Dist":
        """One process, or (``WORLD_SIZE`` > 1, as torchrun sets it) this rank, with the process group
        initialised (gloo; gloo and nccl on a GPU machine, where this rank's GPU is made the current one)."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        import torch
        import torch.distributed as td
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
        if not td.is_initialized():
            td.init_process_group("cpu:gloo,cuda:nccl" if cuda else "gloo", timeout=BARRIER_TIMEOUT)
        return cls(td.get_rank(), td.get_world_size(), int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
