"""spikelfp: Layer-wise Feedback Propagation for spiking and ordinary neural networks in PyTorch.

>>> import spikelfp as sl
>>> lfp = sl.LFP(net, composite="epsilon")
>>> out = lfp(x)
>>> lfp.backward(out, sl.feedback.SpikeSequence()(out, y))
"""

from . import (
    analysis,
    binary,
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
from .neurons import LIF, LIFParameters, LIFState

__version__ = "0.1.0"

__all__ = [
    "LFP",
    "LIF",
    "LIFParameters",
    "LIFState",
    "NonFiniteError",
    "analysis",
    "binary",
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
