"""Trainer: one loop for LFP (any composite), gradient descent and surrogate-gradient BPTT.

A run lives in a folder: ``config.json``, ``metrics.jsonl`` (one JSON object per epoch),
``checkpoint.pt`` (written atomically: a temporary file, then a rename) and ``model.pt`` at the end.
Checkpoints hold the model, optimizer, scheduler, RNG states, epoch and step, the number of processes
and every rank's running tally, and a SHA-256 over all of it (verified on load); they load with
``torch.load(weights_only=True)``: loading never executes code. A failed save (disk full, read-only)
removes its temporary file and keeps the previous checkpoint. SIGINT and SIGTERM finish the step,
checkpoint and stop. A run resumed from any checkpoint, mid-epoch included, ends with the same
parameters as an uninterrupted one (on CPU): the data order of epoch ``e`` depends only on
``(seed, e)``, and the RNG state of dropout and rate encoding is restored.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import binary, encode, feedback, models, surrogate, userdata
from . import clip as clipping
from . import device as devices
from .lfp.engine import LFP, NonFiniteError, log
from .nn import CallWith, TimeLoop

__all__ = ["CheckpointError", "Config", "Trainer", "TrainingStopped", "load_model"]

CHECKPOINT_FORMAT = "spikelfp-checkpoint"
CHECKPOINT_VERSION = 2  # 2: payload checksum, world size and per-rank tallies


class CheckpointError(ValueError):
    """A checkpoint is torn, foreign, or belongs to a different run."""


class TrainingStopped(RuntimeError):
    """Training hit non-finite numbers; the last good checkpoint is intact."""


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
        if not (c.method in ("gradient", "surrogate") or c.method.startswith("lfp-")):
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
        if c.normalize not in ("none", "max", "max-batch"):
            raise ValueError(f"normalize must be 'max', 'max-batch' or 'none', got {c.normalize!r}")
        if c.encoding not in ("constant", "rate", "latency", "rows"):
            raise ValueError(f"encoding must be constant, rate, latency or rows, got {c.encoding!r}")
        if c.encoding == "rows" and c.model not in ("snn-mlp", "snn-rmlp"):
            raise ValueError(f"encoding 'rows' (one image row per step) needs snn-mlp or snn-rmlp, not {c.model!r}")
        if spiking and c.neuron not in models.NEURONS:
            raise ValueError(f"neuron must be one of {', '.join(models.NEURONS)}, got {c.neuron!r}")
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
    if not (_finite(c.beta) and 0 <= c.beta <= 1):
        raise ValueError(f"beta must be in [0, 1], got {c.beta!r}")
    if c.clip is not None and not (_finite(c.clip) and c.clip >= 0):
        raise ValueError(f"clip must be a finite number >= 0, got {c.clip!r}")
    if c.weights not in ("float", "binary", "ternary"):
        raise ValueError(f"weights must be 'float', 'binary' or 'ternary', got {c.weights!r}")
    if c.weight_magnitude not in ("latent", "quantized"):
        raise ValueError(f"weight_magnitude must be 'latent' or 'quantized', got {c.weight_magnitude!r}")
    if c.reset not in ("subtract", "zero", "none"):
        raise ValueError(f"reset must be 'subtract', 'zero' or 'none', got {c.reset!r}")
    if not (_finite(c.alpha) and 0 <= c.alpha <= 1):
        raise ValueError(f"alpha must be in [0, 1], got {c.alpha!r}")
    if c.reduction not in ("sum", "mean"):
        raise ValueError(f"reduction must be 'sum' or 'mean', got {c.reduction!r}")
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


FEEDBACKS: dict[str, Callable[..., feedback.Feedback]] = {
    "sigmoid": feedback.Sigmoid,
    "softmax": feedback.Softmax,
    "reward": feedback.Reward,
    "spike-sequence": feedback.SpikeSequence,
}


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


@dataclass
class _Tally:
    """Running sums of one epoch's training metrics (tensors: no per-step sync)."""

    correct: Tensor = field(default_factory=lambda: torch.zeros((), dtype=torch.float64))
    loss: Tensor = field(default_factory=lambda: torch.zeros((), dtype=torch.float64))
    seen: int = 0

    @classmethod
    def on(cls, device: torch.device) -> _Tally:
        """An empty tally whose sums live on ``device`` (so adding never copies across devices)."""
        return cls(
            torch.zeros((), dtype=torch.float64, device=device), torch.zeros((), dtype=torch.float64, device=device)
        )

    def add(self, logits: Tensor, y: Tensor) -> None:
        with torch.no_grad():
            self.correct += (logits.argmax(-1) == y).sum()
            self.loss += F.cross_entropy(logits.float(), y, reduction="sum").double()
        self.seen += y.shape[0]

    def state(self) -> dict:
        return {
            "correct": self.correct.detach().cpu().clone(),
            "loss": self.loss.detach().cpu().clone(),
            "seen": self.seen,
        }

    @classmethod
    def from_state(cls, s: dict, device: torch.device | str = "cpu") -> _Tally:
        return cls(s["correct"].to(device).clone(), s["loss"].to(device).clone(), int(s["seen"]))


