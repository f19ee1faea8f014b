"""Accuracy before and after binarising the weights (sign(w)·α_row) of trained spiking MLPs.

Uses the runs of ``python benchmarks/accuracy.py snn-mlp`` (LFP-ε and the surrogate baseline).

    python benchmarks/binarize.py [--runs runs/bench/snn-mlp]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from common import machine, save

import spikelfp as sl
from spikelfp.train import Config, Trainer


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", default="runs/bench/snn-mlp")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    test = sl.data.mnist(train=False)
    result = {"machine": machine(), "models": {}}
    for name in ("lfp-epsilon", "surrogate"):
        run = Path(args.runs) / name
        config = Config(**json.loads((run / "config.json").read_text()))
        state = torch.load(run / "model.pt", weights_only=True)["model"]
        trainer = Trainer(config, run, train_set=test.subset(10), test_set=test, progress=False)
        trainer.model.load_state_dict(state)
        entry = {"float": trainer.evaluate()["accuracy"]}
        for scale in ("row-mean-abs", "row-rms", "tensor-mean-abs"):
            trainer.model.load_state_dict(sl.export.binarize(trainer.model, scale).state_dict())
            entry[f"binary-{scale}"] = trainer.evaluate()["accuracy"]
            trainer.model.load_state_dict(state)
        entry["weight_median_over_p75"] = sl.analysis.median_over_p75(trainer.model)
        init = Trainer(config, run, train_set=test.subset(10), test_set=test, progress=False).model
        entry["weight_median_over_p75_at_init"] = sl.analysis.median_over_p75(init)
        entry["sign_changes_from_init"] = sl.analysis.sign_changes(init, trainer.model)
        entry["sign_changes_from_init"].pop("per_tensor")
        result["models"][name] = entry
        print(name, entry, flush=True)
    save("binarize", result)


if __name__ == "__main__":
    main()
