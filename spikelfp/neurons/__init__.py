"""Spiking and leaky neurons and their temporal LFP rules (LFP-SPEC §5, §9).

One module per neuron, each a class plus its pure step function (norse's pattern), on a shared
temporal core:

- :mod:`~spikelfp.neurons.lif`: :class:`LIF` (single-state leaky integrate-and-fire);
"""

from .lif import LIF, LIFParameters, LIFState, Surrogate, lif_feed_forward, lif_step
from .lif import _MultiStep as _MultiStep  # private names other modules import
from .lif import _MultiStepLFP as _MultiStepLFP
from .lif import _Step as _Step
from .lif import _StepLFP as _StepLFP

__all__ = ["LIF", "LIFParameters", "LIFState", "Surrogate", "lif_feed_forward", "lif_step"]
