"""Trainer: one loop for LFP (any composite), gradient descent and surrogate-gradient BPTT.

A run lives in a folder: ``config.json``, ``metrics.jsonl`` (one JSON object per epoch),
``checkpoint.pt`` (written atomically: a temporary file, then a rename) and ``model.pt`` at the end.
Checkpoints hold the model, optimizer, scheduler, RNG states, epoch and step, and load with
``torch.load(weights_only=True)``: loading never executes code. A run resumed from any checkpoint,
mid-epoch included, ends with the same parameters as an uninterrupted one (on CPU): the data order of
epoch ``e`` depends only on ``(seed, e)``, and the RNG state of dropout and rate encoding is restored.
"""

from __future__ import annotations

import contextlib
import dataclasses
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

from . import clip as clipping
from . import data as datasets
from . import encode, feedback, models, surrogate
from .engine import LFP, NonFiniteError, log

__all__ = ["CheckpointError", "Config", "Trainer", "TrainingStopped"]

CHECKPOINT_FORMAT = "spikelfp-checkpoint"
CHECKPOINT_VERSION = 1


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
    gain: float = 1.0
    limit_train: int | None = None
    limit_test: int | None = None
    data_root: str | None = None
    checkpoint_every: int = 0  # optimizer steps between mid-epoch checkpoints (0: epoch ends only)
    stats: bool = False  # log parameter statistics (sign changes, …) per epoch

    def resolved(self) -> Config:
        """A copy with every ``None`` replaced by the paper's setting for this model family."""
        spiking = self.model.startswith("snn")
        c = dataclasses.replace(self)
        if c.method == "gradient" and spiking:
            c.method = "surrogate"
        if c.method == "surrogate" and not spiking:
            raise ValueError("method 'surrogate' needs a spiking model (snn-mlp, snn-lenet); use 'gradient'")
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
        return c

    @property
    def spiking(self) -> bool:
        return self.model.startswith("snn")

    @property
    def composite(self) -> str | None:
        return self.method[4:] if self.method.startswith("lfp-") else None


FEEDBACKS: dict[str, Callable[..., feedback.Feedback]] = {
    "sigmoid": feedback.Sigmoid,
    "softmax": feedback.Softmax,
    "reward": feedback.Reward,
    "spike-sequence": feedback.SpikeSequence,
}


def make_optimizer(name: str, params, lr: float, momentum: float, weight_decay: float) -> torch.optim.Optimizer:
    """Any ``torch.optim`` optimizer by (case-insensitive) class name; momentum goes where it fits."""
    classes = {
        n.lower(): getattr(torch.optim, n)
        for n in dir(torch.optim)
        if isinstance(getattr(torch.optim, n), type) and issubclass(getattr(torch.optim, n), torch.optim.Optimizer)
    }
    cls = classes.get(name.lower())
    if cls is None or cls is torch.optim.Optimizer:
        raise ValueError(f"unknown optimizer {name!r}; any torch.optim class works, e.g. sgd, adam, adamw, rmsprop")
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

    def add(self, logits: Tensor, y: Tensor) -> None:
        with torch.no_grad():
            self.correct += (logits.argmax(-1) == y).sum()
            self.loss += F.cross_entropy(logits.float(), y, reduction="sum").double()
        self.seen += y.shape[0]

    def state(self) -> dict:
        return {"correct": self.correct.clone(), "loss": self.loss.clone(), "seen": self.seen}

    @classmethod
    def from_state(cls, s: dict) -> _Tally:
        return cls(s["correct"].clone(), s["loss"].clone(), int(s["seen"]))


