"""The shared temporal core of the neuron family (LFP-SPEC §9): dynamics, the sum-node split, the reverse loop.

Every neuron of the family is a stack of at most two **sum nodes** per step, with ``S[−1] = 0`` and all
states starting at 0:

.. math::
    J[t] = \\alpha J[t-1] + I[t] + R[t] \\qquad \\text{(synaptic current; CubaLIF, RCubaLIF)}

    U[t] = \\beta U[t-1] + C[t] - \\theta S[t-1], \\qquad S[t] = [U[t] > \\theta]

where the membrane's drive is ``C[t] = J[t]`` for a synaptic neuron and ``C[t] = I[t] + R[t]`` otherwise,
``R[t] = V·S[t−1] + b`` is the recurrent current (RLIF, RCubaLIF; zero otherwise), the zero reset
carries ``β(1 − S[t−1])U[t−1]`` instead of ``βU[t−1] − θS[t−1]``, ``reset="none"`` drops the reset term,
and a leaky integrator (LI) has no spikes and no reset.

Under LFP the feedback ``r_z`` that reached a sum node ``z = Σ_k c_k`` is split over its contributions
by the z⁺z⁻ rule,

.. math::
    r_k = \\frac{c_k}{\\sum_k |c_k| + \\varepsilon}\\, \\sigma_z\\, r_z,

with ``σ_z = +1`` at a spiking membrane and ``σ_z = sign(z)`` (``sign(0) = +1``) at every other state (a
synaptic current, a leaky integrator). The reset term is no contribution: it gets no feedback and is not
in the denominator. A decayed previous state passes its share back to that state at ``t − 1``, so the
feedback of each state at step ``t`` is

.. math::
    r_U[t] = r_S[t] + r^{rec}_S[t] + r_{carry,U}[t], \\qquad
    r_J[t] = \\frac{J[t]}{D_U[t]} r_U[t] + r_{carry,J}[t],

where ``r^rec_S[t]`` is the feedback the recurrent layer's rule sends to its input ``S[t]`` from its
share ``r_R[t+1]``. The learnable decays are weights on the previous states; their z⁺z⁻ updates are

.. math::
    \\Delta\\beta = \\sum_{t,b} \\frac{k_U[t]}{D_U[t]} \\sigma_U r_U[t] = \\sum_{t,b} r_{carry,U}[t-1], \\qquad
    \\Delta\\alpha = \\sum_{t,b} r_{carry,J}[t-1]

(summed to the shape of the decay: over the neurons too for a scalar). The recurrent layer's updates
``ΔV``, ``Δb`` are its own rule's updates for the feedback ``r_R[t]``, summed over ``t``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..layers import Dense
from ..rules import Rule, RuleFunction, Site, sign0

if TYPE_CHECKING:  # pragma: no cover
    from ..engine import Run
    from ..rules import MembraneSplit

__all__ = ["FamilyNeuron", "FamilyState", "Structure", "Surrogate", "Trace", "family_step"]

Reset = Literal["subtract", "zero", "none"]
RESETS = ("subtract", "zero", "none")


class Surrogate(Protocol):
    """What a spiking neuron needs of a surrogate: the derivative of the spike w.r.t. ``U − θ``."""

    def derivative(self, x: Tensor) -> Tensor: ...


class Structure(NamedTuple):
    """The static structure of a neuron of the family (everything but the tensors).

    Attributes
    ----------
    synaptic
        Has a synaptic-current state ``J`` (CubaLIF, RCubaLIF).
    spiking
        Spikes and resets (False for the leaky integrator LI, whose output is ``U``).
    threshold
        ``θ`` (strict ``U > θ``).
    reset
        ``"subtract"``, ``"zero"`` or ``"none"``.
    """

    synaptic: bool
    spiking: bool
    threshold: float
    reset: str


class FamilyState(NamedTuple):
    """The full state after a step: synaptic current ``j`` (or None), membrane ``v``, spikes ``s`` (or None)."""

    j: Tensor | None
    v: Tensor
    s: Tensor | None


class Trace(NamedTuple):
    """All states over time, ``(T, …)``: ``j`` (or None), ``u``, bool spikes ``s`` (or None), recurrent
    currents ``r`` (or None)."""

    j: Tensor | None
    u: Tensor
    s: Tensor | None
    r: Tensor | None


# --------------------------------------------------------------------------------------------------
# validation helpers shared by the modules
# --------------------------------------------------------------------------------------------------
def check_reset(reset: str) -> str:
    if reset not in RESETS:
        raise ValueError(f"reset must be 'subtract', 'zero' or 'none', got {reset!r}")
    return reset


def check_threshold(threshold: Any) -> float:
    """``θ`` as a float; a learnable threshold is refused by name (it has no LFP update, LFP-SPEC §9)."""
    if isinstance(threshold, Tensor):
        if threshold.requires_grad:
            raise TypeError("a learnable threshold has no LFP update (LFP-SPEC §9); pass a fixed float")
        if threshold.numel() != 1:
            raise ValueError("threshold must be one number per layer")
        threshold = float(threshold)
    threshold = float(threshold)
    if threshold != threshold or abs(threshold) == float("inf"):
        raise ValueError(f"threshold must be finite, got {threshold!r}")
    return threshold


def decay(module: nn.Module, name: str, value: Any, learn: bool) -> None:
    """Store a decay (``α`` or ``β``) on ``module`` as ``name``.

    A fixed scalar stays a float; a fixed per-neuron tensor becomes a buffer; ``learn=True`` makes it an
    ``nn.Parameter`` (a scalar or per-neuron tensor). Values must lie in ``[0, 1]`` (the forward clamps a
    learned value to ``[0, 1]``, as snnTorch does).
    """
    t = torch.as_tensor(value, dtype=torch.get_default_dtype()).detach().clone()
    if not torch.isfinite(t).all() or not bool(((t >= 0) & (t <= 1)).all()):
        raise ValueError(f"{name} must lie in [0, 1], got {value!r}")
    if learn:
        module.register_parameter(name, nn.Parameter(t))
    elif t.dim() == 0 and not isinstance(value, Tensor):
        setattr(module, name, float(t))
    else:
        module.register_buffer(name, t)


def as_decay(value: float | Tensor, like: Tensor) -> Tensor:
    """A decay as a tensor of ``like``'s dtype and device, clamped to ``[0, 1]`` (no autograd)."""
    if isinstance(value, Tensor):
        return value.detach().to(dtype=like.dtype, device=like.device).clamp(0.0, 1.0)
    return torch.tensor(float(value), dtype=like.dtype, device=like.device)


