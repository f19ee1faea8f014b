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

__all__ = ["lif_box_cell"]


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
        return spikes, LIFBoxFeedForwardState(v=u * (1.0 - spikes.detach()))

    return {"forward": forward}
