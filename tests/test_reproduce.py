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
    monkeypatch.setattr("spikelfp.data.files.CACHE", tmp_path / "cache")
    monkeypatch.setattr(
        "spikelfp.data.files.download",
        lambda urls, dest: (_ for _ in ()).throw(__import__("spikelfp").data.DataError("offline")),
    )
    assert main(["reproduce", "fig2-mlp-lenet", "--smoke", "--out", str(tmp_path / "f2")]) == 2
    assert "--dataset fashion-mnist" in capsys.readouterr().err
    assert main(["reproduce", "fig3-vgg-rules", "--smoke", "--out", str(tmp_path / "f3")]) == 2
    assert "ImageNet subset is not available" in capsys.readouterr().err


def test_fig4_sweep_smoke(tmp_path):
    out = tmp_path / "sweep"
    assert main(["reproduce", "fig4-snn-mnist", "--scale", "smoke", "--sweep", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    grid = results["grid"]
    # smoke grid: 3 methods × β {0.6, 0.9} × T {4} × lr {1e-3}
    assert len(grid) == 6 and all(0 <= v["test_accuracy"] <= 1 for v in grid.values())
    assert {v["method"] for v in grid.values()} == {"lfp-epsilon", "lfp-zplus-zminus", "surrogate"}
    for name, best in results["best"].items():  # the best cell is the maximum of that method's cells
        assert best["test_accuracy"] == max(v["test_accuracy"] for v in grid.values() if v["method"] == name)
    assert all(v["firing_rates"] for v in grid.values())
    assert "best β" in (out / "table.md").read_text()


def test_fig4_sweep_shards_share_the_grid(tmp_path, capsys):
    out = tmp_path / "sweep"
    base = ["reproduce", "fig4-snn-mnist", "--smoke", "--sweep", "--out", str(out)]
    assert main([*base, "--shard", "0/2"]) == 0
    shard0 = json.loads((out / "sweep" / "shard-0-of-2.json").read_text())
    assert len(shard0) == 3 and not (out / "results.json").exists()  # no summary from one shard
    assert main([*base, "--shard", "1/2"]) == 0
    shard1 = json.loads((out / "sweep" / "shard-1-of-2.json").read_text())
    assert not set(shard0) & set(shard1)
    runs = sorted(p.name for p in (out / "sweep").iterdir() if p.is_dir())
    assert runs == sorted([*shard0, *shard1])
    metrics = {r: (out / "sweep" / r / "metrics.jsonl").read_text() for r in runs}  # holds each epoch's seconds
    assert main(base) == 0  # the summary resumes every finished cell instead of training it again
    grid = json.loads((out / "results.json").read_text())["grid"]
    assert {k: v["test_accuracy"] for k, v in grid.items()} == {
        **{k: v["test_accuracy"] for k, v in shard0.items()},
        **{k: v["test_accuracy"] for k, v in shard1.items()},
    }
    assert metrics == {r: (out / "sweep" / r / "metrics.jsonl").read_text() for r in runs}


@pytest.mark.parametrize(
    "args, message",
    [
        (["--sweep", "--shard", "2/2"], "0 <= i < n"),
        (["--sweep", "--shard", "x"], "i/n"),
        (["--shard", "0/2"], "add --sweep"),
        (["--quick", "--scale", "full"], "contradicts"),
    ],
)
def test_fig4_sweep_options_are_checked(tmp_path, capsys, args, message):
    assert main(["reproduce", "fig4-snn-mnist", "--out", str(tmp_path / "x"), *args]) == 2
    assert message in capsys.readouterr().err


def test_fig5_reports_the_spread_over_seeds(tmp_path):
    import statistics

    out = tmp_path / "fig5"
    assert main(["reproduce", "fig5-finetune-prune", "--smoke", "--seeds", "2", "--out", str(out)]) == 0
    methods = json.loads((out / "results.json").read_text())["methods"]
    for r in methods.values():
        finals = r["final_accuracy_per_seed"]
        assert len(finals) == 2 and r["accuracy"][-1] == pytest.approx(statistics.mean(finals))
        assert r["final_accuracy_std"] == pytest.approx(statistics.stdev(finals))
    assert "±" in (out / "table.md").read_text()


def test_sweep_sensitivity_is_an_honest_median():
    import statistics

    from spikelfp.reproduce.snn import _sensitivity

    accs = [0.098, 0.098, 0.098, 0.5, 0.91, 0.95]  # an even count: the median is the mean of 0.098 and 0.5
    grid = {str(i): {"method": "m", "test_accuracy": a} for i, a in enumerate(accs)}
    grid["other"] = {"method": "n", "test_accuracy": 0.3}
    s = _sensitivity(grid, ["m", "n"])["m"]
    assert s["median"] == pytest.approx(statistics.median(accs)) == pytest.approx(0.299)
    assert (s["best"], s["worst"], s["cells"], s["cells_at_least_90"]) == (0.95, 0.098, 6, 2)


def test_fig4_reports_firing_rates_and_time(tmp_path):
    out = tmp_path / "fig4"
    assert main(["reproduce", "fig4-snn-mnist", "--smoke", "--out", str(out)]) == 0
    activity = json.loads((out / "results.json").read_text())["activity"]
    assert set(activity) == {
        f"{e}/{m}" for e in ("constant", "rate") for m in ("lfp-epsilon", "lfp-zplus-zminus", "surrogate")
    }
    for a in activity.values():  # three LIF layers of the spiking MLP, each rate a fraction
        assert len(a["firing_rates"]) == 3 and all(0 <= r <= 1 for r in a["firing_rates"].values())
        assert len(a["seconds_per_epoch"]) == 1 and a["seconds_per_epoch"][0] > 0
    assert "firing rate per layer" in (out / "table.md").read_text()
