"""This code's training steps against an earlier revision's, side by side in one process.

The earlier revision's ``spikelfp/`` is extracted with ``git archive`` into a temporary folder and imported
under another name (its imports are relative), so both run interleaved on the same machine, threads and data.
Cases: the LIF step (``sl.LIF`` multi-step and a 25-step ``step`` loop under LFP-ε), the family's steps
(per-neuron/learnable LIF, CubaLIF, RLIF, LI), the spiking MLP 784-1000-1000-10 as a plain ``nn.Sequential``
and as ``SpikingSequential`` (LFP-ε, T = 25, B = 128), and the ANN LFP-ε step against backprop
(MLP 784-1000-1000-10, B = 256).

    python benchmarks/bench_revision.py --before 65f0eb6 [--threads 2] [--rounds 9]

Ratios are medians over interleaved rounds of ``now / before`` (below 1: faster now).
"""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

import torch
from common import interleaved, machine, median_ms, ratio, save
from torch import nn

import spikelfp as now

ROOT = Path(__file__).resolve().parents[1]


def load_revision(rev: str):
    """The package ``spikelfp`` as it was at ``rev``, imported as ``spikelfp_<rev>``."""
    blob = subprocess.run(["git", "archive", rev, "spikelfp"], cwd=ROOT, capture_output=True, check=True).stdout
    folder = Path(tempfile.mkdtemp(prefix="spikelfp-rev-"))
    with tarfile.open(fileobj=BytesIO(blob)) as tar:
        tar.extractall(folder, filter="data")
    name = f"spikelfp_{rev[:10]}"
    (folder / "spikelfp").rename(folder / name)
    sys.path.insert(0, str(folder))
    return importlib.import_module(name)


def family_case(sl, kind: str, T: int = 25, B: int = 128, n: int = 1000, mode: str = "multi"):
    torch.manual_seed(0)
    neuron = {
        "LIF": lambda: sl.LIF(0.9),
        "LIF-per-neuron": lambda: sl.LIF(torch.full((n,), 0.9)),
        "LIF-learn": lambda: sl.LIF(0.9, learn_beta=True),
        "CubaLIF": lambda: sl.CubaLIF(0.8, 0.9),
        "RLIF": lambda: sl.RLIF(n, 0.9),
        "LI": lambda: sl.LI(0.9),
    }[kind]()
    net = nn.Sequential(nn.Linear(784, n), neuron)
    x = torch.rand(T, B, 784)
    r = torch.randn(T, B, n)
    lfp = sl.LFP(net, "epsilon", normalize=None if mode == "step" else "max-batch")

    def multi():
        out = lfp(x)
        lfp.backward(out, r)
        net.zero_grad(set_to_none=True)

    def loop():
        with lfp:
            state, outs = None, []
            current = net[0](x)
            for t in range(T):
                o, state = neuron.step(current[t], state)
                outs.append(o)
            out = torch.stack(outs)
        lfp.backward(out, r)
        net.zero_grad(set_to_none=True)

    return multi if mode == "multi" else loop


def mlp_case(sl, plain: bool, T: int = 25, B: int = 128):
    torch.manual_seed(0)
    if plain:
        layers: list[nn.Module] = [nn.Flatten(2)]
        for n_in, n_out in ((784, 1000), (1000, 1000), (1000, 10)):
            layers += [nn.Linear(n_in, n_out), sl.LIF(0.9)]
        net = nn.Sequential(*layers)
    else:
        net = sl.models.spiking_mlp(beta=0.9)
    x = sl.encode.constant(torch.rand(B, 1, 28, 28), T)
    y = torch.randint(0, 10, (B,))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    lfp = sl.LFP(net, "epsilon", normalize="max-batch")
    feedback = sl.feedback.SpikeSequence()

    def step():
        out = lfp(x)
        lfp.backward(out, feedback(out, y))
        sl.clip.adaptive_(net.parameters(), 0.06)
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def ann_cases(sl, B: int = 256):
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Flatten(), nn.Linear(784, 1000), nn.ReLU(), nn.Linear(1000, 1000), nn.ReLU(), nn.Linear(1000, 10)
    )
    x = torch.randn(B, 1, 28, 28)
    y = torch.randint(0, 10, (B,))
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    feedback = sl.feedback.Softmax()
    lfp = sl.LFP(model, "epsilon", normalize="max-batch")

    def gradient():
        out = model(x)
        nn.functional.cross_entropy(out, y).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    def lfp_step():
        out = lfp(x)
        lfp.backward(out, feedback(out, y))
        opt.step()
        opt.zero_grad(set_to_none=True)

    return gradient, lfp_step


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--before", required=True, help="the git revision to compare against")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--quick", action="store_true", help="T = 10, B = 32 (a smoke run)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    old = load_revision(args.before)
    T, B = (10, 32) if args.quick else (25, 128)
    result = {"machine": machine(), "before": args.before, "cases": {}}
    groups = {
        "LIF multi-step": lambda sl: family_case(sl, "LIF", T, B),
        "LIF step loop": lambda sl: family_case(sl, "LIF", T, B, mode="step"),
        "LIF per-neuron": lambda sl: family_case(sl, "LIF-per-neuron", T, B),
        "LIF learnable": lambda sl: family_case(sl, "LIF-learn", T, B),
        "CubaLIF": lambda sl: family_case(sl, "CubaLIF", T, B),
        "RLIF": lambda sl: family_case(sl, "RLIF", T, B, n=256),
        "LI": lambda sl: family_case(sl, "LI", T, B),
        "spiking MLP (nn.Sequential)": lambda sl: mlp_case(sl, True, T, B),
        "spiking MLP (SpikingSequential)": lambda sl: mlp_case(sl, False, T, B),
    }
    for name, make in groups.items():
        times = interleaved({"now": make(now), "before": make(old)}, rounds=args.rounds)
        case = {k: round(median_ms(times, k), 2) for k in times}
        case["now/before"] = round(ratio(times, "now", "before"), 3)
        result["cases"][name] = case
        print(f"{name:34s} now {case['now']:8.1f} ms  before {case['before']:8.1f} ms  ratio {case['now/before']:.3f}")
    g_now, l_now = ann_cases(now)
    g_old, l_old = ann_cases(old)
    times = interleaved(
        {"gradient": g_now, "lfp now": l_now, "gradient (before)": g_old, "lfp before": l_old}, rounds=args.rounds
    )
    case = {k: round(median_ms(times, k), 2) for k in times}
    case["lfp/gradient now"] = round(ratio(times, "lfp now", "gradient"), 3)
    case["lfp/gradient before"] = round(ratio(times, "lfp before", "gradient (before)"), 3)
    case["now/before"] = round(ratio(times, "lfp now", "lfp before"), 3)
    result["cases"]["ANN MLP, LFP-ε vs backprop"] = case
    print(
        f"ANN MLP: LFP/backprop now {case['lfp/gradient now']:.3f}, before {case['lfp/gradient before']:.3f}, "
        f"LFP now/before {case['now/before']:.3f}"
    )
    print(save(f"revision_{args.before[:10]}", result))


if __name__ == "__main__":
    main()
