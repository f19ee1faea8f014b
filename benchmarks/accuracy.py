"""Accuracy runs behind benchmarks/RESULTS.md: full-data trainings with the paper's settings.

    python benchmarks/accuracy.py fig5-lenet        # LeNet, SGD 1e-2 momentum 0.9, batch 32, 10 epochs
    python benchmarks/accuracy.py snn-mlp           # spiking MLP, Table 1 settings, 3 epochs
    python benchmarks/accuracy.py snn-lenet         # spiking LeNet, Table 1 settings, 3 epochs
    python benchmarks/accuracy.py nmnist            # spiking LeNet on the N-MNIST subset
    python benchmarks/accuracy.py nmnist-cuba       # the same with CubaLIF neurons (LFP-SPEC §9)
    python benchmarks/accuracy.py <suite> --only <name> [--epochs N] [--limit-train N]
    python benchmarks/accuracy.py <suite> --seeds 3                 # seeds 0, 1, 2 of every run
    python benchmarks/accuracy.py nmnist --grid beta=0.6,0.9 lr=1e-3,1e-4 --validate 200
    python benchmarks/accuracy.py <suite> --shard 0/2 --threads 1   # and 1/2 in a second process

Each run writes its folder under runs/bench/<suite>/<run>/ (metrics.jsonl, checkpoints) and the
suite's summary to benchmarks/results/accuracy_<suite>.json: every run (accuracy per epoch, seconds
per epoch, firing rate per spiking layer) and, per group of seeds, the mean, sample standard
deviation, min and max of the final accuracy. Runs resume from their checkpoints. ``--validate N``
tunes without touching the test set: it trains on all but the last N training samples, evaluates on
those N, and writes accuracy_<suite>-validation.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import fcntl
import itertools
import json
import os
import statistics
import time
from pathlib import Path

import torch
from common import machine

from spikelfp.reproduce import parse_shard
from spikelfp.train import Config, Trainer
from spikelfp.userdata import load

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

# Best against best (issue 13): each method at its own best cell of the Fig. A.4 sweep
# (`spikelfp reproduce fig4-snn-mnist --sweep --scale quick`: 10 000 training images, 2 epochs, full
# test set; docs/RESULTS.md), then full data, 3 epochs, `--seeds 3`.
SWEEP_BEST = {
    "lfp-epsilon": dict(method="lfp-epsilon", beta=0.95, steps=25, lr=5e-4),
    "lfp-zplus-zminus": dict(method="lfp-zplus-zminus", beta=0.9, steps=15, lr=1e-3),
    "surrogate": dict(method="surrogate", beta=0.95, steps=15, lr=1e-3),
}
SUITES["snn-mlp-best"] = {name: dict(model="snn-mlp", epochs=3, **s) for name, s in SWEEP_BEST.items()}
SUITES["snn-lenet-best"] = {
    name: dict(model="snn-lenet", epochs=3, **s) for name, s in SWEEP_BEST.items() if name != "lfp-zplus-zminus"
}

# N-MNIST, each method at its best of β {0.6, 0.9, 0.95} × lr {1e-3, 5e-4, 1e-4} on held-out training
# samples (`nmnist --grid beta=0.6,0.9,0.95 lr=0.001,0.0005,0.0001 --validate 200`: 800 train / 200
# validation, final-epoch accuracy, ties broken by the mean of the last 5 epochs), then `--seeds 3`
SUITES["nmnist-best"] = {
    "lfp-epsilon": dict(SUITES["nmnist"]["lfp-epsilon"], beta=0.95, lr=1e-3),
    "surrogate": dict(SUITES["nmnist"]["surrogate"], beta=0.9, lr=1e-3),
}

# the same N-MNIST LeNet with current-based neurons (CubaLIF, α = 0.8) in every LIF's place (LFP-SPEC §9)
SUITES["nmnist-cuba"] = {name: dict(run, neuron="cuba", alpha=0.8) for name, run in SUITES["nmnist"].items()}


def _value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def expand(suite: dict[str, dict], grid: list[str], seeds: int) -> list[tuple[str, str, str, dict]]:
    """``(run key, group, suite entry, settings)`` for every run: each entry × the ``key=v1,v2`` grid × seeds.

    A run's group is its name without the seed; seed 0 keeps the plain name (the suites' older rows).
    """
    axes = []
    for item in grid:
        key, _, values = item.partition("=")
        if key not in Config.__dataclass_fields__ or not values:
            raise SystemExit(f"--grid {item!r}: want <Config field>=v1,v2,...")
        axes.append([(key, _value(v)) for v in values.split(",")])
    runs = []
    for name, settings in suite.items():
        for combo in itertools.product(*axes):
            group = name + "".join(f"-{k}{v:g}" if isinstance(v, float) else f"-{k}{v}" for k, v in combo)
            for seed in range(seeds):
                key = group if seed == 0 else f"{group}-s{seed}"
                runs.append((key, group, name, {**settings, **dict(combo), "seed": seed}))
    return runs


def split_off(dataset, n: int):
    """``(training part, the last n samples)``: a validation set carved from the training data."""
    if not 0 < n < len(dataset):
        raise SystemExit(f"--validate {n}: need 0 < n < {len(dataset)} training samples")
    if hasattr(dataset, "indices"):  # EventSet
        return (
            dataclasses.replace(dataset, indices=dataset.indices[:-n]),
            dataclasses.replace(dataset, indices=dataset.indices[-n:]),
        )
    head = dataclasses.replace(dataset, images=dataset.images[:-n], labels=dataset.labels[:-n])
    return head, dataclasses.replace(dataset, images=dataset.images[-n:], labels=dataset.labels[-n:])


def aggregate(runs: dict[str, dict]) -> dict[str, dict]:
    """Per group: final accuracy mean, sample standard deviation, min and max over seeds; mean time and rates."""
    groups: dict[str, list[dict]] = {}
    for key, run in runs.items():
        if run.get("status") == "ok" and run.get("test_accuracy"):
            groups.setdefault(run.get("group", key), []).append(run)
    out = {}
    for group, members in groups.items():
        final = [m["test_accuracy"][-1] for m in members]
        rates = [m["firing_rates"] for m in members if m.get("firing_rates")]
        out[group] = {
            "seeds": sorted(m["settings"].get("seed", 0) for m in members),
            "mean": round(statistics.mean(final), 5),
            "std": round(statistics.stdev(final), 5) if len(final) > 1 else None,
            "min": min(final),
            "max": max(final),
            "seconds_per_epoch": round(statistics.mean(statistics.mean(m["seconds_per_epoch"]) for m in members), 1),
            "firing_rates": {k: round(statistics.mean(r[k] for r in rates), 4) for k in rates[0]} if rates else None,
        }
    return out


def save_merged(path: Path, update: dict[str, dict], machine_info: dict) -> None:
    """Merge this process's runs into the summary under a file lock (several processes may share a suite)."""
    path.parent.mkdir(exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        summary = json.loads(path.read_text()) if path.exists() else {"runs": {}}
        summary["machine"] = machine_info
        summary["runs"].update(update)
        summary["aggregate"] = aggregate(summary["runs"])
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(summary, indent=2) + "\n")
        os.replace(tmp, path)


