"""What the readers and writers of :mod:`spikelfp.io` raise, and the optional packages they need."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["ExportError", "optional"]


class ExportError(ValueError):
    """A model cannot be exported, or a file cannot be imported (the message names the layer, node or object)."""


def optional(name: str) -> ModuleType:
    """Import ``name`` (``"nir"`` or ``"h5py"``), or say which extra installs it.

    Parameters
    ----------
    name
        The module's name.
    """
    try:
        return importlib.import_module(name)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(f"{name} is needed here: pip install 'spikelfp[export]'") from exc