class Trainer:
    """Train a model of :mod:`spikelfp.models` on an image set, by LFP or by gradients.

    Parameters
    ----------
    config
        The run's :class:`Config` (``None`` fields get the paper defaults).
    out_dir
        Folder of the run; created if missing.
    model, train_set, test_set
        Optional overrides (otherwise built from the config).
    progress
        Show a tqdm progress bar.
    """

    def __init__(
        self,
        config: Config,
        out_dir: str | os.PathLike,
        *,
        model: nn.Module | None = None,
        train_set: datasets.ImageSet | None = None,
        test_set: datasets.ImageSet | None = None,
        progress: bool = True,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.config = config.resolved()
        c = self.config
        self.out_dir = Path(out_dir)
        self.progress = progress
        self.rank, self.world_size = rank, world_size
        torch.manual_seed(c.seed)
        if train_set is None:
            train_set = datasets.load(c.dataset, train=True, root=c.data_root, steps=c.steps)
        if test_set is None:
            test_set = datasets.load(c.dataset, train=False, root=c.data_root, steps=c.steps)
        self.train_set = train_set.subset(c.limit_train)
        self.test_set = test_set.subset(c.limit_test)
        channels, size, _ = self.train_set.sample_shape
        if model is None:
            model = models.build(
                c.model,
                channels,
                size,
                10,
                beta=c.beta,
                threshold=c.threshold,
                reset=c.reset,
                neuron=c.neuron,
                alpha=c.alpha,
                encoding=c.encoding,
            )
        self.model = model
        self.net: nn.Module = model  # what is called: the model, or its DistributedDataParallel wrapper
        self._reduction = None  # DDP's all-reduce mode for summed LFP updates (see distributed.sum_updates)
        if world_size > 1:
            if not torch.distributed.is_available() or not torch.distributed.is_initialized():
                raise RuntimeError("world_size > 1 needs torch.distributed.init_process_group() first")
            # DDP's own all-reduce carries the LFP updates: they arrive in .grad through autograd. Summed
            # feedback sums over ranks too, so W processes with batch B are one process with batch W·B.
            self.net = nn.parallel.DistributedDataParallel(model)
            if c.composite and c.reduction == "sum":
                from .distributed import sum_updates

                self._reduction = sum_updates(self.net)
        self.spiking = models.is_spiking(model)
        self.optimizer = make_optimizer(c.optimizer, model.parameters(), c.lr, c.momentum, c.weight_decay)
        self.scheduler = (
            torch.optim.lr_scheduler.StepLR(self.optimizer, c.lr_step, c.lr_gamma) if c.lr_step > 0 else None
        )
        normalize = None if c.normalize == "none" else c.normalize
        self.lfp = LFP(self.net, c.composite, normalize=normalize) if c.composite else None
        self.feedback_fn = FEEDBACKS[c.feedback](reduction=c.reduction) if c.composite else None
        if c.composite and self.spiking != (c.feedback == "spike-sequence"):
            raise ValueError(
                f"feedback {c.feedback!r} does not fit a {'spiking' if self.spiking else 'non-spiking'} model"
            )
        self.epoch = 0
        self.step_in_epoch = 0
        self.global_step = 0
        self.history: list[dict] = []
        self._tally = _Tally()
        self._stop_requested = False
        self._stats_prev: dict[str, Tensor] | None = None

    # ---- the pieces of a step -------------------------------------------------------------------
    def encode(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Static images to the model's input: time-first for spiking models."""
        c = self.config
        if not self.spiking or (x.dim() == 5 and self.train_set.time_first):  # event frames are time-first
            return x
        if c.encoding == "constant":
            return encode.constant(x, c.steps)
        if c.encoding == "rate":
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
        """One optimizer step on a batch; returns the output (detached)."""
        c = self.config
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
        stacked = torch.stack([v.double() for v in values])
        torch.distributed.all_reduce(stacked)
        return list(stacked.unbind())

    @torch.no_grad()
    def evaluate(self, dataset: datasets.ImageSet | None = None, batch_size: int = 500) -> dict[str, Any]:
        """Accuracy and cross-entropy (on logits or spike counts); firing rates for spiking models.

        Under DDP every rank evaluates its shard and the counts are summed (a padded shard repeats
        a few samples, as DistributedSampler does).
        """
        dataset = self.test_set if dataset is None else dataset
        was_training = self.model.training
        self.model.eval()
        tally = _Tally()
        rates: dict[str, list[Tensor | int]] = {}
        hooks = []
        if self.spiking:
            for name, m in self.model.named_modules():
                if getattr(m, "is_spiking", False):

                    def hook(module, inputs, output, name=name):
                        entry = rates.setdefault(name, [torch.zeros((), dtype=torch.float64), 0])
                        entry[0] += output.sum(dtype=torch.float64)
                        entry[1] += output.numel()

                    hooks.append(m.register_forward_hook(hook))
        generator = torch.Generator().manual_seed(12345)
        shard = (self.rank, self.world_size) if self.world_size > 1 else None
        try:
            for x, y in dataset.batches(batch_size, standardize=self.config.standardize, shard=shard):
                out = self.model(self.encode(x, generator))
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
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if self.rank == 0:
            (self.out_dir / "config.json").write_text(json.dumps(dataclasses.asdict(c), indent=2) + "\n")
        previous_handler = None
        with contextlib.suppress(ValueError):  # not in the main thread: no Ctrl-C handling
            previous_handler = signal.signal(signal.SIGINT, self._on_sigint)
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
            if previous_handler is not None:
                signal.signal(signal.SIGINT, previous_handler)
        if not self._stop_requested and self.rank == 0:
            self._atomic_save({"model": self.model.state_dict(), "config": dataclasses.asdict(c)}, "model.pt")
        return self.history[-1] if self.history else {}

    def _on_sigint(self, signum, frame) -> None:
        if self._stop_requested:  # a second Ctrl-C aborts at once
            raise KeyboardInterrupt
        self._stop_requested = True
        log.warning("interrupt: saving a checkpoint after this step and stopping (Ctrl-C again to abort)")

    def _run_epoch(self, tqdm) -> None:
        c = self.config
        train = self.train_set
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
                self._tally.add(self.logits_of(out), y)
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
        self._tally = _Tally()
        if self.rank == 0:
            with open(self.out_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps(metrics) + "\n")
        self.save_checkpoint()

    def _stop_everywhere(self) -> bool:
        """Whether any rank was interrupted (a collective decision, so no rank waits alone)."""
        if self.world_size == 1:
            return self._stop_requested
        flag = torch.tensor(float(self._stop_requested))
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
        path = self.out_dir / name
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        torch.save(obj, tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
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
            "tally": self._tally.state(),
            "history": json.dumps(self.history),
            "stats_prev": self._stats_prev,
        }

    def save_checkpoint(self) -> Path | None:
        """Write ``checkpoint.pt`` atomically (rank 0 only); refuses non-finite parameters."""
        if self.rank != 0:
            return None
        if not self._parameters_finite():
            raise TrainingStopped("refusing to checkpoint non-finite parameters")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        return self._atomic_save(self.state_dict(), "checkpoint.pt")

    def load_checkpoint(self, path: str | os.PathLike) -> None:
        """Restore a run from ``checkpoint.pt`` (or its folder); refuses torn or foreign files."""
        path = Path(path)
        if path.is_dir():
            path = path / "checkpoint.pt"
        if not path.is_file():
            raise CheckpointError(f"no checkpoint at {path}")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torn zip, foreign pickle, unsafe globals
            raise CheckpointError(f"{path} is not a readable spikelfp checkpoint: {exc}") from exc
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(f"{path} is not a spikelfp checkpoint")
        if state.get("version") != CHECKPOINT_VERSION:
            raise CheckpointError(
                f"{path} has checkpoint version {state.get('version')}, expected {CHECKPOINT_VERSION}"
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
        except (RuntimeError, KeyError, ValueError) as exc:
            raise CheckpointError(f"{path} does not fit this model/optimizer: {exc}") from exc
        self.epoch = int(state["epoch"])
        self.step_in_epoch = int(state["step_in_epoch"])
        self.global_step = int(state["global_step"])
        torch.set_rng_state(state["rng"])
        self._tally = _Tally.from_state(state["tally"])
        self.history = json.loads(state["history"])
        self._stats_prev = state.get("stats_prev")
