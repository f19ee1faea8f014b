"""The toy experiments of the appendix: A.1 (±1 reward), A.3 (depth), A.4 (shattering)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .. import analysis, models
from ..data import ImageSet
from ..train import Config, Trainer, TrainingStopped
from .common import _pick, _plt, _train, _write

__all__ = ["a1_toy_reward", "a3_depth", "a4_shattering", "toy_data"]


def toy_data(step: float, held_out: int = 100, seed: int = 0) -> tuple[ImageSet, ImageSet]:
    """x ∈ [−4, 4] in steps of ``step``; class 1 where x > 0. ``held_out`` random samples are the test set.

    Returned as :class:`ImageSet` of shape ``(N, 1, 1, 1)`` so the Trainer can use them; the values are
    stored as floats in the ``images`` tensor and are not rescaled (mean 0, std 1).
    """
    x = torch.arange(-4.0, 4.0 + step / 2, step)
    y = (x > 0).long()
    perm = torch.randperm(x.numel(), generator=torch.Generator().manual_seed(seed))
    test_idx, train_idx = perm[:held_out], perm[held_out:]
    return (
        _FloatSet(x[train_idx].view(-1, 1, 1, 1), y[train_idx], (0.0,), (1.0,), "toy"),
        _FloatSet(x[test_idx].view(-1, 1, 1, 1), y[test_idx], (0.0,), (1.0,), "toy"),
    )


class _FloatSet(ImageSet):
    """An ImageSet whose ``images`` are already the float inputs."""

    def to_float(self, images, standardize):
        return images.reshape(images.shape[0], -1).float()

    def subset(self, n):
        if n is None or n >= len(self):
            return self
        return _FloatSet(self.images[:n], self.labels[:n], self.mean, self.std, self.name)


def _toy_model(depth: int, width: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return models.deep_mlp(depth, width, in_features=1, num_classes=2)


# --------------------------------------------------------------------------------------------------
# A.1: a plain ±1 reward
# --------------------------------------------------------------------------------------------------
def a1_toy_reward(out: Path, scale: str = "full", **_) -> dict:
    plt = _plt()
    train, test = toy_data(5e-4)
    steps = _pick(scale, 8, 120, 200)
    lr_step = _pick(scale, 4, 40, 40)
    batch = 64
    torch.manual_seed(0)
    model = models.deep_mlp(2, 32, in_features=1, num_classes=2)
    settings = dict(
        model="toy-mlp",
        dataset="toy",
        method="lfp-epsilon",
        optimizer="sgd",
        lr=1.0,
        momentum=0.9,
        batch_size=batch,
        feedback="reward",
        normalize="max",
        lr_step=lr_step,
        lr_gamma=0.1,
        epochs=1,
    )
    trainer = Trainer(Config(**settings), out / "run", model=model, train_set=train, test_set=test, progress=False)
    history = []
    gen = torch.Generator().manual_seed(0)
    batches = iter(())
    for step in range(steps):
        try:
            x, y = next(batches)
        except StopIteration:
            batches = train.batches(batch, shuffle=True, generator=gen)
            x, y = next(batches)
        outputs = trainer.train_step(x, y)
        reward = float(torch.where(outputs.argmax(1) == y, 1.0, -1.0).mean())
        acc = trainer.evaluate(test)["accuracy"]
        history.append(
            {
                "step": step + 1,
                "test_accuracy": acc,
                "mean_reward": reward,
                "lr": trainer.optimizer.param_groups[0]["lr"],
            }
        )
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
    ax[0].plot([h["step"] for h in history], [h["test_accuracy"] for h in history])
    ax[0].set(xlabel="step", ylabel="test accuracy", title="LFP-ε with a ±1 reward (A.1)")
    ax[1].plot([h["step"] for h in history], [h["mean_reward"] for h in history], label="mean reward")
    ax[1].set(xlabel="step", ylabel="mean batch reward")
    rows = [[h["step"], h["lr"], h["mean_reward"], h["test_accuracy"]] for h in history[:: max(1, steps // 10)]]
    rows.append([history[-1]["step"], history[-1]["lr"], history[-1]["mean_reward"], history[-1]["test_accuracy"]])
    return _write(
        out,
        {"scale": scale, "settings": settings, "history": history, "final_test_accuracy": history[-1]["test_accuracy"]},
        ["step", "lr", "mean reward", "test accuracy"],
        rows,
        fig,
        "A.1 toy data, ±1 reward, LFP-ε",
    )


# --------------------------------------------------------------------------------------------------
# A.3: depth robustness
# --------------------------------------------------------------------------------------------------
def a3_depth(out: Path, scale: str = "full", **_) -> dict:
    plt = _plt()
    train, test = toy_data(5e-4)
    depths = _pick(scale, [1, 3], [1, 2, 4, 6, 10], list(range(1, 21)))
    widths = _pick(scale, [8], [16, 32], [8, 16, 32, 64])
    seeds = _pick(scale, [0], [0], [0, 1, 2])
    epochs = _pick(scale, 1, 2, 5)
    limit = _pick(scale, 512, None, None)
    rules = ["epsilon", "zplus-zminus", "alpha2-beta1"]
    results: dict[str, dict[str, list[float]]] = {r: {} for r in rules}
    for rule in rules:
        for depth in depths:
            accs = []
            for width in widths:
                for seed in seeds:
                    settings = dict(
                        model="toy-mlp",
                        dataset="toy",
                        method=f"lfp-{rule}",
                        optimizer="sgd",
                        lr=1.0,
                        momentum=0.9,
                        batch_size=16,  # A.3 leaves batch and feedback open: we measured these to learn
                        feedback="sigmoid",
                        reduction="mean",  # lr 1.0 with summed feedback diverges within tens of steps
                        normalize="max",
                        epochs=epochs,
                        seed=seed,
                        limit_train=limit,
                    )
                    run_dir = out / "runs" / f"{rule}-d{depth}-w{width}-s{seed}"
                    try:
                        trainer = _train(settings, run_dir, train, test, _toy_model(depth, width, seed))
                        accs.append(trainer.history[-1]["test_accuracy"])
                    except (ValueError, TrainingStopped):  # diverged (non-finite): chance
                        accs.append(0.5)
            results[rule][str(depth)] = accs
    fig, ax = plt.subplots(1, len(rules), figsize=(4 * len(rules), 3.2), sharey=True)
    rows = []
    for a, rule in zip(ax, rules):
        qs = [
            torch.tensor(results[rule][str(d)]).quantile(torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0])).tolist()
            for d in depths
        ]
        a.vlines(depths, [q[0] for q in qs], [q[4] for q in qs], color="0.6")
        a.vlines(depths, [q[1] for q in qs], [q[3] for q in qs], linewidth=6)
        a.plot(depths, [q[2] for q in qs], "w_", markersize=8)
        a.set(title=f"LFP-{rule}", xlabel="hidden layers", ylim=(0.4, 1.02))
        rows += [[rule, d, q[2], q[0], q[4]] for d, q in zip(depths, qs)]
    ax[0].set_ylabel("test accuracy")
    return _write(
        out,
        {"scale": scale, "widths": widths, "seeds": seeds, "epochs": epochs, "accuracy": results},
        ["rule", "hidden layers", "median acc.", "min", "max"],
        rows,
        fig,
        "A.3 depth robustness (median over widths and seeds)",
    )


# --------------------------------------------------------------------------------------------------
# A.4: shattering
# --------------------------------------------------------------------------------------------------
def a4_shattering(out: Path, scale: str = "full", **_) -> dict:
    plt = _plt()
    x = torch.arange(-4.0, 4.0 + 0.01, 0.02).view(-1, 1)
    depths = _pick(scale, [1, 4], [1, 5, 20, 50], [1, 2, 5, 10, 20, 50, 100, 200, 500])
    methods = ["gradient", "lfp-epsilon", "lfp-zplus-zminus", "lfp-alpha2-beta1"]
    corr: dict[str, dict[str, float]] = {m: {} for m in methods}
    rough: dict[str, dict[str, float]] = {m: {} for m in methods}
    signals: dict[str, dict[int, list[float]]] = {m: {} for m in methods}
    for depth in depths:
        torch.manual_seed(0)
        model = models.deep_mlp(depth, 200, in_features=1, num_classes=2).double()
        for method in methods:
            s = analysis.input_signal(model, x.double(), method, normalize="max-batch")[:, 0]
            corr[method][str(depth)] = analysis.shattering(s)
            rough[method][str(depth)] = analysis.roughness(s)
            signals[method][depth] = s.tolist()
    shown = [d for d in depths if d in (1, 5, 20, 50, 500)] or depths
    fig, ax = plt.subplots(
        len(methods) + 1, len(shown), figsize=(2.6 * len(shown), 2.0 * (len(methods) + 1)), squeeze=False
    )
    for i, method in enumerate(methods):
        for j, depth in enumerate(shown):
            ax[i][j].plot(x[:, 0], signals[method][depth], linewidth=0.7)
            ax[i][j].set_xticks([])
            ax[i][j].set_yticks([])
            if i == 0:
                ax[i][j].set_title(f"{depth} HL")
            if j == 0:
                ax[i][j].set_ylabel(method, fontsize=8)
    for j in range(len(shown)):
        ax[-1][j].axis("off")
    big = fig.add_subplot(len(methods) + 1, 1, len(methods) + 1)
    for method in methods:
        big.plot(depths, [rough[method][str(d)] for d in depths], marker="o", label=method)
    big.set(xscale="log", yscale="log", xlabel="hidden layers", ylabel="roughness (total variation / range)")
    big.legend(fontsize=7)
    rows = [[m, d, rough[m][str(d)], corr[m][str(d)]] for m in methods for d in depths]
    return _write(
        out,
        {"scale": scale, "roughness": rough, "neighbour_correlation": corr},
        ["method", "hidden layers", "roughness", "neighbour correlation"],
        rows,
        fig,
        "A.4 shattering: the signal at the input against depth (roughness 1 = monotone, 2 = one bump)",
    )
