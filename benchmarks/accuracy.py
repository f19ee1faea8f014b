"""Accuracy runs behind benchmarks/RESULTS.md: full-data trainings with the paper's settings.

    python benchmarks/accuracy.py fig5-lenet        # LeNet, SGD 1e-2 momentum 0.9, batch 32, 10 epochs
    python benchmarks/accuracy.py snn-mlp           # spiking MLP, Table 1 settings, 3 epochs
    python benchmarks/accuracy.py snn-lenet         # spiking LeNet, Table 1 settings, 3 epochs
    python benchmarks/accuracy.py nmnist            # spiking LeNet on the N-MNIST subset
    python benchmarks/accuracy.py nmnist-cuba       # the same with CubaLIF neurons (LFP-SPEC §9)
    python benchmarks/accuracy.py <suite> --only <name> [--epochs N] [--limit-train N]

Each run writes its folder under runs/bench/<suite>/<name>/ (metrics.jsonl, checkpoints) and the
suite's summary to benchmarks/results/accuracy_<suite>.json. Runs resume from their checkpoints.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from common import machine, save

from spikelfp.train import Config, Trainer

SUITES: dict[str, dict[str, dict]] = {
    # Fig. 5 (A.6.4): LeNet on MNIST, SGD lr 1e-2, momentum 0.9, batch 32, max-normalisation, 10 epochs
    "fig5-lenet": {
        "gradient": dict(model="lenet", method="gradient", lr=1e-2, epochs=10),
        "lfp-epsilon-max-sample": dict(model="lenet", method="lfp-epsilon", lr=1e-2, normalize="max", epochs=10),
        "lfp-epsilon-max-batch": dict(model="lenet", method="lfp-epsilon", lr=1e-2, normalize="max-batch", epochs=10),
        "lfp-epsilon-max-batch-lr3e-3": dict(
            model="lenet", method="lfp-epsilon", lr=3e-3, normalize="max-batch", epochs=10
        ),
        "lfp-epsilon-sigmoid-max-batch-lr3e-3": dict(
            model="lenet", method="lfp-epsilon", lr=3e-3, normalize="max-batch", feedback="sigmoid", epochs=10
        ),
        "lfp-zplus-zminus-max-batch-lr3e-3": dict(
            model="lenet", method="lfp-zplus-zminus", lr=3e-3, normalize="max-batch", epochs=10
        ),
    },
    # Table 1 / Fig. 4 (A.6.3): Adam, batch 128, 3 epochs, T=25; LFP with max-normalisation + clipping 0.06
    "snn-mlp": {
        "lfp-epsilon": dict(model="snn-mlp", method="lfp-epsilon", lr=1e-3, beta=0.9, steps=25, epochs=3),
        "lfp-epsilon-max-sample": dict(
            model="snn-mlp", method="lfp-epsilon", lr=1e-3, beta=0.9, steps=25, epochs=3, normalize="max"
        ),
        "lfp-zplus-zminus": dict(model="snn-mlp", method="lfp-zplus-zminus", lr=1e-4, beta=0.9, steps=25, epochs=3),
        "surrogate": dict(model="snn-mlp", method="surrogate", lr=1e-3, beta=0.6, steps=25, epochs=3),
    },
    # N-MNIST subset (1000 train / 100 test), spiking LeNet on (T, B, 2, 34, 34) event frames
    "nmnist": {
        "lfp-epsilon": dict(
            model="snn-lenet", dataset="nmnist", method="lfp-epsilon", lr=1e-3, steps=10, epochs=15, batch_size=32
        ),
        "surrogate": dict(
            model="snn-lenet",
            dataset="nmnist",
            method="surrogate",
            lr=1e-3,
            beta=0.9,
            steps=10,
            epochs=15,
            batch_size=32,
        ),
    },
    "snn-lenet": {
        "lfp-epsilon": dict(model="snn-lenet", method="lfp-epsilon", lr=1e-3, beta=0.9, steps=25, epochs=3),
        "surrogate": dict(model="snn-lenet", method="surrogate", lr=1e-3, beta=0.6, steps=25, epochs=3),
    },
}

# the same N-MNIST LeNet with current-based neurons (CubaLIF, α = 0.8) in every LIF's place (LFP-SPEC §9)
SUITES["nmnist-cuba"] = {name: dict(run, neuron="cuba", alpha=0.8) for name, run in SUITES["nmnist"].items()}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("suite", choices=list(SUITES))
    p.add_argument("--only", nargs="*", default=None)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--limit-train", type=int, default=None)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--progress", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    summary_path = Path(__file__).parent / "results" / f"accuracy_{args.suite}.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {"runs": {}}
    summary["machine"] = machine()
    for name, settings in SUITES[args.suite].items():
        if args.only and name not in args.only:
            continue
        settings = dict(settings)
        if args.epochs is not None:
            settings["epochs"] = args.epochs
        settings["limit_train"] = args.limit_train
        out = Path("runs/bench") / args.suite / name
        trainer = Trainer(Config(**settings), out, progress=args.progress)
        if (out / "checkpoint.pt").exists():
            try:
                trainer.load_checkpoint(out)
            except ValueError as exc:
                print(f"{name}: not resuming ({exc})")
        started = time.time()
        try:
            trainer.fit()
            status = "ok"
        except Exception as exc:
            status = f"{type(exc).__name__}: {exc}"
        summary["runs"][name] = {
            "settings": settings,
            "status": status,
            "test_accuracy": [round(m["test_accuracy"], 4) for m in trainer.history],
            "seconds_per_epoch": [m["seconds"] for m in trainer.history],
            "firing_rates": trainer.history[-1].get("firing_rates") if trainer.history else None,
            "wall_seconds": round(time.time() - started, 1),
        }
        print(name, json.dumps(summary["runs"][name]), flush=True)
        save(f"accuracy_{args.suite}", summary)


if __name__ == "__main__":
    main()
