"""Spiking neurons: the leaky integrate-and-fire (LIF) neuron and its temporal LFP rule.

Tensors are time-first, ``(T, B, …)``, and state is explicit (norse's design): pure step functions sit
beside a thin module, and the module keeps no state between calls.

Dynamics (A.14, A.15; LFP-SPEC §5), with decay ``β ∈ (0, 1]`` and threshold ``θ``:

.. math::
    U[t] = \\beta U[t-1] + I[t] - \\theta S[t-1] \\quad\\text{(subtract reset)}, \\qquad
    U[t] = \\beta (1 - S[t-1]) U[t-1] + I[t] \\quad\\text{(zero reset)},

    S[t] = H(U[t] - \\theta) = [U[t] > \\theta]

The reset uses the previous step's spike, as snnTorch's ``Leaky(reset_delay=True)`` does, and the
state starts at ``U[-1] = 0, S[-1] = 0``; ``reset="none"`` drops the reset term. ``β`` may be one float,
a per-neuron tensor, or learnable (``learn_beta=True``: ``Δβ = Σ_{t,b} r_carry[t−1]``, LFP-SPEC §9).

Under LFP the spikes pass feedback through the Heaviside unchanged and the membrane splits it
between the input current and the carried membrane (:class:`spikelfp.rules.MembraneSplit`). Without
LFP the module is an ordinary inference layer whose autograd derivative is the Heaviside's own (zero),
or a surrogate's if one is set (:mod:`spikelfp.surrogate`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import torch
from torch import Tensor

from ..rules import RuleFunction, Site, safe_divide
from .core import FamilyNeuron, FamilyState, Surrogate, check_reset, check_threshold, check_time_first, decay

if TYPE_CHECKING:  # pragma: no cover
    from ..engine import Run
    from ..rules import MembraneSplit

__all__ = ["LIF", "LIFParameters", "LIFState", "Surrogate", "lif_feed_forward", "lif_step"]


class LIFState(NamedTuple):
    """State of a LIF layer after a step.

    Attributes
    ----------
    v
        Membrane ``U[t]`` (before the reset of a spike at ``t``, which applies at ``t+1``).
    s
        Spikes ``S[t]`` (0/1, the membrane's dtype).
    """

    v: Tensor
    s: Tensor


@dataclass(frozen=True)
class LIFParameters:
    """Parameters of a LIF layer: decay ``β ∈ (0, 1]``, threshold ``θ`` and reset mode."""

    beta: float
    threshold: float = 1.0
    reset: Literal["subtract", "zero", "none"] = "subtract"

    def __post_init__(self) -> None:
        beta = self.beta
        if isinstance(beta, Tensor):
            if beta.numel() != 1:
                raise ValueError("beta must be a scalar (one decay per layer)")
            beta = float(beta)
            object.__setattr__(self, "beta", beta)
        if not (isinstance(beta, (int, float)) and 0.0 < beta <= 1.0):
            raise ValueError(f"beta must lie in (0, 1], got {beta!r}")
        if self.reset not in ("subtract", "zero", "none"):
            raise ValueError(f"reset must be 'subtract', 'zero' or 'none', got {self.reset!r}")
        threshold = float(self.threshold)
        if threshold != threshold or abs(threshold) == float("inf"):
            raise ValueError(f"threshold must be finite, got {self.threshold!r}")
        object.__setattr__(self, "beta", float(beta))
        object.__setattr__(self, "threshold", threshold)


# --------------------------------------------------------------------------------------------------
# pure functions
# --------------------------------------------------------------------------------------------------
def _membrane(i: Tensor, v: Tensor | None, s: Tensor | None, p: LIFParameters, out: Tensor | None = None):
    """``U[t]`` from the input current and the previous state (one shared expression, so that the
    step and multi-step paths give bitwise equal numbers)."""
    if v is None:
        return i.clone() if out is None else out.copy_(i)
    if p.reset == "zero" and s is not None:
        v = v * (1.0 - s)
    u = torch.add(i, v, alpha=p.beta, out=out) if out is not None else torch.add(i, v, alpha=p.beta)
    if p.reset == "subtract" and s is not None:
        u.sub_(s, alpha=p.threshold)
    return u


def lif_step(i: Tensor, state: LIFState | None, p: LIFParameters) -> tuple[Tensor, LIFState]:
    """One LIF step: ``(S[t], LIFState(U[t], S[t]))`` from ``I[t]`` and the previous state."""
    v, s = (None, None) if state is None else state
    u = _membrane(i, v, s, p)
    spikes = (u > p.threshold).to(u.dtype)
    return spikes, LIFState(u, spikes)


def lif_feed_forward(i: Tensor, state: LIFState | None, p: LIFParameters) -> tuple[Tensor, Tensor, LIFState]:
    """Run the LIF over a time-first current ``(T, B, …)``: ``(spikes, membranes, final state)``."""
    u, spikes = _integrate(i, state, p, keep_membrane=True)
    s = spikes.to(i.dtype)
    return s, u, LIFState(u[-1], s[-1])


def _integrate(
    i: Tensor, state: LIFState | None, p: LIFParameters, keep_membrane: bool, membranes: Tensor | None = None
):
    """The time loop: bool spikes ``(T, …)`` and, if asked, the membranes ``(T, …)`` (else the last),
    written into ``membranes`` when given."""
    steps = i.shape[0]
    spikes = torch.empty(i.shape, dtype=torch.bool, device=i.device)
    u_all = (membranes if membranes is not None else torch.empty_like(i)) if keep_membrane else None
    v, s = (None, None) if state is None else state
    s_float = s
    for t in range(steps):
        out = u_all[t] if u_all is not None else None
        v = _membrane(i[t], v, s_float, p, out=out)
        torch.gt(v, p.threshold, out=spikes[t])
        s_float = spikes[t].to(i.dtype)
    return (u_all if keep_membrane else v), spikes


def _carried(u_prev: Tensor, s_prev: Tensor | None, p: LIFParameters) -> Tensor:
    """``k = β·U[t−1]`` (zero reset: ``β(1−S[t−1])U[t−1]``): the carried part of the next membrane."""
    if p.reset == "zero" and s_prev is not None:
        return p.beta * u_prev * (1.0 - s_prev)
    return p.beta * u_prev


# --------------------------------------------------------------------------------------------------
# autograd: plain / surrogate derivative
# --------------------------------------------------------------------------------------------------
class _MultiStep(torch.autograd.Function):
    """Multi-step LIF with the Heaviside's derivative (zero) or a surrogate's (BPTT, reset detached)."""

    @staticmethod
    def forward(ctx, i, v0, s0, p: LIFParameters, surrogate: Surrogate | None):
        state = None if v0 is None else LIFState(v0, s0)
        u, spikes = _integrate(i, state, p, keep_membrane=surrogate is not None)
        ctx.p, ctx.surrogate, ctx.has_state = p, surrogate, v0 is not None
        if surrogate is not None:
            ctx.save_for_backward(u, s0)
        return spikes.to(i.dtype)

    @staticmethod
    def backward(ctx, d_spikes):
        p, surrogate = ctx.p, ctx.surrogate
        if surrogate is None:
            zero = torch.zeros_like(d_spikes)
            return zero, (torch.zeros_like(zero[0]) if ctx.has_state else None), None, None, None
        u, s0 = ctx.saved_tensors
        g = d_spikes * surrogate.derivative(u - p.threshold)
        keep = None
        if p.reset == "zero":
            keep = (u <= p.threshold).to(u.dtype)  # 1 − S[t]
        d_u = torch.empty_like(g)
        d_u[-1] = g[-1]
        for t in range(g.shape[0] - 2, -1, -1):
            c = p.beta if keep is None else p.beta * keep[t]
            torch.add(g[t], d_u[t + 1] * c, out=d_u[t])
        d_v0 = None
        if ctx.has_state and ctx.needs_input_grad[1]:
            d_v0 = p.beta * d_u[0] if (p.reset == "subtract" or s0 is None) else p.beta * (1 - s0) * d_u[0]
        return d_u, d_v0, None, None, None


class _Step(torch.autograd.Function):
    """One LIF step with the Heaviside's derivative (zero) or a surrogate's."""

    @staticmethod
    def forward(ctx, i, v, s, p: LIFParameters, surrogate: Surrogate | None):
        u = _membrane(i, v, s, p)
        ctx.p, ctx.surrogate = p, surrogate
        ctx.save_for_backward(u, s)
        return (u > p.threshold).to(u.dtype), u

    @staticmethod
    def backward(ctx, d_spikes, d_u):
        p, surrogate = ctx.p, ctx.surrogate
        u, s = ctx.saved_tensors
        total = torch.zeros_like(u) if d_u is None else d_u
        if surrogate is not None and d_spikes is not None:
            total = total + d_spikes * surrogate.derivative(u - p.threshold)
        d_v = None
        if ctx.needs_input_grad[1]:
            d_v = p.beta * total if (p.reset == "subtract" or s is None) else p.beta * (1 - s) * total
        return total, d_v, None, None, None


# --------------------------------------------------------------------------------------------------
# autograd: the temporal LFP rule
# --------------------------------------------------------------------------------------------------
def _split_coefficients(i: Tensor, k: Tensor, rule: MembraneSplit) -> tuple[Tensor, Tensor]:
    """``(I/D, k/D)`` (or ``|k|/D``) with ``D = |I| + |k| + ε``; zero where ``D = 0``.

    Overwrites ``k`` (the caller's scratch buffer) with the carry coefficient.
    """
    den = torch.abs(i).add_(torch.abs(k)).add_(rule.epsilon)
    if rule.carry == "abs":
        k.abs_()
    if rule.epsilon > 0:  # D ≥ ε > 0
        inv = den.reciprocal_()
        return inv.mul(i), k.mul_(inv)
    return safe_divide(i, den), safe_divide(k, den)


class _MultiStepLFP(RuleFunction):
    """Multi-step LIF under LFP: an explicit reverse loop over ``t`` in the backward.

    Saves only the input current (the same tensor the synaptic layer before it saves) and recomputes
    the membranes in the backward; the spikes handed to the next layer are registered so that it can
    store them as ``bool``.
    """

    @staticmethod
    def forward(ctx, i, v0, s0, site: Site):
        state = None if v0 is None else LIFState(v0, s0)
        _, spikes = _integrate(i, state, site.params, keep_membrane=False)
        out = spikes.to(i.dtype)
        site.run.register_spikes(out, spikes)
        site.run.record_rate(site.name, spikes)
        ctx.site = site
        ctx.save_for_backward(i, v0, s0)
        return out

    @staticmethod
    def backward(ctx, r_spikes):
        site: Site = ctx.site
        p = site.params
        i, v0, s0 = ctx.saved_tensors
        state = None if v0 is None else LIFState(v0, s0)
        # recompute the membranes one step late, so that k[t] = β·U[t−1] is the buffer scaled in place
        k = torch.empty((i.shape[0] + 1, *i.shape[1:]), dtype=i.dtype, device=i.device)
        _integrate(i, state, p, keep_membrane=True, membranes=k[1:])
        k = k[:-1]
        if p.reset == "zero" and k.shape[0] > 1:  # k = β(1 − S[t−1])U[t−1]: zero where it just fired
            k[1:].mul_(k[1:].le(p.threshold))
        k.mul_(p.beta)
        if v0 is None:
            k[0].zero_()
        else:
            k[0].copy_(_carried(v0, s0, p))
        c_i, c_k = _split_coefficients(i, k, site.rule)
        r_u = torch.empty_like(r_spikes)
        r_u[-1] = r_spikes[-1]
        for t in range(r_u.shape[0] - 2, -1, -1):
            torch.addcmul(r_spikes[t], c_k[t + 1], r_u[t + 1], out=r_u[t])
        r_v0 = c_k[0] * r_u[0] if (v0 is not None and ctx.needs_input_grad[1]) else None
        r_i = c_i.mul_(r_u)
        if site.run.check_finite:
            site.run.ensure_finite(site.name, r_in=r_i)
        return r_i, r_v0, None, None


class _StepLFP(RuleFunction):
    """One LIF step under LFP; the time recursion runs through the state's feedback."""

    @staticmethod
    def forward(ctx, i, v, s, site: Site):
        p = site.params
        u = _membrane(i, v, s, p)
        spikes = u > p.threshold
        out = spikes.to(u.dtype)
        site.run.record_rate(site.name, spikes)
        ctx.site = site
        ctx.save_for_backward(i, v, s)
        return out, u

    @staticmethod
    def backward(ctx, r_spikes, r_u):
        site: Site = ctx.site
        p = site.params
        i, v, s = ctx.saved_tensors
        total = r_spikes if r_u is None else (r_u if r_spikes is None else r_spikes + r_u)
        if total is None:
            return None, None, None, None
        k = torch.zeros_like(i) if v is None else _carried(v, s, p)  # a fresh tensor
        c_i, c_k = _split_coefficients(i, k, site.rule)
        r_i = c_i * total
        r_v = c_k * total if (v is not None and ctx.needs_input_grad[1]) else None
        if site.run.check_finite:
            site.run.ensure_finite(site.name, r_in=r_i)
        return r_i, r_v, None, None


# --------------------------------------------------------------------------------------------------
# the module
# --------------------------------------------------------------------------------------------------
class LIF(FamilyNeuron):
    """Leaky integrate-and-fire neurons over time-first input (see the module docstring).

    ``lif(x)`` runs all steps of ``x`` with shape ``(T, B, …)`` (dense or convolutional features) and
    returns spikes of the same shape. ``lif.step(x_t, state)`` runs one step on ``(B, …)`` and returns
    ``(spikes, LIFState)``; both modes give identical numbers.

    Parameters
    ----------
    beta
        Membrane decay: a float in ``(0, 1]``, or a per-neuron tensor in ``[0, 1]`` broadcasting over the
        feature dimensions (e.g. ``(C, 1, 1)`` for conv features).
    threshold
        Firing threshold ``θ`` (strict ``U > θ``); fixed (a learnable threshold has no LFP update).
    reset
        ``"subtract"`` (``U −= θ`` after a spike), ``"zero"`` or ``"none"``.
    surrogate
        Without LFP: None for the Heaviside's true derivative (zero), or a surrogate such as
        :class:`spikelfp.surrogate.FastSigmoid` for BPTT baselines. LFP ignores it.
    learn_beta
        Make ``beta`` an ``nn.Parameter`` named ``beta`` (clamped to ``[0, 1]`` in the forward), updated
        under LFP by ``Δβ = Σ_{t,b} r_carry[t−1]`` (LFP-SPEC §9), summed to ``β``'s shape.

    A fixed scalar ``β`` runs the dedicated LIF Functions below (the membranes recomputed in the LFP
    backward); a per-neuron or learnable ``β`` runs the family's shared core
    (:mod:`spikelfp.neurons.core`), with the same dynamics and split.
    """

    def __init__(
        self,
        beta: float | Tensor,
        threshold: float = 1.0,
        reset: Literal["subtract", "zero", "none"] = "subtract",
        surrogate: Surrogate | None = None,
        learn_beta: bool = False,
    ) -> None:
        super().__init__()
        if not learn_beta and (not isinstance(beta, Tensor) or beta.numel() == 1):
            self.beta = LIFParameters(beta, threshold, reset).beta  # validated: a float in (0, 1]
        else:
            decay(self, "beta", beta, learn_beta)
        self.threshold = check_threshold(threshold)
        self.reset = check_reset(reset)
        self.surrogate = surrogate

    @property
    def _fast(self) -> bool:
        return not isinstance(self.beta, Tensor)

    @property
    def params(self) -> LIFParameters:
        """``LIFParameters(β, θ, reset)`` of a LIF with one fixed ``β``."""
        if not self._fast:
            raise TypeError("this LIF has a per-neuron or learnable beta; LIFParameters holds one fixed beta")
        return LIFParameters(self.beta, self.threshold, self.reset)

    def _unpack(self, state: Any) -> FamilyState | None:
        if state is None:
            return None
        v, s = state if isinstance(state, LIFState) else LIFState(*state)
        return FamilyState(None, v, s)

    def _pack(self, state: FamilyState) -> LIFState:
        return LIFState(state.v, state.s)

    @staticmethod
    def _check_time_first(x: Tensor) -> None:
        check_time_first(x, "LIF")

    @staticmethod
    def _state_args(state: LIFState | None):
        if state is None:
            return None, None
        if not isinstance(state, LIFState):
            state = LIFState(*state)
        return state.v, state.s

    def forward(self, x: Tensor, state: LIFState | None = None) -> Tensor:
        """Spikes ``(T, B, …)`` for input currents ``(T, B, …)``, from ``state`` (default: rest)."""
        if not self._fast:
            return super().forward(x, state)
        self._check_time_first(x)
        v0, s0 = self._state_args(state)
        return _MultiStep.apply(x, v0, s0, self.params, self.surrogate)

    def step(self, x: Tensor, state: LIFState | None = None) -> tuple[Tensor, LIFState]:
        """One step: ``(S[t], LIFState(U[t], S[t]))`` for the current ``I[t]`` of shape ``(B, …)``."""
        if not self._fast:
            return super().step(x, state)
        v, s = self._state_args(state)
        spikes, u = _Step.apply(x, v, s, self.params, self.surrogate)
        return spikes, LIFState(u, spikes)

    # ---- LFP ----------------------------------------------------------------------------------------
    def lfp_methods(self, rule: MembraneSplit, name: str, run: Run):
        """The forward and step methods the engine installs while LFP is attached."""
        if not self._fast:
            return super().lfp_methods(rule, name, run)
        module = self

        def forward(x: Tensor, state: LIFState | None = None) -> Tensor:
            module._check_time_first(x)
            v0, s0 = module._state_args(state)
            return _MultiStepLFP.apply(x, v0, s0, Site(rule, run, name, run.layout, params=module.params))

        def step(x: Tensor, state: LIFState | None = None) -> tuple[Tensor, LIFState]:
            v, s = module._state_args(state)
            spikes, u = _StepLFP.apply(x, v, s, Site(rule, run, name, run.layout, params=module.params))
            return spikes, LIFState(u, spikes)

        return {"forward": forward, "step": step}
