"""The dynamics of the neuron family, written once: one step, and the multi-step loop over it (pure).

.. math::
    J[t] = \\alpha J[t-1] + g (I[t] + R[t]), \\qquad
    U[t] = \\beta U[t-1] + C[t] - \\theta S[t-1], \\qquad S[t] = [U[t] > \\theta]

(the gain ``g`` multiplies both currents: ``g(I[t] + R[t])`` enters) with ``C[t] = J[t]`` for a synaptic
neuron and ``g(I[t] + R[t])`` otherwise, ``R[t] = V S[t−1] + b`` the
recurrent current (``S[−1] = 0``, so ``R[0] = b``), the reset variants of :class:`NeuronSpec`, and states
starting at 0. :func:`step` is what the modules' multi-step forward, their ``step``, the LFP Functions
(:mod:`spikelfp.neurons.lfp`), the BPTT path (:mod:`spikelfp.neurons.bptt`) and the public ``*_step``
functions run; the same arithmetic everywhere, so the step and multi-step modes give the same numbers.

**The scalar fast path.** A LIF with one fixed decay (``beta`` passed as a Python float) integrates with
``torch.add(I, U, alpha=β)``, one fused kernel; a decay tensor (per neuron, learnable, or any synaptic
neuron) multiplies and adds. Both are exact restatements of the same formula; they round differently in
the last bit, and each path's numbers are pinned by ``tests/test_golden.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .spec import NeuronSpec

__all__ = ["State", "Trace", "carried", "fire", "post_reset", "recurrent_current", "step", "trace"]


class State(NamedTuple):
    """The full state after a step: synaptic current ``j`` (or None), membrane ``v = U[t]`` (before the
    reset of a spike at ``t``, which applies at ``t + 1``), spikes ``s`` (or None for LI/CubaLI)."""

    j: Tensor | None
    v: Tensor
    s: Tensor | None


class Trace(NamedTuple):
    """Every state over time, ``(T, …)``: ``j`` (or None), ``u``, bool spikes ``s`` (or None), recurrent
    currents ``r`` (or None)."""

    j: Tensor | None
    u: Tensor
    s: Tensor | None
    r: Tensor | None


def heaviside(u: Tensor, threshold: float) -> Tensor:
    """Spikes ``[U > θ]`` as floats of ``U``'s dtype."""
    return (u > threshold).to(u.dtype)


def fire(u: Tensor, spec: NeuronSpec) -> Tensor:
    """The spikes of a membrane by the spec's rule, as floats of ``U``'s dtype.

    ``"single"``: ``[U > θ]`` (or ``[U ≥ θ]`` with ``fire=">="``); ``"multi"``: the count
    ``[U > 0]·trunc(U/θ)`` (sinabs's ``MultiSpike``: as many spikes as whole thresholds), capped at
    ``max_spikes``.
    """
    theta = spec.threshold
    if spec.spikes == "single":
        return ((u > theta) if spec.fire == ">" else (u >= theta)).to(u.dtype)
    n = torch.div(u, theta, rounding_mode="trunc").mul_(u > 0)
    return n if spec.max_spikes is None else n.clamp_(max=float(spec.max_spikes))


def post_reset(v: Tensor, s: Tensor | None, spec: NeuronSpec) -> Tensor:
    """The membrane that decays into the next step: ``U[t−1]`` itself (delayed subtractive reset or none),
    ``(1 − [S > 0])U`` (zero reset), or with ``reset_delay=False`` ``max(U − θS, v_min)``."""
    if s is not None:
        if spec.reset == "zero":
            fired = s if spec.spikes == "single" else s.clamp(max=1.0)
            v = (1.0 - fired) * v
        elif spec.reset == "subtract" and not spec.reset_delay:
            v = v - spec.threshold * s
    if not spec.reset_delay and spec.v_min is not None:
        v = v.clamp(min=spec.v_min)
    return v


