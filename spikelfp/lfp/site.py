"""What every LFP rule Function shares, at the bottom of the imports: :class:`Run`, :class:`Site`,
:class:`RuleFunction`, :class:`NonFiniteError`, and the :class:`NeuronLFP` protocol a neuron adapter fills.

The engine (:mod:`spikelfp.lfp.engine`) owns one :class:`Run` per engine; each rule Function receives a
:class:`Site` telling it which rule runs where, and returns its feedback and ``−Δp`` through
:meth:`Run.leave`, which applies max-normalisation and the finiteness check. Rules, neurons, binary layers
and adapters import this module; it imports none of them.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from ..clip import max_normalize

__all__ = ["NeuronLFP", "NonFiniteError", "RuleFunction", "Run", "Site"]


class NonFiniteError(ValueError):
    """A feedback or update became NaN or Inf during the LFP backward pass."""


class RuleFunction(torch.autograd.Function):
    """Base of every autograd Function whose backward is an LFP rule.

    The engine's strictness check (LFP-SPEC §9) lets feedback pass only through nodes of these
    Functions and through pure routing nodes (view, reshape, cat, …); any other autograd node between
    the output and a parameter would mix a gradient into LFP. Every rule's Function derives from this.
    """


@dataclass(frozen=True)
class Site:
    """Where a rule runs: what its autograd Function needs besides tensors.

    Attributes
    ----------
    rule
        The rule.
    run
        The engine's shared state (normalisation, finiteness checks, spike bookkeeping).
    name
        The module's name in the model, for error messages and statistics.
    layout
        ``(T, B)`` of the time-first input being processed, else None.
    op
        The linear-like operation (rules for linear-like layers).
    params
        What else the rule needs (a neuron: :class:`spikelfp.neurons.lfp.NeuronSite`).
    """

    rule: Any
    run: Run
    name: str
    layout: tuple[int, int] | None
    op: Any = None
    params: Any = None


class NeuronLFP(Protocol):
    """A neuron as the temporal rule sees it (what :func:`spikelfp.interop.recognize` returns).

    ``lfp_methods(module, rule, name, run)`` gives the methods the engine installs on the module while LFP
    is attached (``forward``, and ``step`` where the module has one): they run the family's LFP Functions
    with the module's own call signature and state convention.
    """

    def lfp_methods(self, module: nn.Module, rule: Any, name: str, run: Run) -> dict[str, Callable[..., Any]]: ...


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
        self._rates: dict[str, list] = {}
        #: class name of every module with a rule, by module name (filled at attach, for messages)
        self.kinds: dict[str, str] = {}
        self._rates_seen = False  # the statistics were checked by a backward: the next record starts anew
        self._rules: dict[int, Any] = {}
        self._inner: dict[tuple[int, str], Any] = {}

    # ---- the rules attached, for the neurons that hold linear layers ---------------------------------
    def set_rule(self, module: nn.Module, rule: Any) -> None:
        self._rules[id(module)] = rule

    def rule_of(self, module: nn.Module) -> Any:
        """The rule attached to ``module`` (None if it has none)."""
        return self._rules.get(id(module))

    def set_inner_rule(self, module: nn.Module, attr: str, rule: Any) -> None:
        """The rule for weights ``attr`` held inside ``module`` (not an ``nn.Linear`` of their own)."""
        self._inner[(id(module), attr)] = rule

    def inner_rule(self, module: nn.Module, attr: str) -> Any:
        rule = self._inner.get((id(module), attr))
        if rule is None:
            raise TypeError(f"the weights {attr!r} inside {type(module).__name__} have no LFP rule")
        return rule

    def clear_rules(self) -> None:
        self._rules.clear()
        self._inner.clear()

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
        if self._rates_seen:  # a user's step loop: each backward looks at the steps since the last one
            self._rates, self._rates_seen = {}, False
        total = compact.sum(dtype=torch.float32)  # spikes, or spike counts of a multi-spike neuron
        stats = self._rates.setdefault(name, [total.new_zeros(()), 0])
        stats[0] = stats[0] + total
        stats[1] += compact.numel()

    def firing_rates(self) -> dict[str, float]:
        """Mean spikes per neuron and step, per spiking layer, since the last forward began."""
        return {name: float(total) / max(count, 1) for name, (total, count) in self._rates.items()}

    def spike_counts(self) -> dict[str, tuple[Tensor, int]]:
        """``(spikes as a tensor, neuron-steps)`` per spiking layer since the last forward began (no sync)."""
        return {name: (total, count) for name, (total, count) in self._rates.items()}

    def silent(self) -> bool:
        """True if spiking layers ran and none of them fired."""
        if not self._rates:
            return False
        return not bool(torch.stack([t for t, _ in self._rates.values()]).sum() > 0)

    def silent_layers(self) -> list[str]:
        """The spiking layers that ran and did not fire since the statistics were last reset (one sync)."""
        if not self._rates:
            return []
        names = list(self._rates)
        counts = torch.stack([self._rates[n][0] for n in names]).tolist()
        return [n for n, c in zip(names, counts) if c == 0]

    def mark_seen(self) -> None:
        """A backward looked at the statistics: the next record starts anew (a user's step loop)."""
        self._rates_seen = True

    def begin_forward(self, layout: tuple[int, int] | None) -> None:
        self.layout = layout
        self._rates = {}
        self._rates_seen = False

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
