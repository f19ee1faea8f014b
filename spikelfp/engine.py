"""The LFP engine: attach rules to a model, run the feedback backward through autograd, detach.

Each supported layer runs, while LFP is attached, as a :class:`torch.autograd.Function` whose forward
is the ordinary one and whose backward returns the rule's input feedback in place of a gradient and
``−Δw`` as the gradient of each parameter. ``lfp.backward(out, feedback)`` therefore leaves
``p.grad = −Δp`` through autograd's own accumulation, and any ``torch.optim`` optimizer ascends the
feedback. Gradient accumulation, parameter sharing and DistributedDataParallel work unchanged.

Nothing is left on the model: the engine installs per-instance ``forward`` (and ``step``) methods
while attached and removes them in a ``finally`` block.
"""

from __future__ import annotations

import logging
import weakref
from typing import Any

import torch
from torch import Tensor, nn

from .clip import max_normalize
from .composites import DEFAULTS, Composite, _bind_engine, resolve

__all__ = ["LFP", "NonFiniteError", "Run"]

log = logging.getLogger("spikelfp")
_MISSING = object()


class NonFiniteError(ValueError):
    """A feedback or update became NaN or Inf during the LFP backward pass."""


class Run:
    """What the rule Functions of one LFP engine share: options, layout, spike bookkeeping.

    Parameters
    ----------
    normalize
        ``None``, ``"max"`` (divide the feedback leaving each rule layer by its per-sample maximum) or
        ``"max-batch"`` (by its maximum over the whole batch).
    check_finite
        Refuse (raise :class:`NonFiniteError`) instead of writing a non-finite feedback or update.
    """

    def __init__(self, normalize: str | None, check_finite: bool) -> None:
        self.normalize = normalize
        self.check_finite = check_finite
        #: ``(T, B)`` while a time-first input runs through the model, else None
        self.layout: tuple[int, int] | None = None
        self._spikes: dict[int, tuple[weakref.ref, Tensor]] = {}
        self._rates: dict[str, list[Tensor]] = {}
        #: the rule attached to each module, by ``id(module)``, while attached (a recurrent neuron reads
        #: the rule of its recurrent layer here)
        self.module_rules: dict[int, Any] = {}

    # ---- spikes: stored compactly for the backward pass -----------------------------------------
    def register_spikes(self, spikes: Tensor, compact: Tensor) -> None:
        """Remember that ``spikes`` (float 0/1) equals ``compact`` (bool), for :meth:`compact`.

        Entries whose float tensor is gone are dropped here, so a long ``with lfp:`` step loop (which
        never ends a forward through :meth:`LFP.__call__`) holds only the spikes still alive.
        """
        for key in [k for k, (ref, _) in self._spikes.items() if ref() is None]:
            del self._spikes[key]
        self._spikes[spikes.untyped_storage().data_ptr()] = (weakref.ref(spikes), compact)

    def compact(self, x: Tensor) -> Tensor:
        """A bool copy of ``x`` if ``x`` views a registered spike tensor whole, else ``x`` itself."""
        if not self._spikes or not x.is_contiguous():
            return x
        entry = self._spikes.get(x.untyped_storage().data_ptr())
        if entry is None:
            return x
        ref, compact = entry
        spikes = ref()
        if spikes is None or spikes.numel() != x.numel() or x.storage_offset() != spikes.storage_offset():
            return x
        return compact.view(x.shape)

    def record_rate(self, name: str, compact: Tensor) -> None:
        """Add a layer's spikes to the firing-rate statistics (kept as tensors: no sync)."""
        total = compact.sum(dtype=torch.float32)
        stats = self._rates.setdefault(name, [total.new_zeros(()), 0])
        stats[0] = stats[0] + total
        stats[1] += compact.numel()

    def firing_rates(self) -> dict[str, float]:
        """Mean spikes per neuron and step, per spiking layer, since the last forward began."""
        return {name: float(total) / max(count, 1) for name, (total, count) in self._rates.items()}

    def silent(self) -> bool:
        """True if spiking layers ran and none of them fired."""
        if not self._rates:
            return False
        return not bool(torch.stack([t for t, _ in self._rates.values()]).sum() > 0)

    def begin_forward(self, layout: tuple[int, int] | None) -> None:
        self.layout = layout
        self._rates = {}

    def end_forward(self) -> None:
        self._spikes.clear()

    # ---- the feedback leaving a layer -------------------------------------------------------------
    def leave(
        self,
        name: str,
        layout: tuple[int, int] | None,
        r_in: Tensor | None,
        dw: Tensor | None = None,
        db: Tensor | None = None,
    ) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        """Normalise the input feedback, check everything is finite, return ``(r_in, −Δw, −Δb)``."""
        if r_in is not None and self.normalize is not None:
            per = "batch" if self.normalize == "max-batch" else "sample"
            r_in = max_normalize(r_in, layout, per, inplace=True)
        if self.check_finite:
            self.ensure_finite(name, r_in=r_in, dw=dw, db=db)
        # the rules return fresh tensors: negate in place (no copy of a weight-sized tensor)
        return r_in, (None if dw is None else dw.neg_()), (None if db is None else db.neg_())

    def ensure_finite(self, name: str, **tensors: Tensor | None) -> None:
        """Raise :class:`NonFiniteError` unless every tensor is finite.

        One fused reduction per tensor (a sum is NaN or Inf if any entry is) and one sync per layer;
        a sum can also overflow when entries are within a factor ``numel`` of the float range, which
        is reported the same way, since such values overflow the next layer anyway.
        """
        present = {k: t for k, t in tensors.items() if t is not None}
        if not present:
            return
        ok = torch.isfinite(torch.stack([t.sum() for t in present.values()]))
        if not bool(ok.all()):
            bad = [k for k, flag in zip(present, ok.tolist()) if not flag]
            raise NonFiniteError(
                f"LFP produced non-finite values ({', '.join(bad)}) at layer '{name}'; nothing non-finite "
                "was written to .grad, but layers nearer the output may hold partial updates: zero the "
                "gradients before the next step (lower the learning rate, or normalise: normalize='max-batch')"
            )