def step(
    i: Tensor,
    state: State | None,
    alpha: Tensor | float | None,
    beta: Tensor | float,
    spec: NeuronSpec,
    r: Tensor | None = None,
    out: tuple[Tensor | None, Tensor, Tensor | None] | None = None,
    spike: Callable[[Tensor], Tensor] | None = None,
) -> State:
    """One step of the dynamics (see the module docstring): the new :class:`State`.

    Parameters
    ----------
    i
        The input current ``g·I[t]`` (the gain is applied by the caller: see :func:`gained`).
    state
        The previous state, or None at rest.
    alpha, beta
        The decays, already clamped to ``[0, 1]``: tensors broadcasting over ``i``, or (scalar fast path of
        a LIF) ``beta`` as a Python float.
    spec
        The neuron (kind, threshold, reset).
    r
        The recurrent current as it enters, ``g·R[t]``, or None.
    out
        Buffers ``(J, U, bool S)`` to write into (the multi-step loop); the numbers are the same without.
    spike
        ``U ↦ S`` (default: the Heaviside, no derivative); the BPTT path passes a surrogate spike Function.
        The reset always uses the previous spikes detached, as snnTorch does.
    """
    j_prev, v_prev, s_prev = (None, None, None) if state is None else state
    out_j, out_u, out_s = (None, None, None) if out is None else out
    j = None
    graph = spike is not None  # the autograd path: the graph of the operations themselves, without copies
    if spec.synaptic:
        if j_prev is None and graph:
            j = i if r is None else i + r
        elif j_prev is None:
            j = i.clone() if out_j is None else out_j.copy_(i)
        else:
            j = torch.mul(j_prev, alpha, out=out_j) if out_j is not None else j_prev * alpha
            j.add_(i)
        if r is not None and not (graph and j_prev is None):
            j.add_(r)
    drive = j if spec.synaptic else i
    if v_prev is None and graph:
        u = drive if (r is None or spec.synaptic) else drive + r
    elif v_prev is None:
        u = drive.clone() if out_u is None else out_u.copy_(drive)
        if r is not None and not spec.synaptic:
            u.add_(r)
    else:
        reset = None if s_prev is None else s_prev.detach()
        v = post_reset(v_prev, reset, spec)
        if isinstance(beta, float):  # the scalar fast path: one fused kernel
            u = torch.add(drive, v, alpha=beta, out=out_u) if out_u is not None else torch.add(drive, v, alpha=beta)
        else:
            u = torch.mul(v, beta, out=out_u) if out_u is not None else v * beta
            u.add_(drive)
        if r is not None and not spec.synaptic:
            u.add_(r)
        if reset is not None and spec.reset == "subtract" and spec.reset_delay:
            u.sub_(reset, alpha=spec.threshold)  # θ·S is exact (S is 0 or 1)
    s = None
    if spec.spiking:
        if spike is not None:
            s = spike(u)
        elif not spec.standard:
            s = fire(u, spec)
            if out_s is not None:
                out_s.copy_(s)
        elif out_s is not None:
            s = torch.gt(u, spec.threshold, out=out_s).to(u.dtype)
        else:
            s = heaviside(u, spec.threshold)
    return State(j, u, s)


def gained(x: Tensor, spec: NeuronSpec) -> Tensor:
    """The input current ``g·x`` (``x`` itself for a unit gain)."""
    return x if spec.gain == 1.0 else x * spec.gain


def recurrent_current(s_prev: Tensor | None, weight: Tensor, bias: Tensor | None, like: Tensor) -> Tensor:
    """``R[t] = V·S[t−1] + b`` (``S[−1] = 0``, so ``R[0] = b``)."""
    if s_prev is None:
        s_prev = torch.zeros_like(like)
    return F.linear(s_prev, weight, bias)


def trace(
    i: Tensor,
    state: State | None,
    alpha: Tensor | float | None,
    beta: Tensor | float,
    spec: NeuronSpec,
    rec: tuple[Tensor, Tensor | None] | None = None,
    u_out: Tensor | None = None,
    j_out: Tensor | None = None,
    keep: bool = True,
) -> tuple[Trace, State | None]:
    """Run :func:`step` over ``(T, B, …)``: every state over time and the final state.

    ``u_out``/``j_out`` (``(T, B, …)``, optional) receive the membranes and synaptic currents; the trace's ``r``
    holds the recurrent currents as they enter the neuron (``g·R[t]``). With
    ``keep=False`` the membranes are not kept (the trace's ``u`` is then the last one only): the forward
    of a LIF under LFP needs only the spikes.
    """
    steps = i.shape[0]
    u_all = (torch.empty_like(i) if u_out is None else u_out) if keep else None
    j_all = (torch.empty_like(i) if j_out is None else j_out) if spec.synaptic else None
    counts = spec.spikes == "multi"  # spike counts do not fit a bool buffer
    s_all = torch.empty(i.shape, dtype=i.dtype if counts else torch.bool, device=i.device) if spec.spiking else None
    r_all = torch.empty_like(i) if rec is not None else None
    for t in range(steps):
        r = None
        if rec is not None:
            raw = recurrent_current(None if state is None else state.s, rec[0], rec[1], i[t])
            r = r_all[t].copy_(gained(raw, spec))
        out = (
            None if j_all is None else j_all[t],
            None if u_all is None else u_all[t],
            None if s_all is None else s_all[t],
        )
        state = step(i[t], state, alpha, beta, spec, r, out=out)
    return Trace(j_all, u_all if keep else state.v, s_all, r_all), state


def carried(
    prev: State | None, alpha: Tensor | float | None, beta: Tensor | float, spec: NeuronSpec
) -> tuple[Tensor | None, Tensor | None]:
    """``(k_J, k_U)``: the decayed previous states that enter ``J[t]`` and ``U[t]`` (None at rest).

    ``k_U = β·U[t−1]`` (zero reset: ``β(1 − S[t−1])U[t−1]``; a reset within the step:
    ``β·max(U[t−1] − θS[t−1], v_min)``, :func:`post_reset`), ``k_J = α·J[t−1]``.
    """
    if prev is None:
        return None, None
    k_j = alpha * prev.j if spec.synaptic else None
    return k_j, beta * post_reset(prev.v, prev.s, spec)
