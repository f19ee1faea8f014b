"""The ``spikelfp`` command."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

__all__ = ["main"]


def _none_or(kind):
    def parse(text: str):
        return None if text.lower() == "none" else kind(text)

    return parse


def _add_train_arguments(p: argparse.ArgumentParser) -> None:
    from .composites import PRESETS
    from .models import REGISTRY

    methods = [f"lfp-{n}" for n in PRESETS] + ["gradient", "surrogate"]
    g = p.add_argument_group("what to train")
    g.add_argument("--model", default="snn-mlp", choices=list(REGISTRY), help="model (default: snn-mlp)")
    g.add_argument("--dataset", default="mnist", choices=["mnist", "fashion-mnist", "cifar10", "nmnist"])
    g.add_argument("--data-root", default=None, help="folder with the dataset's files")
    g.add_argument("--method", default="lfp-epsilon", choices=methods, help="LFP composite or gradient baseline")
    g.add_argument(
        "--weights",
        default=None,
        choices=["float", "binary", "ternary"],
        help="train with float, binary or ternary weights (LFP-SPEC §10; default float, on --resume as saved)",
    )
    g.add_argument(
        "--weight-magnitude",
        default=None,
        choices=["latent", "quantized"],
        help="binary/ternary under LFP: the update's |w| from the latent weight (spec default) or from w_q",
    )
    g = p.add_argument_group("optimisation (unset: the paper's setting for the model family)")
    g.add_argument("--optimizer", default=None, help="any torch.optim class (sgd, adam, adamw, ...)")
    g.add_argument("--lr", type=float, default=None)
    g.add_argument("--momentum", type=float, default=0.9)
    g.add_argument("--weight-decay", type=float, default=0.0)
    g.add_argument("--epochs", type=int, default=None, help="epochs in all (default 1; on --resume, as saved)")
    g.add_argument("--batch-size", type=int, default=None)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--normalize", default=None, choices=["max", "max-batch", "none"], help="max-normalise the feedback")
    g.add_argument("--feedback", default=None, choices=["sigmoid", "softmax", "reward", "spike-sequence"])
    g.add_argument("--reduction", default="sum", choices=["sum", "mean"], help="feedback over the batch")
    g.add_argument("--clip", type=_none_or(float), default=None, help="adaptive clipping λ (0: off)")
    g.add_argument("--lr-step", type=int, default=0, help="decay the lr every N steps")
    g.add_argument("--lr-gamma", type=float, default=0.1)
    g.add_argument("--pretrain-steps", type=int, default=0, help="gradient steps before LFP takes over")
    g = p.add_argument_group("spiking models")
    g.add_argument("--steps", type=int, default=25, help="time steps T")
    g.add_argument("--beta", type=float, default=0.9, help="membrane decay β")
    g.add_argument("--threshold", type=float, default=1.0)
    g.add_argument("--reset", default="subtract", choices=["subtract", "zero"])
    g.add_argument("--encoding", default="constant", choices=["constant", "rate", "latency"])
    g.add_argument("--gain", type=float, default=1.0, help="rate-encoding gain")
    g = p.add_argument_group("run")
    g.add_argument("--limit-train", type=int, default=None, help="use the first N training images")
    g.add_argument("--limit-test", type=int, default=None, help="use the first N test images")
    g.add_argument("--out", default=None, help="run folder (default: runs/<model>-<method>-<time>)")
    g.add_argument("--resume", default=None, help="continue the run in this folder (or checkpoint file)")
    g.add_argument("--checkpoint-every", type=int, default=0, help="also checkpoint every N steps")
    g.add_argument("--stats", action="store_true", help="log parameter statistics per epoch")
    g.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    g.add_argument("--no-progress", action="store_true")


def _config_from(args: argparse.Namespace):
    from .train import Config

    fields = {f.name for f in dataclasses.fields(Config)}
    return Config(**{k: v for k, v in vars(args).items() if k in fields})


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from .data import DataError
    from .distributed import init_from_env
    from .train import CheckpointError, Trainer, TrainingStopped

    rank, world = init_from_env()  # torchrun: join its process group; else (0, 1)
    if args.threads:
        torch.set_num_threads(args.threads)
    say = print if rank == 0 else (lambda *a, **k: None)
    if args.epochs is None and not args.resume:
        args.epochs = 1
    config = _config_from(args)
    if args.resume:
        resume = Path(args.resume)
        out = resume if resume.is_dir() else resume.parent
        saved = json.loads((out / "config.json").read_text()) if (out / "config.json").is_file() else None
        if saved is None:
            print(f"error: {out} holds no config.json of a spikelfp run", file=sys.stderr)
            return 2
        # the saved run's settings, with a new epoch count if one was given
        epochs = saved["epochs"] if args.epochs is None else args.epochs
        config = type(config)(**{**saved, "epochs": epochs})
    else:
        out = Path(args.out or f"runs/{config.model}-{config.method}-{time.strftime('%Y%m%d-%H%M%S')}")
        if world > 1:  # every rank must use rank 0's folder
            shared = [str(out)]
            torch.distributed.broadcast_object_list(shared, src=0)
            out = Path(shared[0])
    try:
        weights = _weights_of(args, out)
        model = train_set = test_set = None
        if weights["weights"] != "float":
            model, train_set, test_set = _binary_model(config, weights)
        trainer = Trainer(
            config,
            out,
            model=model,
            train_set=train_set,
            test_set=test_set,
            progress=not args.no_progress,
            rank=rank,
            world_size=world,
        )
        if weights["weights"] != "float" and rank == 0:
            out.mkdir(parents=True, exist_ok=True)
            (out / _WEIGHTS_FILE).write_text(json.dumps(weights) + "\n")
        if args.resume:
            trainer.load_checkpoint(args.resume)
            say(f"resuming {out} at epoch {trainer.epoch + 1}, step {trainer.step_in_epoch}")
        c = trainer.config
        say(
            f"training {c.model} on {c.dataset} with {c.method} ({c.optimizer}, lr {c.lr}, batch {c.batch_size}"
            + (f", {weights['weights']} weights" if weights["weights"] != "float" else "")
            + (f", T={c.steps}, beta={c.beta}, {c.encoding} encoding" if trainer.spiking else "")
            + f") for {c.epochs} epoch(s)"
            + (f" on {world} processes" if world > 1 else "")
        )
        metrics = trainer.fit()
    except (DataError, CheckpointError, TrainingStopped, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if world > 1 and torch.distributed.is_initialized():
            torch.distributed.barrier()  # no rank tears gloo down while another still communicates
            torch.distributed.destroy_process_group()
    if trainer._stop_requested:
        say(f"interrupted: checkpoint saved in {out}; continue with: spikelfp train --resume {out}")
        return 130
    for m in trainer.history:
        say(
            f"epoch {m['epoch']}: train accuracy {m['train_accuracy']:.4f}, test accuracy {m['test_accuracy']:.4f} "
            f"({m['seconds']:.0f} s)"
        )
    if metrics:
        say(f"test accuracy: {metrics['test_accuracy']:.4f}")
        if "firing_rates" in metrics:
            say("firing rates (spikes per neuron and step):")
            for name, rate in metrics["firing_rates"].items():
                say(f"  layer {name}: {rate:.4f}")
    say(f"run saved in {out}")
    return 0


_WEIGHTS_FILE = "weights.json"
#: (channels, size) of one image of each data set, for rebuilding a run's model without its data
_INPUTS = {"mnist": (1, 28), "fashion-mnist": (1, 28), "cifar10": (3, 32), "nmnist": (2, 34)}


def _weights_of(args: argparse.Namespace, out: Path) -> dict:
    """``{"weights", "magnitude"}`` of a new run (from the options) or of a resumed one (as saved)."""
    saved_path = out / _WEIGHTS_FILE
    if args.resume:
        saved = json.loads(saved_path.read_text()) if saved_path.is_file() else {"weights": "float"}
        for key, option in (("weights", args.weights), ("magnitude", args.weight_magnitude)):
            if option is not None and option != saved.get(key, option):
                raise ValueError(f"{out} was trained with {key} {saved.get(key)!r}, not {option!r}")
        return saved
    weights = args.weights or "float"
    if weights == "float" and args.weight_magnitude is not None:
        raise ValueError("--weight-magnitude applies to --weights binary or ternary")
    return {"weights": weights, "magnitude": args.weight_magnitude or "latent"}


def _binary_model(config, weights: dict):
    """The run's model with binary/ternary layers, and its data sets (loaded here for the input shape)."""
    import torch

    from . import data, models
    from .binary import convert

    c = config.resolved()
    train_set = data.load(c.dataset, train=True, root=c.data_root, steps=c.steps)
    test_set = data.load(c.dataset, train=False, root=c.data_root, steps=c.steps)
    channels, size, _ = train_set.sample_shape
    torch.manual_seed(c.seed)
    model = models.build(c.model, channels, size, 10, beta=c.beta, threshold=c.threshold, reset=c.reset)
    return convert(model, weights["weights"], magnitude=weights["magnitude"]), train_set, test_set


