"""LFP on other libraries' neurons: snnTorch's ``Leaky`` and norse's ``LIFBoxCell``, trained as they are.

While LFP is attached, these modules run through spikelfp's own step Function
(:class:`~spikelfp.rules.MembraneSplit`), with their own call signatures and state conventions, so
a user's snnTorch-style step loop trains by LFP unchanged. The equivalences (checked in the tests):

- ``snntorch.Leaky(beta, threshold, reset_mechanism="subtract" | "zero", reset_delay=True)`` is
  ``spikelfp.LIF(beta, threshold, reset)`` step by step; snnTorch's ``mem`` is spikelfp's ``U[t]`` and
  its reset uses ``H(mem[t−1] − θ)``, i.e. ``S[t−1]``. Both ``init_hidden`` modes are supported.
- norse's ``LIFBoxCell`` with ``v_leak = 0`` and reset to ``v_reset = 0`` integrates
  ``v ← (1 − g)·v + g·i`` with ``g = dt·τ_mem⁻¹``, spikes on ``v > v_th`` and resets to zero: spikelfp's
  zero-reset LIF with ``β = 1 − g`` on the input ``g·i``. The gain is a single-input scaling, so the
  feedback passes it unchanged; norse's state ``v`` is the post-reset membrane ``(1 − z)·U``.

Unsupported options (learnable β or θ, per-neuron parameters, ``reset_delay=False``, graded
spikes, inhibition, state quantisation, norse's subtractive reset or non-zero leak/reset) are
errors that name the module. norse 1.1 has no multi-step ``LIFBox`` module; its cell is what runs.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from .neurons import LIFParameters, _StepLFP
from .rules import MembraneSplit, Site, _PassThroughFunction

__all__ = ["adapter_for"]


def _scalar(module: nn.Module, name: str, value: Any) -> float:
    t = torch.as_tensor(value)
    if t.numel() != 1:
        raise TypeError(f"{type(module).__name__} has a per-neuron {name}; LFP supports one {name} per layer here")
    return float(t)


def _unsupported(module: nn.Module, name: str, what: str) -> TypeError:
    return TypeError(
        f"module '{name}' ({type(module).__module__}.{type(module).__name__}): {what} is not supported by LFP"
    )


# --------------------------------------------------------------------------------------------------
# snnTorch
# --------------------------------------------------------------------------------------------------
def _snntorch_leaky(module: nn.Module, rule: MembraneSplit, name: str, run) -> dict[str, Callable[..., Any]]:
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


# --------------------------------------------------------------------------------------------------
# norse
# --------------------------------------------------------------------------------------------------
def _norse_lif_box_cell(module: nn.Module, rule: MembraneSplit, name: str, run) -> dict[str, Callable[..., Any]]:
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


# (module that defines the class, class name, adapter). A model holding one of these neurons has
# imported its library already, so the lookup reads sys.modules and never imports anything itself.
_KNOWN = (
    ("snntorch._neurons.leaky", "Leaky", _snntorch_leaky),
    ("norse.torch.module.lif_box", "LIFBoxCell", _norse_lif_box_cell),
)


def _entries() -> list[tuple[type, Callable]]:
    entries = []
    for module_name, class_name, adapter in _KNOWN:
        module = sys.modules.get(module_name)
        cls = getattr(module, class_name, None) if module is not None else None
        if isinstance(cls, type):
            entries.append((cls, adapter))
    return entries


def adapter_for(module: nn.Module) -> Callable | None:
    """The adapter that gives ``module`` LFP methods, or None."""
    for cls, adapter in _entries():
        if isinstance(module, cls):
            return adapter
    return None
