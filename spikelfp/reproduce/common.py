"""What the experiments share: the registry entry, scales, training runs, tables and figures."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .. import data
from ..data import DataError, ImageSet
from ..train import Config, Trainer

__all__ = ["Experiment"]


@dataclass(frozen=True)
class Experiment:
    fn: Callable[..., dict]
    summary: str


def _pick(scale: str, smoke, quick, full):
    return {"smoke": smoke, "quick": quick, "full": full}[scale]


_PROGRESS = {"on": False}


def _train(settings: dict, out: Path, train_set, test_set, model: nn.Module | None = None) -> Trainer:
    """Train one run, resuming from its checkpoint when one exists (and finishing it if complete)."""
    trainer = Trainer(
        Config(**settings), out, model=model, train_set=train_set, test_set=test_set, progress=_PROGRESS["on"]
    )
    if (out / "checkpoint.pt").exists():
        trainer.load_checkpoint(out)
    trainer.fit()
    return trainer


def _write(out: Path, results: dict, header: list[str], rows: list[list[Any]], figure, title: str) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    results = {"experiment": title, "date": time.strftime("%Y-%m-%d"), **results}
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    fmt = [[f"{v:.4f}" if isinstance(v, float) else str(v) for v in row] for row in rows]
    table = "| " + " | ".join(header) + " |\n|" + "---|" * len(header) + "\n"
    table += "".join("| " + " | ".join(r) + " |\n" for r in fmt)
    (out / "table.md").write_text(f"### {title}\n\n{table}")
    figure.savefig(out / "figure.png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(figure)
    return results


def _plt():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("reproduce needs matplotlib: pip install 'spikelfp[plot]'") from exc
    return plt


# --------------------------------------------------------------------------------------------------
# the 1-d toy data of A.1, A.3, A.4
# --------------------------------------------------------------------------------------------------


def _std(values: list[float]) -> float | None:
    """Sample standard deviation (n − 1), None for fewer than two values."""
    return statistics.stdev(values) if len(values) > 1 else None


def _accuracy(model: nn.Module, dataset, standardize: bool) -> float:
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for x, y in dataset.batches(1000, standardize=standardize):
            correct += int((model(x).argmax(-1) == y).sum())
            total += y.numel()
    return correct / max(total, 1)


# --------------------------------------------------------------------------------------------------
# Fig. 2 and Fig. 3: CIFAR-10 and ImageNet, with a labelled substitute when absent
# --------------------------------------------------------------------------------------------------
def _image_data(name: str, substitute_for: str):
    try:
        return data.load(name, True), data.load(name, False)
    except DataError as exc:
        raise DataError(
            f"{exc}\n{substitute_for} is not available here; pass --dataset fashion-mnist (or mnist) to run the same "
            "protocol on a labelled substitute"
        ) from None


def _pad_to(s: ImageSet, size: int) -> ImageSet:
    pad = size - s.images.shape[-1]
    if pad <= 0:
        return s
    images = F.pad(s.images, (pad // 2, pad - pad // 2, pad // 2, pad - pad // 2))
    return ImageSet(images, s.labels, s.mean, s.std, s.name)
