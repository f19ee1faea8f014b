"""norse's neurons under LFP: ``LIFBoxCell``, ``LIFCell``/``LIF``, ``IAFCell``/``IAF``, ``LIBoxCell``; refusals.

``LIFBoxCell`` with ``v_leak = 0`` and reset to ``v_reset = 0`` integrates ``v ← (1 − g)·v + g·i`` with
``g = dt·τ_mem⁻¹``, spikes on ``v > v_th`` and resets to zero: spikelfp's zero-reset LIF with ``β = 1 − g``
on the input ``g·i``. The gain is a single-input scaling, so the feedback passes it unchanged; norse's
state ``v`` is the post-reset membrane ``(1 − z)·U``. ``LIFCell``, ``IAFCell`` and ``LIBoxCell`` map the same way
onto ``CubaLIF``, ``LIF(β = 1)`` and ``LI`` (see each adapter); their outputs and states are norse's own numbers,
carried on the family's feedback path (:func:`_as`). The time-first ``LIF``/``IAF`` modules run their cell's step
in norse's loop (:func:`time_first`). The other current-based neurons are refused with the exact difference
(:data:`NORSE_REFUSALS`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from ..neurons import LIFParameters, _StepLFP
from ..neurons.core import FamilyStepLFP, Structure, lfp_site
from ..rules import MembraneSplit, Site, _PassThroughFunction
from ._common import _scalar, _unsupported

__all__ = ["NORSE_REFUSALS", "iaf_cell", "li_box_cell", "lif_box_cell", "lif_cell", "time_first"]


def lif_box_cell(module: nn.Module, rule: MembraneSplit, name: str, run) -> dict[str, Callable[..., Any]]:
    from norse.torch.functional.lif_box import LIFBoxFeedForwardState
    from norse.torch.functional.reset import reset_value

    p = module.p
    if getattr(p, "reset_method", reset_value) is not reset_value:
        raise _unsupported(module, name, "a reset other than reset_value (subtractive resets scale by β)")
    if _scalar(module, "v_leak", p.v_leak) != 0.0 or _scalar(module, "v_reset", p.v_reset) != 0.0:
        raise _unsupported(module, name, "v_leak or v_reset other than 0")
    gain = float(module.dt) * _scalar(module, "tau_mem_inv", p.tau_mem_inv)
    if not 0.0 < gain < 1.0:
        raise _unsupported(module, name, f"dt·tau_mem_inv = {gain} (must lie in (0, 1))")
    params = LIFParameters(1.0 - gain, _scalar(module, "v_th", p.v_th), "zero")

    def scale(t: Tensor) -> Tensor:
        return t * gain

    def forward(input_tensor: Tensor, state=None):
        v = None if state is None else state.v
        if v is not None and v.shape != input_tensor.shape:
            v = v.expand_as(input_tensor)
        current = _PassThroughFunction.apply(input_tensor, scale)  # one input: feedback passes unchanged
        spikes, u = _StepLFP.apply(current, v, None, Site(rule, run, name, run.layout, params=params))
        # the post-reset state (1 − z)·U: a gate, not a contribution; feedback reaches it only through the next
        # step's carry, which is zero where z = 1, so it passes unchanged (a rule node, for strictness)
        reset = _PassThroughFunction.apply(u, lambda t: t * (1.0 - spikes.detach()))
        return spikes, LIFBoxFeedForwardState(v=reset)

    return {"forward": forward}


def _as(value: Tensor, like: Tensor) -> Tensor:
    """``value`` in norse's own numbers (computed without autograd), carried on ``like``'s feedback path.

    A rule node: the forward gives norse's value, the feedback passes to ``like`` unchanged. ``like`` is the
    family's value of the same quantity (equal up to the rounding of norse's Euler arithmetic), so the output is
    norse's spike for spike while the feedback follows the family's split.
    """
    return _PassThroughFunction.apply(like, lambda t: value)


def _gain(module: nn.Module, name: str, tau_inv: Any, what: str, closed: bool = True) -> float:
    g = float(module.dt * torch.as_tensor(tau_inv))  # norse's own product dt·τ⁻¹
    if not (0.0 < g <= 1.0 if closed else 0.0 <= g <= 1.0):
        raise _unsupported(module, name, f"dt·{what} = {g} (must lie in (0, 1])")
    return g


def _no_leak_or_reset(module: nn.Module, name: str, p: Any, reset: bool = True) -> None:
    if _scalar(module, "v_leak", getattr(p, "v_leak", 0.0)) != 0.0:
        raise _unsupported(module, name, "v_leak other than 0 (a constant contribution with no LFP site)")
    if reset and _scalar(module, "v_reset", p.v_reset) != 0.0:
        raise _unsupported(module, name, "v_reset other than 0 (a reset to a non-zero value is a contribution)")
    if getattr(module, "record_states", False):
        raise _unsupported(module, name, "record_states=True")


def lif_cell(module: nn.Module, rule: MembraneSplit, name: str, run) -> dict[str, Callable[..., Any]]:
    """norse's ``LIFCell`` (``v_leak = 0``, ``v_reset = 0``) as ``sl.CubaLIF(α, β, "zero")`` on the input ``g·x``.

    norse integrates ``i[t] = i_d[t−1] + x[t]``, ``v[t] = v[t−1] + g((0 − v[t−1]) + i[t])``, spikes on
    ``v[t] > v_th``, resets ``v`` to 0 within the step and stores ``i_d[t] = i[t] − h·i[t]``, with
    ``g = dt·τ_mem⁻¹`` and ``h = dt·τ_syn⁻¹``. That is CubaLIF with ``α = 1 − h``, ``β = 1 − g`` and the zero
    reset (the post-reset membrane ``(1 − S)U`` carried) on the input current ``I = g·x``: ``J = g·i`` and
    ``αJ[t−1] = g·i_d[t−1]``. The gain and the rescaled state are single-input scalings, so the feedback passes
    them unchanged; the outputs and states are norse's own numbers (:func:`_as`).
    """
    from norse.torch.functional.lif import LIFFeedForwardState, lif_feed_forward_step

    p = module.p
    _no_leak_or_reset(module, name, p)
    g = _gain(module, name, p.tau_mem_inv, "tau_mem_inv")
    h = _gain(module, name, p.tau_syn_inv, "tau_syn_inv")
    alpha, beta = 1.0 - h, 1.0 - g
    st = Structure(True, True, _scalar(module, "v_th", p.v_th), "zero")

    def step(x: Tensor, state=None):
        initial = state is None
        state = module.state_fallback(x) if initial else state
        with torch.no_grad():
            plain = LIFFeedForwardState(state.v.detach().expand_as(x), state.i.detach())
            z, new = lif_feed_forward_step(x.detach(), plain, p, module.dt)
        current = _PassThroughFunction.apply(x, lambda t: t * g)
        j = v = None
        if not initial:
            v = state.v if state.v.shape == x.shape else state.v.expand_as(x)
            j = _PassThroughFunction.apply(state.i, lambda t: t * (g / alpha) if alpha > 0 else t * 0.0)
        a = torch.tensor(alpha, dtype=x.dtype, device=x.device)
        b = torch.tensor(beta, dtype=x.dtype, device=x.device)
        spikes, j_new, u = FamilyStepLFP.apply(
            current, None, None, a, b, j, v, None, lfp_site(rule, run, name, st, None)
        )
        return _as(z, spikes), LIFFeedForwardState(v=_as(new.v, u), i=_as(new.i, j_new))

    return {"forward": step}


def iaf_cell(module: nn.Module, rule: MembraneSplit, name: str, run) -> dict[str, Callable[..., Any]]:
    """norse's ``IAFCell`` (``v_reset = 0``) as ``sl.LIF(1, reset="zero")``: ``v[t] = v[t−1] + x[t]``, spikes on
    ``v > v_th``, resets to 0 within the step (the post-reset membrane carried: the family's zero reset)."""
    from norse.torch.functional.iaf import IAFFeedForwardState, iaf_feed_forward_step

    p = module.p
    _no_leak_or_reset(module, name, p)
    st = Structure(False, True, _scalar(module, "v_th", p.v_th), "zero")

    def step(x: Tensor, state=None):
        initial = state is None
        state = module.state_fallback(x) if initial else state
        with torch.no_grad():
            z, new = iaf_feed_forward_step(x.detach(), IAFFeedForwardState(state.v.detach()), p, module.dt)
        v = None if initial else (state.v if state.v.shape == x.shape else state.v.expand_as(x))
        b = torch.tensor(1.0, dtype=x.dtype, device=x.device)
        spikes, _, u = FamilyStepLFP.apply(x, None, None, None, b, None, v, None, lfp_site(rule, run, name, st, None))
        return _as(z, spikes), IAFFeedForwardState(v=_as(new.v, u))

    return {"forward": step}


def li_box_cell(module: nn.Module, rule: MembraneSplit, name: str, run) -> dict[str, Callable[..., Any]]:
    """norse's ``LIBoxCell`` (``v_leak = 0``) as ``sl.LI(1 − g)`` on the input ``g·x``, ``g = dt·τ_mem⁻¹``:
    ``v[t] = v[t−1] + g((0 − v[t−1]) + x[t])``; its output is the membrane (σ = sign(v), LFP-SPEC §9)."""
    from norse.torch.functional.leaky_integrator_box import LIBoxState, li_box_feed_forward_step

    p = module.p
    _no_leak_or_reset(module, name, p, reset=False)
    g = _gain(module, name, p.tau_mem_inv, "tau_mem_inv")
    st = Structure(False, False, 1.0, "none")

    def step(x: Tensor, state=None):
        initial = state is None
        state = module.state_fallback(x) if initial else state
        with torch.no_grad():
            out, _ = li_box_feed_forward_step(x.detach(), LIBoxState(state.v.detach()), p, module.dt)
        current = _PassThroughFunction.apply(x, lambda t: t * g)
        v = None if initial else (state.v if state.v.shape == x.shape else state.v.expand_as(x))
        b = torch.tensor(1.0 - g, dtype=x.dtype, device=x.device)
        u, _, _ = FamilyStepLFP.apply(current, None, None, None, b, None, v, None, lfp_site(rule, run, name, st, None))
        value = _as(out, u)
        return value, LIBoxState(v=value)

    return {"forward": step}


def time_first(
    cell_adapter: Callable[..., dict[str, Callable[..., Any]]],
) -> Callable[..., dict[str, Callable[..., Any]]]:
    """The adapter of norse's time-first module (``LIF``, ``IAF``, ``LIBox``) from its cell's: the cell's step in
    norse's loop, ``(stack of outputs, final state)``."""

    def adapter(module: nn.Module, rule: MembraneSplit, name: str, run) -> dict[str, Callable[..., Any]]:
        step = cell_adapter(module, rule, name, run)["forward"]

        def forward(input_tensor: Tensor, state=None):
            outputs = []
            for t in range(input_tensor.shape[0]):
                out, state = step(input_tensor[t], state)
                outputs.append(out)
            return torch.stack(outputs), state

        return {"forward": forward}

    return adapter


def _refuse(reason: str) -> Callable[..., dict[str, Callable[..., Any]]]:
    def refuse(module: nn.Module, rule: MembraneSplit, name: str, run) -> dict[str, Callable[..., Any]]:
        raise TypeError(
            f"module '{name}' ({type(module).__module__}.{type(module).__name__}) is not supported by LFP: {reason}. "
            "LFP never falls back to gradients; use spikelfp's CubaLIF/RCubaLIF/LI (NIR carries the model over) "
            "or norse's LIFBoxCell"
        )

    return refuse


_CUBA = (
    "norse's LIF cells add the input and the recurrent spikes through weight matrices held inside the neuron "
    "(i[t] = i_d[t−1] + W_in·x[t] + W_rec·z[t−1]), which are no layer the composite has a rule for"
)
_OWN_WEIGHTS = "; the cell also holds its own input weights inside the neuron, which have no LFP site"

#: (module that defines the class, class name, refusing adapter): norse's current-based neurons
NORSE_REFUSALS = (
    ("norse.torch.module.lif", "LIFRecurrentCell", _refuse("LIFRecurrentCell: " + _CUBA)),
    ("norse.torch.module.lif", "LIFRecurrent", _refuse("LIFRecurrent (time-first): " + _CUBA)),
    (
        "norse.torch.module.leaky_integrator",
        "LICell",
        _refuse(
            "LICell has a synaptic current state (v[t] = v[t−1] + dt·τ_mem⁻¹·((v_leak − v[t−1]) + i[t]), "
            "i[t] = i_decayed[t−1] + input): a current-based leaky integrator, while spikelfp's LI has no "
            "synaptic state"
        ),
    ),
    (
        "norse.torch.module.leaky_integrator",
        "LI",
        _refuse("LI (time-first LICell) has a synaptic current state, while spikelfp's LI has none"),
    ),
    (
        "norse.torch.module.leaky_integrator",
        "LILinearCell",
        _refuse("LILinearCell has a synaptic current state, while spikelfp's LI has none" + _OWN_WEIGHTS),
    ),
)
