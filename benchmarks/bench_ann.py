"""Speed of an LFP training step against an autograd cross-entropy step (issue: core engine).

One training step = forward, feedback (or loss), backward, optimizer step, zero_grad, on the same
model and batch. Ratios are medians over interleaved rounds in one process.

    python benchmarks/bench_ann.py [--threads 2] [--rounds 15]
"""

from __future__ import annotations

import argparse

import torch
from common import interleaved, machine, median_ms, ratio, save
from torch import nn

import spikelfp as sl


def mlp() -> nn.Module:
    return nn.Sequential(
        nn.Flatten(), nn.Linear(784, 1000), nn.ReLU(), nn.Linear(1000, 1000), nn.ReLU(), nn.Linear(1000, 10)
    )


def steps_for(model: nn.Module, batch: int):
    x = torch.randn(batch, 1, 28, 28)
    y = torch.randint(0, 10, (batch,))
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    feedback = sl.feedback.Softmax()

    def gradient():
        out = model(x)
        nn.functional.cross_entropy(out, y).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    def lfp_step(composite: str):
        lfp = sl.LFP(model, composite, normalize="max-batch")

        def step():
            out = lfp(x)
            lfp.backward(out, feedback(out, y))
            opt.step()
            opt.zero_grad(set_to_none=True)

        return step

    return {"gradient": gradient, "lfp-epsilon": lfp_step("epsilon"), "lfp-zplus-zminus": lfp_step("zplus-zminus")}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=15)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    result = {"machine": machine(), "cases": {}}
    for name, model, batch in [("mlp-784-1000-1000-10", mlp(), 256), ("lenet", sl.models.lenet(), 128)]:
        times = interleaved(steps_for(model, batch), rounds=args.rounds)
        case = {
            "batch": batch,
            "ms": {k: round(median_ms(times, k), 2) for k in times},
            "lfp-epsilon/gradient": round(ratio(times, "lfp-epsilon", "gradient"), 3),
            "lfp-zplus-zminus/gradient": round(ratio(times, "lfp-zplus-zminus", "gradient"), 3),
        }
        result["cases"][name] = case
        print(name, case, flush=True)
    print("saved", save("ann_speed", result))


if __name__ == "__main__":
    main()
