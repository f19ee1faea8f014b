"""The neuron family without LFP: the Heaviside's derivative (zero) or a surrogate's (BPTT, LFP-SPEC §6).

Without a surrogate, autograd sees the spike's true derivative, zero almost everywhere: gradient descent
cannot train through it. With a surrogate (e.g. :class:`spikelfp.surrogate.FastSigmoid`) the spike's
derivative is ``σ'(U − θ)`` and gradients flow back through the states over time (BPTT), the reset
detached, as in snnTorch.

The forward is :func:`spikelfp.neurons.functional.step`, the same arithmetic as under LFP. A LIF with one
fixed decay runs the scalar fast path: a Function with a hand-written reverse loop
(:class:`MultiStepBPTT`, :class:`StepBPTT`) instead of one autograd node per operation and step.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor, nn

from . import functional as fn
from .spec import NeuronSpec

__all__ = ["MultiStepBPTT", "SpikeFunction", "StepBPTT", "Surrogate", "autograd_step"]


class Surrogate(Protocol):
    """What a spiking neuron needs of a surrogate: the derivative of the spike w.r.t. ``U − θ``."""

    def derivative(self, x: Tensor) -> Tensor: ...


class SpikeFunction(torch.autograd.Function):
    """``S = H(U − θ)`` (or the spec's spike rule: ``≥``, spike counts) with derivative zero (the Heaviside's)
    or a surrogate's at ``U − θ``. Not an LFP rule."""

    @staticmethod
    def forward(ctx, u: Tensor, spec: NeuronSpec, surrogate: Surrogate | None) -> Tensor:
        ctx.threshold, ctx.surrogate = spec.threshold, surrogate
        ctx.save_for_backward(u)
        return fn.fire(u, spec)

    @staticmethod
    def backward(ctx, g: Tensor):
        (u,) = ctx.saved_tensors
        if ctx.surrogate is None:
            return torch.zeros_like(g), None, None
        return g * ctx.surrogate.derivative(u - ctx.threshold), None, None


def autograd_step(
    x: Tensor,
    state: fn.State | None,
    alpha: Tensor | None,
    beta: Tensor,
    spec: NeuronSpec,
    surrogate: Surrogate | None,
    recurrent: nn.Module | None = None,
) -> fn.State:
    """One step in autograd operations (BPTT through the states; the reset detached, as in snnTorch).

    ``alpha``/``beta`` may carry autograd (a learnable decay, clamped by the caller); the spikes fed to the
    recurrent layer carry the surrogate derivative.
    """
    r = None
    if recurrent is not None:
        r = recurrent(torch.zeros_like(x) if state is None or state.s is None else state.s)

    def spike(u: Tensor) -> Tensor:
        return SpikeFunction.apply(u, spec, surrogate)

    r_in = None if r is None else fn.gained(r, spec)
    return fn.step(fn.gained(x, spec), state, alpha, beta, spec, r_in, spike=spike)


class MultiStepBPTT(torch.autograd.Function):
    """A LIF with one fixed decay over ``(T, B, …)``: the scalar fast path's hand-written BPTT.

    Inputs ``(x, v0, s0, spec, surrogate)``; the derivative through the membrane recursion is
    ``∂U[t+1]/∂U[t] = β`` (zero reset: ``β(1 − S[t])``; the reset term detached).
    """

    @staticmethod
    def forward(ctx, x, v0, s0, spec: NeuronSpec, surrogate: Surrogate | None):
        state = None if v0 is None else fn.State(None, v0, s0)
        tr, _ = fn.trace(fn.gained(x, spec), state, None, spec.beta, spec, keep=surrogate is not None)
        ctx.spec, ctx.surrogate, ctx.has_state = spec, surrogate, v0 is not None
        if surrogate is not None:
            ctx.save_for_backward(tr.u, s0)
        return tr.s.to(x.dtype)

    @staticmethod
    def backward(ctx, d_spikes):
        spec, surrogate = ctx.spec, ctx.surrogate
        if surrogate is None:
            zero = torch.zeros_like(d_spikes)
            return zero, (torch.zeros_like(zero[0]) if ctx.has_state else None), None, None, None
        u, s0 = ctx.saved_tensors
        beta, threshold = spec.beta, spec.threshold
        g = d_spikes * surrogate.derivative(u - threshold)
        keep = None
        if spec.reset == "zero":
            keep = (u <= threshold).to(u.dtype)  # 1 − S[t]
        d_u = torch.empty_like(g)
        d_u[-1] = g[-1]
        for t in range(g.shape[0] - 2, -1, -1):
            c = beta if keep is None else beta * keep[t]
            torch.add(g[t], d_u[t + 1] * c, out=d_u[t])
        d_v0 = None
        if ctx.has_state and ctx.needs_input_grad[1]:
            d_v0 = beta * d_u[0] if (spec.reset != "zero" or s0 is None) else beta * (1 - s0) * d_u[0]
        if spec.gain != 1.0:
            d_u = d_u * spec.gain
        return d_u, d_v0, None, None, None


class StepBPTT(torch.autograd.Function):
    """One step of a LIF with one fixed decay: the scalar fast path's derivative."""

    @staticmethod
    def forward(ctx, x, v, s, spec: NeuronSpec, surrogate: Surrogate | None):
        new = fn.step(fn.gained(x, spec), None if v is None else fn.State(None, v, s), None, spec.beta, spec)
        ctx.spec, ctx.surrogate = spec, surrogate
        ctx.save_for_backward(new.v, s)
        return new.s, new.v

    @staticmethod
    def backward(ctx, d_spikes, d_u):
        spec, surrogate = ctx.spec, ctx.surrogate
        u, s = ctx.saved_tensors
        total = torch.zeros_like(u) if d_u is None else d_u
        if surrogate is not None and d_spikes is not None:
            total = total + d_spikes * surrogate.derivative(u - spec.threshold)
        d_v = None
        if ctx.needs_input_grad[1]:
            d_v = spec.beta * total if (spec.reset != "zero" or s is None) else spec.beta * (1 - s) * total
        if spec.gain != 1.0:
            total = total * spec.gain
        return total, d_v, None, None, None
