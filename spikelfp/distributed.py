"""Several processes with PyTorch's own DistributedDataParallel (no hand-written communication).

LFP writes ``p.grad = −Δp`` through autograd, so DDP all-reduces LFP updates like gradients. Two
semantics are possible:

- DDP's default **averages** the ranks' updates. With ``reduction="mean"`` feedback and no
  normalisation, that is exactly one process that sees the union of the ranks' batches.
- LFP's updates are **sums** over samples (LFP-SPEC §3), and max-normalisation erases the
  feedback's batch scale below the output layer. :func:`sum_updates` makes DDP sum instead, so that
  ``W`` processes with batches of ``B`` are one process with batches of ``W·B``, for any
  per-sample normalisation. The Trainer uses it for ``reduction="sum"``.

``normalize="max-batch"`` takes each rank's own maximum and so differs slightly from one process.
"""

import datetime
import os

import torch
import torch.distributed as dist
from torch import nn

from .device import backend_for
from .device import resolve as resolve_device

__all__ = ["Reduction", "init_from_env", "shutdown", "sum_updates"]


class Reduction:
    """The state of the hook :func:`sum_updates` installs: ``mode`` is ``"sum"`` or ``"mean"``.

    Switch it per step when one run mixes summed LFP updates and averaged gradients (gradient
    pre-training); the Trainer does.
    """

    def __init__(self, mode: str = "sum") -> None:
        self.mode = mode


def _hook(state: Reduction, bucket: dist.GradBucket) -> torch.futures.Future[torch.Tensor]:  # DDP checks these
    """DDP communication hook: all-reduce the bucket by SUM; in "mean" mode divide by the world size first."""
    buffer = bucket.buffer()
    if state.mode == "mean":
        buffer.div_(dist.get_world_size())
    work = dist.all_reduce(buffer, op=dist.ReduceOp.SUM, async_op=True)
    return work.get_future().then(lambda fut: fut.value()[0])


def sum_updates(ddp: nn.parallel.DistributedDataParallel) -> Reduction:
    """Make ``ddp`` sum (not average) the updates of its ranks; returns the hook's :class:`Reduction`."""
    if not isinstance(ddp, nn.parallel.DistributedDataParallel):
        raise TypeError(f"sum_updates needs a DistributedDataParallel model, got {type(ddp).__name__}")
    state = Reduction("sum")
    ddp.register_comm_hook(state, _hook)
    return state


def init_from_env(device: str | torch.device | None = "auto") -> tuple[int, int]:
    """Join the process group that ``torchrun`` describes in the environment; ``(rank, world)``.

    Without ``torchrun`` (no ``WORLD_SIZE`` > 1) nothing happens and ``(0, 1)`` is returned. The backend
    follows the training device (:func:`spikelfp.device.resolve`: each process its ``cuda:$LOCAL_RANK``):
    NCCL for CUDA, gloo for CPU, and each process gets an equal share of the CPU threads.

    Collectives time out after ``$SPIKELFP_DIST_TIMEOUT`` seconds (default 300, not PyTorch's 30 minutes),
    so a rank that hangs without dying stops the group in minutes; a rank that fails leaves at once
    (:func:`shutdown`), and the others' collectives then fail within seconds.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    if not dist.is_initialized():
        target = resolve_device(device)
        if target.type == "cuda":
            torch.cuda.set_device(target)
        timeout = float(os.environ.get("SPIKELFP_DIST_TIMEOUT", "300"))
        if not timeout > 0:
            raise ValueError(f"SPIKELFP_DIST_TIMEOUT must be a positive number of seconds, got {timeout}")
        dist.init_process_group(backend_for(target), timeout=datetime.timedelta(seconds=timeout))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))
    return dist.get_rank(), dist.get_world_size()


def shutdown(failed: bool) -> None:
    """Leave the process group (if any): after a normal end, meet the other ranks first; after a failure, not.

    A barrier on the error path is what deadlocks a group when one rank fails alone (the others wait in a
    different collective until the timeout). Without it, this rank's exit closes its connections and the
    other ranks' pending collectives fail at once.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return
    if not failed:
        dist.barrier()  # no rank tears gloo down while another still communicates
    dist.destroy_process_group()
