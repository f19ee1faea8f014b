"""Other libraries' neurons, trained by LFP as they are, and the one recogniser of neurons.

:func:`recognize` (:mod:`~spikelfp.interop.registry`) maps any module to the neuron it is: spikelfp's own
modules, snnTorch's (:mod:`~spikelfp.interop.snntorch`: ``Leaky``, ``Synaptic``, ``RLeaky``, ``RSynaptic``,
``Lapicque``) and norse's (:mod:`~spikelfp.interop.norse`: ``LIFBoxCell``, ``LIFCell``/``LIF``,
``LIFRecurrentCell``/``LIFRecurrent``, ``IAFCell``/``IAF``, ``LIBoxCell``, ``LICell``/``LI``, ``LILinearCell``),
each with its :class:`~spikelfp.neurons.spec.NeuronSpec` and call convention; neurons that no LFP rule splits
(snnTorch's ``Alpha``, ``SLSTM``, …) come back with the reason. While LFP is attached, each runs one step of the
family's LFP Function with its own call signature and states, so a user's snnTorch- or norse-style step loop
trains by LFP unchanged and keeps its spikes.
"""

from . import norse, snntorch
from .registry import ENTRIES, Neuron, Unsupported, recognize, spiking_modules

# the libraries' base classes last: a neuron of theirs without an entry above is still a neuron, refused by name
ENTRIES.extend(
    [
        ("snntorch._neurons.neurons", "SpikingNeuron", snntorch.no_mapping),
        ("norse.torch.module.snn", "SNNCell", norse.no_mapping),
        ("norse.torch.module.snn", "SNNRecurrentCell", norse.no_mapping),
        ("norse.torch.module.snn", "SNN", norse.no_mapping),
        ("norse.torch.module.snn", "SNNRecurrent", norse.no_mapping),
    ]
)

__all__ = ["Neuron", "Unsupported", "recognize", "spiking_modules"]