def _hash_into(h: Any, obj: Any) -> None:
    """Feed ``obj`` (nested dicts/lists of tensors, numbers, strings, None) into the hash ``h``, typed."""
    if isinstance(obj, Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}:".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(obj, dict):
        h.update(f"D{len(obj)}:".encode())
        for key in sorted(obj, key=repr):
            _hash_into(h, key)
            _hash_into(h, obj[key])
    elif isinstance(obj, (list, tuple)):
        h.update(f"L{len(obj)}:".encode())
        for item in obj:
            _hash_into(h, item)
    elif obj is None or isinstance(obj, (bool, int, float, str, bytes)):
        h.update(f"{type(obj).__name__}:{obj!r};".encode())
    else:
        raise TypeError(f"cannot checksum a {type(obj).__name__}")


def payload_digest(state: dict) -> str:
    """SHA-256 over every entry of a checkpoint except ``"sha256"``: tensor bytes, dtypes, shapes, values.

    A flipped bit anywhere in a tensor or a value changes it; the zip container's own layout does not.
    """
    h = hashlib.sha256()
    _hash_into(h, {k: v for k, v in state.items() if k != "sha256"})
    return h.hexdigest()


_CHECKPOINT_KEYS = (
    "config", "model", "optimizer", "scheduler", "epoch", "step_in_epoch", "global_step", "rng", "tallies",
    "world_size", "history", "sha256",
)  # fmt: skip


def _check_checkpoint(state: dict, path: Path) -> None:
    """Refuse a damaged checkpoint with one line naming ``path``: missing entries, bad checksum, bad values."""
    missing = [k for k in _CHECKPOINT_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"{path} is damaged: it lacks {', '.join(missing)}")
    try:
        actual = payload_digest(state)
    except TypeError as exc:
        raise CheckpointError(f"{path} is damaged: {exc}") from None
    if actual != state["sha256"]:
        raise CheckpointError(
            f"{path} is corrupt: the SHA-256 of its contents is {actual}, the file says {state['sha256']!r}"
        )
    for key in ("epoch", "step_in_epoch", "global_step", "world_size"):
        value = state[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < (1 if key == "world_size" else 0):
            raise CheckpointError(f"{path} is damaged: {key} = {value!r}")
    rng = state["rng"]
    if not isinstance(rng, Tensor) or rng.dtype != torch.uint8 or rng.dim() != 1:
        raise CheckpointError(f"{path} is damaged: its RNG state is not a byte tensor")
    tallies = state["tallies"]
    if not isinstance(tallies, list) or len(tallies) != state["world_size"]:
        raise CheckpointError(f"{path} is damaged: it holds no running tally for each of its processes")
    for t in tallies:
        if not (isinstance(t, dict) and isinstance(t.get("correct"), Tensor) and isinstance(t.get("loss"), Tensor)):
            raise CheckpointError(f"{path} is damaged: a running tally lacks correct/loss")
        if not isinstance(t.get("seen"), int) or t["seen"] < 0:
            raise CheckpointError(f"{path} is damaged: a running tally has seen = {t.get('seen')!r}")
    if not isinstance(state["config"], dict):
        raise CheckpointError(f"{path} is damaged: its config is not a mapping")
    try:
        history = json.loads(state["history"])
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path} is damaged: its history is not JSON ({exc})") from None
    if not isinstance(history, list) or not all(isinstance(m, dict) for m in history):
        raise CheckpointError(f"{path} is damaged: its history is not a list of epoch records")
    if len(history) != state["epoch"]:
        raise CheckpointError(f"{path} is damaged: {len(history)} epoch record(s) for epoch {state['epoch']}")