class LFP:
    """Layer-wise Feedback Propagation on a PyTorch model.

    ``out = lfp(x)`` runs the model with the rules attached; ``lfp.backward(out, feedback)`` then
    writes ``p.grad = −Δp`` for every trainable parameter (accumulating like autograd), and the
    feedback that reached ``x`` into ``x.grad`` when ``x`` requires grad. Used as a context manager,
    the rules stay attached for the whole block, e.g. for a user's own step loop. Either way, the
    model is untouched afterwards: no hooks or replaced methods remain.

    Parameters
    ----------
    model
        Any :class:`torch.nn.Module` whose layers have rules (see :mod:`spikelfp.composites`). A module
        holding parameters with no rule is an error that names it.
    composite
        A preset name (``"epsilon"``, ``"zplus-zminus"``, …) or a :class:`~spikelfp.composites.Composite`.
    normalize
        ``None``, ``"max"`` or ``"max-batch"``. ``"max"`` divides the feedback leaving each rule layer
        by its maximum absolute value per sample (A.6.3, LFP-SPEC §5); for time-first ``(T, B, …)``
        input the maximum of a sample is over all steps and features. ``"max-batch"`` divides by one
        maximum over the whole batch instead, which keeps how much each sample contributes: the
        feedback of a learned sample stays small, so training converges (see benchmarks/RESULTS.md).
        In a user's own time loop (``with lfp:`` and one call per step) each call sees one step, so
        the maximum is taken per step rather than over all steps.
    check_finite
        Raise :class:`NonFiniteError` rather than write a non-finite update (one reduction per layer).

    Examples
    --------
    >>> lfp = LFP(net, "epsilon")
    >>> out = lfp(x)
    >>> lfp.backward(out, spikelfp.feedback.Softmax()(out, y))
    >>> optimizer.step(); optimizer.zero_grad()
    """

    def __init__(
        self,
        model: nn.Module,
        composite: str | Composite = "epsilon",
        normalize: str | None = None,
        *,
        check_finite: bool = True,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"LFP needs a torch.nn.Module, got {type(model).__name__}")
        if normalize not in (None, "max", "max-batch"):
            raise ValueError(f"normalize must be None, 'max' or 'max-batch', got {normalize!r}")
        self.model = model
        self.composite = resolve(composite)
        self.normalize = normalize
        self.run = Run(normalize, check_finite)
        self.spiking = any(getattr(m, "is_spiking", False) for m in model.modules())
        self._depth = 0
        self._patched: list[tuple[nn.Module, dict[str, Any], bool | None]] = []

    # ---- attach / detach ------------------------------------------------------------------------
    def rules(self) -> dict[str, Any]:
        """The rule every named module gets (None where it needs none), without attaching."""
        return {name: self._rule_for(name, m) for name, m in self.model.named_modules()}

    def _rule_for(self, name: str, module: nn.Module):
        rule = self.composite.rule_for(name, module)
        if rule is None:
            rule = DEFAULTS.rule_for(name, module)
        if rule is None:
            if any(True for _ in module.parameters(recurse=False)):
                raise TypeError(
                    f"module '{name}' of type {type(module).__name__} holds parameters but the composite "
                    "has no rule for it; map it to a rule (LFP never falls back to gradients)"
                )
            if not any(True for _ in module.children()):
                raise TypeError(
                    f"module '{name}' of type {type(module).__name__} has no LFP rule; map it to a rule "
                    "in the composite (e.g. spikelfp.rules.PassThrough() for an element-wise function)"
                )
        return rule

    def attach(self) -> LFP:
        """Install the rules (re-entrant; :meth:`detach` undoes the outermost call)."""
        if self._depth == 0:
            try:
                for name, module in self.model.named_modules():
                    rule = self._rule_for(name, module)
                    if rule is None:
                        continue
                    self.run.module_rules[id(module)] = rule
                    methods = rule.patch(module, name, self.run)
                    saved = {attr: module.__dict__.get(attr, _MISSING) for attr in methods}
                    inplace = getattr(module, "inplace", None)
                    inplace = inplace if isinstance(inplace, bool) else None
                    self._patched.append((module, saved, inplace))
                    for attr, fn in methods.items():
                        module.__dict__[attr] = fn
                    if inplace:
                        module.inplace = False  # rules save outputs; in-place ops would corrupt them
            except BaseException:
                self._restore()
                raise
        self._depth += 1
        return self

    def detach(self) -> None:
        """Remove the rules once the outermost :meth:`attach` is matched."""
        if self._depth == 0:
            return
        self._depth -= 1
        if self._depth == 0:
            self._restore()

    def _restore(self) -> None:
        self.run.module_rules.clear()
        while self._patched:
            module, saved, inplace = self._patched.pop()
            for attr, old in saved.items():
                if old is _MISSING:
                    module.__dict__.pop(attr, None)
                else:
                    module.__dict__[attr] = old
            if inplace is not None:
                module.inplace = inplace

    def __enter__(self) -> LFP:
        return self.attach()

    def __exit__(self, *exc: object) -> None:
        self.detach()

    # ---- forward / backward ---------------------------------------------------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        layout = None
        if self.spiking:
            x = args[0] if args else next(iter(kwargs.values()), None)
            if isinstance(x, Tensor):
                if x.dim() < 3:
                    raise ValueError(
                        f"this model has spiking layers and needs time-first input (T, B, ...); got a "
                        f"{x.dim()}-d tensor of shape {tuple(x.shape)} (encode it, e.g. "
                        "spikelfp.encode.constant(x, steps))"
                    )
                layout = (int(x.shape[0]), int(x.shape[1]))
        self.attach()
        previous = self.run.layout
        self.run.begin_forward(layout)
        try:
            return self.model(*args, **kwargs)
        finally:
            self.run.layout = previous
            self.run.end_forward()
            self.detach()

    def backward(self, output: Tensor, feedback: Tensor, *, retain_graph: bool = False) -> None:
        """Propagate ``feedback`` from ``output`` and write ``p.grad = −Δp`` (accumulating).

        Raises
        ------
        TypeError, ValueError
            If the feedback's shape differs from the output's, either holds NaN or Inf, or the
            output was not produced by this engine with grad enabled.
        NonFiniteError
            (a ValueError) If the output or feedback holds NaN or Inf, or a feedback or update becomes
            non-finite on the way; nothing non-finite is ever written to ``.grad``.
        """
        if not isinstance(output, Tensor) or not isinstance(feedback, Tensor):
            raise TypeError(
                f"output and feedback must be tensors, got {type(output).__name__} and {type(feedback).__name__}"
            )
        if feedback.shape != output.shape:
            raise ValueError(f"feedback shape {tuple(feedback.shape)} differs from output shape {tuple(output.shape)}")
        if not torch.isfinite(output).all():
            raise NonFiniteError("non-finite model output: the output contains NaN or Inf; no update was written")
        if not torch.isfinite(feedback).all():
            raise NonFiniteError("non-finite feedback: the feedback contains NaN or Inf; no update was written")
        if output.grad_fn is None:
            raise ValueError(
                "the output carries no LFP graph: produce it with `out = lfp(x)` while grad is enabled "
                "and the model has trainable parameters"
            )
        if self.spiking and self.run.silent():
            log.warning(
                "no spiking layer fired during this forward pass: LFP updates are zero except at biases "
                "(raise the input gain, lower the thresholds, or check the encoding)"
            )
        torch.autograd.backward(output, feedback.to(output.dtype), retain_graph=retain_graph)

    def firing_rates(self) -> dict[str, float]:
        """Mean firing rate per spiking layer in the last forward pass (syncs with the device)."""
        return self.run.firing_rates()

    def __repr__(self) -> str:
        return f"LFP({type(self.model).__name__}, composite={self.composite!r}, normalize={self.normalize!r})"


_bind_engine(LFP)  # lets Composite.context build an engine without composites importing this module
