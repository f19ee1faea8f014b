"""The paper's experiments (LFP-SPEC §7), one command each: ``spikelfp reproduce <name> [--quick]``.

Every experiment writes ``results.json``, ``figure.png`` (a matplotlib figure shaped like the paper's)
and ``table.md`` into its run folder. Training runs live in sub-folders with checkpoints, so an
interrupted experiment resumes where it stopped. Three scales: ``full`` (the paper's
hyperparameters), ``quick`` (minutes on 2 CPU cores: fewer seeds, epochs and samples) and ``smoke``
(seconds; used by the tests).
"""

from __future__ import annotations

from pathlib import Path

from .ann import fig2_mlp_lenet, fig3_vgg_rules, fig5_finetune_prune
from .common import _PROGRESS, Experiment
from .snn import SWEEP_GRID, fig4_snn_mnist, parse_shard
from .toy import a1_toy_reward, a3_depth, a4_shattering, toy_data

__all__ = ["EXPERIMENTS", "SWEEP_GRID", "parse_shard", "run", "toy_data"]


EXPERIMENTS: dict[str, Experiment] = {
    "a1-toy-reward": Experiment(a1_toy_reward, "A.1: LFP-ε with a ±1 reward on 1-d toy data"),
    "a3-depth": Experiment(a3_depth, "A.3: accuracy against depth for ε, z⁺z⁻, α2β1"),
    "a4-shattering": Experiment(a4_shattering, "A.4: input signal against depth, gradient vs rules"),
    "fig4-snn-mnist": Experiment(fig4_snn_mnist, "Fig. 4: spiking MLP/LeNet on MNIST, LFP vs surrogate"),
    "fig5-finetune-prune": Experiment(fig5_finetune_prune, "Fig. 5: LeNet fine-tuning, sign changes, pruning"),
    "fig2-mlp-lenet": Experiment(fig2_mlp_lenet, "Fig. 2: MLP and LeNet on CIFAR-10, LFP-ε vs gradient"),
    "fig3-vgg-rules": Experiment(fig3_vgg_rules, "Fig. 3: VGG-16 composites on a 20-class ImageNet subset"),
}


def run(name: str, out: str | Path, scale: str = "full", progress: bool = True, **options) -> dict:
    """Run one experiment of :data:`EXPERIMENTS` at ``scale`` (``full``, ``quick`` or ``smoke``).

    ``progress`` shows a progress bar per training epoch.
    """
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; known: {', '.join(EXPERIMENTS)}")
    if scale not in ("full", "quick", "smoke"):
        raise ValueError(f"scale must be full, quick or smoke, got {scale!r}")
    _PROGRESS["on"] = bool(progress) and scale != "smoke"
    return EXPERIMENTS[name].fn(Path(out), scale, **options)
