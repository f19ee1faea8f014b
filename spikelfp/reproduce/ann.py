"""The non-spiking figures: Fig. 5 (fine-tuning, sign changes, pruning), Fig. 2 (MLP/LeNet), Fig. 3 (VGG)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from .. import analysis, data, models
from ..data import DataError
from ..train import TrainingStopped
from .common import _accuracy, _image_data, _pad_to, _pick, _plt, _std, _train, _write

__all__ = ["fig2_mlp_lenet", "fig3_vgg_rules", "fig5_finetune_prune"]


# --------------------------------------------------------------------------------------------------
# Fig. 5: fine-tuning, sign changes, pruning, parameter median
# --------------------------------------------------------------------------------------------------
FIG5_METHODS = {
    "gradient": dict(method="gradient"),
    "lfp-epsilon": dict(method="lfp-epsilon"),
    "lfp-zplus-zminus": dict(method="lfp-zplus-zminus"),
    "gradient→lfp-epsilon": dict(method="lfp-epsilon", pretrain_steps=100),
    "gradient→lfp-zplus-zminus": dict(method="lfp-zplus-zminus", pretrain_steps=100),
}


def _kept_within(curve: list[tuple[float, float]], drop: float) -> float:
    """The largest pruned fraction whose accuracy stays within ``drop`` of the unpruned model's."""
    return max((f for f, a in curve if a >= curve[0][1] - drop), default=0.0)


def fig5_finetune_prune(out: Path, scale: str = "full", seeds: int | None = None, **_) -> dict:
    plt = _plt()
    train, test = data.mnist(True), data.mnist(False)
    epochs = _pick(scale, 1, 2, 10)
    n_seeds = seeds or _pick(scale, 1, 1, 5)
    limit_train, limit_test = _pick(scale, (320, 200), (5000, 2000), (None, None))
    fractions = [i / 20 for i in range(20)] + [0.97, 0.99, 1.0]
    base = dict(
        model="lenet",
        dataset="mnist",
        optimizer="sgd",
        lr=1e-2,
        momentum=0.9,
        batch_size=32,
        epochs=epochs,
        limit_train=limit_train,
        limit_test=limit_test,
        stats=True,
    )
    results: dict[str, Any] = {}
    for name, setting in FIG5_METHODS.items():
        per_seed = []
        for seed in range(n_seeds):
            tag = name.replace("→", "-then-")
            trainer = _train({**base, **setting, "seed": seed}, out / "runs" / f"{tag}-s{seed}", train, test)
            eval_set = trainer.test_set  # the run's own (possibly limited) test set

            def accuracy(m, trainer=trainer, eval_set=eval_set):
                return _accuracy(m, eval_set, trainer.config.standardize)

            per_seed.append(
                {
                    "accuracy": [h["test_accuracy"] for h in trainer.history],
                    "sign_changes": [h.get("sign_changes", 0) for h in trainer.history],
                    "median_over_p75": [h["weight_median_over_p75"] for h in trainer.history],
                    "pruning": analysis.pruning_curve(trainer.model, accuracy, fractions),
                }
            )
        results[name] = {
            key: [sum(s[key][i] for s in per_seed) / len(per_seed) for i in range(len(per_seed[0][key]))]
            for key in ("accuracy", "sign_changes", "median_over_p75")
        }
        results[name]["pruning"] = [
            (f, sum(s["pruning"][i][1] for s in per_seed) / len(per_seed)) for i, f in enumerate(fractions)
        ]
        results[name]["seeds"] = n_seeds
        final = [s["accuracy"][-1] for s in per_seed]
        keeps = [_kept_within(s["pruning"], 0.01) for s in per_seed]
        results[name]["final_accuracy_per_seed"] = final
        results[name]["final_accuracy_std"] = _std(final)
        results[name]["pruned_within_1pt_per_seed"] = keeps
    fig, ax = plt.subplots(1, 4, figsize=(16, 3.3))
    rows = []
    for name, r in results.items():
        ep = range(1, len(r["accuracy"]) + 1)
        ax[0].plot(ep, r["accuracy"], marker="o", label=name)
        ax[1].plot(ep, r["sign_changes"], marker="o", label=name)
        ax[2].plot([p[0] for p in r["pruning"]], [p[1] for p in r["pruning"]], label=name)
        ax[3].plot(ep, r["median_over_p75"], marker="o", label=name)
        keep = _kept_within(r["pruning"], 0.01)
        spread = "" if r["final_accuracy_std"] is None else f" ± {r['final_accuracy_std']:.4f}"
        rows.append(
            [
                name,
                f"{r['accuracy'][-1]:.4f}{spread}",
                int(sum(r["sign_changes"][1:])),
                f"{keep:g} ({min(r['pruned_within_1pt_per_seed']):g}–{max(r['pruned_within_1pt_per_seed']):g})",
                r["median_over_p75"][-1],
            ]
        )
        r["largest_fraction_pruned_within_1pt"] = keep
    for a in (ax[0], ax[1], ax[3]):
        a.xaxis.get_major_locator().set_params(integer=True)
    ax[0].set(title="I: test accuracy", xlabel="epoch")
    ax[1].set(title="II: sign changes vs previous epoch", xlabel="epoch", yscale="symlog")
    ax[2].set(title="III: magnitude pruning", xlabel="fraction of weights pruned", ylabel="test accuracy")
    ax[3].set(title="IV: median / 75th percentile of |w|", xlabel="epoch")
    ax[0].legend(fontsize=7)
    return _write(
        out,
        {"scale": scale, "seeds": n_seeds, "methods": results},
        [
            "method",
            "final accuracy (± sd over seeds)",
            "sign changes after epoch 1",
            "pruned within 1 pt (seed range)",
            "median/p75",
        ],
        rows,
        fig,
        "Fig. 5: LeNet on MNIST, SGD lr 1e-2, batch 32",
    )


