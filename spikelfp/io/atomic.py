"""Atomic file writes: the new file appears whole under its name, or the old one stays as it was.

A write goes to a temporary file in the same folder (``<name>.tmp<pid>``), is flushed to the disk
(``fsync``) and renamed over the target (``os.replace``, atomic on POSIX and Windows); the folder is
then synced as well, where the platform allows. A failure at any point (disk full, read-only folder,
…) removes the temporary file, leaves the previous file untouched and raises :class:`AtomicWriteError`
with a one-line reason.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

__all__ = ["AtomicWriteError", "atomic_save", "atomic_write", "atomic_write_text"]


class AtomicWriteError(OSError):
    """A file could not be written; the previous file (if any) is kept. The message is one line."""


def _sync_folder(folder: Path) -> None:
    """Flush ``folder``'s entries (the rename) to the disk; best effort: not every platform opens folders."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[Path], Any]) -> Path:
    """Write ``path`` by ``write(tmp)`` into a temporary file beside it, fsync it, and rename it over ``path``.

    Parameters
    ----------
    path
        The file to (over)write; its folder must exist.
    write
        Called once with the temporary file's path; it must create that file.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    AtomicWriteError
        If ``write``, the sync or the rename fails (an ``OSError``, or a ``RuntimeError`` as ``torch.save``
        raises for a failed write): ``"could not save <path> (the previous one is kept): <reason>"``, the
        parenthesis only where a previous file exists. The temporary file is removed, also when ``write``
        raises anything else (which then propagates as it is).
    """
    path = Path(path)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:  # torch.save reports a failed write as RuntimeError
        with contextlib.suppress(OSError):
            tmp.unlink()
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).splitlines()[0]
        kept = " (the previous one is kept)" if path.exists() else ""
        raise AtomicWriteError(f"could not save {path}{kept}: {reason}") from exc
    except BaseException:  # any other failure of write (a bug, KeyboardInterrupt) leaves no temporary file either
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _sync_folder(path.parent)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """:func:`atomic_write` of ``text``, written as ``Path.write_text`` writes it.

    Parameters
    ----------
    path
        The file to (over)write.
    text
        Its new content.

    Returns
    -------
    Path
        ``path``.
    """
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def atomic_save(path: str | os.PathLike, obj: Any) -> Path:
    """:func:`atomic_write` of ``torch.save(obj)``.

    Parameters
    ----------
    path
        The file to (over)write.
    obj
        What ``torch.save`` writes.

    Returns
    -------
    Path
        ``path``.
    """
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))
