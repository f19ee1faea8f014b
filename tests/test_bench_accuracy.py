"""The seed, grid and validation machinery of benchmarks/accuracy.py (behind the best-against-best tables)."""

from __future__ import annotations

import importlib
import json
import statistics
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from spikelfp.data import EventSet, ImageSet

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def accuracy():
    sys.path.insert(0, str(BENCH))
    try:
        yield importlib.import_module("accuracy")
    finally:
        sys.path.remove(str(BENCH))


def test_expand_crosses_grid_and_seeds(accuracy):
    suite = {"a": {"method": "lfp-epsilon", "lr": 1.0}}
    runs = accuracy.expand(suite, ["beta=0.6,0.9", "steps=5"], 3)
    assert [key for key, _, _, _ in runs] == [
        "a-beta0.6-steps5",
        "a-beta0.6-steps5-s1",
        "a-beta0.6-steps5-s2",
        "a-beta0.9-steps5",
        "a-beta0.9-steps5-s1",
        "a-beta0.9-steps5-s2",
    ]
    assert runs[4][1:3] == ("a-beta0.9-steps5", "a")  # group, and the suite entry --only selects by
    assert runs[4][3] == {"method": "lfp-epsilon", "lr": 1.0, "beta": 0.9, "steps": 5, "seed": 1}
    assert runs[0][3] is not runs[1][3]  # every run has its own settings
    with pytest.raises(SystemExit, match="Config field"):
        accuracy.expand(suite, ["nonsense=1"], 1)


def test_split_off_holds_out_disjoint_training_samples(accuracy):
    images = ImageSet(torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1), torch.arange(10), (0.5,), (0.5,))
    head, tail = accuracy.split_off(images, 3)
    assert head.labels.tolist() == list(range(7)) and tail.labels.tolist() == [7, 8, 9]
    events = EventSet(lambda i: np.zeros(0), torch.arange(10), steps=2)
    head, tail = accuracy.split_off(events, 4)
    assert head.indices.tolist() == list(range(6)) and tail.indices.tolist() == [6, 7, 8, 9]
    with pytest.raises(SystemExit):
        accuracy.split_off(images, 10)


def test_aggregate_and_merge(accuracy, tmp_path):
    def run(group, seed, final, status="ok"):
        return {
            "group": group,
            "settings": {"seed": seed},
            "status": status,
            "test_accuracy": [0.1, final],
            "seconds_per_epoch": [1.0, 3.0],
            "firing_rates": {"1": 0.1 * (seed + 1)},
        }

    path = tmp_path / "summary.json"
    accuracy.save_merged(path, {"g": run("g", 0, 0.91), "g-s1": run("g", 1, 0.95)}, {"cpu": "x"})
    accuracy.save_merged(path, {"g-s2": run("g", 2, 0.90), "h": run("h", 0, 0.5, status="ValueError: x")}, {})
    summary = json.loads(path.read_text())
    assert set(summary["runs"]) == {"g", "g-s1", "g-s2", "h"}  # the second process kept the first's runs
    agg = summary["aggregate"]
    assert set(agg) == {"g"}  # a failed run is not averaged
    assert agg["g"]["seeds"] == [0, 1, 2]
    assert agg["g"]["mean"] == pytest.approx(statistics.mean([0.91, 0.95, 0.90]), abs=1e-5)
    assert agg["g"]["std"] == pytest.approx(statistics.stdev([0.91, 0.95, 0.90]), abs=1e-5)
    assert (agg["g"]["min"], agg["g"]["max"]) == (0.90, 0.95)
    assert agg["g"]["firing_rates"]["1"] == pytest.approx(0.2)


@pytest.mark.parametrize("text", ["2/2", "0/0", "x", "1/2/3"])
def test_shard_is_checked(accuracy, text):
    with pytest.raises(SystemExit, match="--shard"):
        accuracy._parse_shard(text)
