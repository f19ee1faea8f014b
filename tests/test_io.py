"""spikelfp.io.atomic: a write yields the whole new file or keeps the old one, never a torn one."""

import errno
import os

import pytest
import torch

from spikelfp.io import AtomicWriteError, atomic_save, atomic_write, atomic_write_text


def test_atomic_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "a.txt"
    assert atomic_write_text(path, "old\n") == path
    atomic_write_text(path, "new\n")
    assert path.read_text() == "new\n"
    atomic_save(tmp_path / "t.pt", {"w": torch.arange(3)})
    assert torch.equal(torch.load(tmp_path / "t.pt", weights_only=True)["w"], torch.arange(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "t.pt"]


@pytest.mark.parametrize("previous", [True, False])
def test_a_failed_write_keeps_the_old_file_and_says_why_in_one_line(tmp_path, previous):
    path = tmp_path / "a.txt"
    if previous:
        path.write_text("old\n")

    def write(tmp):  # the disk fills half-way through the file
        tmp.write_text("ha")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(AtomicWriteError) as e:
        atomic_write(path, write)
    kept = " (the previous one is kept)" if previous else ""
    assert str(e.value) == f"could not save {path}{kept}: {os.strerror(errno.ENOSPC)}"
    assert isinstance(e.value.__cause__, OSError) and e.value.__cause__.errno == errno.ENOSPC
    assert sorted(p.name for p in tmp_path.iterdir()) == (["a.txt"] if previous else [])
    if previous:
        assert path.read_text() == "old\n"


def test_a_failed_rename_and_a_multi_line_error_give_one_line(tmp_path, monkeypatch):
    def write(tmp):
        raise RuntimeError("first line\nsecond line")

    with pytest.raises(AtomicWriteError, match=r"^could not save .*a\.bin: first line$"):
        atomic_write(tmp_path / "a.bin", write)

    def refuse(src, dst):  # the folder turned read-only before the rename
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(AtomicWriteError, match=os.strerror(errno.EROFS)):
        atomic_write_text(tmp_path / "b.txt", "x")
    assert list(tmp_path.iterdir()) == []
