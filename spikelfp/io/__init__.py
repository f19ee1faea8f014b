"""Files in and out: one module per idea, the public path is :mod:`spikelfp.export`.

- :mod:`~spikelfp.io.atomic`: writing a file whole or not at all (used by every writer);
- :mod:`~spikelfp.io.nir_write` and :mod:`~spikelfp.io.nir_read`: NIR graphs, each neuron by its
  :class:`~spikelfp.neurons.spec.NeuronSpec`; :mod:`~spikelfp.io.chain`: a model as a chain of layers;
- :mod:`~spikelfp.io.weights` and :mod:`~spikelfp.io.architecture`: the binary-weight file and its architecture;
- :mod:`~spikelfp.io.hdf5`, :mod:`~spikelfp.io.isolated` and :mod:`~spikelfp.io.shapes`: reading files that may
  be hostile (only data inside the file, declared sizes before allocating, libhdf5 in a child process, layers
  that fit together); :mod:`~spikelfp.io.rebuild`: a spikelfp module from a spec; :mod:`~spikelfp.io.errors`.

Only the atomic writes are imported here; the rest loads with :mod:`spikelfp.export`.
"""

from .atomic import AtomicWriteError, atomic_save, atomic_write, atomic_write_text

__all__ = ["AtomicWriteError", "atomic_save", "atomic_write", "atomic_write_text"]
