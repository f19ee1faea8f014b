"""Export for neuromorphic hardware (NIR) and for binary weights: the public path of :mod:`spikelfp.io`.

- :func:`to_nir` (:mod:`spikelfp.io.nir_write`) writes a sequential model as a NIR graph, each neuron from its
  :class:`~spikelfp.neurons.spec.NeuronSpec`, under one of the importer conventions :data:`CONVENTIONS`;
- :func:`from_nir` (:mod:`spikelfp.io.nir_read`) reads a NIR graph or file back into spikelfp modules;
- :func:`binarize`, :func:`save_binary` and :func:`load_binary` (:mod:`spikelfp.io.weights`) are the binary-weight
  file, whose architecture is :func:`describe`/:func:`from_description` (:mod:`spikelfp.io.architecture`);
- every file is read through :mod:`spikelfp.io.hdf5` (nothing outside the file, nothing of a declared size
  before the size is checked) and every failure is an :class:`ExportError`.
"""

from .io.architecture import describe, from_description
from .io.errors import ExportError
from .io.nir_read import from_nir
from .io.nir_write import CONVENTIONS, SNNTORCH_DT, to_nir  # noqa: F401  (constants: importable here too)
from .io.weights import BINARY_FORMAT, BINARY_VERSION, binarize, load_binary, save_binary  # noqa: F401

__all__ = [
    "ExportError",
    "binarize",
    "describe",
    "from_description",
    "from_nir",
    "load_binary",
    "save_binary",
    "to_nir",
]
