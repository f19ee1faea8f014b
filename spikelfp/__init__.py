"""spikelfp: Layer-wise Feedback Propagation for spiking and ordinary neural networks in PyTorch.

>>> import spikelfp as sl
>>> lfp = sl.LFP(net, composite="epsilon")
>>> out = lfp(x)
>>> lfp.backward(out, sl.feedback.SpikeSequence()(out, y))
"""

from . import (
    analysis,
    clip,
    composites,
    data,
    distributed,
    encode,
    export,
    feedback,
    layers,
    models,
    nn,
    rules,
    surrogate,
    train,
)
from .engine import LFP, NonFiniteError
from .neurons import LI, LIF, RLIF, CubaLIF, CubaLIFState, LIFParameters, LIFState, LIState, RCubaLIF

__version__ = "0.1.0"

__all__ = [
    "LFP",
    "LI",
    "LIF",
    "RLIF",
    "CubaLIF",
    "CubaLIFState",
    "LIFParameters",
    "LIFState",
    "LIState",
    "NonFiniteError",
    "RCubaLIF",
    "analysis",
    "clip",
    "composites",
    "data",
    "distributed",
    "encode",
    "export",
    "feedback",
    "layers",
    "models",
    "nn",
    "rules",
    "surrogate",
    "train",
]
