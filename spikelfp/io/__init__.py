"""Writing files safely: :mod:`spikelfp.io.atomic` (a whole new file or the old one, never a torn one)."""

from .atomic import AtomicWriteError, atomic_save, atomic_write, atomic_write_text

__all__ = ["AtomicWriteError", "atomic_save", "atomic_write", "atomic_write_text"]
