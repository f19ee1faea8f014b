"""Where data files are looked for, how they are checked and downloaded, and :class:`DataError`.

Where the files are looked for (first hit wins): the ``root`` argument; ``$SPIKELFP_DATA/<name>``;
the repository's ``datasets/<name>`` (MNIST ships there); ``~/.cache/spikelfp/<name>`` (:data:`CACHE`);
for Fashion-MNIST also Debian's ``/usr/share/datasets/fashion-mnist``. Missing files are downloaded into
the cache when a network is there; offline, the error says where to put them.
"""

from __future__ import annotations

import hashlib
import os
import urllib.request
from pathlib import Path

__all__ = ["CACHE", "REPO_DATASETS", "DataError", "digest", "download", "search_roots"]

REPO_DATASETS = Path(__file__).resolve().parents[2] / "datasets"  # spikelfp/data/files.py -> <repository>/datasets
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "spikelfp"


class DataError(ValueError):
    """A data file is missing, corrupt or of the wrong format."""


def digest(data: bytes, algorithm: str) -> str:
    """The hex digest of ``data`` by ``algorithm`` (``"sha256"``, ``"md5"``, …)."""
    return hashlib.new(algorithm, data).hexdigest()


def search_roots(name: str, root: str | os.PathLike | None, extra: tuple[Path, ...] = ()) -> list[Path]:
    """The folders that may hold data set ``name``, in the order they are searched (``[root]`` if given)."""
    if root is not None:
        return [Path(root)]
    roots = []
    if os.environ.get("SPIKELFP_DATA"):
        roots.append(Path(os.environ["SPIKELFP_DATA"]) / name)
    roots += [REPO_DATASETS / name, CACHE / name, *extra]
    return roots


def download(urls: list[str], dest: Path) -> None:
    """Fetch ``dest`` from the first of ``urls`` that answers; :class:`DataError` lists every failure."""
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