class Trainer:
    """Train a model on a data set, by LFP or by gradients.

    Parameters
    ----------
    config
        The run's :class:`Config` (``None`` fields get the paper defaults).
    out_dir
        Folder of the run; created if missing.
    model
        Any :class:`torch.nn.Module` (default: ``config.model`` built for the data). Spiking is detected
        for spikelfp's, snnTorch's and norse's neurons (:func:`spikelfp.models.is_spiking`); spiking
        models get time-first input ``(T, B, …)`` and must return time-first output ``(T, B, C)``.
        Step models (snnTorch neurons with ``init_hidden=True``, norse's ``SequentialState``) are called
        once per step by the Trainer, their state reset before every batch (:class:`~spikelfp.nn.TimeLoop`).
    train_set, test_set
        A built-in set (:mod:`spikelfp.data`), any map-style :class:`~torch.utils.data.Dataset` yielding
        ``(x, y)``, a tonic dataset, or a :class:`~torch.utils.data.DataLoader` (see
        :mod:`spikelfp.userdata` for scaling and what resume reproduces); default: ``config.dataset``.
    progress
        Show a tqdm progress bar.
    rank, world_size
        This process's place under DDP.
    device
        ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"auto"`` or a :class:`torch.device`; overrides
        ``config.device``. The model, batches, encoders and metrics live there; checkpoints load onto it.
    feedback
        A feedback callable ``(output, target) -> Tensor`` that replaces ``config.feedback``, e.g.
        :class:`spikelfp.feedback.FromLoss`.
    forward
        ``forward(model, x) -> output``: a user's own way to run the model on the encoded input, in
        place of the Trainer's (one call per batch).
    time_loop
        ``"auto"`` (see :func:`spikelfp.models.time_loop`), ``"model"`` (the model takes the whole
        sequence) or ``"trainer"`` (one call per step).
    """

    def __init__(
        self,
        config: Config,
        out_dir: str | os.PathLike,
        *,
        model: nn.Module | None = None,
        train_set: Any = None,
        test_set: Any = None,
        progress: bool = True,
        rank: int = 0,
        world_size: int = 1,
        device: str | torch.device | None = None,
        feedback: Callable[[Tensor, Tensor], Tensor] | None = None,
        forward: Callable[[nn.Module, Tensor], Tensor] | None = None,
        time_loop: str = "auto",
    ) -> None:
        if device is not None:
            config = dataclasses.replace(config, device=str(device))
        self.config = config.resolved(None if model is None else models.is_spiking(model))
        c = self.config
        normalize_unset = config.normalize is None
        self.device = devices.resolve(c.device)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        self.out_dir = Path(out_dir)
        self.progress = progress
        self.rank, self.world_size = rank, world_size
        torch.manual_seed(c.seed)
        if train_set is None:
            train_set = userdata.load(c.dataset, train=True, root=c.data_root, steps=c.steps)
        if test_set is None:
            test_set = userdata.load(c.dataset, train=False, root=c.data_root, steps=c.steps)
        train_set, test_set = userdata.wrap(train_set, steps=c.steps), userdata.wrap(test_set, steps=c.steps)
        self.num_classes = max(train_set.num_classes, test_set.num_classes)
        self.train_set = train_set.subset(c.limit_train)
        self.test_set = test_set.subset(c.limit_test)
        self.input_shape: tuple[int, ...] | None = None
        if model is None:
            self.input_shape = tuple(self.train_set.sample_shape)
            if len(self.input_shape) != 3 or self.input_shape[1] != self.input_shape[2]:
                raise ValueError(
                    f"model {c.model!r} needs square images (C, H, H); the data's samples are {self.input_shape}: "
                    "pass your own model (Trainer(model=...))"
                )
            channels, size, _ = self.input_shape
            model = models.build(
                c.model,
                channels,
                size,
                self.num_classes,
                beta=c.beta,
                threshold=c.threshold,
                reset=c.reset,
                neuron=c.neuron,
                alpha=c.alpha,
                encoding=c.encoding,
            )
        if c.weights != "float":  # the Linear/Conv2d layers compute with binary or ternary weights (§10)
            model = binary.convert(model, c.weights, magnitude=c.weight_magnitude)
        if time_loop not in ("auto", "model", "trainer"):
            raise ValueError(f"time_loop must be 'auto', 'model' or 'trainer', got {time_loop!r}")
        self.model = model.to(self.device)
        self.spiking = models.is_spiking(model)
        loop = models.time_loop(model) if time_loop == "auto" else time_loop
        if forward is not None:
            runner: nn.Module = CallWith(model, forward)
        elif self.spiking and loop.startswith("trainer"):
            runner = TimeLoop(model, stateful=loop == "trainer-state")
        else:
            runner = model
        self.runner = runner  # what turns an encoded batch into the output: the model, or a loop around it
        self.net: nn.Module = runner  # what is called in training: the runner, or its DDP wrapper
        self._reduction = None  # DDP's all-reduce mode for summed LFP updates (see distributed.sum_updates)
        if world_size > 1:
            if not torch.distributed.is_available() or not torch.distributed.is_initialized():
                raise RuntimeError("world_size > 1 needs torch.distributed.init_process_group() first")
            # DDP's own all-reduce carries the LFP updates: they arrive in .grad through autograd. Summed
            # feedback sums over ranks too, so W processes with batch B are one process with batch W·B.
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = nn.parallel.DistributedDataParallel(runner, device_ids=device_ids)
            if c.composite and c.reduction == "sum":
                from .distributed import sum_updates

                self._reduction = sum_updates(self.net)
            if isinstance(self.train_set, userdata.LoaderBatches) and not isinstance(
                getattr(self.train_set.loader, "sampler", None), torch.utils.data.DistributedSampler
            ):
                log.warning("the DataLoader has no DistributedSampler: every process trains on the same batches")
        self.optimizer = make_optimizer(c.optimizer, model.parameters(), c.lr, c.momentum, c.weight_decay)
        self.scheduler = (
            torch.optim.lr_scheduler.StepLR(self.optimizer, c.lr_step, c.lr_gamma) if c.lr_step > 0 else None
        )
        step_neurons = any(getattr(m, "is_spiking", False) is not True for _, m in models.spiking_modules(model))
        if step_neurons and normalize_unset and c.normalize != "none":
            # snnTorch/norse neurons run one call per step: a maximum over the whole sequence cannot be taken
            # inside one backward, and the engine refuses per-step maxima (they differ from the multi-step
            # model's), so such models train without max-normalisation unless it is asked for
            log.info("normalize: none for a model run one step at a time (max-normalisation needs multi-step)")
            c.normalize = "none"
        normalize = None if c.normalize == "none" else c.normalize
        self.lfp = LFP(self.net, c.composite, normalize=normalize) if c.composite else None
        if feedback is not None and not callable(feedback):
            raise TypeError(f"feedback must be callable as feedback(output, target), got {type(feedback).__name__}")
        self.feedback_fn = feedback if feedback is not None else None
        if c.composite and feedback is None:
            self.feedback_fn = FEEDBACKS[c.feedback](reduction=c.reduction)
            if self.spiking != (c.feedback == "spike-sequence"):
                raise ValueError(
                    f"feedback {c.feedback!r} does not fit a {'spiking' if self.spiking else 'non-spiking'} model"
                )
        self.epoch = 0
        self.step_in_epoch = 0
        self.global_step = 0
        self.history: list[dict] = []
        self._tally = _Tally.on(self.device)
        self._stop_requested = False
        self.stop_signal: int | None = None  # the signal that stopped the last fit(), if any
        self._resumed = False
        self._stats_prev: dict[str, Tensor] | None = None

    # ---- the pieces of a step -------------------------------------------------------------------
    def encode(self, x: Tensor, generator: torch.Generator | None = None, time_first: bool | None = None) -> Tensor:
        """Static images to the model's input: time-first for spiking models.

        ``time_first`` says the batch is a sequence already (event frames; default: the training set's
        kind). Rate encoding needs inputs in [0, 1] and refuses others (float images are never rescaled).
        """
        c = self.config
        if time_first is None:
            time_first = bool(getattr(self.train_set, "time_first", False))
        if not self.spiking or time_first:  # event frames are time-first
            return x
        if c.encoding == "constant":
            return encode.constant(x, c.steps)
        if c.encoding == "rate":
            if x.numel() and bool(((x < 0) | (x > 1)).any()):
                low, high = float(x.min()), float(x.max())
                raise ValueError(
                    f"rate encoding needs inputs in [0, 1], got values in [{low:.4g}, {high:.4g}]: uint8 images are "
                    "divided by 255, float images are taken as they are; scale them to [0, 1] (and standardize=False)"
                )
            return encode.rate(x, c.steps, c.gain, generator=generator)
        if c.encoding == "rows":
            return encode.rows(x)
        return encode.latency(x.clamp(0, 1), c.steps)

    @staticmethod
    def logits_of(out: Tensor) -> Tensor:
        """Class scores: the logits, or spike counts of a spiking output."""
        return out.sum(0) if out.dim() == 3 else out

    def uses_lfp(self) -> bool:
        return self.lfp is not None and self.global_step >= self.config.pretrain_steps

    def train_step(self, x: Tensor, y: Tensor) -> Tensor:
        """One optimizer step on a batch (moved to the Trainer's device); returns the output (detached)."""
        c = self.config
        x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        xin = self.encode(x)
        if self._reduction is not None:  # LFP steps sum over ranks; gradient pre-training steps average
            self._reduction.mode = "sum" if self.uses_lfp() else "mean"
        if self.uses_lfp():
            out = self.lfp(xin)
            self.lfp.backward(out, self.feedback_fn(out, y))  # NonFiniteError on a NaN/Inf output
            if c.clip:
                clipping.adaptive_(self.model.parameters(), c.clip)
        else:
            # spiking models learn by BPTT with the fast-sigmoid surrogate (A.6.3), here and in pre-training
            context = (
                surrogate.use(self.model, surrogate.FastSigmoid(25.0)) if self.spiking else contextlib.nullcontext()
            )
            with context:
                out = self.net(xin)
                loss = surrogate.ce_count_loss(out, y) if self.spiking else F.cross_entropy(out, y)
                if not torch.isfinite(loss):
                    raise NonFiniteError("the loss became non-finite")
                loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.scheduler is not None:
            self.scheduler.step()
        if not self._parameters_finite():
            raise TrainingStopped(
                f"parameters became non-finite at epoch {self.epoch + 1}, step {self.step_in_epoch + 1}"
            )
        return out.detach()

    def _parameters_finite(self) -> bool:
        return bool(torch.stack([torch.isfinite(p).all() for p in self.model.parameters()]).all())

    def _all_reduce(self, *values: Tensor) -> list[Tensor]:
        """Sum tensors over ranks (identity in one process)."""
        if self.world_size == 1:
            return list(values)
        stacked = torch.stack([v.double().to(self.device) for v in values])
        torch.distributed.all_reduce(stacked)
        return list(stacked.unbind())

    @torch.no_grad()
    def evaluate(self, dataset: Any = None, batch_size: int = 500) -> dict[str, Any]:
        """Accuracy and cross-entropy (on logits or spike counts); firing rates for spiking models.

        Under DDP every rank evaluates its shard and the counts are summed (a padded shard repeats
        a few samples, as DistributedSampler does).
        """
        dataset = self.test_set if dataset is None else userdata.wrap(dataset, steps=self.config.steps)
        was_training = self.model.training
        self.model.eval()
        tally = _Tally.on(self.device)
        rates: dict[str, list[Tensor | int]] = {}
        hooks = []
        if self.spiking:
            for name, m in models.spiking_modules(self.model):

                def hook(module, inputs, output, name=name):
                    spikes = output[0] if isinstance(output, (tuple, list)) else output  # snnTorch/norse: (spk, …)
                    entry = rates.setdefault(name, [torch.zeros((), dtype=torch.float64, device=spikes.device), 0])
                    entry[0] += spikes.sum(dtype=torch.float64)
                    entry[1] += spikes.numel()

                hooks.append(m.register_forward_hook(hook))
        generator = torch.Generator(device=self.device).manual_seed(12345)
        shard = (self.rank, self.world_size) if self.world_size > 1 else None
        try:
            for x, y in dataset.batches(batch_size, standardize=self.config.standardize, shard=shard):
                x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
                time_first = bool(getattr(dataset, "time_first", False))  # known once a sample was read
                out = self.runner(self.encode(x, generator, time_first))
                tally.add(self.logits_of(out), y)
        finally:
            for h in hooks:
                h.remove()
            self.model.train(was_training)
        correct, loss, seen = self._all_reduce(tally.correct, tally.loss, torch.tensor(float(tally.seen)))
        n = max(float(seen), 1.0)
        result: dict[str, Any] = {"accuracy": float(correct) / n, "loss": float(loss) / n}
        if self.spiking:
            names = sorted(rates)
            totals = self._all_reduce(*[torch.tensor([float(rates[k][0]), float(rates[k][1])]) for k in names])
            result["firing_rates"] = {k: float(t[0]) / max(float(t[1]), 1.0) for k, t in zip(names, totals)}
        return result

    # ---- the loop ---------------------------------------------------------------------------------
    def _epoch_generator(self, epoch: int) -> torch.Generator:
        return torch.Generator().manual_seed(self.config.seed * 1_000_003 + epoch)

    def fit(self) -> dict[str, Any]:
        """Train for the configured epochs (continuing a resumed run); returns the last metrics."""
        from tqdm.auto import tqdm

        c = self.config
        self._stop_requested = False  # a new fit() trains again after an interrupted one
        self.stop_signal = None
        previous_handlers = self._install_signal_handlers()  # before any file appears (a signal then saves)
        try:
            self._prepare_run_folder()
        except BaseException:
            self._restore_signal_handlers(previous_handlers)
            raise
        if c.stats and self._stats_prev is None:  # epoch 1's sign changes count from the initial weights
            self._stats_prev = {
                k: v.detach().clone() for k, v in self.model.state_dict().items() if v.is_floating_point()
            }
        try:
            while self.epoch < c.epochs:
                self._run_epoch(tqdm)
                if self._stop_requested:
                    break
        finally:
            self._restore_signal_handlers(previous_handlers)
        if not self._stop_requested and self.rank == 0:
            self._atomic_save(self._model_file(), "model.pt")
        return self.history[-1] if self.history else {}

    # SIGINT (Ctrl-C) and SIGTERM (schedulers, ``timeout``, ``docker stop``) both finish the step, checkpoint, stop
    STOP_SIGNALS = ("SIGINT", "SIGTERM")

    def _install_signal_handlers(self) -> dict[int, Any]:
        previous: dict[int, Any] = {}
        for name in self.STOP_SIGNALS:
            signum = getattr(signal, name, None)
            if signum is None:  # pragma: no cover - platform without it
                continue
            with contextlib.suppress(ValueError):  # not in the main thread: no signal handling
                previous[signum] = signal.signal(signum, self._on_sigint)
        return previous

    @staticmethod
    def _restore_signal_handlers(previous: dict[int, Any]) -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)

    def _prepare_run_folder(self) -> None:
        """Create the folder, write ``config.json`` and cut ``metrics.jsonl`` to the epochs this run knows.

        An epoch line appended before a crash that lost its checkpoint (SIGKILL between the two) is
        dropped, so a resumed run never repeats an epoch line.
        """
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if self.rank != 0:
            return
        c = self.config
        self._atomic_write_text("config.json", json.dumps(dataclasses.asdict(c), indent=2) + "\n")
        if self._resumed:  # the checkpoint's history is the truth; lines past it were never checkpointed
            self._atomic_write_text("metrics.jsonl", "".join(json.dumps(m) + "\n" for m in self.history))

    def _on_sigint(self, signum, frame) -> None:
        if self._stop_requested:  # a second signal aborts at once
            raise KeyboardInterrupt
        self._stop_requested = True
        self.stop_signal = signum
        name = signal.Signals(signum).name if signum in set(signal.Signals) else str(signum)
        log.warning(f"{name}: saving a checkpoint after this step and stopping (again to abort)")

    def _model_file(self) -> dict[str, Any]:
        """What ``model.pt`` holds: the weights (on the CPU), the config, and what :func:`load_model`
        needs to rebuild the model (input shape, classes, each spikelfp neuron's β, threshold, reset)."""
        return {
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "config": dataclasses.asdict(self.config),
            "input_shape": None if self.input_shape is None else list(self.input_shape),
            "num_classes": self.num_classes,
            "neurons": json.dumps(models.neuron_settings(self.model)),
        }

    def _run_epoch(self, tqdm) -> None:
        c = self.config
        train = self.train_set
        if callable(getattr(train, "set_epoch", None)):  # a user's DataLoader: fix this epoch's order
            train.set_epoch(self.epoch, c.seed)
        shard = (self.rank, self.world_size) if self.world_size > 1 else None
        total = train.num_batches(c.batch_size, self.world_size)
        start = self.step_in_epoch
        self.model.train()
        began = time.perf_counter()
        bar = tqdm(
            total=total,
            initial=start,
            desc=f"epoch {self.epoch + 1}/{c.epochs}",
            disable=True if (not self.progress or self.rank != 0) else None,  # None: off when not a TTY
            leave=False,
        )
        batches = train.batches(
            c.batch_size,
            shuffle=True,
            generator=self._epoch_generator(self.epoch),
            standardize=c.standardize,
            start=start,
            shard=shard,
        )
        try:
            for x, y in batches:
                try:
                    out = self.train_step(x, y)
                except NonFiniteError as exc:
                    self.optimizer.zero_grad(set_to_none=True)
                    raise TrainingStopped(
                        f"training stopped at epoch {self.epoch + 1}, step {self.step_in_epoch + 1}: {exc}. "
                        f"The last good checkpoint in {self.out_dir} is intact."
                    ) from exc
                self._tally.add(self.logits_of(out), y.to(self.device))
                self.step_in_epoch += 1
                self.global_step += 1
                bar.update(1)
                if self.step_in_epoch % 50 == 0:
                    bar.set_postfix(acc=f"{float(self._tally.correct) / max(self._tally.seen, 1):.3f}")
                if c.checkpoint_every and self.global_step % c.checkpoint_every == 0:
                    self.save_checkpoint()
                if self._stop_everywhere():
                    self.save_checkpoint()
                    return
        finally:
            bar.close()
        elapsed = time.perf_counter() - began
        metrics = self._epoch_metrics(elapsed)
        self.history.append(metrics)
        self.epoch += 1
        self.step_in_epoch = 0
        self._tally = _Tally.on(self.device)
        if self.rank == 0:
            with open(self.out_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps(metrics) + "\n")
        self.save_checkpoint()

    def _stop_everywhere(self) -> bool:
        """Whether any rank was interrupted (a collective decision, so no rank waits alone)."""
        if self.world_size == 1:
            return self._stop_requested
        flag = torch.tensor(float(self._stop_requested), device=self.device)  # NCCL reduces CUDA tensors only
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        self._stop_requested = bool(flag > 0)
        return self._stop_requested

    def _epoch_metrics(self, elapsed: float) -> dict[str, Any]:
        tally = self._tally
        correct, loss, seen_t = self._all_reduce(tally.correct, tally.loss, torch.tensor(float(tally.seen)))
        seen = max(float(seen_t), 1.0)
        test = self.evaluate()
        metrics: dict[str, Any] = {
            "epoch": self.epoch + 1,
            "train_accuracy": float(correct) / seen,
            "train_loss": float(loss) / seen,
            "test_accuracy": test["accuracy"],
            "test_loss": test["loss"],
            "seconds": round(elapsed, 3),
            "samples_per_second": round(float(seen_t) / elapsed, 2) if elapsed > 0 else None,
            "processes": self.world_size,
            "lr": self.optimizer.param_groups[0]["lr"],
            "global_step": self.global_step,
        }
        if "firing_rates" in test:
            metrics["firing_rates"] = test["firing_rates"]
        if self.config.stats:
            metrics.update(self._parameter_stats())
        return metrics

    def _parameter_stats(self) -> dict[str, Any]:
        from . import analysis

        current = {k: v.detach().clone() for k, v in self.model.state_dict().items() if v.is_floating_point()}
        stats = analysis.parameter_stats(current)
        if self._stats_prev is not None:
            stats["sign_changes"] = analysis.sign_changes(self._stats_prev, current)["total"]
            stats["parameter_mse"] = analysis.parameter_mse(self._stats_prev, current)
        self._stats_prev = current
        return stats

    # ---- checkpoints --------------------------------------------------------------------------------
    def _atomic_save(self, obj: dict, name: str) -> Path:
        return self._atomic_write(name, lambda tmp: torch.save(obj, tmp))

    def _atomic_write_text(self, name: str, text: str) -> Path:
        return self._atomic_write(name, lambda tmp: tmp.write_text(text))

    def _atomic_write(self, name: str, write: Callable[[Path], Any]) -> Path:
        """Write ``name`` in the run folder by ``write(tmp)``, fsync, rename; on failure keep the old file.

        A failure (disk full, read-only folder, …) removes the temporary file and raises
        :class:`CheckpointError` with a one-line reason; the previous file is untouched.
        """
        path = self.out_dir / name
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        try:
            write(tmp)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except (OSError, RuntimeError) as exc:  # torch.save reports a failed write as RuntimeError
            with contextlib.suppress(OSError):
                tmp.unlink()
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).splitlines()[0]
            kept = " (the previous one is kept)" if path.exists() else ""
            raise CheckpointError(f"could not save {path}{kept}: {reason}") from exc
        return path

    def state_dict(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "config": dataclasses.asdict(self.config),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step,
            "rng": torch.get_rng_state(),
            "tallies": self._gather_tallies(),
            "world_size": self.world_size,
            "cuda_rng": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
            "history": json.dumps(self.history),
            "stats_prev": self._stats_prev,
        }

    def _gather_tallies(self) -> list[dict]:
        """Every rank's running tally of the current epoch, rank by rank (a collective under DDP)."""
        seen = torch.tensor(float(self._tally.seen), device=self._tally.correct.device)
        mine = torch.stack([self._tally.correct, self._tally.loss, seen]).double()
        if self.world_size == 1:
            parts = [mine]
        else:
            parts = [torch.empty_like(mine) for _ in range(self.world_size)]
            torch.distributed.all_gather(parts, mine)
        return [{"correct": p[0].cpu().clone(), "loss": p[1].cpu().clone(), "seen": int(p[2])} for p in parts]

    def save_checkpoint(self) -> Path | None:
        """Write ``checkpoint.pt`` atomically (rank 0 writes; every rank must call it under DDP).

        Refuses non-finite parameters. The file holds :meth:`state_dict` and its SHA-256
        (:func:`payload_digest`), which :meth:`load_checkpoint` verifies.
        """
        state = self.state_dict()  # gathers the tallies of all ranks: every rank takes part
        if self.rank != 0:
            return None
        if not self._parameters_finite():
            raise TrainingStopped("refusing to checkpoint non-finite parameters")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        state["sha256"] = payload_digest(state)
        return self._atomic_save(state, "checkpoint.pt")

    def load_checkpoint(self, path: str | os.PathLike) -> None:
        """Restore a run from ``checkpoint.pt`` (or its folder); refuses torn or foreign files."""
        path, state = _read_run_file(path, "checkpoint.pt", "checkpoint", "no checkpoint at {path}")
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(f"{path} is not a spikelfp checkpoint")
        if state.get("version") != CHECKPOINT_VERSION:
            older = " (an older spikelfp's, without a checksum: start afresh)" if state.get("version") == 1 else ""
            raise CheckpointError(
                f"{path} has checkpoint version {state.get('version')}, expected {CHECKPOINT_VERSION}{older}"
            )
        _check_checkpoint(state, path)
        if state["world_size"] != self.world_size:
            raise CheckpointError(
                f"{path} was written by {state['world_size']} process(es); resume it with the same number "
                f"(here: {self.world_size}): the data order and the summed updates depend on it"
            )
        saved = state["config"]
        mine = dataclasses.asdict(self.config)
        changed = [k for k in ("model", "dataset", "method", "seed", "batch_size", "steps") if saved.get(k) != mine[k]]
        if changed:
            raise CheckpointError(
                f"{path} belongs to a different run: "
                + ", ".join(f"{k} {saved.get(k)!r} there, {mine[k]!r} here" for k in changed)
            )
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            if self.scheduler is not None and state["scheduler"] is not None:
                self.scheduler.load_state_dict(state["scheduler"])
        except (RuntimeError, KeyError, ValueError, TypeError, IndexError) as exc:
            raise CheckpointError(f"{path} does not fit this model/optimizer: {exc}") from exc
        self.epoch = int(state["epoch"])
        self.step_in_epoch = int(state["step_in_epoch"])
        self.global_step = int(state["global_step"])
        try:
            torch.set_rng_state(state["rng"])
            if self.device.type == "cuda" and state.get("cuda_rng") is not None:
                torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        except RuntimeError as exc:
            raise CheckpointError(f"{path} is damaged: its RNG state does not load ({exc})") from None
        self._tally = _Tally.from_state(state["tallies"][self.rank], self.device)  # this rank's own, not rank 0's
        self.history = json.loads(state["history"])
        prev = state.get("stats_prev")
        self._stats_prev = None if prev is None else {k: v.to(self.device) for k, v in prev.items()}
        self._resumed = True


def _read_run_file(path: str | os.PathLike, name: str, what: str, missing: str) -> tuple[Path, Any]:
    """``(path, contents)`` of a run's ``name`` (``path`` may be the run folder), read with
    ``weights_only=True`` so that loading never executes code; :class:`CheckpointError` names the file."""
    path = Path(path)
    if path.is_dir():
        path = path / name
    if not path.is_file():
        raise CheckpointError(missing.format(path=path))
    try:
        return path, torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torn zip, foreign pickle, unsafe globals
        raise CheckpointError(f"{path} is not a readable spikelfp {what}: {exc}") from exc


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
    path, saved = _read_run_file(
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