def check_time_first(x: Any, who: str) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{who} expects a tensor, got {type(x).__name__}")
    if x.dim() < 3:
        raise ValueError(
            f"{who} expects time-first input (T, B, ...) with at least 3 dimensions, got shape "
            f"{tuple(x.shape)}; use {who}.step() for a single step"
        )


def check_decay_shape(value: float | Tensor, features: torch.Size, name: str, who: str) -> None:
    """A per-neuron decay must broadcast over the feature dimensions ``(…)`` of ``(B, …)``."""
    if isinstance(value, Tensor) and value.dim() > 0:
        try:
            shape = torch.broadcast_shapes(value.shape, features)
        except RuntimeError:
            shape = None
        if shape != features:
            raise ValueError(
                f"{who}: {name} of shape {tuple(value.shape)} does not broadcast over the features "
                f"{tuple(features)} of the input"
            )


# --------------------------------------------------------------------------------------------------
# the dynamics (pure)
# --------------------------------------------------------------------------------------------------
def family_step(
    i: Tensor,
    state: FamilyState | None,
    alpha: Tensor | None,
    beta: Tensor,
    st: Structure,
    r: Tensor | None = None,
) -> FamilyState:
    """One step of the family's dynamics (see the module docstring): the new ``FamilyState``.

    ``i`` is the input current ``I[t]``, ``r`` the recurrent current ``R[t]`` (or None), ``alpha``/``beta``
    the decays (already clamped; tensors broadcasting over ``i``). Spikes are floats of ``i``'s dtype.
    """
    j_prev, v_prev, s_prev = (None, None, None) if state is None else state
    if st.synaptic:
        j = i.clone() if j_prev is None else alpha * j_prev + i
        if r is not None:
            j = j + r
        drive = j
    else:
        j = None
        drive = i if r is None else i + r
    if v_prev is None:
        u = drive.clone()
    else:
        if st.reset == "zero" and s_prev is not None:
            u = beta * ((1.0 - s_prev) * v_prev) + drive
        else:
            u = beta * v_prev + drive
        if st.reset == "subtract" and s_prev is not None:
            u = u - st.threshold * s_prev
    s = (u > st.threshold).to(u.dtype) if st.spiking else None
    return FamilyState(j, u, s)


