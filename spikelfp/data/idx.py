"""The MNIST family: IDX files (optionally gzipped) of MNIST and Fashion-MNIST, checked by SHA-256.

Decompression is bounded: a gzip file may not expand past what its data can legitimately be (a "gzip
bomb" of a few MB would otherwise take GBs before its checksum is even looked at).
"""

from __future__ import annotations

import gzip
import io
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from . import files
from .files import DataError
from .images import ImageSet

__all__ = ["MAX_DECOMPRESSED_BYTES", "fashion_mnist", "load_idx", "mnist"]

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
    roots = files.search_roots(spec.name, root, spec.extra_roots)
    for folder in roots:
        for candidate in (folder / (filename + ".gz"), folder / filename):
            if candidate.is_file():
                return candidate, _checked(candidate, sha)
    if download and root is None:
        dest = files.CACHE / spec.name / (filename + ".gz")
        try:
            files.download([u + filename + ".gz" for u in spec.urls], dest)
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
    actual = files.digest(data, "sha256")
    if actual != sha256:
        raise DataError(f"{path} is corrupt: sha256 of its contents is {actual}, expected {sha256}")
    return data


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
