"""The temporal LFP rule of the neuron family (LFP-SPEC §5, §9): one multi-step and one step Function.

Under LFP the feedback ``r_z`` that reached a sum node ``z = Σ_k c_k`` is split over its contributions by
the z⁺z⁻ rule,

.. math::
    r_k = \\frac{c_k}{\\sum_k |c_k| + \\varepsilon}\\, \\sigma_z\\, r_z,

with ``σ_z = +1`` at a spiking membrane and ``σ_z = sign(z)`` (``sign(0) = +1``) at every other state (a
synaptic current, a leaky integrator). The reset term is no contribution: it gets no feedback and is not in
the denominator. A decayed previous state passes its share back to that state at ``t − 1``, so

.. math::
    r_U[t] = r_S[t] + r^{rec}_S[t] + r_{carry,U}[t], \\qquad
    r_J[t] = \\frac{J[t]}{D_U[t]} r_U[t] + r_{carry,J}[t],

where ``r^rec_S[t]`` is the feedback the recurrent layer's rule sends to its input ``S[t]`` from its share
``r_R[t+1]``. Learnable decays are weights on the previous states; their z⁺z⁻ updates are
``Δβ = Σ_{t,b} r_carry,U[t−1]`` and ``Δα = Σ_{t,b} r_carry,J[t−1]`` (summed to the decay's shape; under
``carry="abs"`` the carried feedback is ``|k|/D·r`` but ``Δβ``, ``Δα`` keep the signed update). The
recurrent layer's updates ``ΔV``, ``Δb`` are its own rule's updates for ``r_R[t]``, summed over ``t``.
The input gain ``g`` scales a single input: the feedback passes it unchanged.

Both Functions save only their inputs and recompute the states in the backward. A LIF with one fixed decay
(``beta`` given as None: the spec's float) takes the scalar fast path: in-place coefficient buffers and a
fused reverse loop.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from ..lfp.ops import Dense
from ..lfp.rules import MembraneSplit, Rule, sign0
from ..lfp.site import RuleFunction, Site
from . import functional as fn
from .modules import FamilyNeuron, check_time_first
from .spec import NeuronSpec

__all__ = ["MultiStepLFP", "NeuronSite", "StepLFP", "neuron_site"]

_DENSE = Dense()


class NeuronSite(NamedTuple):
    """What the temporal rule needs besides tensors (``Site.params`` of a neuron): its spec and the rule of
    its recurrent layer (a rule for linear-like layers; None without recurrence)."""

    spec: NeuronSpec
    recurrent_rule: Rule | None


def neuron_site(rule: MembraneSplit, run, name: str, spec: NeuronSpec, recurrent_rule: Rule | None) -> Site:
    """The :class:`~spikelfp.lfp.site.Site` of a neuron's Function."""
    return Site(rule, run, name, run.layout, params=NeuronSite(spec, recurrent_rule))


class Split(NamedTuple):
    """Coefficients ``σ·c_k/D`` of one step (each ``(B, …)`` or ``(T, B, …)``; None where absent).

    ``u_drive``: of the membrane's drive ``C`` (``J`` or ``I``); ``u_rec``: of ``R`` at the membrane
    (RLIF); ``u_carry``: of ``k_U``; ``j_in``, ``j_rec``, ``j_carry``: of ``I``, ``R``, ``k_J`` at ``J``.
    ``dbeta``/``dalpha``: the signed carry coefficients for the decays' updates.
    """

    u_drive: Tensor
    u_rec: Tensor | None
    u_carry: Tensor | None
    j_in: Tensor | None
    j_rec: Tensor | None
    j_carry: Tensor | None
    dbeta: Tensor | None
    dalpha: Tensor | None


def _share(contributions: list[Tensor | None], sigma: Tensor | None, epsilon: float) -> list[Tensor | None]:
    """``σ·c_k/(Σ|c_k| + ε)`` for every contribution (zero where the denominator is zero)."""
    present = [c for c in contributions if c is not None]
    den = present[0].abs()
    for c in present[1:]:
        den.add_(c.abs())
    den.add_(epsilon)
    if epsilon > 0:  # D ≥ ε > 0
        scale = den.reciprocal_()
    else:
        scale = torch.where(den == 0, torch.zeros_like(den), 1.0 / torch.where(den == 0, torch.ones_like(den), den))
    if sigma is not None:
        scale.mul_(sigma)
    return [None if c is None else c * scale for c in contributions]