def cmd_export(args: argparse.Namespace) -> int:
    """Write a run's model as a binary-weight file (``model-binary.h5``) and a NIR graph (``model.nir``)."""
    import torch

    from . import export, models
    from .binary import convert
    from .train import Config

    run = Path(args.run)
    if not (run / "config.json").is_file():
        print(f"error: {run} holds no config.json of a spikelfp run", file=sys.stderr)
        return 2
    state_path = run / "model.pt" if (run / "model.pt").is_file() else run / "checkpoint.pt"
    if not state_path.is_file():
        print(f"error: {run} holds no model.pt or checkpoint.pt", file=sys.stderr)
        return 2
    try:
        c = Config(**json.loads((run / "config.json").read_text()))
        weights = json.loads((run / _WEIGHTS_FILE).read_text()) if (run / _WEIGHTS_FILE).is_file() else {}
        channels, size = _INPUTS[c.dataset]
        model = models.build(c.model, channels, size, 10, beta=c.beta, threshold=c.threshold, reset=c.reset)
        if weights.get("weights", "float") != "float":
            model = convert(model, weights["weights"], magnitude=weights.get("magnitude", "latent"))
        model.load_state_dict(torch.load(state_path, map_location="cpu", weights_only=True)["model"])
    except (KeyError, TypeError, ValueError, RuntimeError, OSError) as exc:
        print(f"error: cannot rebuild the model of {run}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else run
    out.mkdir(parents=True, exist_ok=True)
    path = export.save_binary(model, out / "model-binary.h5")
    dense = sum(p.numel() * 4 for p in model.parameters())
    kind = weights.get("weights", "float")
    how = "exactly the trained weights" if kind != "float" else "binarised post hoc (sign · mean |w| per row)"
    print(f"binary weights ({how}): {path} ({path.stat().st_size} bytes; float32: {dense} bytes)")
    try:
        export.to_nir(model, out / "model.nir")
        print(
            f"NIR graph: {out / 'model.nir'}" + (f" ({kind} weights ±α, marked in metadata)" if kind != "float" else "")
        )
    except (export.ExportError, ImportError) as exc:
        print(f"NIR graph not written: {exc}", file=sys.stderr)
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    import torch

    from .data import DataError
    from .reproduce import EXPERIMENTS, run

    if args.list:
        for name, exp in EXPERIMENTS.items():
            print(f"{name:22s} {exp.summary}")
        return 0
    if args.name is None:
        print("error: name an experiment (spikelfp reproduce --list)", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    scale = "smoke" if args.smoke else ("quick" if args.quick else "full")
    out = Path(args.out or f"runs/reproduce/{args.name}-{scale}")
    options = {
        k: v
        for k, v in (
            ("dataset", args.dataset),
            ("model", args.model),
            ("seeds", args.seeds),
            ("pretrained", args.pretrained),
        )
        if v is not None
    }
    if args.sweep:
        options["sweep"] = True
    print(f"reproducing {args.name} ({scale}) into {out}")
    try:
        results = run(args.name, out, scale, progress=not args.no_progress, **options)
    except (DataError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print((out / "table.md").read_text())
    print(f"results: {out / 'results.json'}, figure: {out / 'figure.png'}")
    return 0 if results else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="spikelfp", description="Layer-wise Feedback Propagation for PyTorch")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train a model (default: spiking MLP, LFP-ε, MNIST, 1 epoch)")
    _add_train_arguments(p)
    p.set_defaults(func=cmd_train)
    r = sub.add_parser("reproduce", help="run one of the paper's experiments (see --list)")
    r.add_argument("name", nargs="?", help="a1-toy-reward, a3-depth, a4-shattering, fig4-snn-mnist, ...")
    r.add_argument("--list", action="store_true", help="list the experiments")
    r.add_argument("--quick", action="store_true", help="minutes on 2 CPU cores instead of the paper's scale")
    r.add_argument("--smoke", action="store_true", help=argparse.SUPPRESS)
    r.add_argument("--out", default=None, help="run folder (default: runs/reproduce/<name>-<scale>)")
    r.add_argument("--dataset", default=None, help="fig2/fig3: a substitute data set (fashion-mnist, mnist)")
    r.add_argument("--model", default=None, help="fig4: snn-mlp (default) or snn-lenet")
    r.add_argument("--sweep", action="store_true", help="fig4: the β × T × lr grid of Fig. A.4")
    r.add_argument("--seeds", type=int, default=None, help="fig5: number of seeds")
    r.add_argument("--pretrained", default=None, help="fig3: a torchvision VGG-16 state dict (.pth)")
    r.add_argument("--threads", type=int, default=None)
    r.add_argument("--no-progress", action="store_true")
    r.set_defaults(func=cmd_reproduce)
    e = sub.add_parser("export", help="write a run's model as a binary-weight file and a NIR graph")
    e.add_argument("run", help="the run folder (holds config.json and model.pt)")
    e.add_argument("--out", default=None, help="folder for model-binary.h5 and model.nir (default: the run folder)")
    e.set_defaults(func=cmd_export)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
