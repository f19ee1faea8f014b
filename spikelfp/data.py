"""Datasets without torchvision: MNIST-family IDX files, CIFAR-10 batches, N-MNIST events.

Images come back as a :class:`ImageSet` of ``uint8`` tensors ``(N, C, H, W)`` and ``int64`` labels, held
in memory; :meth:`ImageSet.batches` yields float batches. Every file is checked before use: its
SHA-256 (or MD5 for CIFAR-10, as published) must match, and a missing or corrupt file is an error
that names the file and the checksum. Nothing downloaded or read is ever executed: CIFAR-10's
pickles are read by an unpickler that only builds plain containers and numpy arrays.

Where the files are looked for (first hit wins): the ``root`` argument; ``$SPIKELFP_DATA/<name>``;
the repository's ``datasets/<name>`` (MNIST ships there); ``~/.cache/spikelfp/<name>``; for
Fashion-MNIST also Debian's ``/usr/share/datasets/fashion-mnist``. Missing files are downloaded into
the cache when a network is there; offline, the error says where to put them.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import struct
import tarfile
import urllib.request
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "DataError",
    "EventSet",
    "ImageSet",
    "cifar10",
    "events_to_frames",
    "fashion_mnist",
    "load",
    "load_idx",
    "mnist",
    "nmnist",
]

REPO_DATASETS = Path(__file__).resolve().parents[1] / "datasets"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "spikelfp"


class DataError(ValueError):
    """A data file is missing, corrupt or of the wrong format."""


# --------------------------------------------------------------------------------------------------
# files, checksums, downloads
# --------------------------------------------------------------------------------------------------
def _digest(data: bytes, algorithm: str) -> str:
    return hashlib.new(algorithm, data).hexdigest()


def _search_roots(name: str, root: str | os.PathLike | None, extra: tuple[Path, ...] = ()) -> list[Path]:
    if root is not None:
        return [Path(root)]
    roots = []
    if os.environ.get("SPIKELFP_DATA"):
        roots.append(Path(os.environ["SPIKELFP_DATA"]) / name)
    roots += [REPO_DATASETS / name, CACHE / name, *extra]
    return roots


def _download(urls: list[str], dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    for url in urls:
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                data = response.read()
            tmp = dest.with_suffix(dest.suffix + ".part")
            tmp.write_bytes(data)
            tmp.replace(dest)
            return
        except OSError as exc:  # URLError is an OSError
            errors.append(f"{url}: {exc}")
    raise DataError("could not download " + dest.name + ":\n  " + "\n  ".join(errors))


# Decompression is bounded: a gzip file may not expand past what its data can legitimately be (a "gzip
# bomb" of a few MB would otherwise take GBs before its checksum is even looked at).
MAX_DECOMPRESSED_BYTES = 1 << 30  # any gzipped data file whose size is not known in advance
_IDX_BYTES = {  # the exact uncompressed sizes of the MNIST-family files (MNIST and Fashion-MNIST alike)
    "train-images-idx3-ubyte": 47_040_016,
    "train-labels-idx1-ubyte": 60_008,
    "t10k-images-idx3-ubyte": 7_840_016,
    "t10k-labels-idx1-ubyte": 10_008,
}


def _gunzip(raw: bytes, path: Path, limit: int = MAX_DECOMPRESSED_BYTES) -> bytes:
    """Decompress gzip ``raw`` read from ``path``, refusing (without expanding it) more than ``limit`` bytes."""
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as stream:
            data = stream.read(limit + 1)  # decompresses incrementally: memory stays below limit + 1
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path} is corrupt: not a valid gzip file ({exc})") from exc
    if len(data) > limit:
        raise DataError(
            f"{path} decompresses to more than {limit} bytes, more than its data can hold: refused unread "
            "(a damaged or malicious gzip file)"
        )
    return data


# --------------------------------------------------------------------------------------------------
# IDX (MNIST family)
# --------------------------------------------------------------------------------------------------
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def load_idx(path: str | os.PathLike, data: bytes | None = None) -> Tensor:
    """Read an IDX file (optionally gzipped) into a tensor, validating its header and size."""
    path = Path(path)
    if data is None:
        if not path.is_file():
            raise DataError(f"missing data file {path}")
        data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = _gunzip(data, path, _IDX_BYTES.get(path.name.removesuffix(".gz"), MAX_DECOMPRESSED_BYTES))
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise DataError(f"{path} is not an IDX file (bad magic number {data[:4].hex()})")
    dtype = np.dtype(_IDX_TYPES[data[2]])
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path} is truncated (header)")
    shape = struct.unpack(">" + "I" * ndim, data[4:header])
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(data) != expected:
        raise DataError(f"{path} has {len(data)} bytes, its header promises {expected}")
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return torch.from_numpy(array.astype(array.dtype.newbyteorder("="), copy=True))


@dataclass(frozen=True)
class _IdxSet:
    name: str
    files: dict[str, tuple[str, str]]  # split/kind → (file name, sha256 of the uncompressed bytes)
    urls: tuple[str, ...]
    mean: float
    std: float
    extra_roots: tuple[Path, ...] = ()


_MNIST = _IdxSet(
    "mnist",
    {
        "train-images": (
            "train-images-idx3-ubyte",
            "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        ),
        "train-labels": (
            "train-labels-idx1-ubyte",
            "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        ),
        "test-images": (
            "t10k-images-idx3-ubyte",
            "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        ),
        "test-labels": (
            "t10k-labels-idx1-ubyte",
            "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        ),
    },
    ("https://ossci-datasets.s3.amazonaws.com/mnist/", "https://storage.googleapis.com/cvdf-datasets/mnist/"),
    0.1307,
    0.3081,
)
_FASHION = _IdxSet(
    "fashion-mnist",
    {
        "train-images": (
            "train-images-idx3-ubyte",
            "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        ),
        "train-labels": (
            "train-labels-idx1-ubyte",
            "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        ),
        "test-images": (
            "t10k-images-idx3-ubyte",
            "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        ),
        "test-labels": (
            "t10k-labels-idx1-ubyte",
            "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        ),
    },
    ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    0.2860,
    0.3530,
    (Path("/usr/share/datasets/fashion-mnist"),),
)


def _find_idx(spec: _IdxSet, key: str, root, download: bool) -> tuple[Path, bytes]:
    filename, sha = spec.files[key]
    roots = _search_roots(spec.name, root, spec.extra_roots)
    for folder in roots:
        for candidate in (folder / (filename + ".gz"), folder / filename):
            if candidate.is_file():
                return candidate, _checked(candidate, sha)
    if download and root is None:
        dest = CACHE / spec.name / (filename + ".gz")
        try:
            _download([u + filename + ".gz" for u in spec.urls], dest)
        except DataError as exc:
            raise DataError(
                f"{spec.name} file {filename}(.gz) not found in {', '.join(map(str, roots))} and not downloadable "
                f"({exc}); copy the IDX files into one of those folders or pass root="
            ) from None
        return dest, _checked(dest, sha)
    raise DataError(f"{spec.name} file {filename}(.gz) not found in {', '.join(map(str, roots))}")


def _checked(path: Path, sha256: str) -> bytes:
    raw = path.read_bytes()
    data = raw
    if raw[:2] == b"\x1f\x8b":
        limit = _IDX_BYTES.get(path.name.removesuffix(".gz"), MAX_DECOMPRESSED_BYTES)
        try:
            data = _gunzip(raw, path, limit)
        except DataError as exc:
            raise DataError(f"{exc}; expected sha256 {sha256}") from None
    actual = _digest(data, "sha256")
    if actual != sha256:
        raise DataError(f"{path} is corrupt: sha256 of its contents is {actual}, expected {sha256}")
    return data


def _order(n: int, shuffle: bool, generator, shard: tuple[int, int] | None) -> Tensor:
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


def _check_subset(n: int | None) -> None:
    if n is not None and (not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1):
        raise ValueError(f"a subset needs n >= 1 samples (or None for all), got {n!r}")


class _Batches:
    """What image and event sets share: their batch count per epoch (per rank under DDP)."""

    def __len__(self) -> int:  # pragma: no cover - implemented by subclasses
        raise NotImplementedError

    def num_batches(self, batch_size: int, world: int = 1) -> int:
        per_rank = -(-len(self) // world)
        return (per_rank + batch_size - 1) // batch_size


@dataclass
class ImageSet(_Batches):
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
        _check_subset(n)
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
        world)`` yields this process's share of the epoch (see :func:`_order`).
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        order = _order(len(self), shuffle, generator, shard)
        n = len(order)
        for i in range(start * batch_size, n, batch_size):
            idx = order[i : i + batch_size]
            yield self.to_float(self.images[idx], standardize), self.labels[idx]


def _idx_set(spec: _IdxSet, train: bool, root, download: bool) -> ImageSet:
    split = "train" if train else "test"
    img_path, img_bytes = _find_idx(spec, f"{split}-images", root, download)
    lab_path, lab_bytes = _find_idx(spec, f"{split}-labels", root, download)
    images = load_idx(img_path, img_bytes)
    labels = load_idx(lab_path, lab_bytes)
    if images.dim() != 3 or labels.dim() != 1 or images.shape[0] != labels.shape[0]:
        raise DataError(f"{img_path} and {lab_path} do not form an image set")
    return ImageSet(images.unsqueeze(1), labels.long(), (spec.mean,), (spec.std,), spec.name)


def mnist(train: bool = True, root: str | os.PathLike | None = None, download: bool = True) -> ImageSet:
    """MNIST (LeCun & Cortes, CC BY-SA 3.0); the repository bundles the files in ``datasets/mnist``."""
    return _idx_set(_MNIST, train, root, download)


def fashion_mnist(train: bool = True, root: str | os.PathLike | None = None, download: bool = True) -> ImageSet:
    """Fashion-MNIST (Zalando, MIT), from ``root``, the search path, or Debian's package."""
    return _idx_set(_FASHION, train, root, download)


