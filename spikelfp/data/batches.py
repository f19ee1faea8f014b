"""What the Trainer reads data through: the :class:`BatchSource` interface, and the epoch order it shares.

Every source, built-in (:class:`~spikelfp.data.ImageSet`, :class:`~spikelfp.data.EventSet`) or a user's
(:class:`~spikelfp.data.user.DatasetBatches`, :class:`~spikelfp.data.user.LoaderBatches`), yields the
batches of an epoch in the order :func:`epoch_order` draws: ``torch.randperm`` of the epoch's generator,
and under DDP every ``world``-th sample from ``rank`` of it, padded by wrapping around (as
``DistributedSampler`` does). A resumed run skips the first ``start`` batches of the same order.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

__all__ = ["BatchSource", "check_subset", "epoch_order", "num_batches"]


def epoch_order(n: int, shuffle: bool, generator, shard: tuple[int, int] | None) -> Tensor:
    """Sample order of an epoch; with ``shard=(rank, world)``, this rank's share of it.

    The order is padded by wrapping around to a multiple of ``world`` (as DistributedSampler does), so
    every rank takes the same number of batches and DDP's collectives stay in step.
    """
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    if shard is None:
        return order
    rank, world = shard
    if not 0 <= rank < world:
        raise ValueError(f"shard rank {rank} is not in [0, {world})")
    total = -(-n // world) * world
    if total > n:
        order = torch.cat([order, order[: total - n]])
    return order[rank::world]


def num_batches(n: int, batch_size: int, world: int = 1) -> int:
    """Batches per epoch of ``n`` samples on each of ``world`` ranks: ``⌈⌈n / world⌉ / batch_size⌉``."""
    per_rank = -(-n // world)
    return (per_rank + batch_size - 1) // batch_size


def check_subset(n: int | None) -> None:
    """Refuse a subset size other than ``None`` (all) or an integer ``>= 1``."""
    if n is not None and (not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1):
        raise ValueError(f"a subset needs n >= 1 samples (or None for all), got {n!r}")


@runtime_checkable
class BatchSource(Protocol):
    """A data set as the Trainer reads it: its size, its shape, and the batches of an epoch.

    Attributes
    ----------
    time_first
        Whether a batch is a sequence ``(T, B, …)`` already (event frames) rather than ``(B, …)``;
        a source without it counts as ``False``.

    Notes
    -----
    A class may subclass :class:`BatchSource` to inherit :meth:`num_batches`. On Python < 3.12,
    ``isinstance(x, BatchSource)`` evaluates ``sample_shape`` and ``num_classes``, which may read a sample.
    """

    time_first: bool = False

    def __len__(self) -> int:
        """Samples per epoch (all ranks together)."""
        ...

    def num_batches(self, batch_size: int, world: int = 1) -> int:
        """Batches per epoch on one of ``world`` ranks (see :func:`num_batches`)."""
        return num_batches(len(self), batch_size, world)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """The shape of one sample at one step (``(C, H, W)`` for images)."""
        ...

    @property
    def num_classes(self) -> int:
        """How many classes the labels index."""
        ...

    def subset(self, n: int | None) -> BatchSource:
        """The first ``n`` samples (all if ``None``)."""
        ...

    def batches(
        self,
        batch_size: int,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        standardize: bool | None = None,
        start: int = 0,
        shard: tuple[int, int] | None = None,
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """An epoch's batches ``(x, y)`` from batch ``start`` on: in :func:`epoch_order` of ``generator``
        with ``shuffle``, this rank's share under ``shard=(rank, world)``; ``standardize`` where it applies."""
        ...
