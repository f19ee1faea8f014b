"""Data loaders: real files, checksums, clear errors, no code execution."""

from __future__ import annotations

import gzip
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import spikelfp as sl
from spikelfp.data import DataError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def test_bundled_mnist_is_real_mnist():
    train = sl.data.mnist(train=True, download=False)
    test = sl.data.mnist(train=False, download=False)
    assert train.images.shape == (60000, 1, 28, 28) and len(test) == 10000
    assert train.labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    x = train.images.float() / 255
    assert abs(x.mean().item() - 0.1307) < 1e-4 and abs(x.std().item() - 0.3081) < 1e-4


def test_batches_cover_the_set_once_and_standardize():
    s = sl.data.mnist(train=False, download=False).subset(1000)
    seen = torch.cat([y for _, y in s.batches(128, shuffle=True, generator=torch.Generator().manual_seed(0))])
    assert sorted(seen.tolist()) == sorted(s.labels.tolist())
    x, _ = next(s.batches(1000, standardize=False))
    assert 0 <= x.min() and x.max() <= 1
    xs, _ = next(s.batches(1000, standardize=True))
    torch.testing.assert_close(xs, (x - 0.1307) / 0.3081)
    skipped = list(s.batches(100, start=3))
    assert len(skipped) == 7 and torch.equal(skipped[0][1], s.labels[300:400])


def copy_mnist(tmp_path: Path) -> Path:
    root = tmp_path / "mnist"
    shutil.copytree(sl.data.REPO_DATASETS / "mnist", root)
    return root


def test_corrupt_file_names_file_and_checksum(tmp_path):
    root = copy_mnist(tmp_path)
    path = root / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[100] ^= 0xFF
    path.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte.gz is corrupt: sha256 .* expected ff7bcfd4"):
        sl.data.mnist(train=False, root=root)
    path.write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte.gz is corrupt: not a valid gzip"):
        sl.data.mnist(train=False, root=root)


def test_missing_file_is_named(tmp_path):
    root = copy_mnist(tmp_path)
    (root / "train-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.*not found in"):
        sl.data.mnist(train=True, root=root)


def test_uncompressed_idx_files_are_accepted(tmp_path):
    root = copy_mnist(tmp_path)
    for gz in root.glob("t10k-*.gz"):
        (root / gz.stem).write_bytes(gzip.decompress(gz.read_bytes()))
        gz.unlink()
    assert len(sl.data.mnist(train=False, root=root)) == 10000


def test_idx_header_is_validated(tmp_path):
    bad = tmp_path / "x.idx"
    bad.write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x05abc")
    with pytest.raises(DataError, match="header promises"):
        sl.data.load_idx(bad)
    bad.write_bytes(b"PK\x03\x04")
    with pytest.raises(DataError, match="not an IDX file"):
        sl.data.load_idx(bad)


@pytest.mark.skipif(not (SHARED / "fashion-mnist").is_dir(), reason="../shared/data/fashion-mnist is not present")
def test_fashion_mnist_from_a_path():
    s = sl.data.fashion_mnist(train=True, root=SHARED / "fashion-mnist")
    assert s.labels[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]


def test_cifar10_offline_error_says_where_to_put_files(tmp_path):
    with pytest.raises(DataError, match="cifar-10-batches-py"):
        sl.data.cifar10(root=tmp_path, download=False)


def test_cifar_pickles_cannot_execute_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (Path.touch, (tmp_path / "pwned",))

    payload = pickle.dumps({"data": Evil()})
    with pytest.raises(DataError, match="refusing to load"):
        sl.data.cifar._SafeUnpickler(__import__("io").BytesIO(payload)).load()
    assert not (tmp_path / "pwned").exists()
    ok = pickle.dumps({"data": np.zeros((2, 3072), dtype=np.uint8), "labels": [1, 2]})
    assert sl.data.cifar._SafeUnpickler(__import__("io").BytesIO(ok)).load()["labels"] == [1, 2]


def test_unknown_dataset():
    with pytest.raises(ValueError, match="known datasets"):
        sl.data.load("imagenet")