def split(
    i: Tensor,
    r: Tensor | None,
    j: Tensor | None,
    u: Tensor,
    k_j: Tensor | None,
    k_u: Tensor | None,
    spec: NeuronSpec,
    rule: MembraneSplit,
) -> Split:
    """The z⁺z⁻ coefficients of both sum nodes (element-wise; any leading shape).

    ``k_j = αJ[t−1]`` and ``k_u`` (:func:`~spikelfp.neurons.functional.carried`) are the carried
    contributions (None at rest).
    """
    eps = rule.epsilon
    abs_carry = rule.carry == "abs"
    j_in = j_rec = j_carry = dalpha = None
    sigma_u = None if spec.spiking else sign0(u)
    if spec.synaptic:
        j_in, j_rec, j_carry = _share([i, r, k_j], sign0(j), eps)
        dalpha = j_carry
        if abs_carry and k_j is not None:
            j_carry = _share([i, r, k_j.abs()], None, eps)[2]
        u_drive, u_carry = _share([j, k_u], sigma_u, eps)
        u_rec = None
    else:
        u_drive, u_rec, u_carry = _share([i, r, k_u], sigma_u, eps)
    dbeta = u_carry
    if abs_carry and k_u is not None:
        drive = [j, None, k_u.abs()] if spec.synaptic else [i, r, k_u.abs()]
        u_carry = _share(drive, None, eps)[2]
    return Split(u_drive, u_rec, u_carry, j_in, j_rec, j_carry, dbeta, dalpha)


def _scalar_coefficients(i: Tensor, k: Tensor, rule: MembraneSplit) -> tuple[Tensor, Tensor]:
    """The fast path's ``(I/D, k/D)`` (or ``|k|/D``), ``D = |I| + |k| + ε``, overwriting the buffer ``k``."""
    den = torch.abs(i).add_(torch.abs(k)).add_(rule.epsilon)
    if rule.carry == "abs":
        k.abs_()
    if rule.epsilon > 0:  # D ≥ ε > 0
        inv = den.reciprocal_()
        return inv.mul(i), k.mul_(inv)
    zero = den == 0
    safe = torch.where(zero, torch.ones_like(den), den)
    return torch.where(zero, 0.0, i / safe), torch.where(zero, 0.0, k / safe)


def _sum_to(update: Tensor, like: Tensor) -> Tensor:
    out = update.sum_to_size(like.shape) if like.dim() > 0 else update.sum().reshape(())
    return out.to(like.dtype)


def _decays(alpha: Tensor | None, beta: Tensor | None, spec: NeuronSpec):
    """The decays the dynamics use: clamped tensors, or the spec's float (``beta`` None: the fast path)."""
    a = None if alpha is None else alpha.clamp(0.0, 1.0)
    b = spec.beta if beta is None else beta.clamp(0.0, 1.0)
    return a, b


class MultiStepLFP(RuleFunction):
    """A neuron of the family over ``(T, B, …)`` under LFP: the forward as it is, one reverse loop over ``t``
    in the backward.

    Inputs ``(x, weight, bias, alpha, beta, j0, v0, s0, site)``: the input ``x`` (the current is ``g·x``),
    the recurrent layer's ``weight``/``bias`` (None without recurrence), the decays (None for ``alpha``
    without a synaptic current; ``beta`` None for the scalar fast path), the initial state (None at rest)
    and the :class:`~spikelfp.lfp.site.Site` whose ``params`` is a :class:`NeuronSite`. Returns the spikes
    ``(T, B, …)`` (the membrane for LI/CubaLI).
    """

    @staticmethod
    def forward(ctx, x, weight, bias, alpha, beta, j0, v0, s0, site: Site):
        spec, rec_rule = site.params
        i = fn.gained(x, spec)
        a, b = _decays(alpha, beta, spec)
        state = None if v0 is None else fn.State(j0, v0, s0)
        rec = None if rec_rule is None else (weight, bias)
        tr, _ = fn.trace(i, state, a, b, spec, rec, keep=not (beta is None and spec.spiking))
        ctx.site = site
        ctx.save_for_backward(x, weight, bias, alpha, beta, j0, v0, s0)
        if not spec.spiking:
            return tr.u
        out = tr.s.to(i.dtype)
        if tr.s.dtype == torch.bool:  # 0/1 spikes: the next layer may save them as bool
            site.run.register_spikes(out, tr.s)
        site.run.record_rate(site.name, tr.s)
        return out

    @staticmethod
    def backward(ctx, r_out):
        site: Site = ctx.site
        x, weight, bias, alpha, beta, j0, v0, s0 = ctx.saved_tensors
        if beta is None:
            r_x, r_v0 = _scalar_backward(ctx, site, x, v0, s0, r_out)
            return r_x, None, None, None, None, None, r_v0, None, None
        return _family_backward(ctx, site, x, weight, bias, alpha, beta, j0, v0, s0, r_out)