def recurrent_current(s_prev: Tensor | None, weight: Tensor, bias: Tensor | None, like: Tensor) -> Tensor:
    """``R[t] = V·S[t−1] + b`` (``S[−1] = 0``, so ``R[0] = b``)."""
    if s_prev is None:
        s_prev = torch.zeros_like(like)
    return F.linear(s_prev, weight, bias)


def trace(
    i: Tensor,
    state: FamilyState | None,
    alpha: Tensor | None,
    beta: Tensor,
    st: Structure,
    rec: tuple[Tensor, Tensor | None] | None = None,
) -> tuple[Trace, FamilyState | None]:
    """Run the dynamics over ``(T, B, …)``: every state over time and the final state."""
    js, us, ss, rs = [], [], [], []
    for t in range(i.shape[0]):
        r = None
        if rec is not None:
            r = recurrent_current(None if state is None else state.s, rec[0], rec[1], i[t])
            rs.append(r)
        state = family_step(i[t], state, alpha, beta, st, r)
        js.append(state.j)
        us.append(state.v)
        ss.append(state.s)
    return (
        Trace(
            torch.stack(js) if st.synaptic else None,
            torch.stack(us),
            torch.stack(ss).bool() if st.spiking else None,
            torch.stack(rs) if rec is not None else None,
        ),
        state,
    )


# --------------------------------------------------------------------------------------------------
# plain autograd: the Heaviside's derivative (zero) or a surrogate's (BPTT, reset detached)
# --------------------------------------------------------------------------------------------------
class SpikeFunction(torch.autograd.Function):
    """``S = H(U − θ)`` with derivative zero (the Heaviside's) or a surrogate's. Not an LFP rule."""

    @staticmethod
    def forward(ctx, u: Tensor, threshold: float, surrogate: Surrogate | None) -> Tensor:
        ctx.threshold, ctx.surrogate = threshold, surrogate
        ctx.save_for_backward(u)
        return (u > threshold).to(u.dtype)

    @staticmethod
    def backward(ctx, g: Tensor):
        (u,) = ctx.saved_tensors
        if ctx.surrogate is None:
            return torch.zeros_like(g), None, None
        return g * ctx.surrogate.derivative(u - ctx.threshold), None, None


def autograd_step(
    i: Tensor,
    state: FamilyState | None,
    alpha: Tensor | None,
    beta: Tensor,
    st: Structure,
    surrogate: Surrogate | None,
    recurrent: nn.Module | None = None,
) -> FamilyState:
    """One step in ordinary autograd ops (BPTT through the states; the reset is detached, as in snnTorch).

    ``alpha``/``beta`` may carry autograd (a learnable decay, clamped by the caller); the spikes fed to
    the recurrent layer carry the surrogate derivative.
    """
    j_prev, v_prev, s_prev = (None, None, None) if state is None else state
    r = None
    if recurrent is not None:
        r = recurrent(torch.zeros_like(i) if s_prev is None else s_prev)
    if st.synaptic:
        j = i if j_prev is None else alpha * j_prev + i
        if r is not None:
            j = j + r
        drive = j
    else:
        j = None
        drive = i if r is None else i + r
    if v_prev is None:
        u = drive
    else:
        reset = None if s_prev is None else s_prev.detach()
        if st.reset == "zero" and reset is not None:
            u = beta * ((1.0 - reset) * v_prev) + drive
        else:
            u = beta * v_prev + drive
        if st.reset == "subtract" and reset is not None:
            u = u - st.threshold * reset
    s = SpikeFunction.apply(u, st.threshold, surrogate) if st.spiking else None
    return FamilyState(j, u, s)