def fig2_mlp_lenet(out: Path, scale: str = "full", dataset: str = "cifar10", **_) -> dict:
    plt = _plt()
    train, test = _image_data(dataset, "CIFAR-10")
    epochs = _pick(scale, 1, 2, 20)
    lrs = _pick(scale, [1e-2], [1e-1, 1e-2, 1e-3], [1e-1, 1e-2, 1e-3])
    n_seeds = _pick(scale, 1, 1, 5)
    limit_train, limit_test = _pick(scale, (256, 128), (5000, 2000), (None, None))
    results: dict[str, float] = {}
    rows = []
    for model in ("mlp", "lenet"):
        for method in ("gradient", "lfp-epsilon"):
            for lr in lrs:
                accs = []
                for seed in range(n_seeds):
                    settings = dict(
                        model=model,
                        dataset=dataset,
                        method=method,
                        optimizer="sgd",
                        lr=lr,
                        momentum=0.9,
                        batch_size=32,
                        epochs=epochs,
                        seed=seed,
                        limit_train=limit_train,
                        limit_test=limit_test,
                    )
                    try:
                        trainer = _train(settings, out / "runs" / f"{model}-{method}-lr{lr:g}-s{seed}", train, test)
                        accs.append(trainer.history[-1]["test_accuracy"])
                    except (ValueError, TrainingStopped):  # diverged
                        accs.append(float("nan"))
                key = f"{model}/{method}/lr{lr:g}"
                finite = [a for a in accs if not math.isnan(a)]
                results[key] = sum(finite) / len(finite) if finite else float("nan")
                rows.append([model, method, f"{lr:g}", results[key], n_seeds])
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.2), sharey=True)
    for a, model in zip(ax, ("mlp", "lenet")):
        for method in ("gradient", "lfp-epsilon"):
            a.plot(
                [str(lr) for lr in lrs], [results[f"{model}/{method}/lr{lr:g}"] for lr in lrs], marker="o", label=method
            )
        a.set(
            title=f"{model} on {dataset}" + ("" if dataset == "cifar10" else " (substitute for CIFAR-10)"),
            xlabel="learning rate",
        )
        a.legend(fontsize=7)
    ax[0].set_ylabel("final test accuracy")
    return _write(
        out,
        {"scale": scale, "dataset": dataset, "substitute": dataset != "cifar10", "accuracy": results},
        ["model", "method", "lr", "test accuracy", "seeds"],
        rows,
        fig,
        f"Fig. 2 protocol on {dataset}" + ("" if dataset == "cifar10" else " (substitute for CIFAR-10)"),
    )


