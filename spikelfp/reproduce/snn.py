"""Fig. 4 and its sensitivity sweep (Fig. A.4): spiking MLP/LeNet on MNIST, LFP against surrogate BPTT."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from .. import data
from .common import _pick, _plt, _train, _write

__all__ = ["SWEEP_GRID", "fig4_snn_mnist", "parse_shard"]


# --------------------------------------------------------------------------------------------------
# Fig. 4: spiking networks on MNIST (and the Fig. A.4 sweep)
# --------------------------------------------------------------------------------------------------
FIG4_METHODS = {  # Table 1's best settings
    "lfp-epsilon": dict(method="lfp-epsilon", lr=1e-3, beta=0.9),
    "lfp-zplus-zminus": dict(method="lfp-zplus-zminus", lr=1e-4, beta=0.9),
    "surrogate": dict(method="surrogate", lr=1e-3, beta=0.6),
}


def fig4_snn_mnist(
    out: Path, scale: str = "full", model: str = "snn-mlp", sweep: bool = False, shard: str | None = None, **_
) -> dict:
    plt = _plt()
    train, test = data.mnist(True), data.mnist(False)
    steps = _pick(scale, 4, 10, 25)
    epochs = _pick(scale, 1, 1, 3)
    limit_train, limit_test = _pick(scale, (256, 128), (5000, 1000), (None, None))
    base = dict(
        model=model,
        dataset="mnist",
        steps=steps,
        epochs=epochs,
        limit_train=limit_train,
        limit_test=limit_test,
        batch_size=128,
        optimizer="adam",
    )
    if sweep:
        return _fig4_sweep(out, scale, base, train, test, shard)
    results: dict[str, list[float]] = {}
    activity: dict[str, dict[str, Any]] = {}  # firing rate per spiking layer (test set), seconds per epoch
    rows = []
    for encoding in ("constant", "rate"):
        for name, setting in FIG4_METHODS.items():
            trainer = _train(
                {**base, **setting, "encoding": encoding}, out / "runs" / f"{encoding}-{name}", train, test
            )
            accs = [m["test_accuracy"] for m in trainer.history]
            results[f"{encoding}/{name}"] = accs
            rates = trainer.history[-1].get("firing_rates") or {}
            seconds = [m["seconds"] for m in trainer.history]
            activity[f"{encoding}/{name}"] = {"firing_rates": rates, "seconds_per_epoch": seconds}
            rows.append(
                [
                    encoding,
                    name,
                    setting["lr"],
                    setting["beta"],
                    accs[-1],
                    " / ".join(f"{r:.3f}" for r in rates.values()),
                    f"{sum(seconds) / len(seconds):.0f}",
                ]
            )
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.2), sharey=True)
    for a, encoding in zip(ax, ("constant", "rate")):
        for name in FIG4_METHODS:
            accs = results[f"{encoding}/{name}"]
            a.plot(range(1, len(accs) + 1), accs, marker="o", label=name)
        a.set(title=f"{model}, T={steps}, {encoding} encoding", xlabel="epoch")
        a.xaxis.get_major_locator().set_params(integer=True)
        a.legend(fontsize=7)
    ax[0].set_ylabel("test accuracy")
    return _write(
        out,
        {"scale": scale, "model": model, "T": steps, "test_accuracy": results, "activity": activity},
        ["encoding", "method", "lr", "β", "test accuracy", "firing rate per layer", "s / epoch"],
        rows,
        fig,
        f"Fig. 4: {model} on MNIST",
    )


SWEEP_GRID = {  # Fig. A.4: β × T × lr per method (issue 13)
    "beta": [0.3, 0.6, 0.9, 0.95],
    "steps": [5, 15, 25],
    "lr": [1e-3, 5e-4, 1e-4],
}


def _sweep_cell(name: str, beta: float, steps: int, lr: float) -> str:
    return f"{name}-b{beta:g}-T{steps}-lr{lr:g}"


def parse_shard(shard: str | None) -> tuple[int, int]:
    """``"i/n"`` as ``(i, n)`` with ``0 <= i < n`` (``(0, 1)`` for None); ``ValueError`` otherwise."""
    if shard is None:
        return 0, 1
    try:
        index, count = (int(v) for v in shard.split("/"))
    except ValueError:
        raise ValueError(f"shard must look like 'i/n' (e.g. 0/2), got {shard!r}") from None
    if not 0 <= index < count:
        raise ValueError(f"shard {shard!r}: need 0 <= i < n")
    return index, count


def _sensitivity(grid: dict[str, dict[str, Any]], methods: list[str]) -> dict[str, dict[str, float]]:
    """Per method over its cells: best, median, worst, and the share of cells at ≥ 90 % test accuracy."""
    out = {}
    for name in methods:
        accs = [v["test_accuracy"] for v in grid.values() if v["method"] == name]
        out[name] = {
            "best": max(accs),
            "median": statistics.median(accs),
            "worst": min(accs),
            "cells": len(accs),
            "cells_at_least_90": sum(a >= 0.9 for a in accs),
        }
    return out


def _fig4_sweep(out: Path, scale: str, base: dict, train, test, shard: str | None = None) -> dict:
    """Fig. A.4's grid β × T × lr for each method; every cell a resumable run, one summary.

    ``quick`` runs the whole grid on 10 000 training images for 2 epochs and the full test set (about
    an hour on 2 CPU cores), ``full`` on all 60 000 for 3 epochs (the paper's scale, about 8 CPU hours).
    ``shard="i/n"`` trains only every n-th cell starting at i, so n processes can share the grid; the
    summary (table, heat-maps, best settings) is written by a run without ``shard`` once all cells exist.
    """
    plt = _plt()
    index, count = parse_shard(shard)
    grid_axes = _pick(
        scale,
        {"beta": [0.6, 0.9], "steps": [4], "lr": [1e-3]},
        SWEEP_GRID,
        SWEEP_GRID,
    )
    betas, steps, lrs = grid_axes["beta"], grid_axes["steps"], grid_axes["lr"]
    base = {**base, "epochs": _pick(scale, 1, 2, 3)}
    base["limit_train"], base["limit_test"] = _pick(scale, (256, 128), (10_000, None), (None, None))
    cells = [(name, beta, T, lr) for name in FIG4_METHODS for beta in betas for T in steps for lr in lrs]
    grid: dict[str, dict[str, Any]] = {}
    for i, (name, beta, T, lr) in enumerate(cells):
        if i % count != index:
            continue
        key = _sweep_cell(name, beta, T, lr)
        settings = {**base, "method": FIG4_METHODS[name]["method"], "beta": beta, "steps": T, "lr": lr}
        trainer = _train(settings, out / "sweep" / key, train, test)
        last = trainer.history[-1]
        grid[key] = {
            "method": name,
            "beta": beta,
            "T": T,
            "lr": lr,
            "test_accuracy": last["test_accuracy"],
            "accuracy_per_epoch": [h["test_accuracy"] for h in trainer.history],
            "train_seconds": round(sum(h["seconds"] for h in trainer.history), 2),
            "firing_rates": last.get("firing_rates"),
        }
    if count > 1:
        (out / "sweep").mkdir(parents=True, exist_ok=True)
        (out / "sweep" / f"shard-{index}-of-{count}.json").write_text(json.dumps(grid, indent=2) + "\n")
        print(f"shard {index}/{count}: {len(grid)} cells done; run again without --shard for the summary")
        return {"scale": scale, "shard": shard, "grid": grid}
    best = {
        name: max((v for v in grid.values() if v["method"] == name), key=lambda v: v["test_accuracy"])
        for name in FIG4_METHODS
    }
    sensitivity = _sensitivity(grid, list(FIG4_METHODS))
    fig, axes = plt.subplots(
        len(FIG4_METHODS),
        len(lrs),
        figsize=(3.2 * len(lrs), 2.6 * len(FIG4_METHODS)),
        squeeze=False,
        layout="constrained",
    )
    for r, name in enumerate(FIG4_METHODS):
        for c, lr in enumerate(lrs):
            a = axes[r][c]
            values = [[100 * grid[_sweep_cell(name, b, T, lr)]["test_accuracy"] for T in steps] for b in betas]
            im = a.imshow(values, vmin=80, vmax=100, cmap="viridis", origin="lower", aspect="auto")
            for y, row in enumerate(values):
                for x, v in enumerate(row):
                    a.text(x, y, f"{v:.1f}", ha="center", va="center", fontsize=7, color="w" if v < 92 else "k")
            a.set_xticks(range(len(steps)), [str(T) for T in steps])
            a.set_yticks(range(len(betas)), [f"{b:g}" for b in betas])
            a.set_title(f"{name}, lr {lr:g}", fontsize=8)
            if r == len(FIG4_METHODS) - 1:
                a.set_xlabel("T")
            if c == 0:
                a.set_ylabel("β")
    fig.colorbar(im, ax=axes, shrink=0.6, label="test accuracy (%), below 80 darkest")
    rows = [
        [
            name,
            f"{v['beta']:g}",
            v["T"],
            f"{v['lr']:g}",
            v["test_accuracy"],
            sensitivity[name]["median"],
            sensitivity[name]["worst"],
            v["train_seconds"],
        ]
        for name, v in best.items()
    ]
    data_note = "all" if base["limit_train"] is None else f"{base['limit_train']}"
    return _write(
        out,
        {
            "scale": scale,
            "epochs": base["epochs"],
            "train_images": base["limit_train"],
            "grid_axes": grid_axes,
            "best": best,
            "sensitivity": sensitivity,
            "grid": grid,
        },
        ["method", "best β", "best T", "best lr", "best accuracy", "grid median", "grid worst", "train s (best)"],
        rows,
        fig,
        f"Fig. A.4 sweep: β × T × lr, spiking MLP, {data_note} training images, {base['epochs']} epochs",
    )
