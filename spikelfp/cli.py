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
    g.add_argument("--reset", default="subtract", choices=["subtract", "zero", "none"])
    g.add_argument("--neuron", default="lif", choices=["lif", "cuba"], help="LIF or current-based CubaLIF neurons")
    g.add_argument("--alpha", type=float, default=0.8, help="synaptic-current decay α (--neuron cuba)")
    g.add_argument(
        "--encoding",
        default="constant",
        choices=["constant", "rate", "latency", "rows"],
        help="rows: one image row per step (sequential MNIST, T = image height; --steps is ignored)",
    )
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
        trainer = Trainer(config, out, progress=not args.no_progress, rank=rank, world_size=world)
        if args.resume:
            trainer.load_checkpoint(args.resume)
            say(f"resuming {out} at epoch {trainer.epoch + 1}, step {trainer.step_in_epoch}")
        c = trainer.config
        say(
            f"training {c.model} on {c.dataset} with {c.method} ({c.optimizer}, lr {c.lr}, batch {c.batch_size}"
            + (
                f", {c.neuron} neurons, T={'rows' if c.encoding == 'rows' else c.steps}, beta={c.beta}, "
                f"{c.encoding} encoding"
                if trainer.spiking
                else ""
            )
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
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