# --------------------------------------------------------------------------------------------------
# LFP: the sum-node split
# --------------------------------------------------------------------------------------------------
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


def _share(contributions: list[Tensor | None], sigma: Tensor | None, epsilon: float):
    """``σ·c_k/(Σ|c_k| + ε)`` for every contribution (zero where the denominator is zero)."""
    present = [c for c in contributions if c is not None]
    den = present[0].abs()
    for c in present[1:]:
        den = den + c.abs()
    den = den + epsilon
    if epsilon > 0:  # D ≥ ε > 0
        scale = den.reciprocal_()
    else:
        scale = torch.where(den == 0, torch.zeros_like(den), 1.0 / torch.where(den == 0, torch.ones_like(den), den))
    if sigma is not None:
        scale = scale * sigma
    return [None if c is None else c * scale for c in contributions]


def split(
    i: Tensor,
    r: Tensor | None,
    j: Tensor | None,
    u: Tensor,
    k_j: Tensor | None,
    k_u: Tensor | None,
    st: Structure,
    rule: MembraneSplit,
) -> Split:
    """The z⁺z⁻ coefficients of both sum nodes (element-wise; any leading shape).

    ``k_j = αJ[t−1]`` and ``k_u = βU[t−1]`` (zero reset: ``β(1−S[t−1])U[t−1]``) are the carried
    contributions (None at rest).
    """
    eps = rule.epsilon
    abs_carry = rule.carry == "abs"
    j_in = j_rec = j_carry = dalpha = None
    if st.synaptic:
        sigma_j = sign0(j)
        j_in, j_rec, j_carry = _share([i, r, k_j], sigma_j, eps)
        dalpha = j_carry
        if abs_carry and k_j is not None:
            j_carry = _share([i, r, k_j.abs()], None, eps)[2]
        sigma_u = None if st.spiking else sign0(u)
        u_drive, u_carry = _share([j, k_u], sigma_u, eps)
        u_rec = None
    else:
        sigma_u = None if st.spiking else sign0(u)
        u_drive, u_rec, u_carry = _share([i, r, k_u], sigma_u, eps)
    dbeta = u_carry
    if abs_carry and k_u is not None:
        drive = [j, None, k_u.abs()] if st.synaptic else [i, r, k_u.abs()]
        u_carry = _share(drive, None, eps)[2]
    return Split(u_drive, u_rec, u_carry, j_in, j_rec, j_carry, dbeta, dalpha)


def carried(
    prev: FamilyState | None, alpha: Tensor | None, beta: Tensor, st: Structure
) -> tuple[Tensor | None, Tensor | None]:
    """``(k_J, k_U)``: the decayed previous states that enter ``J[t]`` and ``U[t]`` (None at rest)."""
    if prev is None:
        return None, None
    k_j = alpha * prev.j if st.synaptic else None
    v = prev.v
    if st.reset == "zero" and prev.s is not None:
        v = (1.0 - prev.s) * v
    return k_j, beta * v


class Recurrence(NamedTuple):
    """What the LFP backward needs of a recurrent layer: its rule (a rule for linear-like layers) and
    its parameters."""

    rule: Rule
    weight: Tensor
    bias: Tensor | None


_DENSE = Dense()


