"""N-MNIST events: raw event streams binned into time-first frames by tonic (:class:`EventSet`).

The offline subset ships as an ``.npz`` of plain arrays (read with ``allow_pickle=False`` and checked
array by array); the full set comes through ``tonic.datasets.NMNIST``.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from . import files
from .batches import BatchSource, check_subset, epoch_order
from .files import DataError

__all__ = ["NMNIST_SENSOR", "EventSet", "events_to_frames", "nmnist"]

NMNIST_SENSOR = (34, 34, 2)  # (width, height, polarities), as tonic.datasets.NMNIST.sensor_size
_EVENT_FIELDS = ("x", "y", "t", "p")
_NMNIST_SMALL = (
    "nmnist_small_1000train_100test.npz",
    "6c5045c7fcc0ee3a13f45575ea67da495c7fc9d55af7bd275e7bcf39dd348cca",
)


def _check_events(events: np.ndarray, where: str) -> np.ndarray:
    names = getattr(getattr(events, "dtype", None), "names", None)
    if names is None:
        raise DataError(f"{where}: events must be a numpy structured array with fields x, y, t, p")
    missing = [f for f in _EVENT_FIELDS if f not in names]
    if missing:
        raise DataError(f"{where}: events lack the field(s) {', '.join(missing)} (have {', '.join(names)})")
    return events


def events_to_frames(events: np.ndarray, steps: int, sensor_size=NMNIST_SENSOR) -> np.ndarray:
    """One sample's events to ``(steps, polarities, height, width)`` counts, by tonic's ``ToFrame``."""
    try:
        import tonic
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("event data needs the 'events' extra: pip install 'spikelfp[events]'") from exc
    _check_events(events, "events_to_frames")
    return tonic.transforms.ToFrame(sensor_size=sensor_size, n_time_bins=steps)(events)


@dataclass
class EventSet(BatchSource):
    """Event streams turned into time-first frames per batch: ``(T, B, 2, 34, 34)`` event counts.

    ``events(i)`` returns sample ``i`` as tonic's structured array (fields x, y, t, p).
    """

    events: Any  # Callable[[int], np.ndarray]
    labels: Tensor
    steps: int
    sensor_size: tuple[int, int, int] = NMNIST_SENSOR
    name: str = "nmnist"
    indices: Tensor | None = None

    time_first = True

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.indices is None:
            self.indices = torch.arange(self.labels.shape[0])

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    @property
    def sample_shape(self) -> tuple[int, ...]:
        width, height, polarities = self.sensor_size
        return (polarities, height, width)

    @property
    def num_classes(self) -> int:
        return int(self.labels.max()) + 1 if len(self) else 0

    def subset(self, n: int | None) -> EventSet:
        """The first ``n`` samples (all if None); ``n`` must be >= 1."""
        check_subset(n)
        if n is None or n >= len(self):
            return self
        return EventSet(self.events, self.labels, self.steps, self.sensor_size, self.name, self.indices[:n])

    def frames(self, i: int) -> Tensor:
        """Sample ``i`` as ``(T, 2, 34, 34)`` float counts."""
        return torch.from_numpy(events_to_frames(self.events(int(i)), self.steps, self.sensor_size).astype(np.float32))

    def batches(
        self,
        batch_size: int,
        shuffle: bool = False,
        generator=None,
        standardize=None,
        start: int = 0,
        shard: tuple[int, int] | None = None,
    ):
        """Batches ``(x, y)`` with ``x`` time-first ``(T, B, 2, 34, 34)``; ``standardize`` is ignored."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        order = epoch_order(len(self), shuffle, generator, shard)
        n = len(order)
        for k in range(start * batch_size, n, batch_size):
            idx = self.indices[order[k : k + batch_size]]
            x = torch.stack([self.frames(i) for i in idx.tolist()], dim=1)
            yield x, self.labels[idx]


def _nmnist_small_candidates(root) -> list[Path]:
    if root is not None:
        root = Path(root)
        return [root] if root.suffix == ".npz" else [root / _NMNIST_SMALL[0]]
    places = []
    if os.environ.get("SPIKELFP_DATA"):
        places.append(Path(os.environ["SPIKELFP_DATA"]) / "nmnist-small")
    places += [
        files.REPO_DATASETS / "nmnist-small",
        files.REPO_DATASETS.parent.parent / "shared" / "data" / "nmnist-small",
    ]
    places.append(Path.cwd().parent / "shared" / "data" / "nmnist-small")
    return [p / _NMNIST_SMALL[0] for p in places]


