"""The Trainer: one loop for LFP (any composite), gradient descent and surrogate-gradient BPTT.

A run lives in a folder: ``config.json``, ``metrics.jsonl`` (one JSON object per epoch),
``checkpoint.pt`` (written atomically: a temporary file, then a rename) and ``model.pt`` at the end.
Checkpoints (:mod:`spikelfp.train.checkpoint`) hold the model, optimizer, scheduler, RNG states, epoch
and step, the number of processes and every rank's running tally, and a SHA-256 over all of it
(verified on load); they load with ``torch.load(weights_only=True)``: loading never executes code. A
failed save (disk full, read-only) removes its temporary file and keeps the previous checkpoint.
SIGINT and SIGTERM finish the step, checkpoint and stop. A run resumed from any checkpoint, mid-epoch
included, ends with the same parameters as an uninterrupted one (on CPU): the data order of epoch
``e`` depends only on ``(seed, e)``, and the RNG state of dropout and rate encoding is restored.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import binary, encode, models, surrogate
from .. import clip as clipping
from .. import device as devices
from ..data import user as userdata
from ..io import AtomicWriteError, atomic_save, atomic_write_text
from ..lfp.engine import LFP, NonFiniteError, log
from ..nn import CallWith, TimeLoop
from .checkpoint import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    CheckpointError,
    check_same_run,
    payload_digest,
    read_checkpoint,
)
from .config import FEEDBACKS, Config, make_optimizer
from .model_file import model_file
from .tally import Tally

__all__ = ["TIME_LOOPS", "Trainer", "TrainingStopped"]

TIME_LOOPS = ("auto", "model", "trainer")  # who steps a spiking model through time (see Trainer's time_loop)


class TrainingStopped(RuntimeError):
    """Training hit non-finite numbers; the last good checkpoint is intact."""


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
        self._use_device()
        self.out_dir = Path(out_dir)
        self.progress = progress
        self.rank, self.world_size = rank, world_size
        torch.manual_seed(self.config.seed)
        self._load_data(train_set, test_set)
        model = self._build_model(model)
        self._set_runner(model, forward, time_loop)
        self._wrap_for_ddp()
        self._make_optimizer()
        self._choose_normalization(normalize_unset=config.normalize is None)
        self._attach_lfp()
        self._choose_feedback(feedback)
        self._start_counting()

    # ---- the steps of __init__ ----------------------------------------------------------------------
    def _use_device(self) -> None:
        """Where the model, batches and metrics live (``config.device`` resolved)."""
        self.device = devices.resolve(self.config.device)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)

    def _load_data(self, train_set: Any, test_set: Any) -> None:
        """The training and test sets (``config.dataset`` where not given), wrapped, cut to the limits."""
        c = self.config
        if train_set is None:
            train_set = userdata.load(c.dataset, train=True, root=c.data_root, steps=c.steps)
        if test_set is None:
            test_set = userdata.load(c.dataset, train=False, root=c.data_root, steps=c.steps)
        train_set, test_set = userdata.wrap(train_set, steps=c.steps), userdata.wrap(test_set, steps=c.steps)
        self.num_classes = max(train_set.num_classes, test_set.num_classes)
        self.train_set = train_set.subset(c.limit_train)
        self.test_set = test_set.subset(c.limit_test)

    def _build_model(self, model: nn.Module | None) -> nn.Module:
        """The given model, or ``config.model`` built for the data's shape; binary or ternary as configured."""
        c = self.config
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
        return model

    def _set_runner(self, model: nn.Module, forward: Callable | None, time_loop: str) -> None:
        """The model on the device, and what runs it on an encoded batch: itself, ``forward`` or a time loop."""
        if time_loop not in TIME_LOOPS:
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

    def _wrap_for_ddp(self) -> None:
        """Under DDP (``world_size > 1``): the runner in DistributedDataParallel, LFP's updates summed."""
        c = self.config
        self._reduction = None  # DDP's all-reduce mode for summed LFP updates (see distributed.sum_updates)
        if self.world_size == 1:
            return
        if not torch.distributed.is_available() or not torch.distributed.is_initialized():
            raise RuntimeError("world_size > 1 needs torch.distributed.init_process_group() first")
        # DDP's own all-reduce carries the LFP updates: they arrive in .grad through autograd. Summed
        # feedback sums over ranks too, so W processes with batch B are one process with batch W·B.
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        self.net = nn.parallel.DistributedDataParallel(self.runner, device_ids=device_ids)
        if c.composite and c.reduction == "sum":
            from ..distributed import sum_updates

            self._reduction = sum_updates(self.net)
        if isinstance(self.train_set, userdata.LoaderBatches) and not isinstance(
            getattr(self.train_set.loader, "sampler", None), torch.utils.data.DistributedSampler
        ):
            log.warning("the DataLoader has no DistributedSampler: every process trains on the same batches")

    def _make_optimizer(self) -> None:
        """The configured optimizer, and a StepLR scheduler when ``lr_step > 0``."""
        c = self.config
        self.optimizer = make_optimizer(c.optimizer, self.model.parameters(), c.lr, c.momentum, c.weight_decay)
        self.scheduler = (
            torch.optim.lr_scheduler.StepLR(self.optimizer, c.lr_step, c.lr_gamma) if c.lr_step > 0 else None
        )

    def _choose_normalization(self, normalize_unset: bool) -> None:
        """Models of step neurons (snnTorch, norse) train without max-normalisation unless it was asked for."""
        c = self.config
        modules = models.spiking_modules(self.model)
        step_neurons = any(getattr(m, "is_spiking", False) is not True for _, m in modules)
        if step_neurons and normalize_unset and c.normalize != "none":
            # snnTorch/norse neurons run one call per step: a maximum over the whole sequence cannot be taken
            # inside one backward, and the engine refuses per-step maxima (they differ from the multi-step
            # model's), so such models train without max-normalisation unless it is asked for
            log.info("normalize: none for a model run one step at a time (max-normalisation needs multi-step)")
            c.normalize = "none"

    def _attach_lfp(self) -> None:
        """The LFP engine over what is trained (``None`` for the gradient methods)."""
        c = self.config
        normalize = None if c.normalize == "none" else c.normalize
        self.lfp = LFP(self.net, c.composite, normalize=normalize) if c.composite else None

    def _choose_feedback(self, feedback: Callable[[Tensor, Tensor], Tensor] | None) -> None:
        """The feedback function: the given one, or ``config.feedback`` (which must fit the model's family)."""
        c = self.config
        if feedback is not None and not callable(feedback):
            raise TypeError(f"feedback must be callable as feedback(output, target), got {type(feedback).__name__}")
        self.feedback_fn = feedback if feedback is not None else None
        if c.composite and feedback is None:
            self.feedback_fn = FEEDBACKS[c.feedback](reduction=c.reduction)
            if self.spiking != (c.feedback == "spike-sequence"):
                raise ValueError(
                    f"feedback {c.feedback!r} does not fit a {'spiking' if self.spiking else 'non-spiking'} model"
                )

    def _start_counting(self) -> None:
        """Epoch 0, step 0, no history: where a fresh run starts (:meth:`load_checkpoint` moves it)."""
        self.epoch = 0
        self.step_in_epoch = 0
        self.global_step = 0
        self.history: list[dict] = []
        self._tally = Tally.on(self.device)
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
        tally = Tally.on(self.device)
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
            self._save("model.pt", atomic_save, model_file(self.model, self.config, self.input_shape, self.num_classes))
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
        self._save("config.json", atomic_write_text, json.dumps(dataclasses.asdict(c), indent=2) + "\n")
        if self._resumed:  # the checkpoint's history is the truth; lines past it were never checkpointed
            self._save("metrics.jsonl", atomic_write_text, "".join(json.dumps(m) + "\n" for m in self.history))

    def _on_sigint(self, signum, frame) -> None:
        if self._stop_requested:  # a second signal aborts at once
            raise KeyboardInterrupt
        self._stop_requested = True
        self.stop_signal = signum
        name = signal.Signals(signum).name if signum in set(signal.Signals) else str(signum)
        log.warning(f"{name}: saving a checkpoint after this step and stopping (again to abort)")

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
        self._tally = Tally.on(self.device)
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
        from .. import analysis

        current = {k: v.detach().clone() for k, v in self.model.state_dict().items() if v.is_floating_point()}
        stats = analysis.parameter_stats(current)
        if self._stats_prev is not None:
            stats["sign_changes"] = analysis.sign_changes(self._stats_prev, current)["total"]
            stats["parameter_mse"] = analysis.parameter_mse(self._stats_prev, current)
        self._stats_prev = current
        return stats

    # ---- checkpoints --------------------------------------------------------------------------------
    def _save(self, name: str, save: Callable[[Path, Any], Path], content: Any) -> Path:
        """``save(path, content)`` (an atomic writer of :mod:`spikelfp.io`) of ``name`` in the run folder.

        A failure (disk full, read-only folder, …) removes the temporary file and raises
        :class:`CheckpointError` with a one-line reason; the previous file is untouched.
        """
        try:
            return save(self.out_dir / name, content)
        except AtomicWriteError as exc:
            raise CheckpointError(str(exc)) from exc.__cause__

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
        return self._save("checkpoint.pt", atomic_save, state)

    def load_checkpoint(self, path: str | os.PathLike) -> None:
        """Restore a run from ``checkpoint.pt`` (or its folder); refuses torn or foreign files."""
        path, state = read_checkpoint(path)
        check_same_run(state, path, dataclasses.asdict(self.config), self.world_size)
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
        self._tally = Tally.from_state(state["tallies"][self.rank], self.device)  # this rank's own, not rank 0's
        self.history = json.loads(state["history"])
        prev = state.get("stats_prev")
        self._stats_prev = None if prev is None else {k: v.to(self.device) for k, v in prev.items()}
        self._resumed = True
