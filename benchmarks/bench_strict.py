"""Cost of the strictness walk (LFP-SPEC §9) against the LFP-ε training step it guards.

Three models: the spiking MLP 784-1000-1000-10 run multi-step (T = 25, B = 128, constant encoding), the
same layers as a snnTorch ``Leaky`` step loop over 25 steps (the graph with the most nodes a user builds:
one node per layer and step), and that loop writing each step's output into a preallocated buffer
(``out[t] = spk``: 25 in-place writes into views, ``CopySlices`` nodes, each traced once by the walk).
For each, the median time of one :func:`spikelfp.strict.inspect` walk of the output's graph and the median
time of a full LFP step (forward, feedback, backward with the walk, Adam step) are printed with their ratio.

    python benchmarks/bench_strict.py [--threads 1] [--repeats 7] [--batch 128]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

import spikelfp as sl
from spikelfp.strict import inspect


def median_s(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def spiking_mlp(T: int, B: int):
    torch.manual_seed(0)
    net = sl.models.spiking_mlp(beta=0.9)
    x = sl.encode.constant(torch.rand(B, 1, 28, 28), T)
    return net, lambda lfp: lfp(x)


def snntorch_loop(T: int, B: int, buffer: bool = False):
    import snntorch as snn

    torch.manual_seed(0)
    layers = [nn.Linear(784, 1000), snn.Leaky(beta=0.9), nn.Linear(1000, 1000), snn.Leaky(beta=0.9)]
    layers += [nn.Linear(1000, 10), snn.Leaky(beta=0.9)]
    net = nn.ModuleList(layers)
    x = torch.rand(B, 784)

    def forward(lfp):
        with lfp:
            mems = [m.init_leaky() for m in layers[1::2]]
            outs = torch.zeros(T, B, 10) if buffer else []
            for t in range(T):
                h = x
                for k in range(3):
                    h, mems[k] = layers[2 * k + 1](layers[2 * k](h), mems[k])
                if buffer:
                    outs[t] = h
                else:
                    outs.append(h)
            return outs if buffer else torch.stack(outs)

    return net, forward


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    y = torch.randint(0, 10, (args.batch,))
    feedback = sl.feedback.SpikeSequence()
    models = [
        ("spiking MLP, multi-step", spiking_mlp),
        ("snnTorch Leaky step loop", snntorch_loop),
        ("snnTorch Leaky step loop into a buffer", lambda T, B: snntorch_loop(T, B, buffer=True)),
    ]
    for name, build in models:
        net, forward = build(args.steps, args.batch)
        lfp = sl.LFP(net, "epsilon")
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)

        def step(net=net, forward=forward, lfp=lfp, opt=opt):
            out = forward(lfp)
            lfp.backward(out, feedback(out, y))
            opt.step()
            opt.zero_grad(set_to_none=True)

        step()  # warm-up
        out = forward(lfp)
        report = inspect(out.grad_fn, lfp.run)
        walk = median_s(lambda out=out, lfp=lfp: inspect(out.grad_fn, lfp.run), max(args.repeats, 50))
        full = median_s(step, args.repeats)
        print(
            f"{name}: {report.nodes} nodes, walk {walk * 1e6:.0f} µs, LFP step {full * 1e3:.1f} ms, "
            f"walk/step {walk / full:.2%}"
        )


if __name__ == "__main__":
    main()
