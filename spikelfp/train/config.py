"""A run's settings: :class:`Config`, its paper defaults and validation, the optimizer factory, and the
choices of each setting (the command line offers exactly these)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .. import feedback, models
from ..composites import PRESETS
from ..neurons import RESETS

__all__ = [
    "ENCODINGS",
    "FEEDBACKS",
    "GRADIENT_METHODS",
    "METHODS",
    "NEURONS",
    "NORMALIZE",
    "REDUCTIONS",
    "RESETS",
    "WEIGHTS",
    "WEIGHT_MAGNITUDES",
    "Config",
    "check_config_values",
    "make_optimizer",
    "optimizer_class",
]

# ---- the choices of each setting ---------------------------------------------------------------------
GRADIENT_METHODS = ("gradient", "surrogate")  # the methods besides lfp-<composite>
METHODS = tuple(f"lfp-{name}" for name in PRESETS) + GRADIENT_METHODS  # lfp-<any composite> is valid too
NORMALIZE = ("max", "max-batch", "none")
ENCODINGS = ("constant", "rate", "latency", "rows")
WEIGHTS = ("float", "binary", "ternary")
WEIGHT_MAGNITUDES = ("latent", "quantized")
REDUCTIONS = ("sum", "mean")
NEURONS = models.NEURONS  # the neuron settings are NeuronSpec's (RESETS from spikelfp.neurons)
FEEDBACKS: dict[str, Callable[..., feedback.Feedback]] = {
    "sigmoid": feedback.Sigmoid,
    "softmax": feedback.Softmax,
    "reward": feedback.Reward,
    "spike-sequence": feedback.SpikeSequence,
}


def _either(choices: Sequence[str], quote: bool = True) -> str:
    """``'a', 'b' or 'c'`` (``a, b or c`` without ``quote``), for error messages."""
    words = [repr(c) if quote else c for c in choices]
    return ", ".join(words[:-1]) + " or " + words[-1]


@dataclass
class Config:
    """Everything that defines a run. ``None`` fields take the model family's paper defaults."""

    model: str = "snn-mlp"
    dataset: str = "mnist"
    method: str = "lfp-epsilon"  # lfp-<composite> | gradient | surrogate
    optimizer: str | None = None  # any torch.optim class name, case-insensitive
    lr: float | None = None
    momentum: float = 0.9
    weight_decay: float = 0.0
    epochs: int = 1
    batch_size: int | None = None
    seed: int = 0
    normalize: str | None = None  # max | max-batch | none
    feedback: str | None = None  # sigmoid | softmax | reward | spike-sequence
    reduction: str = "sum"
    clip: float | None = None  # adaptive clipping λ (LFP only); 0 disables
    lr_step: int = 0  # multiply the lr by lr_gamma every lr_step optimizer steps (0: constant)
    lr_gamma: float = 0.1
    pretrain_steps: int = 0  # gradient steps before LFP takes over (Fig. 5)
    standardize: bool | None = None  # inputs standardised (ANN) or in [0, 1] (SNN)
    steps: int = 25
    beta: float = 0.9
    threshold: float = 1.0
    reset: str = "subtract"  # subtract | zero | none
    neuron: str = "lif"  # lif | cuba (spiking models)
    alpha: float = 0.8  # synaptic decay of cuba neurons
    encoding: str = "constant"  # constant | rate | latency | rows (one image row per step; T = height)
    weights: str = "float"  # float | binary | ternary (LFP-SPEC §10: Linear/Conv2d layers made binary)
    weight_magnitude: str = "latent"  # binary/ternary under LFP: |w| of the update from the latent weight or w_q
    gain: float = 1.0
    limit_train: int | None = None
    limit_test: int | None = None
    data_root: str | None = None
    checkpoint_every: int = 0  # optimizer steps between mid-epoch checkpoints (0: epoch ends only)
    stats: bool = False  # log parameter statistics (sign changes, …) per epoch
    device: str = "auto"  # cpu | cuda | cuda:N | auto (under torchrun: each process its cuda:LOCAL_RANK)

    def resolved(self, spiking: bool | None = None) -> Config:
        """A copy with every ``None`` replaced by the paper's setting for this model family.

        ``spiking`` gives the family of a user's own model (default: from the ``model`` name).
        """
        spiking = self.model.startswith("snn") if spiking is None else bool(spiking)
        c = dataclasses.replace(self)
        if c.method == "gradient" and spiking:
            c.method = "surrogate"
        if c.method == "surrogate" and not spiking:
            raise ValueError("method 'surrogate' needs a spiking model (snn-mlp, snn-lenet, …); use 'gradient'")
        if not (c.method in GRADIENT_METHODS or c.method.startswith("lfp-")):
            raise ValueError(f"unknown method {c.method!r}; use lfp-<composite>, gradient or surrogate")
        # The paper's settings, except that max-normalisation takes one maximum per batch, not per
        # sample: per-sample maxima undo the decay of the feedback of learned samples, and measured
        # worse in both families (benchmarks/RESULTS.md). normalize="max" gives the spec's variant.
        if spiking:  # A.6.3: Adam, batch 128, lr 1e-3, max-normalisation, adaptive clipping 0.06
            defaults = {"optimizer": "adam", "lr": 1e-3, "batch_size": 128, "feedback": "spike-sequence"}
            defaults.update(clip=0.06, standardize=False, normalize="max-batch")
        else:  # Fig. 5 setting: SGD momentum 0.9, batch 32, lr 1e-2 (gradient) / 3e-3 (LFP, measured best)
            lr = 1e-2 if c.method == "gradient" else 3e-3
            defaults = {"optimizer": "sgd", "lr": lr, "batch_size": 32, "feedback": "softmax"}
            defaults.update(clip=0.0, standardize=True, normalize="max-batch")
        for key, value in defaults.items():
            if getattr(c, key) is None:
                setattr(c, key, value)
        if c.normalize not in NORMALIZE:
            raise ValueError(f"normalize must be {_either(NORMALIZE)}, got {c.normalize!r}")
        if c.encoding not in ENCODINGS:
            raise ValueError(f"encoding must be {_either(ENCODINGS, quote=False)}, got {c.encoding!r}")
        if c.encoding == "rows" and c.model not in ("snn-mlp", "snn-rmlp"):
            raise ValueError(f"encoding 'rows' (one image row per step) needs snn-mlp or snn-rmlp, not {c.model!r}")
        if spiking:  # the neuron's own validation (NeuronSpec): kind, decays, threshold, reset
            models.neuron_spec(c.neuron, c.beta, c.threshold, c.reset, c.alpha)
        if c.epochs < 0 or c.batch_size < 1 or c.steps < 1:
            raise ValueError("epochs must be >= 0, batch_size and steps >= 1")
        if not (isinstance(c.lr, (int, float)) and c.lr > 0 and math.isfinite(c.lr)):
            raise ValueError(f"lr must be a positive number, got {c.lr!r}")
        _check_ranges(c)
        return c

    @property
    def spiking(self) -> bool:
        return self.model.startswith("snn")

    @property
    def composite(self) -> str | None:
        return self.method[4:] if self.method.startswith("lfp-") else None


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_ranges(c: Config) -> None:
    """Range checks of the fields :meth:`Config.resolved` does not check itself (CLI and config.json alike)."""
    for name in ("limit_train", "limit_test"):
        value = getattr(c, name)
        if value is not None and value < 1:
            raise ValueError(f"{name} must be >= 1 (or unset for the whole set), got {value}")
    for name in ("checkpoint_every", "lr_step", "pretrain_steps"):
        if getattr(c, name) < 0:
            raise ValueError(f"{name} must be >= 0, got {getattr(c, name)}")
    for name in ("momentum", "weight_decay"):
        if not (_finite(getattr(c, name)) and getattr(c, name) >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {getattr(c, name)!r}")
    for name in ("lr_gamma", "threshold", "gain"):
        if not (_finite(getattr(c, name)) and getattr(c, name) > 0):
            raise ValueError(f"{name} must be a finite number > 0, got {getattr(c, name)!r}")
    if c.clip is not None and not (_finite(c.clip) and c.clip >= 0):
        raise ValueError(f"clip must be a finite number >= 0, got {c.clip!r}")
    if c.weights not in WEIGHTS:
        raise ValueError(f"weights must be {_either(WEIGHTS)}, got {c.weights!r}")
    if c.weight_magnitude not in WEIGHT_MAGNITUDES:
        raise ValueError(f"weight_magnitude must be {_either(WEIGHT_MAGNITUDES)}, got {c.weight_magnitude!r}")
    models.neuron_spec("cuba", c.beta, c.threshold, c.reset, c.alpha)  # every neuron field, as NeuronSpec checks it
    if c.reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be {_either(REDUCTIONS)}, got {c.reduction!r}")
    if c.feedback not in FEEDBACKS:
        raise ValueError(f"unknown feedback {c.feedback!r}; use {', '.join(FEEDBACKS)}")
    optimizer_class(c.optimizer)  # raises on an unknown or unusable optimizer


def check_config_values(values: Any, where: str) -> dict[str, Any]:
    """Validate a mapping of :class:`Config` fields (e.g. a hand-edited ``config.json``) by the fields' types.

    Unknown keys, wrong types (``bool`` is not a number, an ``int`` is a valid ``float``) and, through
    :meth:`Config.resolved`, out-of-range values raise ``ValueError`` naming ``where`` and the key.
    """
    if not isinstance(values, dict):
        raise ValueError(f"{where}: expected a JSON object of run settings, got {type(values).__name__}")
    fields = {f.name: f.type for f in dataclasses.fields(Config)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}")
    kinds = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,), "None": (type(None),)}
    for key, value in values.items():
        parts = [part.strip() for part in str(fields[key]).split("|")]
        if any(part not in kinds for part in parts):  # a richer annotation: left to Config.resolved()
            continue
        allowed = tuple(t for part in parts for t in kinds[part])
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            raise ValueError(f"{where}: {key} = {value!r} has the wrong type (expected {fields[key]})")
    try:
        Config(**values).resolved()
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    return values


