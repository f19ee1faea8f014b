"""Measure the temporal rule's split at a LIF membrane against the signed ε-split (docs/method/neurons.md).

The membrane before the reset is the sum ``c = k + I`` of the carried membrane ``k = β·U[t−1]`` and the input
current ``I[t]``. spikelfp splits the feedback ``r_U`` that reached it by z⁺z⁻ over the two contributions,
``r_I = I/(|I| + |k| + ε)·r_U`` and ``r_carry = k/(|I| + |k| + ε)·r_U``; ``carry="abs"`` is the variant with
``|k|`` in the carry. The alternative measured here is the ε-rule on the signed sum, ``r_I = I/stab(c)·r_U``,
``r_carry = k/stab(c)·r_U``, installed for this script only by replacing the LIF's split function.

Setting: spiking MLP 784-500-10 (LIF β = 0.9 after both layers), constant encoding, T = 10, the first 5 000
MNIST training images, 3 epochs, batch 128, Adam 1e-3, LFP-ε with the sequence feedback, per-batch
max-normalisation, adaptive clipping 0.06, seeds 0-2; test accuracy on the full test set (10 000 images).
Writes docs/tables/membrane-split.json.

    OMP_NUM_THREADS=1 python docs/measurements/membrane_split.py
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from pathlib import Path

import torch

import spikelfp as sl
from spikelfp.neurons import lif as lif_module  # the split function of today's layout (2026-12)
from spikelfp.rules import stabilize

OUT = Path(__file__).resolve().parents[1] / "tables" / "membrane-split.json"
_SPLIT = lif_module._split_coefficients


def _signed(i, k, rule):
    den = stabilize(i + k, rule.epsilon)
    return i / den, k / den


def run(variant: str, seed: int, train, test) -> dict:
    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Flatten(2), torch.nn.Linear(784, 500), sl.LIF(0.9), torch.nn.Linear(500, 10), sl.LIF(0.9)
    )
    carry = "abs" if variant == "abs" else "signed"
    composite = sl.composites.Mixed(
        [sl.composites.get("epsilon"), sl.composites.LayerMap([(sl.LIF, sl.rules.MembraneSplit(carry=carry))])]
    )
    lfp = sl.LFP(net, composite, normalize="max-batch")
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    feedback = sl.feedback.SpikeSequence()
    lif_module._split_coefficients = _signed if variant == "signed-epsilon" else _SPLIT
    generator = torch.Generator().manual_seed(seed)
    accuracies = []
    start = time.perf_counter()
    try:
        for _ in range(3):
            for images, labels in train.batches(128, shuffle=True, generator=generator, standardize=False):
                out = lfp(sl.encode.constant(images, steps=10))
                lfp.backward(out, feedback(out, labels))
                sl.clip.adaptive_(net.parameters(), 0.06)
                optimizer.step()
                optimizer.zero_grad()
            with torch.no_grad():
                images, labels = next(test.batches(len(test), standardize=False))
                pred = sl.feedback.spike_count_prediction(net(sl.encode.constant(images, steps=10)))
            accuracies.append(round((pred == labels).float().mean().item(), 4))
    finally:
        lif_module._split_coefficients = _SPLIT
    return {
        "variant": variant,
        "seed": seed,
        "test_accuracy_per_epoch": accuracies,
        "seconds": time.perf_counter() - start,
    }


def main() -> None:
    train = sl.data.mnist(train=True).subset(5000)
    test = sl.data.mnist(train=False)
    runs = [run(v, s, train, test) for v in ("membrane-split", "abs", "signed-epsilon") for s in (0, 1, 2)]
    summary = {}
    for v in ("membrane-split", "abs", "signed-epsilon"):
        final = [r["test_accuracy_per_epoch"][-1] for r in runs if r["variant"] == v]
        summary[v] = {"mean": round(statistics.mean(final), 4), "sd": round(statistics.stdev(final), 4), "final": final}
    result = {
        "experiment": "LIF membrane split vs signed epsilon-split, spiking MLP 784-500-10, T=10, 5000 MNIST images",
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} thread(s)",
        "settings": {
            "epochs": 3,
            "batch": 128,
            "optimizer": "adam",
            "lr": 1e-3,
            "beta": 0.9,
            "steps": 10,
            "normalize": "max-batch",
            "clip": 0.06,
            "train_images": 5000,
            "test_images": len(test),
        },
        "summary": summary,
        "runs": runs,
    }
    OUT.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