def _scalar_backward(ctx, site: Site, x: Tensor, v0: Tensor | None, s0: Tensor | None, r_spikes: Tensor):
    """The fast path: a LIF with one fixed decay (no synaptic current, recurrence or learnable decay)."""
    spec: NeuronSpec = site.params.spec
    i = fn.gained(x, spec)
    beta, threshold = spec.beta, spec.threshold
    state = None if v0 is None else fn.State(None, v0, s0)
    # recompute the membranes one step late, so that k[t] = β·U[t−1] is the buffer scaled in place
    k = torch.empty((i.shape[0] + 1, *i.shape[1:]), dtype=i.dtype, device=i.device)
    fn.trace(i, state, None, beta, spec, u_out=k[1:])
    k = k[:-1]
    if k.shape[0] > 1 and spec.reset == "zero":  # k = β(1 − S[t−1])U[t−1]: zero where it just fired
        k[1:].mul_(k[1:].le(threshold))
    k.mul_(beta)
    if v0 is None:
        k[0].zero_()
    else:
        k[0].copy_(fn.carried(fn.State(None, v0, s0), None, beta, spec)[1])
    c_i, c_k = _scalar_coefficients(i, k, site.rule)
    r_u = torch.empty_like(r_spikes)
    r_u[-1] = r_spikes[-1]
    for t in range(r_u.shape[0] - 2, -1, -1):
        torch.addcmul(r_spikes[t], c_k[t + 1], r_u[t + 1], out=r_u[t])
    r_v0 = c_k[0] * r_u[0] if (v0 is not None and ctx.needs_input_grad[6]) else None
    r_i = c_i.mul_(r_u)
    if site.run.check_finite:
        site.run.ensure_finite(site.name, r_in=r_i)
    return r_i, r_v0


def _family_backward(ctx, site: Site, x, weight, bias, alpha, beta, j0, v0, s0, r_out):
    spec, rec_rule = site.params
    i = fn.gained(x, spec)
    a, b_ = _decays(alpha, beta, spec)
    state = None if v0 is None else fn.State(j0, v0, s0)
    recurrent = rec_rule is not None
    steps = i.shape[0]
    # recompute the states one step late, so that row t of a buffer's first T rows is the state at t − 1
    u_buf = torch.empty((steps + 1, *i.shape[1:]), dtype=i.dtype, device=i.device)
    j_buf = torch.empty_like(u_buf) if spec.synaptic else None
    tr, _ = fn.trace(
        i, state, a, b_, spec, (weight, bias) if recurrent else None, u_buf[1:], None if j_buf is None else j_buf[1:]
    )
    for buf, first in ((u_buf, v0), (j_buf, j0)):
        if buf is not None:
            buf[0].zero_() if first is None else buf[0].copy_(first)
    prev_s = None
    if tr.s is not None and (recurrent or spec.reset == "zero" or not spec.reset_delay):
        prev_s = torch.empty_like(u_buf[:-1])
        prev_s[0].zero_() if s0 is None else prev_s[0].copy_(s0)
        prev_s[1:].copy_(tr.s[:-1])
    previous = fn.State(None if j_buf is None else j_buf[:-1], u_buf[:-1], prev_s)
    # the recurrent layer's rule sees its own output V·S[t−1] + b (the gain enters after it)
    z_rec = None
    if recurrent:
        z_rec = tr.r if spec.gain == 1.0 else torch.nn.functional.linear(prev_s, weight, bias)
    k_j, k_u = fn.carried(previous, a, b_, spec)
    c = split(i, tr.r, tr.j, tr.u, k_j, k_u, spec, site.rule)
    r_i = torch.empty_like(i)
    r_u_all = torch.empty_like(i)
    r_j_all = torch.empty_like(i) if spec.synaptic else None
    r_r_all = torch.empty_like(i) if recurrent else None
    carry_u = torch.zeros_like(i[0])
    carry_j = torch.zeros_like(i[0]) if spec.synaptic else None
    rec_s = None
    for t in range(steps - 1, -1, -1):
        r_u = r_out[t] + carry_u
        if rec_s is not None:
            r_u = r_u + rec_s
        r_u_all[t] = r_u
        if spec.synaptic:
            r_j = c.u_drive[t] * r_u + carry_j
            r_j_all[t] = r_j
            r_i[t] = c.j_in[t] * r_j
            carry_j = c.j_carry[t] * r_j
            r_r = c.j_rec[t] * r_j if recurrent else None
        else:
            r_i[t] = c.u_drive[t] * r_u
            r_r = c.u_rec[t] * r_u if recurrent else None
        carry_u = c.u_carry[t] * r_u
        if recurrent:
            r_r_all[t] = r_r
            if t > 0 or (s0 is not None and ctx.needs_input_grad[7]):
                rec_s = rec_rule.linear(_DENSE, prev_s[t], weight, bias, z_rec[t], r_r, (True, False, False))[0]
    r_j0 = carry_j if (j0 is not None and ctx.needs_input_grad[5]) else None
    r_v0 = carry_u if (v0 is not None and ctx.needs_input_grad[6]) else None
    r_s0 = rec_s if (recurrent and s0 is not None and ctx.needs_input_grad[7]) else None
    d_w = d_b = d_alpha = d_beta = None
    if recurrent and (ctx.needs_input_grad[1] or ctx.needs_input_grad[2]):
        need = (False, ctx.needs_input_grad[1], ctx.needs_input_grad[2] and bias is not None)
        _, d_w, d_b = rec_rule.linear(
            _DENSE, prev_s.flatten(0, -2), weight, bias, z_rec.flatten(0, -2), r_r_all.flatten(0, -2), need
        )
    if ctx.needs_input_grad[4]:
        d_beta = _sum_to(c.dbeta * r_u_all, beta)
    if alpha is not None and ctx.needs_input_grad[3]:
        d_alpha = _sum_to(c.dalpha * r_j_all, alpha)
    run = site.run
    if run.check_finite:
        run.ensure_finite(site.name, r_in=r_i, d_weight=d_w, d_bias=d_b, d_alpha=d_alpha, d_beta=d_beta)
    neg = [None if d is None else d.neg() for d in (d_w, d_b, d_alpha, d_beta)]
    return r_i, neg[0], neg[1], neg[2], neg[3], r_j0, r_v0, r_s0, None


