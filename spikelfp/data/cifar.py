"""CIFAR-10 from its ``cifar-10-batches-py`` pickles, MD5-checked and read by an unpickler that only
builds plain containers and numpy arrays: nothing downloaded or read is ever executed."""

from __future__ import annotations

import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import torch

from . import files
from .files import DataError
from .images import ImageSet

__all__ = ["cifar10"]

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
    md5 = files.digest(raw, "md5")
    if md5 != _CIFAR_FILES[path.name]:
        raise DataError(f"{path} is corrupt: md5 {md5}, expected {_CIFAR_FILES[path.name]}")
    entry = _SafeUnpickler(io.BytesIO(raw), encoding="latin1").load()
    data = np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
    labels = np.asarray(entry.get("labels", entry.get("fine_labels")), dtype=np.int64)
    return data, labels


def cifar10(train: bool = True, root: str | os.PathLike | None = None, download: bool = True) -> ImageSet:
    """CIFAR-10 from the standard ``cifar-10-batches-py`` folder (pickles read safely, MD5-checked)."""
    roots = files.search_roots("cifar10", root)
    folder = None
    for r in roots:
        for cand in (r / "cifar-10-batches-py", r):
            if (cand / "test_batch").is_file():
                folder = cand
                break
        if folder:
            break
    if folder is None and download and root is None:
        archive = files.CACHE / "cifar10" / "cifar-10-python.tar.gz"
        try:
            if not archive.is_file():
                files.download([_CIFAR_URL], archive)
        except DataError as exc:
            raise DataError(
                f"CIFAR-10 not found in {', '.join(map(str, roots))} and not downloadable ({exc}); "
                "put the extracted 'cifar-10-batches-py' folder into one of those places or pass root="
            ) from None
        md5 = files.digest(archive.read_bytes(), "md5")
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
