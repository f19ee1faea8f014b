"""Images held in memory: :class:`ImageSet`, the built-in image sets' (and image folders') batch source."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from .batches import BatchSource, check_subset, epoch_order
from .files import DataError

__all__ = ["ImageSet"]


@dataclass
class ImageSet(BatchSource):
    """Images ``(N, C, H, W)`` as ``uint8`` (or floats, taken as they are) and labels ``(N,)`` as ``int64``,
    with the set's statistics."""

    images: Tensor
    labels: Tensor
    mean: tuple[float, ...]
    std: tuple[float, ...]
    name: str = ""

    def __post_init__(self) -> None:
        if self.images.dim() != 4 or self.images.shape[0] != self.labels.shape[0]:
            raise DataError(
                f"images must be (N, C, H, W) with one label each, got {tuple(self.images.shape)} and "
                f"{tuple(self.labels.shape)}"
            )

    time_first = False

    def __len__(self) -> int:
        return self.labels.shape[0]

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """``(C, H, W)`` of one image."""
        return tuple(self.images.shape[1:])

    @property
    def num_classes(self) -> int:
        return int(self.labels.max()) + 1 if len(self) else 0

    def subset(self, n: int | None) -> ImageSet:
        """The first ``n`` samples (all if None); ``n`` must be >= 1."""
        check_subset(n)
        if n is None or n >= len(self):
            return self
        return ImageSet(self.images[:n], self.labels[:n], self.mean, self.std, self.name)

    def to_float(self, images: Tensor, standardize: bool) -> Tensor:
        """``uint8`` images to floats in [0, 1] (``x / 255``), or standardised with the set's mean and std.

        Floating-point images are taken as they are (never divided by 255 again).
        """
        x = images.float().div_(255.0) if images.dtype == torch.uint8 else images.float()
        if standardize:
            mean = torch.tensor(self.mean).view(1, -1, 1, 1)
            std = torch.tensor(self.std).view(1, -1, 1, 1)
            x = (x - mean) / std
        return x

    def batches(
        self,
        batch_size: int,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        standardize: bool = True,
        start: int = 0,
        shard: tuple[int, int] | None = None,
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """Float batches ``(x, y)``; with ``shuffle``, in the order of ``torch.randperm(generator)``.

        ``start`` skips the first batches (to resume mid-epoch with the same order); ``shard=(rank,
        world)`` yields this process's share of the epoch (see :func:`~spikelfp.data.batches.epoch_order`).
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        order = epoch_order(len(self), shuffle, generator, shard)
        n = len(order)
        for i in range(start * batch_size, n, batch_size):
            idx = order[i : i + batch_size]
            yield self.to_float(self.images[idx], standardize), self.labels[idx]