class StepLFP(RuleFunction):
    """One step of a neuron of the family under LFP; the time recursion runs through the states' feedback.

    Inputs ``(x, weight, bias, alpha, beta, j, v, s, site)`` (the previous state ``j, v, s``, None at rest;
    ``beta`` None for the scalar fast path); outputs ``(S[t], J[t], U[t])`` (``J`` is a zero-size
    placeholder without a synaptic state, ``S`` is ``U`` for LI/CubaLI). The feedback of ``S[t]`` and
    ``U[t]`` adds up at the membrane.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, alpha, beta, j, v, s, site: Site):
        spec, rec_rule = site.params
        i = fn.gained(x, spec)
        a, b_ = _decays(alpha, beta, spec)
        prev = None if v is None else fn.State(j, v, s)
        r = fn.recurrent_current(s, weight, bias, i) if rec_rule is not None else None
        new = fn.step(i, prev, a, b_, spec, None if r is None else fn.gained(r, spec))
        ctx.site = site
        ctx.save_for_backward(x, weight, bias, alpha, beta, j, v, s)
        j_out = new.j if spec.synaptic else i.new_empty(0)
        if not spec.spiking:
            return new.v, j_out, new.v.clone()
        site.run.record_rate(site.name, new.s if spec.spikes == "multi" else new.s.bool())
        return new.s, j_out, new.v

    @staticmethod
    def backward(ctx, r_s, r_j_out, r_u_out):
        site: Site = ctx.site
        spec, rec_rule = site.params
        x, weight, bias, alpha, beta, j, v, s = ctx.saved_tensors
        i = fn.gained(x, spec)
        if beta is None:  # the scalar fast path
            total = r_s if r_u_out is None else (r_u_out if r_s is None else r_s + r_u_out)
            if total is None:
                return (None,) * 9
            k = torch.zeros_like(i) if v is None else fn.carried(fn.State(None, v, s), None, spec.beta, spec)[1]
            c_i, c_k = _scalar_coefficients(i, k, site.rule)
            r_i = c_i * total
            r_v = c_k * total if (v is not None and ctx.needs_input_grad[6]) else None
            if site.run.check_finite:
                site.run.ensure_finite(site.name, r_in=r_i)
            return r_i, None, None, None, None, None, r_v, None, None
        a, b_ = _decays(alpha, beta, spec)
        prev = None if v is None else fn.State(j, v, s)
        recurrent = rec_rule is not None
        s_in = s if s is not None else torch.zeros_like(i)
        r = fn.recurrent_current(s, weight, bias, i) if recurrent else None
        r_in = None if r is None else fn.gained(r, spec)
        new = fn.step(i, prev, a, b_, spec, r_in)
        k_j, k_u = fn.carried(prev, a, b_, spec)
        c = split(i, r_in, new.j, new.v, k_j, k_u, spec, site.rule)
        r_u = torch.zeros_like(i)
        for extra in (r_s, r_u_out):
            if extra is not None:
                r_u = r_u + extra
        d_w = d_b = d_alpha = d_beta = r_rec_s = None
        if spec.synaptic:
            r_j = c.u_drive * r_u
            if r_j_out is not None and r_j_out.numel():
                r_j = r_j + r_j_out
            r_i = c.j_in * r_j
            r_r = c.j_rec * r_j if recurrent else None
        else:
            r_i = c.u_drive * r_u
            r_r = c.u_rec * r_u if recurrent else None
        r_v = c.u_carry * r_u if (v is not None and ctx.needs_input_grad[6]) else None
        r_j_prev = c.j_carry * r_j if (spec.synaptic and j is not None and ctx.needs_input_grad[5]) else None
        if recurrent:
            need = (s is not None and ctx.needs_input_grad[7], ctx.needs_input_grad[1], ctx.needs_input_grad[2])
            need = (need[0], need[1], need[2] and bias is not None)
            if any(need):
                r_rec_s, d_w, d_b = rec_rule.linear(_DENSE, s_in, weight, bias, r, r_r, need)
        if ctx.needs_input_grad[4] and k_u is not None:
            d_beta = _sum_to(c.dbeta * r_u, beta)
        if spec.synaptic and ctx.needs_input_grad[3] and k_j is not None:
            d_alpha = _sum_to(c.dalpha * r_j, alpha)
        run = site.run
        if run.check_finite:
            run.ensure_finite(site.name, r_in=r_i, d_weight=d_w, d_bias=d_b, d_alpha=d_alpha, d_beta=d_beta)
        neg = [None if d is None else d.neg() for d in (d_w, d_b, d_alpha, d_beta)]
        return r_i, neg[0], neg[1], neg[2], neg[3], r_j_prev, r_v, r_rec_s, None


def recurrent_rule(run, module, name: str) -> Rule:
    """The rule the composite gave ``module``'s recurrent layer ``module.recurrent`` (a rule for linear-like layers)."""
    rule = run.rule_of(module.recurrent)
    if rule is None:
        raise TypeError(f"module '{name}': its recurrent layer has no LFP rule; map nn.Linear to a rule")
    if type(rule).linear is Rule.linear:
        raise TypeError(
            f"module '{name}': the rule {rule!r} of its recurrent layer is not a rule for linear-like layers"
        )
    return rule


