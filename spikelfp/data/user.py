"""The user's own data as batches the Trainer reads: datasets, DataLoaders, tonic sets, folders, ``.npz``.

:func:`wrap` turns what a user has into a :class:`~spikelfp.data.batches.BatchSource`, the interface of the
built-in sets (:class:`~spikelfp.data.ImageSet`): ``len``, ``subset(n)``, ``num_batches`` and ``batches(...)``.

- A **map-style** :class:`torch.utils.data.Dataset` yielding ``(x, y)`` (a tensor, numpy array or PIL
  image and a class index) becomes a :class:`DatasetBatches`. It keeps everything the built-in sets
  do: the epoch's order is ``torch.randperm`` of a generator seeded by ``(seed, epoch)``, sharding
  across processes is DistributedSampler's (padded by wrapping), and a resumed run skips exactly the
  batches already done, so resume is exact.
- A **tonic** dataset is map-style too: raw events (a structured array with fields x, y, t, p) are
  binned into ``steps`` frames with tonic's ``ToFrame``; frames from a ``transform=ToFrame(...)`` are
  taken as they are. Both are time-first: a batch is ``(T, B, P, H, W)``.
- A :class:`torch.utils.data.DataLoader` becomes a :class:`LoaderBatches`: its own batch size,
  sampler, workers and collation are used as they are.

Values: ``uint8`` images are scaled to [0, 1] (``x / 255``); floating-point images are taken as they
are (never rescaled); other integer types (event counts) become floats unchanged. Standardisation
(``Config.standardize``) applies to the built-in sets and to folders and ``.npz`` files (whose mean
and standard deviation are computed at load); a user's dataset or loader is taken as it comes, since
its own transforms own its normalisation.

Resume with a user's DataLoader: the Trainer reseeds the loader's ``generator`` (if it was given one,
``DataLoader(..., generator=torch.Generator())``) from ``(seed, epoch)`` and calls
``sampler.set_epoch(epoch)`` where the sampler has it (DistributedSampler) before every epoch, then
skips the batches already done by reading and discarding them. A resumed run therefore sees the same
batches as an uninterrupted one when the loader's order depends only on that generator or on
``set_epoch``. It cannot reproduce an order drawn from the global RNG (``shuffle=True`` without a
``generator``: the rest of the epoch is then a fresh permutation, some samples seen twice and some
not at all), nor random transforms run in worker processes, nor a sampler with its own hidden state.
Under ``torchrun`` the loader must shard itself (a ``DistributedSampler``); the Trainer warns if not.

``--dataset`` on the command line also takes a folder of the ImageFolder kind (``root/<class>/*.png``,
with optional ``train/`` and ``test/`` (or ``val/``) sub-folders) or an ``.npz`` file with arrays ``x``
and ``y`` (and optionally ``x_test``, ``y_test``); see :func:`load`. Images are decoded by Pillow
(extra ``images``); decoding never executes code from a file, and ``.npz`` files are read with
``allow_pickle=False``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, IterableDataset

from . import builtin
from .batches import BatchSource, epoch_order
from .events import events_to_frames
from .files import DataError
from .images import ImageSet

__all__ = [
    "IMAGE_SUFFIXES",
    "DatasetBatches",
    "LoaderBatches",
    "image_folder",
    "is_path",
    "load",
    "npz_images",
    "scale_images",
    "wrap",
]

log = logging.getLogger("spikelfp")

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm")


def scale_images(x: Tensor) -> Tensor:
    """``uint8`` to floats in [0, 1] (``x / 255``); floats unchanged; other integers to floats unchanged."""
    if x.dtype == torch.uint8:
        return x.float().div_(255.0)
    if x.is_floating_point():
        return x
    return x.float()


def _to_tensor(value: Any, what: str) -> Tensor:
    """A sample (tensor, numpy array, PIL image, number) as a tensor; PIL images become ``(C, H, W)``."""
    if isinstance(value, Tensor):
        return value
    if isinstance(value, np.ndarray):
        if value.dtype.names is not None:
            raise DataError(f"{what} is a structured array (events?); pass steps= and a tonic dataset")
        return torch.from_numpy(np.ascontiguousarray(value))
    if hasattr(value, "getbands") and hasattr(value, "size"):  # a PIL image, without importing PIL
        array = np.asarray(value)
        array = array[None] if array.ndim == 2 else np.moveaxis(array, -1, 0)
        return torch.from_numpy(np.ascontiguousarray(array))
    if isinstance(value, (int, float, np.integer, np.floating)):
        return torch.as_tensor(value)
    raise DataError(f"{what} is a {type(value).__name__}; expected a tensor, numpy array or PIL image")


def _is_tonic(dataset: Any) -> bool:
    return type(dataset).__module__.split(".")[0] == "tonic"


class DatasetBatches(BatchSource):
    """Batches from any map-style dataset yielding ``(x, y)``.

    Parameters
    ----------
    dataset
        ``len(dataset)`` and ``dataset[i] -> (x, y)``; ``y`` a class index.
    time_first
        Whether a sample is a sequence ``(T, …)``, batched to ``(T, B, …)``. ``None``: true for tonic
        datasets, false otherwise.
    steps
        Frames per sample for raw tonic events (binned with tonic's ``ToFrame`` over the sensor size).
    indices
        The dataset indices this view covers (all if None); :meth:`subset` takes the first ``n``.
    """

    def __init__(
        self, dataset: Any, time_first: bool | None = None, steps: int = 10, indices: Tensor | None = None
    ) -> None:
        if isinstance(dataset, IterableDataset) or not (
            hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__")
        ):
            raise TypeError(
                f"{type(dataset).__name__} is not a map-style dataset (len(ds) and ds[i]); wrap an iterable "
                "dataset in a torch.utils.data.DataLoader"
            )
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        self.dataset = dataset
        self.time_first = _is_tonic(dataset) if time_first is None else bool(time_first)
        self.steps = int(steps)
        self.indices = torch.arange(len(dataset)) if indices is None else indices
        self.name = type(dataset).__name__

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    def sample(self, i: int) -> tuple[Tensor, Tensor]:
        """Sample ``i`` of this view as ``(x, y)`` tensors (``x`` as stored: not yet scaled)."""
        item = self.dataset[int(self.indices[i])]
        if not isinstance(item, (tuple, list)) or len(item) < 2:
            raise DataError(f"{self.name}[{int(self.indices[i])}] must be a pair (x, y), got {type(item).__name__}")
        x, y = item[0], item[1]
        if isinstance(x, np.ndarray) and x.dtype.names is not None:  # raw events: bin them (tonic)
            sensor = getattr(self.dataset, "sensor_size", None)
            if sensor is None:
                raise DataError(f"{self.name} yields raw events but has no sensor_size to bin them into frames")
            x = events_to_frames(x, self.steps, tuple(sensor))
            self.time_first = True
        x = _to_tensor(x, f"{self.name}[{int(self.indices[i])}][0]")
        y = torch.as_tensor(np.asarray(y) if not isinstance(y, Tensor) else y)
        if y.numel() != 1 or y.is_floating_point():
            raise DataError(f"{self.name}[{int(self.indices[i])}][1] must be a class index, got {y!r}")
        return x, y.reshape(()).long()

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """The shape of one sample at one step (``(C, H, W)`` for images)."""
        x, _ = self.sample(0)
        return tuple(x.shape[1:] if self.time_first else x.shape)

    @property
    def num_classes(self) -> int:
        classes = getattr(self.dataset, "classes", None)
        return len(classes) if classes is not None else 10

    def subset(self, n: int | None) -> DatasetBatches:
        """The first ``n`` samples (all if None)."""
        if n is None or n >= len(self):
            return self
        return DatasetBatches(self.dataset, self.time_first, self.steps, self.indices[:n])

    def batches(
        self,
        batch_size: int,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        standardize: bool | None = None,
        start: int = 0,
        shard: tuple[int, int] | None = None,
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """Batches ``(x, y)``, in the order and shard of the built-in sets; ``standardize`` is ignored."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        order = epoch_order(len(self), shuffle, generator, shard)
        for k in range(start * batch_size, len(order), batch_size):
            samples = [self.sample(int(i)) for i in order[k : k + batch_size]]
            shapes = {tuple(x.shape) for x, _ in samples}
            if len(shapes) > 1:
                raise DataError(f"{self.name}: samples of one batch differ in shape ({sorted(shapes)})")
            x = torch.stack([x for x, _ in samples], dim=1 if self.time_first else 0)
            yield scale_images(x), torch.stack([y for _, y in samples])


class LoaderBatches(BatchSource):
    """Batches from a user's :class:`~torch.utils.data.DataLoader`, as it yields them.

    The loader's batch size, sampler and collation rule; ``batches``' own ``batch_size``, ``shuffle``
    and ``shard`` are ignored. See the module docstring for what resume reproduces.

    Parameters
    ----------
    loader
        Yields ``(x, y)`` batches (or longer tuples, whose first two items are used).
    time_first
        Whether its batches are already ``(T, B, …)``.
    limit
        Use at most this many samples per epoch (``Config.limit_train``).
    """

    def __init__(self, loader: DataLoader, time_first: bool = False, limit: int | None = None) -> None:
        self.loader = loader
        self.time_first = bool(time_first)
        self.limit = limit
        self.name = type(loader.dataset).__name__ if hasattr(loader, "dataset") else "DataLoader"
        self._epoch = 0

    def __len__(self) -> int:
        """Samples per epoch (0 when an iterable dataset does not say)."""
        try:
            n = len(self.loader.dataset)
        except TypeError:
            try:
                n = len(self.loader) * (self.loader.batch_size or 1)
            except TypeError:
                n = 0
        return n if self.limit is None else min(n, self.limit)

    def num_batches(self, batch_size: int, world: int = 1) -> int:
        try:
            n = len(self.loader)
        except TypeError:  # an iterable dataset without a length
            return 0
        if self.limit is not None and self.loader.batch_size:
            n = min(n, -(-self.limit // self.loader.batch_size))
        return n

    @property
    def sample_shape(self) -> tuple[int, ...]:
        x, _ = self._split(next(iter(self.loader)))
        return tuple(x.shape[2:] if self.time_first else x.shape[1:])

    @property
    def num_classes(self) -> int:
        classes = getattr(getattr(self.loader, "dataset", None), "classes", None)
        return len(classes) if classes is not None else 10

    def subset(self, n: int | None) -> LoaderBatches:
        if n is None:
            return self
        return LoaderBatches(self.loader, self.time_first, n if self.limit is None else min(n, self.limit))

    def set_epoch(self, epoch: int, seed: int = 0) -> None:
        """Fix the loader's order for ``epoch``: reseed its generator, call ``sampler.set_epoch``."""
        self._epoch = int(epoch)
        generator = getattr(self.loader, "generator", None)
        if isinstance(generator, torch.Generator):
            generator.manual_seed(seed * 1_000_003 + epoch)
        for sampler in (getattr(self.loader, "sampler", None), getattr(self.loader, "batch_sampler", None)):
            if hasattr(sampler, "set_epoch"):
                sampler.set_epoch(epoch)

    def _split(self, batch: Any) -> tuple[Tensor, Tensor]:
        if isinstance(batch, dict) or not isinstance(batch, (tuple, list)) or len(batch) < 2:
            raise DataError(f"the DataLoader must yield (x, y) batches, got {type(batch).__name__}")
        x = _to_tensor(batch[0], "a batch's x")
        y = torch.as_tensor(batch[1])
        return scale_images(x), y.long()

    def batches(
        self,
        batch_size: int | None = None,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        standardize: bool | None = None,
        start: int = 0,
        shard: tuple[int, int] | None = None,
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """The loader's batches, skipping the first ``start`` (read and discarded)."""
        seen = 0
        for k, batch in enumerate(self.loader):
            if self.limit is not None and seen >= self.limit:
                return
            x, y = self._split(batch)
            if self.limit is not None and seen + y.shape[0] > self.limit:
                keep = self.limit - seen
                x, y = (x[:, :keep], y[:keep]) if self.time_first else (x[:keep], y[:keep])
            seen += y.shape[0]
            if k >= start:
                yield x, y


def wrap(data: Any, time_first: bool | None = None, steps: int = 10) -> Any:
    """What the Trainer reads: a built-in set as it is, a DataLoader or map-style dataset wrapped.

    Raises
    ------
    TypeError
        For anything else (an iterable dataset must come inside a DataLoader).
    """
    if hasattr(data, "batches") and hasattr(data, "subset"):
        return data
    if isinstance(data, DataLoader):
        return LoaderBatches(data, bool(time_first))
    if isinstance(data, (Dataset, list, tuple)) or (hasattr(data, "__getitem__") and hasattr(data, "__len__")):
        return DatasetBatches(data, time_first, steps)
    raise TypeError(
        f"cannot train on a {type(data).__name__}: give a map-style Dataset yielding (x, y), a DataLoader, "
        "a tonic dataset or a spikelfp.data set"
    )


# --------------------------------------------------------------------------------------------------
# folders and .npz files (the CLI's --dataset PATH)
# --------------------------------------------------------------------------------------------------
def _with_statistics(images: Tensor, labels: Tensor, name: str) -> ImageSet:
    if images.dim() == 3:
        images = images.unsqueeze(1)
    if images.dim() != 4:
        raise DataError(f"{name}: images must be (N, H, W) or (N, C, H, W), got shape {tuple(images.shape)}")
    if images.is_floating_point() and not bool(torch.isfinite(images).all()):
        raise DataError(f"{name}: images contain NaN or Inf")
    x = scale_images(images).double()
    mean = tuple(float(m) for m in x.mean(dim=(0, 2, 3)))
    std = tuple(max(float(s), 1e-12) for s in x.std(dim=(0, 2, 3)))
    return ImageSet(images, labels.long(), mean, std, name)


def _read_image(path: Path) -> np.ndarray:
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("reading image folders needs Pillow: pip install 'spikelfp[images]'") from exc
    try:
        with Image.open(path) as image:
            if image.mode not in ("L", "RGB"):
                image = image.convert("RGBA" if "A" in image.getbands() else "RGB").convert("RGB")
            array = np.asarray(image, dtype=np.uint8)
    except OSError as exc:
        raise DataError(f"{path} is not a readable image: {exc}") from exc
    return array[None] if array.ndim == 2 else np.moveaxis(array, -1, 0)


def image_folder(root: str | os.PathLike) -> ImageSet:
    """Images in ``root/<class>/*`` (classes in sorted order, as torchvision's ImageFolder) as ``uint8``.

    All images must have the same size; grayscale and colour may not be mixed.
    """
    root = Path(root)
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"{root} holds no class folders (expected {root}/<class>/<image files>)")
    images, labels = [], []
    for k, name in enumerate(classes):
        for path in sorted((root / name).rglob("*")):
            if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
                array = _read_image(path)
                if images and array.shape != images[0].shape:
                    raise DataError(
                        f"{path} has shape {array.shape} (C, H, W), unlike {images[0].shape} of the first image; "
                        "resize the images to one size first"
                    )
                images.append(array)
                labels.append(k)
    if not images:
        raise DataError(f"{root} holds no images ({', '.join(IMAGE_SUFFIXES)}) in its class folders")
    result = _with_statistics(torch.from_numpy(np.stack(images)), torch.tensor(labels), root.name)
    result.classes = classes  # type: ignore[attr-defined]
    return result


def npz_images(path: str | os.PathLike, train: bool = True) -> ImageSet:
    """Arrays ``x`` ``(N, H, W)`` or ``(N, C, H, W)`` and ``y`` ``(N,)`` (``x_test``/``y_test`` for
    ``train=False`` if present) from an ``.npz`` file, read without unpickling."""
    path = Path(path)
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path} is not a readable .npz archive: {exc}") from exc
    with archive:
        keys = ("x", "y") if train or "x_test" not in archive.files else ("x_test", "y_test")
        missing = [k for k in keys if k not in archive.files]
        if missing:
            raise DataError(f"{path} lacks the array(s) {', '.join(missing)} (has {', '.join(archive.files)})")
        x, y = archive[keys[0]], archive[keys[1]]
    if x.dtype.kind not in "uif" or y.dtype.kind not in "ui" or y.ndim != 1 or len(x) != len(y):
        raise DataError(
            f"{path}: {keys[0]} must be numeric images and {keys[1]} integer labels, one per image "
            f"(got {x.dtype} {x.shape} and {y.dtype} {y.shape})"
        )
    if train is False and keys[0] == "x":
        log.warning("%s has no x_test/y_test: evaluating on the training images", path)
    return _with_statistics(torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y.astype(np.int64)), path.stem)


def is_path(name: str) -> bool:
    """Whether ``--dataset`` names a folder or ``.npz`` file rather than a built-in set."""
    return name not in builtin.LOADERS and (Path(name).is_dir() or name.endswith(".npz"))


def load(name: str, train: bool = True, root: str | os.PathLike | None = None, steps: int = 10, **kwargs):
    """A built-in set by name (:func:`spikelfp.data.load`), or a folder / ``.npz`` file by path.

    A folder with ``train/`` and ``test/`` (or ``val/``) sub-folders supplies both splits; a folder
    without them supplies the training images, and the same images are used for testing (with a
    warning).
    """
    if not is_path(name):
        return builtin.load(name, train=train, root=root, steps=steps, **kwargs)
    path = Path(name)
    if path.suffix == ".npz":
        if not path.is_file():
            raise DataError(f"no .npz file at {path}")
        return npz_images(path, train)
    split = path / ("train" if train else "test")
    if not train and not split.is_dir() and (path / "val").is_dir():
        split = path / "val"
    if split.is_dir():
        return image_folder(split)
    if (path / "train").is_dir():
        raise DataError(f"{path} has a train/ folder but no test/ or val/ folder")
    if not train:
        log.warning("%s has no test/ or val/ folder: evaluating on the training images", path)
    return image_folder(path)
