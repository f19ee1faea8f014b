"""The built-in data sets by name: :data:`LOADERS` and :func:`load`."""

from __future__ import annotations

import os

from .cifar import cifar10
from .events import EventSet, nmnist
from .idx import fashion_mnist, mnist
from .images import ImageSet

__all__ = ["LOADERS", "load"]

LOADERS = {"mnist": mnist, "fashion-mnist": fashion_mnist, "cifar10": cifar10, "nmnist": nmnist}


def load(
    name: str, train: bool = True, root: str | os.PathLike | None = None, download: bool = True, steps: int = 10
) -> ImageSet | EventSet:
    """A data set by name: ``mnist``, ``fashion-mnist``, ``cifar10`` (images) or ``nmnist`` (events)."""
    if name not in LOADERS:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(LOADERS)}")
    if name == "nmnist":
        return nmnist(train=train, root=root, steps=steps, download=download)
    return LOADERS[name](train=train, root=root, download=download)
