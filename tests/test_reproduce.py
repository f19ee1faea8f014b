"""Every reproduce command in a tiny setting: it writes its JSON, PNG and table."""

from __future__ import annotations

import json

import pytest

from spikelfp.cli import main
from spikelfp.reproduce import EXPERIMENTS

pytest.importorskip("matplotlib", reason="matplotlib (extra 'plot') is not installed")

OPTIONS = {"fig2-mlp-lenet": ["--dataset", "mnist"], "fig3-vgg-rules": ["--dataset", "mnist"]}


@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_reproduce_smoke(name, tmp_path, capsys):
    out = tmp_path / name
    assert main(["reproduce", name, "--smoke", "--out", str(out), *OPTIONS.get(name, [])]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["experiment"] and results["scale"] == "smoke"
    assert (out / "figure.png").stat().st_size > 1000
    table = (out / "table.md").read_text()
    assert table.startswith("### ") and table.count("|") > 6


def test_fig2_and_fig3_say_when_their_data_is_absent(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SPIKELFP_DATA", str(tmp_path))
    monkeypatch.setattr("spikelfp.data.CACHE", tmp_path / "cache")
    monkeypatch.setattr(
        "spikelfp.data._download",
        lambda urls, dest: (_ for _ in ()).throw(__import__("spikelfp").data.DataError("offline")),
    )
    assert main(["reproduce", "fig2-mlp-lenet", "--smoke", "--out", str(tmp_path / "f2")]) == 2
    assert "--dataset fashion-mnist" in capsys.readouterr().err
    assert main(["reproduce", "fig3-vgg-rules", "--smoke", "--out", str(tmp_path / "f3")]) == 2
    assert "ImageNet subset is not available" in capsys.readouterr().err


def test_fig4_sweep_smoke(tmp_path):
    out = tmp_path / "sweep"
    assert main(["reproduce", "fig4-snn-mnist", "--smoke", "--sweep", "--out", str(out)]) == 0
    grid = json.loads((out / "results.json").read_text())["grid"]
    assert len(grid) == 3 and all(0 <= v <= 1 for v in grid.values())