def _check_npz_events(raw: dict[str, np.ndarray], path: Path, split: str) -> None:
    """Validate one split of an N-MNIST ``.npz`` before use; ``DataError`` names the array and the problem.

    Every array is 1-D and integer (labels too: no floats, no bools); ``0 <= x < 34``, ``0 <= y < 34``,
    ``p ∈ {0, 1}``, ``t >= 0``; labels in ``[0, 10)``; offsets start at 0, never decrease, and end at the
    number of events, with one more offset than labels.
    """
    width, height, polarities = NMNIST_SENSOR
    for key, value in raw.items():
        if value.ndim != 1 or value.dtype.kind not in "iu":
            raise DataError(f"{path}: {split}_{key} must be a 1-D integer array, got {value.dtype} {value.shape}")
    n_events = len(raw["x"])
    if any(len(raw[k]) != n_events for k in ("y", "t", "p")):
        raise DataError(f"{path}: event arrays, offsets and labels do not fit together (x, y, t, p differ in length)")
    bounds = {"x": (0, width), "y": (0, height), "p": (0, polarities), "t": (0, None), "labels": (0, 10)}
    for key, (low, high) in bounds.items():
        value = raw[key]
        if value.size and (value.min() < low or (high is not None and value.max() >= high)):
            where = f"[{low}, {high})" if high is not None else f">= {low}"
            raise DataError(
                f"{path}: {split}_{key} holds values outside {where} (min {value.min()}, max {value.max()})"
            )
    offsets = raw["offsets"]
    if len(offsets) != len(raw["labels"]) + 1 or offsets[0] != 0 or offsets[-1] != n_events:
        raise DataError(f"{path}: event arrays, offsets and labels do not fit together")
    if np.any(np.diff(offsets) < 0):
        raise DataError(f"{path}: {split}_offsets decrease")


def _load_npz_events(path: Path, train: bool, steps: int) -> EventSet:
    if path.name == _NMNIST_SMALL[0]:
        actual = files.digest(path.read_bytes(), "sha256")
        if actual != _NMNIST_SMALL[1]:
            raise DataError(f"{path} is corrupt: sha256 {actual}, expected {_NMNIST_SMALL[1]}")
    split = "train" if train else "test"
    try:
        archive = np.load(path, allow_pickle=False)  # never unpickles: plain arrays only
    except (OSError, ValueError) as exc:
        raise DataError(f"{path} is not a readable .npz archive: {exc}") from exc
    with archive:
        keys = [f"{split}_{k}" for k in ("x", "y", "t", "p", "offsets", "labels")]
        missing = [k for k in keys if k not in archive.files]
        if missing:
            raise DataError(f"{path} lacks the array(s) {', '.join(missing)} (see the N-MNIST layout in the docs)")
        try:
            raw = {k: archive[f"{split}_{k}"] for k in ("x", "y", "t", "p", "offsets", "labels")}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:  # a damaged member
            raise DataError(f"{path}: an array does not read ({exc})") from exc
    _check_npz_events(raw, path, split)
    arrays = {k: raw[k] for k in ("x", "y", "t", "p")}
    offsets = raw["offsets"].astype(np.int64)
    labels = torch.from_numpy(raw["labels"].astype(np.int64))
    dtype = np.dtype([(f, np.int64) for f in _EVENT_FIELDS])

    def events(i: int) -> np.ndarray:
        lo, hi = offsets[i], offsets[i + 1]
        out = np.empty(hi - lo, dtype=dtype)
        for f in _EVENT_FIELDS:
            out[f] = arrays[f][lo:hi]
        return out

    return EventSet(events, labels, steps, NMNIST_SENSOR, "nmnist")


def nmnist(
    train: bool = True, root: str | os.PathLike | None = None, steps: int = 10, download: bool = True
) -> EventSet:
    """N-MNIST (Orchard et al., CC BY-SA 4.0) as time-first frames ``(T, B, 2, 34, 34)`` via tonic.

    Reads the offline subset ``nmnist_small_1000train_100test.npz`` (from ``root``, a folder or the file
    itself, ``$SPIKELFP_DATA/nmnist-small``, ``datasets/nmnist-small`` or ``../shared/data/nmnist-small``),
    else the full dataset through ``tonic.datasets.NMNIST`` (downloaded into ``~/.cache/spikelfp/nmnist``
    when a network is there).
    """
    for candidate in _nmnist_small_candidates(root):
        if candidate.is_file():
            return _load_npz_events(candidate, train, steps)
    if root is not None and not Path(root).is_dir():
        raise DataError(f"no N-MNIST data at {root}")
    try:
        import tonic
    except ImportError as exc:  # pragma: no cover
        raise ImportError("N-MNIST needs the 'events' extra: pip install 'spikelfp[events]'") from exc
    save_to = Path(root) if root is not None else files.CACHE / "nmnist"
    if not download and not (save_to / "NMNIST").is_dir():
        raise DataError(f"N-MNIST not found in {save_to} (and downloading is off)")
    try:
        dataset = tonic.datasets.NMNIST(save_to=str(save_to), train=train)
    except Exception as exc:  # network errors surface as many types inside tonic
        raise DataError(
            f"N-MNIST is not available offline and could not be downloaded ({type(exc).__name__}: {exc}); put "
            f"{_NMNIST_SMALL[0]} into $SPIKELFP_DATA/nmnist-small or pass root="
        ) from exc
    labels = torch.tensor([int(t) for t in dataset.targets], dtype=torch.int64)
    return EventSet(lambda i: _check_events(dataset[i][0], "tonic NMNIST"), labels, steps, NMNIST_SENSOR, "nmnist")
