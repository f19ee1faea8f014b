"""The one way back from a :class:`~spikelfp.neurons.spec.NeuronSpec` to a spikelfp neuron module.

The readers (:mod:`spikelfp.io.nir_read`, :mod:`spikelfp.io.architecture`) turn what a file says into a spec
(validated there, once) and the spec into the module that holds it here: ``LIF``/``CubaLIF``/``LI``/``CubaLI``,
or ``RLIF``/``RCubaLIF`` with a recurrent layer of ``size`` neurons. spikelfp's modules take their input
as it comes (gain 1) and reset with a delay, so a spec with another gain or a same-step reset has no module.
"""

from __future__ import annotations

from torch import nn

from ..neurons import LI, LIF, RLIF, CubaLI, CubaLIF, FamilyNeuron, NeuronSpec, RCubaLIF
from .errors import ExportError

__all__ = ["module_from_spec"]


def module_from_spec(spec: NeuronSpec, size: int | None = None, bias: bool = True) -> FamilyNeuron:
    """The spikelfp module whose ``.spec`` is ``spec`` (decays copied; learnable ones become parameters).

    Parameters
    ----------
    spec
        The neuron. ``gain`` must be 1 and ``reset_delay`` True (what spikelfp's modules compute).
    size, bias
        The number of neurons and whether the recurrent layer has a bias (``spec.recurrent`` only).

    Raises
    ------
    ExportError
        For a gain other than 1, a same-step reset, or a recurrent spec without a valid ``size``.
    """
    if spec.gain != 1.0:
        raise ExportError(f"a {spec.kind} neuron with input gain {spec.gain:g} has no spikelfp module (gain 1)")
    if not spec.reset_delay:
        raise ExportError(f"a {spec.kind} neuron with a same-step reset (reset_delay=False) has no spikelfp module")
    learn = {"learn_beta": spec.learn_beta}
    if spec.synaptic:
        learn["learn_alpha"] = spec.learn_alpha
    if spec.recurrent:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ExportError(f"a recurrent {spec.kind} neuron needs its number of neurons, got {size!r}")
        if spec.kind == "LIF":
            module: nn.Module = RLIF(size, spec.beta, spec.threshold, spec.reset, bias=bias, **learn)
        elif spec.kind == "CubaLIF":
            module = RCubaLIF(size, spec.alpha, spec.beta, spec.threshold, spec.reset, bias=bias, **learn)
        else:
            raise ExportError(f"a {spec.kind} readout has no recurrent spikelfp module")
    elif spec.kind == "LIF":
        module = LIF(spec.beta, spec.threshold, spec.reset, **learn)
    elif spec.kind == "CubaLIF":
        module = CubaLIF(spec.alpha, spec.beta, spec.threshold, spec.reset, **learn)
    elif spec.kind == "LI":
        module = LI(spec.beta, **learn)
    else:
        module = CubaLI(spec.alpha, spec.beta, **learn)
    return module