def module_methods(module: FamilyNeuron, rule: MembraneSplit, name: str, run) -> dict:
    """The ``forward`` and ``step`` the engine installs on a module of :mod:`spikelfp.neurons.modules` while
    LFP is attached: :class:`MultiStepLFP` and :class:`StepLFP` with the module's spec, tensors and states."""
    rec_rule = recurrent_rule(run, module, name) if module.recurrent_layer else None
    who = type(module).__name__

    def site() -> Site:
        return Site(rule, run, name, run.layout, params=NeuronSite(module._spec, rec_rule))

    def forward(x: Tensor, state=None) -> Tensor:
        check_time_first(x, who)
        module.check_features(x[0])
        j0, v0, s0 = module.state_tensors(state)
        alpha, beta = module.decay_inputs(x)
        weight, bias = module.recurrent_params()
        return MultiStepLFP.apply(x, weight, bias, alpha, beta, j0, v0, s0, site())

    def step(x: Tensor, state=None):
        module.check_features(x)
        j, v, s = module.state_tensors(state)
        alpha, beta = module.decay_inputs(x)
        weight, bias = module.recurrent_params()
        out, j_new, u = StepLFP.apply(x, weight, bias, alpha, beta, j, v, s, site())
        if not module.spiking:
            return out, module._pack(fn.State(None, out, None))
        return out, module._pack(fn.State(j_new if module.synaptic else None, u, out))

    return {"forward": forward, "step": step}
