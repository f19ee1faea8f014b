"""Data: the built-in sets (MNIST-family IDX files, CIFAR-10 batches, N-MNIST events) and the user's own.

Images come back as an :class:`ImageSet` of ``uint8`` tensors ``(N, C, H, W)`` and ``int64`` labels, held
in memory; :meth:`ImageSet.batches` yields float batches. Every file is checked before use: its
SHA-256 (or MD5 for CIFAR-10, as published) must match, and a missing or corrupt file is an error
that names the file and the checksum. Nothing downloaded or read is ever executed: CIFAR-10's
pickles are read by an unpickler that only builds plain containers and numpy arrays.

Where the files are looked for (first hit wins): the ``root`` argument; ``$SPIKELFP_DATA/<name>``;
the repository's ``datasets/<name>`` (MNIST ships there); ``~/.cache/spikelfp/<name>``; for
Fashion-MNIST also Debian's ``/usr/share/datasets/fashion-mnist``. Missing files are downloaded into
the cache when a network is there; offline, the error says where to put them.

Modules: :mod:`~spikelfp.data.batches` (the :class:`BatchSource` interface and the epoch order),
:mod:`~spikelfp.data.files` (search path, checksums, downloads), :mod:`~spikelfp.data.images`,
:mod:`~spikelfp.data.idx` (MNIST, Fashion-MNIST), :mod:`~spikelfp.data.cifar`,
:mod:`~spikelfp.data.events` (N-MNIST), :mod:`~spikelfp.data.builtin` (the sets by name) and
:mod:`~spikelfp.data.user` (datasets, DataLoaders, folders and ``.npz`` files of the user's; also
:mod:`spikelfp.userdata`).
"""

from . import batches, builtin, cifar, events, files, idx, images, user
from .batches import BatchSource
from .builtin import LOADERS, load
from .cifar import cifar10
from .events import NMNIST_SENSOR, EventSet, events_to_frames, nmnist
from .files import CACHE, REPO_DATASETS, DataError
from .idx import MAX_DECOMPRESSED_BYTES, fashion_mnist, load_idx, mnist
from .images import ImageSet

__all__ = [
    "CACHE",
    "LOADERS",
    "MAX_DECOMPRESSED_BYTES",
    "NMNIST_SENSOR",
    "REPO_DATASETS",
    "BatchSource",
    "DataError",
    "EventSet",
    "ImageSet",
    "batches",
    "builtin",
    "cifar",
    "cifar10",
    "events",
    "events_to_frames",
    "fashion_mnist",
    "files",
    "idx",
    "images",
    "load",
    "load_idx",
    "mnist",
    "nmnist",
    "user",
]
