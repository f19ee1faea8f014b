"""DistributedDataParallel: DDP's own all-reduce carries LFP updates; 2 CPU processes over gloo.

Either semantics equals one process that sees the union of the ranks' batches (checked to 1e-6):
DDP's default average with mean-reduced feedback and no normalisation, or the summing hook
(``sl.distributed.sum_updates``) with summed feedback and per-sample max-normalisation.
"""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

import spikelfp as sl

WORLD, STEPS, BATCH = 2, 3, 8


MODES = {"average": ("mean", None), "sum": ("sum", "max")}  # mode → (feedback reduction, normalize)


def make(kind: str, mode: str = "average"):
    torch.manual_seed(0)
    reduction = MODES[mode][0]
    if kind == "mlp":
        model = nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 4)).double()
        xs = torch.randn(STEPS, BATCH, 12, dtype=torch.float64)
        feedback = sl.feedback.Softmax(reduction=reduction)
    else:
        model = nn.Sequential(nn.Linear(12, 16), sl.LIF(0.9), nn.Linear(16, 4), sl.LIF(0.9)).double()
        with torch.no_grad():
            model[0].weight.mul_(3)
            model[2].weight.mul_(3)
        xs = torch.rand(STEPS, 6, BATCH, 12, dtype=torch.float64)  # (steps, T, B, features)
        feedback = sl.feedback.SpikeSequence(reduction=reduction)
    ys = torch.randint(0, 4, (STEPS, BATCH))
    return model, xs, ys, feedback


def batch_of(kind, x, rank=None):
    if rank is None:
        return x
    return x[rank::WORLD] if kind == "mlp" else x[:, rank::WORLD]


def train(kind, mode, rank=None):
    model, xs, ys, feedback = make(kind, mode)
    net = model if rank is None else nn.parallel.DistributedDataParallel(model)
    if rank is not None and mode == "sum":
        sl.distributed.sum_updates(net)
    lfp = sl.LFP(net, "epsilon", normalize=MODES[mode][1])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for step in range(STEPS):
        x = batch_of(kind, xs[step], rank)
        y = ys[step] if rank is None else ys[step][rank::WORLD]
        out = lfp(x)
        lfp.backward(out, feedback(out, y))
        optimizer.step()
        optimizer.zero_grad()
    return [p.detach().clone() for p in model.parameters()]


def worker(rank, kind, mode, init_file, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        torch.save(train(kind, mode, rank), os.path.join(out_dir, f"{rank}.pt"))
        dist.barrier()  # no rank tears gloo down while the other still communicates
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("kind", ["mlp", "snn"])
@pytest.mark.parametrize("mode", ["average", "sum"])
def test_ddp_matches_one_process_on_the_union(tmp_path, kind, mode):
    mp.spawn(worker, args=(kind, mode, str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, join=True)
    ranks = [torch.load(tmp_path / f"{r}.pt", weights_only=True) for r in range(WORLD)]
    single = train(kind, mode)
    for p0, p1, ps, init in zip(ranks[0], ranks[1], single, make(kind, mode)[0].parameters()):
        assert torch.equal(p0, p1)  # DDP keeps the ranks identical
        torch.testing.assert_close(p0, ps, rtol=0, atol=1e-6)
        assert not torch.allclose(ps, init.detach())  # and training moved them


def trainer_worker(rank, init_file, out_dir, data_dir):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        from spikelfp.train import Config, Trainer

        train_set = sl.data.mnist(train=True, download=False)
        test_set = sl.data.mnist(train=False, download=False)
        config = Config(model="lenet", epochs=1, batch_size=16, limit_train=256, limit_test=64, normalize="max")
        trainer = Trainer(
            config, data_dir, train_set=train_set, test_set=test_set, progress=False, rank=rank, world_size=WORLD
        )
        metrics = trainer.fit()
        torch.save(
            {"params": [p.detach() for p in trainer.model.parameters()], "metrics": metrics},
            os.path.join(out_dir, f"trainer{rank}.pt"),
        )
        del trainer
        dist.barrier()  # no rank tears gloo down while the other still communicates
    finally:
        dist.destroy_process_group()


def test_trainer_under_ddp_only_rank0_writes(tmp_path):
    run = tmp_path / "run"
    mp.spawn(trainer_worker, args=(str(tmp_path / "init"), str(tmp_path), str(run)), nprocs=WORLD, join=True)
    a = torch.load(tmp_path / "trainer0.pt", weights_only=False)
    b = torch.load(tmp_path / "trainer1.pt", weights_only=False)
    for p0, p1 in zip(a["params"], b["params"]):
        assert torch.equal(p0, p1)
    assert a["metrics"]["processes"] == 2 and a["metrics"]["test_accuracy"] == b["metrics"]["test_accuracy"]
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.pt", "config.json", "metrics.jsonl", "model.pt"]


def test_cli_runs_under_torchrun(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "spikelfp.cli",
        "train",
        "--model",
        "lenet",
        "--limit-train",
        "128",
        "--limit-test",
        "32",
        "--out",
        str(out),
        "--no-progress",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("test accuracy:") == 1  # only rank 0 prints
    assert "on 2 processes" in result.stdout
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 1 and '"processes": 2' in lines[0]