# --------------------------------------------------------------------------------------------------
# CIFAR-10
# --------------------------------------------------------------------------------------------------
_CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
_CIFAR_TGZ_MD5 = "c58f30108f718f92721af3b95e74349a"
_CIFAR_FILES = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
}
_CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
_CIFAR_STD = (0.2470, 0.2435, 0.2616)


class _SafeUnpickler(pickle.Unpickler):
    """Builds dicts, lists, strings, bytes, numbers and numpy arrays; refuses every other global."""

    _ALLOWED: frozenset[tuple[str, str]] = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
        }
    )

    def find_class(self, module: str, name: str):
        if (module, name) in self._ALLOWED:
            import importlib

            return getattr(importlib.import_module(module), name)
        raise DataError(f"refusing to load {module}.{name} from a data pickle (only plain data is allowed)")


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    raw = path.read_bytes()
    md5 = _digest(raw, "md5")
    if md5 != _CIFAR_FILES[path.name]:
        raise DataError(f"{path} is corrupt: md5 {md5}, expected {_CIFAR_FILES[path.name]}")
    entry = _SafeUnpickler(io.BytesIO(raw), encoding="latin1").load()
    data = np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
    labels = np.asarray(entry.get("labels", entry.get("fine_labels")), dtype=np.int64)
    return data, labels


