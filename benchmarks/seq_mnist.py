"""Row-by-row sequential MNIST: a temporal task that needs memory (issue: neuron family, LFP-SPEC §9).

Each image is read one row per step: 28 steps of 28 pixels, time-first ``(28, B, 28)``. The network is
``Linear(28, H) → neuron → Linear(H, 10) → LIF`` with the neuron under test in the hidden layer
(``RLIF``, ``RCubaLIF``, ``CubaLIF`` or, as the memory-less control, ``LIF``). Every method trains the
same network from the same initial weights:

- ``lfp-epsilon`` / ``lfp-zplus-zminus``: LFP with the sequence feedback (Eq. A.16), per-batch
  max-normalisation and adaptive clipping 0.06 (the paper's SNN settings), Adam;
- ``surrogate``: BPTT with the fast-sigmoid(25) surrogate and cross-entropy on spike counts, Adam.

    python benchmarks/seq_mnist.py                                   # defaults below
    python benchmarks/seq_mnist.py --neurons rlif cuba --epochs 3 --limit-train 60000 --seeds 0 1 2

Writes ``benchmarks/results/seq_mnist.json`` (one entry per neuron × method, merged with earlier runs).
"""

from __future__ import annotations

import argparse
import json
import time
from functools import partial

import torch
from common import HERE, machine, save
from torch import nn

import spikelfp as sl
from spikelfp import data, models
from spikelfp.encode import rows


def build(neuron: str, hidden: int, alpha: float, beta: float) -> nn.Sequential:
    cells = {
        "rlif": lambda: sl.RLIF(hidden, beta),
        "rcuba": lambda: sl.RCubaLIF(hidden, alpha, beta),
        "cuba": lambda: sl.CubaLIF(alpha, beta),
        "lif": lambda: sl.LIF(beta),
    }
    return nn.Sequential(nn.Linear(28, hidden), cells[neuron](), nn.Linear(hidden, 10), sl.LIF(beta))


def evaluate(
    net: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch: int = 1000
) -> tuple[float, dict[str, float]]:
    """Test accuracy and each spiking layer's firing rate on the test set (spikes per neuron and step)."""
    correct, counts = 0, {}

    def hook(module, inputs, out, name):
        counts.setdefault(name, []).append((float(out.sum()), out.numel()))

    hooks = [m.register_forward_hook(partial(hook, name=name)) for name, m in models.spiking_modules(net)]
    try:
        with torch.no_grad():
            for i in range(0, len(labels), batch):
                out = net(rows(images[i : i + batch]))
                correct += int((out.sum(0).argmax(1) == labels[i : i + batch]).sum())
    finally:
        for h in hooks:
            h.remove()
    rates = {k: round(float(sum(s for s, _ in v)) / sum(n for _, n in v), 4) for k, v in counts.items()}
    return correct / len(labels), rates


def run(neuron: str, method: str, seed: int, args, train, test) -> dict:
    torch.manual_seed(seed)
    net = build(neuron, args.hidden, args.alpha, args.beta)
    optimizer = torch.optim.Adam(net.parameters(), lr=args.lr)
    feedback = sl.feedback.SpikeSequence()
    lfp = sl.LFP(net, method[4:], normalize="max-batch") if method.startswith("lfp-") else None
    x_train, y_train = train
    generator = torch.Generator().manual_seed(seed)
    accuracies, seconds, rates = [], [], {}
    for _ in range(args.epochs):
        started = time.time()
        order = torch.randperm(len(y_train), generator=generator)
        net.train()
        for i in range(0, len(order), args.batch_size):
            idx = order[i : i + args.batch_size]
            x, y = rows(x_train[idx]), y_train[idx]
            if lfp is not None:
                out = lfp(x)
                lfp.backward(out, feedback(out, y))
                sl.clip.adaptive_(net.parameters(), 0.06)
            else:
                with sl.surrogate.use(net, sl.surrogate.FastSigmoid(25.0)):
                    loss = sl.surrogate.ce_count_loss(net(x), y)
                    loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        seconds.append(round(time.time() - started, 1))
        net.eval()
        accuracy, rates = evaluate(net, *test)  # firing rates on the test set, for LFP and BPTT alike
        accuracies.append(round(accuracy, 4))
        print(f"{neuron:6s} {method:18s} seed {seed} epoch {len(accuracies)}: {accuracies[-1]:.4f} ({seconds[-1]} s)")
    return {"test_accuracy": accuracies, "seconds_per_epoch": seconds, "firing_rates": rates}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--neurons", nargs="+", default=["rlif", "cuba", "lif"], choices=["rlif", "rcuba", "cuba", "lif"])
    p.add_argument("--methods", nargs="+", default=["lfp-epsilon", "surrogate"])
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--limit-train", type=int, default=20000)
    p.add_argument("--limit-test", type=int, default=10000)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--alpha", type=float, default=0.8)
    p.add_argument("--beta", type=float, default=0.9)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    train_set, test_set = data.mnist(train=True, download=False), data.mnist(train=False, download=False)
    train = (train_set.to_float(train_set.images[: args.limit_train], False), train_set.labels[: args.limit_train])
    test = (test_set.to_float(test_set.images[: args.limit_test], False), test_set.labels[: args.limit_test])
    path = HERE / "results" / "seq_mnist.json"
    summary = json.loads(path.read_text()) if path.exists() else {"runs": {}}
    summary["machine"] = machine()
    skip = ("neurons", "methods", "threads", "seeds")
    for seed in args.seeds:
        for neuron in args.neurons:
            for method in args.methods:
                result = run(neuron, method, seed, args, train, test)
                result["settings"] = {k: v for k, v in vars(args).items() if k not in skip} | {"seed": seed}
                summary["runs"][f"{neuron}/{method}/n{len(train[1])}/seed{seed}"] = result
                save("seq_mnist", summary)


if __name__ == "__main__":
    main()
