"""norse's ``LIFBoxCell`` under LFP: spikelfp's zero-reset LIF step on the scaled input.

``LIFBoxCell`` with ``v_leak = 0`` and reset to ``v_reset = 0`` integrates ``v ← (1 − g)·v + g·i`` with
``g = dt·τ_mem⁻¹``, spikes on ``v > v_th`` and resets to zero: spikelfp's zero-reset LIF with ``β = 1 − g``
on the input ``g·i``. The gain is a single-input scaling, so the feedback passes it unchanged; norse's
state ``v`` is the post-reset membrane ``(1 − z)·U``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

from ..neurons import LIFParameters, _StepLFP
from ..rules import MembraneSplit, Site, _PassThroughFunction
from ._common import _scalar, _unsupported

__all__ = ["NORSE_REFUSALS", "lif_box_cell"]


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


def _refuse(reason: str) -> Callable[..., dict[str, Callable[..., Any]]]:
    def refuse(module: nn.Module, rule: MembraneSplit, name: str, run) -> dict[str, Callable[..., Any]]:
        raise TypeError(
            f"module '{name}' ({type(module).__module__}.{type(module).__name__}) is not supported by LFP: {reason}. "
            "LFP never falls back to gradients; use spikelfp's CubaLIF/RCubaLIF/LI (NIR carries the model over) "
            "or norse's LIFBoxCell"
        )

    return refuse


_CUBA = (
    "norse integrates the membrane in Euler form v[t] = v[t−1] + dt·τ_mem⁻¹·((v_leak − v[t−1]) + i[t]) with the "
    "synaptic current i[t] = i_decayed[t−1] + input, and stores the current already decayed, "
    "i_decayed[t] = (1 − dt·τ_syn⁻¹)·i[t]. That is CubaLIF(α = 1 − dt·τ_syn⁻¹, β = 1 − dt·τ_mem⁻¹) only on the "
    "input scaled by dt·τ_mem⁻¹, with norse's state rescaled and in other arithmetic, so its spikes are not "
    "reproduced operation for operation (not implemented)"
)
_OWN_WEIGHTS = "; the cell also holds its own input (and recurrent) weights inside the neuron, which have no LFP site"

#: (module that defines the class, class name, refusing adapter): norse's current-based neurons
NORSE_REFUSALS = (
    ("norse.torch.module.lif", "LIFCell", _refuse("LIFCell: " + _CUBA)),
    ("norse.torch.module.lif", "LIF", _refuse("LIF (time-first LIFCell): " + _CUBA)),
    ("norse.torch.module.lif", "LIFRecurrentCell", _refuse("LIFRecurrentCell: " + _CUBA + _OWN_WEIGHTS)),
    ("norse.torch.module.lif", "LIFRecurrent", _refuse("LIFRecurrent (time-first): " + _CUBA + _OWN_WEIGHTS)),
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