def cifar10(train: bool = True, root: str | os.PathLike | None = None, download: bool = True) -> ImageSet:
    """CIFAR-10 from the standard ``cifar-10-batches-py`` folder (pickles read safely, MD5-checked)."""
    roots = _search_roots("cifar10", root)
    folder = None
    for r in roots:
        for cand in (r / "cifar-10-batches-py", r):
            if (cand / "test_batch").is_file():
                folder = cand
                break
        if folder:
            break
    if folder is None and download and root is None:
        archive = CACHE / "cifar10" / "cifar-10-python.tar.gz"
        try:
            if not archive.is_file():
                _download([_CIFAR_URL], archive)
        except DataError as exc:
            raise DataError(
                f"CIFAR-10 not found in {', '.join(map(str, roots))} and not downloadable ({exc}); "
                "put the extracted 'cifar-10-batches-py' folder into one of those places or pass root="
            ) from None
        md5 = _digest(archive.read_bytes(), "md5")
        if md5 != _CIFAR_TGZ_MD5:
            raise DataError(f"{archive} is corrupt: md5 {md5}, expected {_CIFAR_TGZ_MD5}")
        with tarfile.open(archive) as tar:
            tar.extractall(archive.parent, filter="data")
        folder = archive.parent / "cifar-10-batches-py"
    if folder is None:
        raise DataError(
            f"CIFAR-10 not found in {', '.join(map(str, roots))}; put the extracted 'cifar-10-batches-py' "
            "folder (https://www.cs.toronto.edu/~kriz/cifar.html) into one of those places or pass root="
        )
    names = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
    parts = []
    for name in names:
        if not (folder / name).is_file():
            raise DataError(f"missing CIFAR-10 file {folder / name} (md5 {_CIFAR_FILES[name]})")
        parts.append(_read_cifar_batch(folder / name))
    images = torch.from_numpy(np.concatenate([p[0] for p in parts]))
    labels = torch.from_numpy(np.concatenate([p[1] for p in parts]))
    return ImageSet(images, labels, _CIFAR_MEAN, _CIFAR_STD, "cifar10")


# --------------------------------------------------------------------------------------------------
# N-MNIST events
# --------------------------------------------------------------------------------------------------
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
class EventSet(_Batches):
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
        _check_subset(n)
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
        order = _order(len(self), shuffle, generator, shard)
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
    places += [REPO_DATASETS / "nmnist-small", REPO_DATASETS.parent.parent / "shared" / "data" / "nmnist-small"]
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
        actual = _digest(path.read_bytes(), "sha256")
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
    save_to = Path(root) if root is not None else CACHE / "nmnist"
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