# optimizers whose step() the Trainer cannot drive: LBFGS needs a closure, SparseAdam sparse gradients
_UNUSABLE_OPTIMIZERS = {"lbfgs": "it needs a closure", "sparseadam": "it needs sparse gradients"}


def optimizer_class(name: str) -> type[torch.optim.Optimizer]:
    """The ``torch.optim`` class of a (case-insensitive) name; ``ValueError`` for unknown or unusable ones."""
    classes = {
        n.lower(): getattr(torch.optim, n)
        for n in dir(torch.optim)
        if isinstance(getattr(torch.optim, n), type) and issubclass(getattr(torch.optim, n), torch.optim.Optimizer)
    }
    cls = classes.get(name.lower()) if isinstance(name, str) else None
    if cls is None or cls is torch.optim.Optimizer:
        raise ValueError(f"unknown optimizer {name!r}; any torch.optim class works, e.g. sgd, adam, adamw, rmsprop")
    if name.lower() in _UNUSABLE_OPTIMIZERS:
        raise ValueError(f"optimizer {name!r} cannot train here: {_UNUSABLE_OPTIMIZERS[name.lower()]}")
    return cls


def make_optimizer(name: str, params, lr: float, momentum: float, weight_decay: float) -> torch.optim.Optimizer:
    """Any ``torch.optim`` optimizer by (case-insensitive) class name; momentum goes where it fits."""
    cls = optimizer_class(name)
    kwargs: dict[str, Any] = {"lr": lr, "weight_decay": weight_decay}
    if cls in (torch.optim.SGD, torch.optim.RMSprop):
        kwargs["momentum"] = momentum
    return cls(params, **kwargs)
