"""Throughput of spiking-MLP LFP training with 1 and 2 processes (DDP over gloo) on this machine.

The global batch is the same (128) in every setting: one process with all threads and batch 128,
or two processes with an equal share of the threads and batch 64 each. The all-reduce overhead is
the difference between DDP steps and the same steps under ``no_sync()`` (no communication).

    python benchmarks/bench_ddp.py [--steps 20] [--T 25]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from common import machine, save
from torch import nn

import spikelfp as sl


def make_step(net: nn.Module, batch: int, T: int, ddp: bool):
    torch.manual_seed(0)
    model = net
    if ddp:
        model = nn.parallel.DistributedDataParallel(net)
        sl.distributed.sum_updates(model)
    x = sl.encode.constant(torch.rand(batch, 1, 28, 28), T)
    y = torch.randint(0, 10, (batch,))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    lfp = sl.LFP(model, "epsilon", normalize="max")
    feedback = sl.feedback.SpikeSequence()

    def step(sync: bool = True):
        ctx = model.no_sync() if (ddp and not sync) else _null()
        with ctx:
            out = lfp(x)
            lfp.backward(out, feedback(out, y))
        sl.clip.adaptive_(net.parameters(), 0.06)
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def timed(step, n: int, **kw) -> float:
    for _ in range(2):
        step(**kw)
    start = time.perf_counter()
    for _ in range(n):
        step(**kw)
    return (time.perf_counter() - start) / n


def worker(rank: int, world: int, init: str, out: str, steps: int, T: int, threads: int) -> None:
    torch.set_num_threads(threads)
    dist.init_process_group("gloo", init_method=f"file://{init}", rank=rank, world_size=world)
    try:
        step = make_step(sl.models.spiking_mlp(beta=0.9), 128 // world, T, ddp=True)
        dist.barrier()
        with_sync = timed(step, steps)
        dist.barrier()
        without = timed(step, steps, sync=False)
        if rank == 0:
            with open(out, "w") as f:
                json.dump({"step_s": with_sync, "step_no_sync_s": without}, f)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--T", type=int, default=25)
    args = p.parse_args()
    cores = os.cpu_count() or 2
    torch.set_num_threads(cores)
    single = timed(make_step(sl.models.spiking_mlp(beta=0.9), 128, args.T, ddp=False), args.steps)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "r.json")
        mp.spawn(worker, args=(2, os.path.join(tmp, "init"), out, args.steps, args.T, max(1, cores // 2)), nprocs=2)
        two = json.load(open(out))
    result = {
        "machine": machine(),
        "T": args.T,
        "global_batch": 128,
        "1_process": {"threads": cores, "step_s": round(single, 4), "samples_per_s": round(128 / single, 1)},
        "2_processes": {
            "threads_each": max(1, cores // 2),
            "step_s": round(two["step_s"], 4),
            "samples_per_s": round(128 / two["step_s"], 1),
            "step_without_allreduce_s": round(two["step_no_sync_s"], 4),
            "allreduce_overhead_s": round(two["step_s"] - two["step_no_sync_s"], 4),
            "allreduce_overhead_fraction": round((two["step_s"] - two["step_no_sync_s"]) / two["step_s"], 3),
        },
        "scaling_2_over_1": round(single / two["step_s"], 3),
    }
    print(json.dumps(result, indent=2))
    save("ddp_throughput", result)


if __name__ == "__main__":
    main()