FIG3_METHODS = [
    "gradient",
    "lfp-epsilon",
    "lfp-zplus-zminus",
    "lfp-alpha2-beta1",
    "lfp-epsilon-zplus-zminus",
    "lfp-epsilon-alpha2-beta1",
]


def fig3_vgg_rules(
    out: Path, scale: str = "full", dataset: str = "imagenet20", pretrained: str | None = None, **_
) -> dict:
    plt = _plt()
    if dataset == "imagenet20":
        raise DataError(
            "the 20-class ImageNet subset is not available here; pass --dataset fashion-mnist (or mnist, cifar10) to "
            "run the same protocol on a labelled substitute"
        )
    train, test = _image_data(dataset, "the ImageNet subset")
    train, test = _pad_to(train, 32), _pad_to(test, 32)
    epochs = _pick(scale, 1, 1, 20)
    limit_train, limit_test = _pick(scale, (16, 16), (2000, 1000), (None, None))
    width = _pick(scale, 16, 512, 4096)
    methods = _pick(scale, FIG3_METHODS[:2], FIG3_METHODS, FIG3_METHODS)
    channels = train.sample_shape[0]
    results: dict[str, dict] = {}
    rows = []
    for method in methods:
        torch.manual_seed(0)
        model = models.vgg16(num_classes=10, input_size=32, in_channels=channels, width=width)
        if pretrained:
            state = torch.load(pretrained, map_location="cpu", weights_only=True)
            state = {k: v for k, v in state.items() if not k.startswith("classifier.6")}  # new 10-class head
            if channels != 3:
                raise DataError("a pretrained VGG-16 needs 3-channel images (use --dataset cifar10)")
            model.load_state_dict(state, strict=False)
        start = {k: v.clone() for k, v in model.state_dict().items()}
        settings = dict(
            model="vgg16",
            dataset=dataset,
            method=method,
            optimizer="adam",
            lr=1e-4,
            batch_size=32,
            epochs=epochs,
            limit_train=limit_train,
            limit_test=limit_test,
            stats=True,
        )
        trainer = _train(settings, out / "runs" / method, train, test, model)
        changes = [analysis.sign_changes(start, trainer.model)["total"]]
        results[method] = {
            "accuracy": [h["test_accuracy"] for h in trainer.history],
            "sign_changes_per_epoch": changes[:1] + [h.get("sign_changes", 0) for h in trainer.history[1:]],
            "parameter_mse": [h.get("parameter_mse", 0.0) for h in trainer.history],
        }
        rows.append([method, results[method]["accuracy"][-1], changes[0]])
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
    for method, r in results.items():
        ep = range(1, len(r["accuracy"]) + 1)
        ax[0].plot(ep, r["accuracy"], marker="o", label=method)
        ax[1].plot(ep, r["sign_changes_per_epoch"], marker="o", label=method)
    sub = "" if dataset == "imagenet20" else f" on {dataset} (substitute for the ImageNet subset)"
    ax[0].set(title="test accuracy" + sub, xlabel="epoch")
    ax[1].set(title="parameter sign changes", xlabel="epoch", yscale="symlog")
    ax[0].legend(fontsize=7)
    return _write(
        out,
        {"scale": scale, "dataset": dataset, "substitute": True, "pretrained": bool(pretrained), "methods": results},
        ["composite", "final accuracy", "sign changes (from init)"],
        rows,
        fig,
        f"Fig. 3 protocol, VGG-16 without BatchNorm{sub}",
    )
