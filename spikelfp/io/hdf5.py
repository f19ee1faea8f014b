"""Reading HDF5 files that may be hostile: only data inside the file, only what a declared size allows.

Both readers of :mod:`spikelfp.io` (NIR graphs, binary-weight files) open their files here. An HDF5 file can
point outside itself (external links, external storage, virtual datasets), loop (soft and hard links), nest
without end, or declare far more data than it stores (a small file whose dataset claims terabytes); each of
these is refused with an :class:`~spikelfp.io.errors.ExportError` that names the file and the object, from the
file's metadata alone, before any data of a declared size is read or allocated.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ExportError, optional

__all__ = [
    "HDF5_EXPANSION",
    "HDF5_FILTERS",
    "HDF5_MAX_DEPTH",
    "HDF5_MAX_OBJECTS",
    "HDF5_SLACK_BYTES",
    "check_safe",
    "child",
    "open_file",
    "read_dataset",
    "read_tree",
]

HDF5_MAX_DEPTH = 32  # groups within groups; spikelfp's and NIR's files nest a few levels
HDF5_MAX_OBJECTS = 100_000  # groups and datasets; a NIR chain of 10 000 nodes holds about 65 000
HDF5_EXPANSION = 64  # declared bytes may exceed the file's size by this factor (plus the slack below)
HDF5_SLACK_BYTES = 64 << 20
#: the filters a dataset may name (HDF5's own: deflate, shuffle, fletcher32); others would load a plugin
HDF5_FILTERS = {1: "deflate", 2: "shuffle", 3: "fletcher32"}


def open_file(path: Path, what: str) -> Any:
    """``h5py.File(path, "r")``; a file that HDF5 cannot open is an :class:`ExportError` ("... is not {what}").

    Parameters
    ----------
    path
        The file.
    what
        What the file should be, for the message.
    """
    h5py = optional("h5py")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise ExportError(f"{path} is not {what}: {exc}") from exc


def check_safe(f: Any, path: str | os.PathLike) -> None:
    """Refuse an open ``h5py.File`` whose reading could leave the file or exhaust memory, before reading data.

    Raises :class:`ExportError` naming ``path`` and the object for: external links and soft links (they can
    pull in another file or loop), hard links that loop, datasets with external storage or virtual
    datasets (their bytes come from other files), filters other than :data:`HDF5_FILTERS` (another filter
    loads a plugin), nesting deeper than ``HDF5_MAX_DEPTH``, more than ``HDF5_MAX_OBJECTS`` objects, an
    unfiltered dataset that stores less than it declares, and declared sizes (datasets and attributes
    together) above ``HDF5_EXPANSION × file size + HDF5_SLACK_BYTES``: a small file that declares a huge
    shape would otherwise allocate it. Only metadata is read; a structure libhdf5 cannot parse is an
    ``ExportError`` too.

    Parameters
    ----------
    f
        The open ``h5py.File``.
    path
        Its path, for the messages.
    """
    _walk(f, path, read=False)


def read_tree(f: Any, path: str | os.PathLike) -> dict[str, Any]:
    """The whole file as a dict, in one pass that makes every check of :func:`check_safe` before it reads a
    dataset: groups as dicts, datasets as their values (numpy arrays, or ``str`` for strings), as NIR's reader
    reads them.

    Parameters
    ----------
    f
        The open ``h5py.File``.
    path
        Its path, for the messages.
    """
    return _walk(f, path, read=True)


def _walk(f: Any, path: str | os.PathLike, read: bool) -> dict[str, Any]:
    h5py = optional("h5py")
    size = os.path.getsize(f.filename)
    budget = HDF5_EXPANSION * size + HDF5_SLACK_BYTES
    declared = 0
    seen = set()
    root: dict[str, Any] = {}
    stack = [(f, "/", 0, root)]
    at = "/"
    try:
        while stack:
            group, where, depth, out = stack.pop()
            if depth > HDF5_MAX_DEPTH:
                raise ExportError(f"{path}: groups nest deeper than {HDF5_MAX_DEPTH} levels at {where}")
            declared += _declared_attribute_bytes(group)
            for name in group:
                at = f"{where.rstrip('/')}/{name}"
                link = group.get(name, getlink=True)
                if isinstance(link, h5py.ExternalLink):
                    raise ExportError(f"{path}: {at} is an external link to {link.filename}:{link.path}; refused")
                if isinstance(link, h5py.SoftLink):
                    raise ExportError(f"{path}: {at} is a soft link to {link.path}; refused")
                obj = group[name]
                key = hash(obj.id)
                if key in seen:
                    raise ExportError(f"{path}: {at} links to an object seen before (a loop or alias); refused")
                seen.add(key)
                if len(seen) > HDF5_MAX_OBJECTS:
                    raise ExportError(f"{path}: holds more than {HDF5_MAX_OBJECTS} groups and datasets; refused")
                label = name.decode("utf-8") if isinstance(name, bytes) else str(name)
                if isinstance(obj, h5py.Group):
                    out[label] = {}
                    stack.append((obj, at, depth + 1, out[label]))
                    continue
                if not isinstance(obj, h5py.Dataset):
                    raise ExportError(f"{path}: {at} is a {type(obj).__name__}, not a group or dataset; refused")
                declared += _check_dataset(obj, path, at) + _declared_attribute_bytes(obj)
                if declared > budget:
                    raise ExportError(
                        f"{path}: declares {declared} bytes of data (at {at}) in a file of {size} bytes; refused "
                        "before allocating"
                    )
                if read:
                    value = obj[()]
                    out[label] = value.decode("utf-8") if isinstance(value, bytes) else value
    except ExportError:
        raise
    except (KeyError, RuntimeError, OSError, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise ExportError(f"{path}: a damaged HDF5 structure at {at} ({type(exc).__name__}: {exc}); refused") from exc
    return root


def _check_dataset(ds: Any, path: str | os.PathLike, at: str) -> int:
    """A dataset's declared bytes, after refusing external storage, virtual data, unknown filters and (without
    a filter) less storage than declared."""
    if ds.external:
        files = ", ".join(str(e[0]) for e in ds.external)
        raise ExportError(f"{path}: dataset {at} keeps its data in external file(s) {files}; refused")
    if ds.is_virtual:
        raise ExportError(f"{path}: dataset {at} is a virtual dataset (data from other files); refused")
    plist = ds.id.get_create_plist()
    filters = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
    unknown = [str(code) for code in filters if code not in HDF5_FILTERS]
    if unknown:
        raise ExportError(f"{path}: dataset {at} names filter(s) {', '.join(unknown)}, which need plugins; refused")
    declared = int(ds.size or 0) * ds.dtype.itemsize
    if not filters and ds.dtype.kind != "O" and ds.id.get_storage_size() < declared:
        raise ExportError(
            f"{path}: dataset {at} declares more data than the file stores ({declared} bytes of data declared, "
            f"{ds.id.get_storage_size()} stored); refused before allocating"
        )
    return declared


def _declared_attribute_bytes(obj: Any) -> int:
    h5py = optional("h5py")
    total = 0
    for name in obj.attrs:
        attr = h5py.h5a.open(obj.id, name.encode() if isinstance(name, str) else name)
        total += int(np.prod(attr.shape, dtype=np.int64)) * attr.dtype.itemsize if attr.shape else 16
    return total


def child(parent: Any, key: str, path: Path, what: str, *, group: bool = False) -> Any:
    """``parent[key]`` if it is a hard link to a group (``group=True``) or to a dataset stored in this file.

    Parameters
    ----------
    parent
        The group that holds it.
    key
        Its name there.
    path, what
        The file and what the object is, for the messages.
    group
        Expect a group (else a dataset).
    """
    h5py = optional("h5py")
    link = parent.get(key, getlink=True)
    if link is None:
        raise ExportError(f"{path}: {what} is missing")
    if not isinstance(link, h5py.HardLink):
        raise ExportError(f"{path}: {what} is a {type(link).__name__}; only data inside the file is read")
    obj = parent[key]
    if group:
        if not isinstance(obj, h5py.Group):
            raise ExportError(f"{path}: {what} is not a group")
        return obj
    if not isinstance(obj, h5py.Dataset):
        raise ExportError(f"{path}: {what} is not a dataset")
    if obj.is_virtual:
        raise ExportError(f"{path}: {what} is a virtual dataset; only data inside the file is read")
    if obj.external:
        raise ExportError(f"{path}: {what} has external storage; only data inside the file is read")
    return obj


def read_dataset(parent: Any, key: str, path: Path, what: str, shape: tuple[int, ...], kinds: str) -> np.ndarray:
    """Read ``parent[key]`` after checking its link, storage, layout, dtype kind and shape against what is
    expected; a float dataset must hold finite values.

    Parameters
    ----------
    parent, key
        The group and the dataset's name.
    path, what
        The file and what the dataset is, for the messages.
    shape
        The shape it must have.
    kinds
        The dtype kinds it may have (numpy's letters, e.g. ``"f"``, ``"iu"``); ``"f"`` also requires finite values.
    """
    ds = child(parent, key, path, what)
    if ds.dtype.kind not in kinds:
        raise ExportError(f"{path}: {what} has dtype {ds.dtype}")
    if tuple(ds.shape) != shape:
        raise ExportError(f"{path}: {what} has shape {tuple(ds.shape)}, expected {shape}")
    if ds.id.get_storage_size() < ds.size * ds.dtype.itemsize:
        raise ExportError(f"{path}: {what} declares more data than the file stores")
    h5py = optional("h5py")
    plist = ds.id.get_create_plist()
    if plist.get_layout() not in (h5py.h5d.CONTIGUOUS, h5py.h5d.COMPACT) or plist.get_nfilters():
        raise ExportError(f"{path}: {what} is chunked or filtered, which this format never writes")
    data = ds[()]
    if kinds == "f" and not np.all(np.isfinite(data)):
        raise ExportError(f"{path}: {what} holds NaN or Inf")
    return np.asarray(data)
