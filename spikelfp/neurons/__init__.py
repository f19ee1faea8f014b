"""Spiking and leaky neurons and their temporal LFP rules (LFP-SPEC §5, §9).

One module per neuron, each a class plus its pure step function (norse's pattern), on a shared
temporal core:

- :mod:`~spikelfp.neurons.core`: the dynamics, the sum-node split and the reverse-time loop they share;
- :mod:`~spikelfp.neurons.lif`: :class:`LIF` (single-state leaky integrate-and-fire);
- :mod:`~spikelfp.neurons.cuba`: :class:`CubaLIF` (synaptic current + membrane; snnTorch ``Synaptic``);
- :mod:`~spikelfp.neurons.recurrent`: :class:`RLIF`, :class:`RCubaLIF` (snnTorch ``RLeaky``, ``RSynaptic``);
- :mod:`~spikelfp.neurons.readout`: :class:`LI` (the non-spiking leaky-integrator readout).
"""

from .core import FamilyNeuron
from .cuba import CubaLIF, CubaLIFState, cuba_step
from .lif import LIF, LIFParameters, LIFState, Surrogate, lif_feed_forward, lif_step
from .lif import _MultiStep as _MultiStep  # private names other modules import
from .lif import _MultiStepLFP as _MultiStepLFP
from .lif import _Step as _Step
from .lif import _StepLFP as _StepLFP
from .readout import LI, LIState, li_step
from .recurrent import RLIF, RCubaLIF

__all__ = [
    "LI",
    "LIF",
    "RLIF",
    "CubaLIF",
    "CubaLIFState",
    "FamilyNeuron",
    "LIFParameters",
    "LIFState",
    "LIState",
    "RCubaLIF",
    "Surrogate",
    "cuba_step",
    "li_step",
    "lif_feed_forward",
    "lif_step",
]
