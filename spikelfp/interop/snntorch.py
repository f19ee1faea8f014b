"""snnTorch's ``Leaky`` under LFP: it runs through spikelfp's LIF step Function with its own call signature.

``snntorch.Leaky(beta, threshold, reset_mechanism="subtract" | "zero", reset_delay=True)`` is
``spikelfp.LIF(beta, threshold, reset)`` step by step; snnTorch's ``mem`` is spikelfp's ``U[t]`` and its
reset uses ``H(mem[t−1] − θ)``, i.e. ``S[t−1]``. Both ``init_hidden`` modes are supported.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

from ..neurons import LIFParameters, _StepLFP
from ..rules import MembraneSplit, Site
from ._common import _scalar, _unsupported

__all__ = ["leaky"]


def leaky(module: nn.Module, rule: MembraneSplit, name: str, run) -> dict[str, Callable[..., Any]]:
    reset = {0: "subtract", 1: "zero"}.get(int(module.reset_mechanism_val))
    if reset is None:
        raise _unsupported(module, name, "reset_mechanism='none'")
    if not getattr(module, "reset_delay", True):
        raise _unsupported(module, name, "reset_delay=False")
    if getattr(module, "state_quant", False) or getattr(module, "inhibition", False):
        raise _unsupported(module, name, "state quantisation or inhibition")
    if _scalar(module, "graded_spikes_factor", module.graded_spikes_factor) != 1.0:
        raise _unsupported(module, name, "graded spikes")
    for p_name in ("beta", "threshold"):
        p = getattr(module, p_name)
        if isinstance(p, nn.Parameter) and p.requires_grad:
            raise _unsupported(module, name, f"a learnable {p_name}")
    beta = min(max(_scalar(module, "beta", module.beta), 0.0), 1.0)  # snnTorch clamps β to [0, 1]
    params = LIFParameters(beta, _scalar(module, "threshold", module.threshold), reset)

    def forward(input_: Tensor, mem: Tensor | None = None):
        if module.init_hidden:
            if mem is not None:
                raise TypeError("`mem` should not be passed as an argument while `init_hidden=True`")
            previous = module.mem
        else:
            previous = mem
        v = previous if (isinstance(previous, Tensor) and previous.shape == input_.shape) else None
        s = None if v is None else (v.detach() > params.threshold).to(v.dtype)  # snnTorch's reset signal
        spikes, u = _StepLFP.apply(input_, v, s, Site(rule, run, name, run.layout, params=params))
        if module.init_hidden:
            module.mem = u
            return (spikes, u) if module.output else spikes
        return spikes, u

    return {"forward": forward}