def recurrent_rule(run: Run, module: nn.Module, name: str) -> Rule:
    """The rule the composite gave the recurrent layer ``module.recurrent`` (attached by the engine)."""
    rule = run.module_rules.get(id(module.recurrent))
    if rule is None:
        raise TypeError(f"module '{name}': its recurrent layer has no LFP rule; map nn.Linear to a rule")
    if type(rule).linear is Rule.linear:
        raise TypeError(
            f"module '{name}': the rule {rule!r} of its recurrent layer is not a rule for linear-like layers"
        )
    return rule


def _sum_to(update: Tensor, like: Tensor) -> Tensor:
    out = update.sum_to_size(like.shape) if like.dim() > 0 else update.sum().reshape(())
    return out.to(like.dtype)


class FamilyLFP(RuleFunction):
    """Multi-step family neuron under LFP: the forward as it is, one reverse loop over ``t`` in the backward.

    Inputs ``(i, weight, bias, alpha, beta, j0, v0, s0, site)``; ``site.params`` is ``(Structure,
    recurrent rule or None)``. Saves only the inputs and recomputes the states in the backward.
    Returns the spikes ``(T, B, …)`` (the membrane for LI).
    """

    @staticmethod
    def forward(ctx, i, weight, bias, alpha, beta, j0, v0, s0, site: Site):
        st, rec_rule = site.params
        state = None if v0 is None else FamilyState(j0, v0, s0)
        a = None if alpha is None else alpha.clamp(0.0, 1.0)
        b_ = beta.clamp(0.0, 1.0)
        tr, _ = trace(i, state, a, b_, st, None if rec_rule is None else (weight, bias))
        ctx.site = site
        ctx.save_for_backward(i, weight, bias, alpha, beta, j0, v0, s0)
        if not st.spiking:
            return tr.u
        out = tr.s.to(i.dtype)
        site.run.register_spikes(out, tr.s)
        site.run.record_rate(site.name, tr.s)
        return out

    @staticmethod
    def backward(ctx, r_out):
        site: Site = ctx.site
        st, rec_rule = site.params
        i, weight, bias, alpha, beta, j0, v0, s0 = ctx.saved_tensors
        state = None if v0 is None else FamilyState(j0, v0, s0)
        a = None if alpha is None else alpha.clamp(0.0, 1.0)
        b_ = beta.clamp(0.0, 1.0)
        recurrent = rec_rule is not None
        tr, _ = trace(i, state, a, b_, st, (weight, bias) if recurrent else None)
        steps = i.shape[0]
        s_float = None if tr.s is None else tr.s.to(i.dtype)
        # previous states, shifted by one step: row t holds the state at t − 1
        if state is None:
            prev_j = None if not st.synaptic else torch.cat([torch.zeros_like(tr.j[:1]), tr.j[:-1]])
            prev_u = torch.cat([torch.zeros_like(tr.u[:1]), tr.u[:-1]])
            prev_s = None if s_float is None else torch.cat([torch.zeros_like(s_float[:1]), s_float[:-1]])
        else:
            prev_j = None if not st.synaptic else torch.cat([j0[None].expand_as(tr.j[:1]), tr.j[:-1]])
            prev_u = torch.cat([v0[None].expand_as(tr.u[:1]), tr.u[:-1]])
            first_s = s0 if s0 is not None else torch.zeros_like(v0)
            prev_s = None if s_float is None else torch.cat([first_s[None].expand_as(s_float[:1]), s_float[:-1]])
        k_j, k_u = carried(FamilyState(prev_j, prev_u, prev_s), a, b_, st)
        if state is None:  # at rest nothing is carried into step 0
            if k_j is not None:
                k_j[0] = 0
            k_u[0] = 0
        c = split(i, tr.r, tr.j, tr.u, k_j, k_u, st, site.rule)
        r_i = torch.empty_like(i)
        r_u_all = torch.empty_like(i)
        r_j_all = torch.empty_like(i) if st.synaptic else None
        r_r_all = torch.empty_like(i) if recurrent else None
        carry_u = torch.zeros_like(i[0])
        carry_j = torch.zeros_like(i[0]) if st.synaptic else None
        rec_s = None
        for t in range(steps - 1, -1, -1):
            r_u = r_out[t] + carry_u
            if rec_s is not None:
                r_u = r_u + rec_s
            r_u_all[t] = r_u
            if st.synaptic:
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
                    rec_s = rec_rule.linear(_DENSE, prev_s[t], weight, bias, tr.r[t], r_r, (True, False, False))[0]
        r_j0 = carry_j if (j0 is not None and ctx.needs_input_grad[5]) else None
        r_v0 = carry_u if (v0 is not None and ctx.needs_input_grad[6]) else None
        r_s0 = rec_s if (recurrent and s0 is not None and ctx.needs_input_grad[7]) else None
        d_w = d_b = d_alpha = d_beta = None
        if recurrent and (ctx.needs_input_grad[1] or ctx.needs_input_grad[2]):
            need = (False, ctx.needs_input_grad[1], ctx.needs_input_grad[2] and bias is not None)
            _, d_w, d_b = rec_rule.linear(
                _DENSE, prev_s.flatten(0, -2), weight, bias, tr.r.flatten(0, -2), r_r_all.flatten(0, -2), need
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


class FamilyStepLFP(RuleFunction):
    """One step of a family neuron under LFP; the time recursion runs through the states' feedback.

    Inputs ``(i, weight, bias, alpha, beta, j, v, s, site)`` (the previous state ``j, v, s``, None at rest);
    outputs ``(S[t], J[t], U[t])`` (``J`` is a zero-size placeholder without a synaptic state, ``S`` is
    ``U`` for LI). The feedback of ``S[t]`` and ``U[t]`` adds up at the membrane.
    """

    @staticmethod
    def forward(ctx, i, weight, bias, alpha, beta, j, v, s, site: Site):
        st, rec_rule = site.params
        a = None if alpha is None else alpha.clamp(0.0, 1.0)
        b_ = beta.clamp(0.0, 1.0)
        prev = None if v is None else FamilyState(j, v, s)
        r = recurrent_current(s, weight, bias, i) if rec_rule is not None else None
        new = family_step(i, prev, a, b_, st, r)
        ctx.site = site
        ctx.save_for_backward(i, weight, bias, alpha, beta, j, v, s)
        j_out = new.j if st.synaptic else i.new_empty(0)
        if not st.spiking:
            return new.v, j_out, new.v.clone()
        site.run.record_rate(site.name, new.s.bool())
        return new.s, j_out, new.v

    @staticmethod
    def backward(ctx, r_s, r_j_out, r_u_out):
        site: Site = ctx.site
        st, rec_rule = site.params
        i, weight, bias, alpha, beta, j, v, s = ctx.saved_tensors
        a = None if alpha is None else alpha.clamp(0.0, 1.0)
        b_ = beta.clamp(0.0, 1.0)
        prev = None if v is None else FamilyState(j, v, s)
        recurrent = rec_rule is not None
        s_in = s if s is not None else torch.zeros_like(i)
        r = recurrent_current(s, weight, bias, i) if recurrent else None
        new = family_step(i, prev, a, b_, st, r)
        k_j, k_u = carried(prev, a, b_, st)
        c = split(i, r, new.j, new.v, k_j, k_u, st, site.rule)
        r_u = torch.zeros_like(i)
        for extra in (r_s, r_u_out):
            if extra is not None:
                r_u = r_u + extra
        d_w = d_b = d_alpha = d_beta = r_rec_s = None
        if st.synaptic:
            r_j = c.u_drive * r_u
            if r_j_out is not None and r_j_out.numel():
                r_j = r_j + r_j_out
            r_i = c.j_in * r_j
            r_r = c.j_rec * r_j if recurrent else None
        else:
            r_i = c.u_drive * r_u
            r_r = c.u_rec * r_u if recurrent else None
        r_v = c.u_carry * r_u if (v is not None and ctx.needs_input_grad[6]) else None
        r_j_prev = c.j_carry * r_j if (st.synaptic and j is not None and ctx.needs_input_grad[5]) else None
        if recurrent:
            need = (s is not None and ctx.needs_input_grad[7], ctx.needs_input_grad[1], ctx.needs_input_grad[2])
            need = (need[0], need[1], need[2] and bias is not None)
            if any(need):
                r_rec_s, d_w, d_b = rec_rule.linear(_DENSE, s_in, weight, bias, r, r_r, need)
        if ctx.needs_input_grad[4] and k_u is not None:
            d_beta = _sum_to(c.dbeta * r_u, beta)
        if st.synaptic and ctx.needs_input_grad[3] and k_j is not None:
            d_alpha = _sum_to(c.dalpha * r_j, alpha)
        run = site.run
        if run.check_finite:
            run.ensure_finite(site.name, r_in=r_i, d_weight=d_w, d_bias=d_b, d_alpha=d_alpha, d_beta=d_beta)
        neg = [None if d is None else d.neg() for d in (d_w, d_b, d_alpha, d_beta)]
        return r_i, neg[0], neg[1], neg[2], neg[3], r_j_prev, r_v, r_rec_s, None


def lfp_site(rule: MembraneSplit, run: Run, name: str, st: Structure, rec_rule: Rule | None) -> Site:
    return Site(rule, run, name, run.layout, params=(st, rec_rule))


# --------------------------------------------------------------------------------------------------
# the module base: multi-step / step, plain / surrogate / LFP
# --------------------------------------------------------------------------------------------------
class FamilyNeuron(nn.Module):
    """Base of the family's modules: a subclass fixes the structure and stores its decays and state type.

    Subclasses set ``synaptic``, ``spiking`` and ``recurrent`` (class attributes), store ``beta`` (and
    ``alpha`` if synaptic) with :func:`decay`, ``threshold``, ``reset``, ``surrogate``, and a
    ``.recurrent`` ``nn.Linear`` if recurrent, and convert states with :meth:`_pack` / :meth:`_unpack`.
    """

    is_spiking = True  # time-first; the engine expects (T, B, …) input
    synaptic = False
    spiking = True
    recurrent_layer = False
    threshold: float
    reset: str
    surrogate: Surrogate | None

    # ---- state conversion (subclasses) ----------------------------------------------------------------
    def _unpack(self, state: Any) -> FamilyState | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _pack(self, state: FamilyState) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    # ---- helpers ------------------------------------------------------------------------------------
    def _structure(self) -> Structure:
        return Structure(self.synaptic, self.spiking, self.threshold, self.reset if self.spiking else "none")

    def _decay_inputs(self, like: Tensor) -> tuple[Tensor | None, Tensor]:
        """The decays as Function inputs: a learnable one as it is (it receives ``−Δ``), else a tensor."""

        def one(value):
            if isinstance(value, nn.Parameter):
                return value
            if isinstance(value, Tensor):
                return value.to(device=like.device)
            return torch.tensor(float(value), dtype=like.dtype, device=like.device)

        alpha = one(self.alpha) if self.synaptic else None
        return alpha, one(self.beta)

    def _autograd_decays(self, like: Tensor) -> tuple[Tensor | None, Tensor]:
        """The decays for the plain/surrogate path: clamped to ``[0, 1]`` (with autograd if learnable)."""

        def one(value):
            if isinstance(value, Tensor):
                return value.to(device=like.device).clamp(0.0, 1.0)
            return torch.tensor(float(value), dtype=like.dtype, device=like.device)

        return (one(self.alpha) if self.synaptic else None), one(self.beta)

    def _check_features(self, x_t: Tensor) -> None:
        features = x_t.shape[1:]
        who = type(self).__name__
        check_decay_shape(self.beta, features, "beta", who)
        if self.synaptic:
            check_decay_shape(self.alpha, features, "alpha", who)
        if self.recurrent_layer and (x_t.dim() != 2 or x_t.shape[-1] != self.recurrent.in_features):
            raise ValueError(
                f"{who} expects features of size {self.recurrent.in_features} (input (T, B, "
                f"{self.recurrent.in_features}) or (B, {self.recurrent.in_features}) per step), got {tuple(x_t.shape)}"
            )

    def _state_tensors(self, state: FamilyState | None):
        if state is None:
            return None, None, None
        return state.j, state.v, state.s

    def _rec_params(self) -> tuple[Tensor | None, Tensor | None]:
        if not self.recurrent_layer:
            return None, None
        return self.recurrent.weight, self.recurrent.bias

    # ---- without LFP ----------------------------------------------------------------------------------
    def forward(self, x: Tensor, state: Any = None) -> Tensor:
        """Outputs ``(T, B, …)`` (spikes; the membrane for LI) for input currents ``(T, B, …)``."""
        check_time_first(x, type(self).__name__)
        self._check_features(x[0])
        fs = self._unpack(state)
        alpha, beta = self._autograd_decays(x)
        st = self._structure()
        outs = []
        rec = self.recurrent if self.recurrent_layer else None
        for t in range(x.shape[0]):
            fs = autograd_step(x[t], fs, alpha, beta, st, self.surrogate, rec)
            outs.append(fs.s if st.spiking else fs.v)
        return torch.stack(outs)

    def step(self, x: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        """One step on ``(B, …)``: ``(output, state)``; identical numbers to the multi-step forward."""
        self._check_features(x)
        fs = self._unpack(state)
        alpha, beta = self._autograd_decays(x)
        st = self._structure()
        fs = autograd_step(x, fs, alpha, beta, st, self.surrogate, self.recurrent if self.recurrent_layer else None)
        return (fs.s if st.spiking else fs.v), self._pack(fs)

    # ---- LFP ----------------------------------------------------------------------------------------
    def lfp_methods(self, rule: MembraneSplit, name: str, run: Run):
        """The forward and step methods the engine installs while LFP is attached."""
        module = self

        def site() -> Site:
            rec_rule = recurrent_rule(run, module, name) if module.recurrent_layer else None
            return lfp_site(rule, run, name, module._structure(), rec_rule)

        def forward(x: Tensor, state: Any = None) -> Tensor:
            check_time_first(x, type(module).__name__)
            module._check_features(x[0])
            j0, v0, s0 = module._state_tensors(module._unpack(state))
            alpha, beta = module._decay_inputs(x)
            weight, bias = module._rec_params()
            return FamilyLFP.apply(x, weight, bias, alpha, beta, j0, v0, s0, site())

        def step(x: Tensor, state: Any = None):
            module._check_features(x)
            j, v, s = module._state_tensors(module._unpack(state))
            alpha, beta = module._decay_inputs(x)
            weight, bias = module._rec_params()
            out, j_new, u = FamilyStepLFP.apply(x, weight, bias, alpha, beta, j, v, s, site())
            if not module.spiking:
                return out, module._pack(FamilyState(None, out, None))
            return out, module._pack(FamilyState(j_new if module.synaptic else None, u, out))

        return {"forward": forward, "step": step}

    def extra_repr(self) -> str:
        parts = []
        for name in ("alpha", "beta"):
            if name == "alpha" and not self.synaptic:
                continue
            value = getattr(self, name)
            if isinstance(value, nn.Parameter):
                parts.append(f"{name}=learnable{tuple(value.shape)}")
            elif isinstance(value, Tensor):
                parts.append(f"{name}=per-neuron{tuple(value.shape)}")
            else:
                parts.append(f"{name}={value}")
        if self.spiking:
            parts += [f"threshold={self.threshold}", f"reset={self.reset!r}"]
            if self.surrogate is not None:
                parts.append(f"surrogate={self.surrogate!r}")
        return ", ".join(parts)
