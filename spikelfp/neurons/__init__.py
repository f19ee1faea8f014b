"""Spiking and leaky neurons and their temporal LFP rule (LFP-SPEC §5, §9).

One description, one kernel, thin modules (norse's pattern: pure step functions beside thin modules):

- :mod:`~spikelfp.neurons.spec`: :class:`NeuronSpec`, the one description of a neuron and its validation;
- :mod:`~spikelfp.neurons.functional`: the dynamics, one step and the multi-step loop over it;
- :mod:`~spikelfp.neurons.lfp`: the temporal LFP rule (one multi-step and one step Function);
- :mod:`~spikelfp.neurons.bptt`: the Heaviside's derivative and the surrogate's (BPTT baselines);
- :mod:`~spikelfp.neurons.modules`: :class:`LIF`, :class:`CubaLIF`, :class:`RLIF`, :class:`RCubaLIF`,
  :class:`LI`, each holding a spec.

A new neuron kind is a spec kind plus its step in the kernel.
"""

from .bptt import Surrogate
from .functional import State
from .modules import (
    LI,
    LIF,
    RLIF,
    CubaLI,
    CubaLIF,
    CubaLIFState,
    CubaLIState,
    FamilyNeuron,
    LIFState,
    LIState,
    RCubaLIF,
    cuba_step,
    from_spec,
    li_step,
    lif_feed_forward,
    lif_step,
)
from .spec import KINDS, RESETS, NeuronSpec

__all__ = [
    "KINDS",
    "LI",
    "LIF",
    "RESETS",
    "RLIF",
    "CubaLI",
    "CubaLIF",
    "CubaLIFState",
    "CubaLIState",
    "FamilyNeuron",
    "LIFState",
    "LIState",
    "NeuronSpec",
    "RCubaLIF",
    "State",
    "Surrogate",
    "cuba_step",
    "from_spec",
    "li_step",
    "lif_feed_forward",
    "lif_step",
]