def _parse_shard(text: str) -> tuple[int, int]:
    try:
        return parse_shard(text)
    except ValueError as exc:
        raise SystemExit(f"--shard: {exc}") from None


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("suite", choices=list(SUITES))
    p.add_argument("--only", nargs="*", default=None)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--limit-train", type=int, default=None)
    p.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 per run")
    p.add_argument("--grid", nargs="*", default=[], help="Config field=v1,v2,... (cartesian product)")
    p.add_argument("--validate", type=int, default=None, help="evaluate on the last N training samples")
    p.add_argument("--shard", default="0/1", help="i/n: this process runs every n-th run from i")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--progress", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    index, count = _parse_shard(args.shard)
    tag = f"{args.suite}-validation" if args.validate else args.suite
    summary_path = Path(__file__).parent / "results" / f"accuracy_{tag}.json"
    done = json.loads(summary_path.read_text())["runs"] if summary_path.exists() else {}
    datasets: dict[tuple, tuple] = {}
    todo = [r for r in expand(SUITES[args.suite], args.grid, args.seeds) if not args.only or r[2] in args.only]
    if args.only and not todo:
        raise SystemExit(f"--only {args.only}: no such run in {args.suite} ({', '.join(SUITES[args.suite])})")
    for key, group, _, settings in todo[index::count]:
        if args.epochs is not None:
            settings["epochs"] = args.epochs
        if args.limit_train is not None:
            settings["limit_train"] = args.limit_train
        config = Config(**settings)
        train_set = test_set = None
        if args.validate:
            where = (config.dataset, config.steps)
            if where not in datasets:
                full = load(config.dataset, train=True, root=config.data_root, steps=config.steps)
                datasets[where] = split_off(full, args.validate)
            train_set, test_set = datasets[where]
        out = Path("runs/bench") / (f"{tag}{args.validate}" if args.validate else tag) / key
        trainer = Trainer(config, out, train_set=train_set, test_set=test_set, progress=args.progress)
        if (out / "checkpoint.pt").exists():
            try:
                trainer.load_checkpoint(out)
            except ValueError as exc:
                print(f"{key}: not resuming ({exc})")
        started, resumed_at = time.time(), trainer.epoch
        if resumed_at >= config.epochs and key in done:
            print(f"{key}: finished before; its summary entry stays")
            continue
        try:
            trainer.fit()
            status = "ok"
        except Exception as exc:
            status = f"{type(exc).__name__}: {exc}"
        run = {
            "group": group,
            "settings": settings,
            "evaluated_on": f"last {args.validate} training samples" if args.validate else "test set",
            "status": status,
            "test_accuracy": [round(m["test_accuracy"], 4) for m in trainer.history],
            "seconds_per_epoch": [m["seconds"] for m in trainer.history],
            "firing_rates": trainer.history[-1].get("firing_rates") if trainer.history else None,
            "wall_seconds": round(time.time() - started, 1),
        }
        print(key, json.dumps(run), flush=True)
        save_merged(summary_path, {key: run}, machine())


if __name__ == "__main__":
    main()
