"""The README's Python examples run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_readme_has_examples():
    assert len(BLOCKS) >= 4


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_block_runs(index, tmp_path, monkeypatch):
    pytest.importorskip("snntorch", reason="the README's snnTorch example needs the 'snn' extra")
    pytest.importorskip("nir", reason="the README's export example needs the 'export' extra")
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    namespace = {"images": torch.rand(8, 1, 28, 28), "labels": torch.randint(0, 10, (8,))}
    for block in BLOCKS[: index + 1]:  # later blocks use names the earlier ones define
        exec(compile(block, f"README block {index}", "exec"), namespace)
