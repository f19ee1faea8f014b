"""A run's ``model.pt``: what it holds (:func:`model_file`) and how to get the model back (:func:`load_model`).

The file holds the weights (on the CPU), the run's config, the input shape and number of classes the
model was built for (``input_shape`` is ``None`` for a user's own model), and every spikelfp neuron's
settings (β, threshold, reset, α) as JSON. It is read with ``torch.load(weights_only=True)``: loading
never executes code.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import torch
from torch import nn

from .. import binary, models
from .. import device as devices
from .checkpoint import CheckpointError, read_run_file
from .config import Config

__all__ = ["load_model", "model_file"]


def model_file(
    model: nn.Module, config: Config, input_shape: tuple[int, ...] | None, num_classes: int
) -> dict[str, Any]:
    """What ``model.pt`` holds: the weights (on the CPU), the config, and what :func:`load_model`
    needs to rebuild the model (input shape, classes, each spikelfp neuron's β, threshold, reset)."""
    return {
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "config": dataclasses.asdict(config),
        "input_shape": None if input_shape is None else list(input_shape),
        "num_classes": num_classes,
        "neurons": json.dumps(models.neuron_settings(model)),
    }


def load_model(
    run_dir: str | os.PathLike, model: nn.Module | None = None, device: str | torch.device = "cpu"
) -> nn.Module:
    """The trained model of a run, from its ``model.pt``, in one call.

    The model is rebuilt from the run's config (for a model of :data:`spikelfp.models.REGISTRY`) or
    given (``model=``, for a user's own model), its weights loaded, and every spikelfp neuron gets the
    β, threshold and reset it was trained with. The file is read with ``torch.load(weights_only=True)``:
    loading never executes code.

    Parameters
    ----------
    run_dir
        The run's folder (or its ``model.pt``).
    model
        A freshly built instance of a user's own model to load the weights into.
    device
        Where the model goes (default ``"cpu"``; see :func:`spikelfp.device.resolve`).

    Raises
    ------
    CheckpointError
        If the file is missing, unreadable, or does not fit the model.
    """
    path, saved = read_run_file(
        run_dir, "model.pt", "model file", "no model.pt at {path} (a run writes it when training ends)"
    )
    if not isinstance(saved, dict) or "model" not in saved or "config" not in saved:
        raise CheckpointError(f"{path} is not a spikelfp model file (no 'model' and 'config' entries)")
    c = saved["config"]
    if model is None:
        if "input_shape" in saved and saved["input_shape"] is None:
            raise CheckpointError(f"{path} holds a user's own model (not built from the config): pass model=")
        shape = saved.get("input_shape")
        if shape is None:  # written before input_shape was recorded: the built-in sets' shapes
            shape = {"cifar10": [3, 32, 32], "nmnist": [2, 34, 34]}.get(c.get("dataset"), [1, 28, 28])
        if c.get("model") not in models.REGISTRY:
            raise CheckpointError(f"{path} holds a user's own model ({c.get('model')!r}): pass model=")
        channels, size = int(shape[0]), int(shape[-1])
        options = {k: c[k] for k in ("beta", "threshold", "reset", "neuron", "alpha", "encoding") if k in c}
        model = models.build(c["model"], channels, size, int(saved.get("num_classes") or 10), **options)
    if c.get("weights", "float") != "float":  # trained binary: the same layers, so the latent weights load
        model = binary.convert(model, c["weights"], magnitude=c.get("weight_magnitude", "latent"))
    try:
        model.load_state_dict(saved["model"])
        if saved.get("neurons"):
            models.apply_neuron_settings(model, json.loads(saved["neurons"]))
    except (RuntimeError, KeyError, ValueError) as exc:
        raise CheckpointError(f"{path} does not fit this model: {exc}") from exc
    return model.to(devices.resolve(device)).eval()
