"""From a :class:`~spikelfp.neurons.spec.NeuronSpec` read from a file back to a spikelfp neuron module.

The readers (:mod:`spikelfp.io.nir_read`, :mod:`spikelfp.io.architecture`) turn what a file says into a spec
(validated there, once) and the spec into the module that holds it: :func:`spikelfp.neurons.from_spec`, with
its refusals reported as :class:`~spikelfp.io.errors.ExportError`.
"""

from __future__ import annotations

from ..neurons import FamilyNeuron, NeuronSpec, from_spec
from .errors import ExportError

__all__ = ["module_from_spec"]


def module_from_spec(spec: NeuronSpec, size: int | None = None, bias: bool = True) -> FamilyNeuron:
    """The spikelfp module whose ``.spec`` is ``spec`` (decays copied; learnable ones become parameters).

    Parameters
    ----------
    spec
        The neuron.
    size, bias
        The number of neurons and whether the recurrent layer has a bias (``spec.recurrent`` only).

    Raises
    ------
    ExportError
        For a recurrent readout or a recurrent spec without a valid ``size``.
    """
    try:
        return from_spec(spec, size, bias)
    except ValueError as exc:
        raise ExportError(f"a {spec.kind} neuron from the file: {exc}") from None
