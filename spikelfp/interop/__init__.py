"""LFP on other libraries' neurons, trained as they are; the others are refused with the reason.

While LFP is attached, these modules run one step of the neuron family's LFP Function
(:class:`~spikelfp.neurons.core.FamilyStepLFP`, LFP-SPEC §9) with their own call signatures and state
conventions, so a user's snnTorch- or norse-style step loop trains by LFP unchanged and keeps its spikes.
The equivalences (checked in ``tests/test_interop.py`` and ``tests/test_interop_family.py``):

- snnTorch (:mod:`spikelfp.interop.snntorch`): ``Leaky`` → ``sl.LIF``, ``Synaptic`` → ``sl.CubaLIF``,
  ``RLeaky``/``RSynaptic`` (``linear_features``) → ``sl.RLIF``/``sl.RCubaLIF``, ``Lapicque`` → ``sl.LIF`` on the
  scaled input; scalar or per-neuron, fixed or learnable decays; both ``init_hidden`` modes;
  ``reset_delay=False`` for ``Leaky``/``Synaptic``. snnTorch's ``mem`` is ``U[t]`` and its reset uses
  ``H(mem[t−1] − θ)``, i.e. ``S[t−1]``.
- norse (:mod:`spikelfp.interop.norse`), with ``v_leak = 0`` and ``v_reset = 0``: ``LIFBoxCell`` →
  zero-reset ``sl.LIF(1 − g)`` on ``g·x``, ``LIFCell``/``LIF`` → ``sl.CubaLIF(1 − h, 1 − g, "zero")`` on ``g·x``,
  ``IAFCell``/``IAF`` → ``sl.LIF(1, reset="zero")``, ``LIBoxCell`` → ``sl.LI(1 − g)`` on ``g·x``
  (``g = dt·τ_mem⁻¹``, ``h = dt·τ_syn⁻¹``). A gain is a single-input scaling, so the feedback passes it
  unchanged; norse's state ``v`` is the post-reset membrane ``(1 − z)·U``.

Unsupported options (a learnable θ, graded spikes, inhibition, state quantisation, snnTorch's delayed zero
reset where it drops the step's input, one-to-one or convolutional recurrence, norse's subtractive reset or
non-zero leak/reset) are errors that name the module. Neurons with no LFP rule (snnTorch ``Alpha``,
``SLSTM``, ``SConv2dLSTM``, ``DeltaLeaky``) and norse's cells with weights inside the neuron or a synaptic
current ``LI`` lacks (``LIFRecurrentCell``, ``LIFRecurrent``, ``LILinearCell``, ``LICell``, ``LI``) are refused
with the exact difference.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from torch import nn

from ..rules import register_adapter_finder
from .norse import NORSE_REFUSALS, iaf_cell, li_box_cell, lif_box_cell, lif_cell, time_first
from .snntorch import lapicque, leaky, no_lfp_rule, rleaky, rsynaptic, synaptic

__all__ = ["adapter_for"]


# (module that defines the class, class name, adapter). A model holding one of these neurons has
# imported its library already, so the lookup reads sys.modules and never imports anything itself.
_KNOWN = (
    ("snntorch._neurons.leaky", "Leaky", leaky),
    ("snntorch._neurons.synaptic", "Synaptic", synaptic),
    ("snntorch._neurons.rleaky", "RLeaky", rleaky),
    ("snntorch._neurons.rsynaptic", "RSynaptic", rsynaptic),
    ("snntorch._neurons.lapicque", "Lapicque", lapicque),
    (
        "snntorch._neurons.alpha",
        "Alpha",
        no_lfp_rule(
            "its membrane is the difference of two synaptic currents (excitatory minus inhibitory), a "
            "dual-exponential kernel that is not a sum node of LFP-SPEC §9"
        ),
    ),
    (
        "snntorch._neurons.deltaleaky",
        "DeltaLeaky",
        no_lfp_rule("it fires on the change of the membrane between steps, a difference that is not a sum node"),
    ),
    (
        "snntorch._neurons.slstm",
        "SLSTM",
        no_lfp_rule("its LSTM gates are products of states, which no LFP rule splits"),
    ),
    (
        "snntorch._neurons.sconv2dlstm",
        "SConv2dLSTM",
        no_lfp_rule("its LSTM gates are products of states, which no LFP rule splits"),
    ),
    ("norse.torch.module.lif_box", "LIFBoxCell", lif_box_cell),
    ("norse.torch.module.lif", "LIFCell", lif_cell),
    ("norse.torch.module.lif", "LIF", time_first(lif_cell)),
    ("norse.torch.module.iaf", "IAFCell", iaf_cell),
    ("norse.torch.module.iaf", "IAF", time_first(iaf_cell)),
    ("norse.torch.module.leaky_integrator_box", "LIBoxCell", li_box_cell),
    *NORSE_REFUSALS,
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
    """The adapter that gives ``module`` LFP methods (or refuses it by name), or None.

    An exact class match wins over a subclass match (snnTorch's ``DeltaLeaky`` subclasses ``Leaky``).
    """
    entries = _entries()
    for cls, adapter in entries:
        if type(module) is cls:
            return adapter
    for cls, adapter in entries:
        if isinstance(module, cls):
            return adapter
    return None


register_adapter_finder(adapter_for)
