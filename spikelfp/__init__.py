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
    device,
    distributed,
    encode,
    export,
    feedback,
    interop,
    layers,
    lfp,
    models,
    neurons,
    nn,
    rules,
    strict,
    surrogate,
    train,
    userdata,
)
from .lfp.engine import LFP, NonFiniteError, StrictError
from .neurons import LI, LIF, RLIF, CubaLI, CubaLIF, CubaLIFState, CubaLIState, LIFState, LIState, NeuronSpec, RCubaLIF


def __getattr__(name: str):
    if name == "plot":  # imported on first use: matplotlib is an optional extra
        import importlib

        return importlib.import_module(".plot", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__version__ = "0.1.0"

__all__ = [
    "LFP",
    "LI",
    "LIF",
    "RLIF",
    "CubaLI",
    "CubaLIF",
    "CubaLIFState",
    "CubaLIState",
    "LIFState",
    "LIState",
    "NeuronSpec",
    "NonFiniteError",
    "RCubaLIF",
    "StrictError",
    "analysis",
    "binary",
    "clip",
    "composites",
    "data",
    "device",
    "distributed",
    "encode",
    "export",
    "feedback",
    "interop",
    "layers",
    "lfp",
    "models",
    "neurons",
    "nn",
    "plot",
    "rules",
    "strict",
    "surrogate",
    "train",
    "userdata",
]
