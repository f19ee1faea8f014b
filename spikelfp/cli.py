"""The ``spikelfp`` command."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import secrets
import sys
import time
from pathlib import Path

from .train import config as settings

__all__ = ["main"]


def _none_or(kind):
    def parse(text: str):
        return None if text.lower() == "none" else kind(text)

    parse.__name__ = getattr(kind, "__name__", "value")
    return parse


def _number(kind: type, low: float | None = None, high: float | None = None, low_open: bool = False):
    """An argparse type: a finite ``kind`` in ``[low, high]`` (``(low, high]`` with ``low_open``).

    A bad value becomes argparse's one-line error and exit status 2.
    """

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        if low is not None and (value <= low if low_open else value < low):
            raise argparse.ArgumentTypeError(f"{text} must be {'>' if low_open else '>='} {low:g}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"{text} must be <= {high:g}")
        return value

    parse.__name__ = kind.__name__
    return parse


def _optimizer_name(text: str) -> str:
    """An argparse type: a ``torch.optim`` class name the Trainer can drive."""
    try:
        settings.optimizer_class(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


_COUNT = _number(int, 1)  # >= 1
_NONNEG_INT = _number(int, 0)
_POSITIVE = _number(float, 0, low_open=True)
_NONNEG = _number(float, 0)


def _dataset(text: str) -> str:
    """``--dataset``: a built-in name, or a folder or ``.npz`` file that exists."""
    from .data import LOADERS

    if text in LOADERS:
        return text
    path = Path(text)
    if path.is_dir() or (path.suffix == ".npz" and path.is_file()):
        return str(path)
    raise argparse.ArgumentTypeError(
        f"{text!r} is neither a dataset name ({', '.join(LOADERS)}) nor an existing folder or .npz file"
    )


def _add_train_arguments(p: argparse.ArgumentParser) -> None:
    from .models import REGISTRY

    g = p.add_argument_group("what to train")
    g.add_argument("--model", default="snn-mlp", choices=list(REGISTRY), help="model (default: snn-mlp)")
    g.add_argument(
        "--dataset",
        default="mnist",
        type=_dataset,
        help="mnist, fashion-mnist, cifar10, nmnist, a folder of class folders (ImageFolder kind, optional "
        "train/ and test/ inside) or an .npz file with arrays x, y (and x_test, y_test)",
    )
    g.add_argument("--data-root", default=None, help="folder with the dataset's files")
    g.add_argument(
        "--method", default="lfp-epsilon", choices=settings.METHODS, help="LFP composite or gradient baseline"
    )
    g.add_argument(
        "--weights",
        default="float",
        choices=settings.WEIGHTS,
        help="train with float, binary or ternary weights (LFP-SPEC §10)",
    )
    g.add_argument(
        "--weight-magnitude",
        default="latent",
        choices=settings.WEIGHT_MAGNITUDES,
        help="binary/ternary under LFP: the update's |w| from the latent weight (spec default) or from w_q",
    )
    g = p.add_argument_group("optimisation (unset: the paper's setting for the model family)")
    g.add_argument("--optimizer", type=_optimizer_name, default=None, help="a torch.optim class (sgd, adam, adamw…)")
    g.add_argument("--lr", type=_POSITIVE, default=None)
    g.add_argument("--momentum", type=_NONNEG, default=0.9)
    g.add_argument("--weight-decay", type=_NONNEG, default=0.0)
    g.add_argument("--epochs", type=_NONNEG_INT, default=None, help="epochs in all (default 1; on --resume, as saved)")
    g.add_argument("--batch-size", type=_COUNT, default=None)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--normalize", default=None, choices=settings.NORMALIZE, help="max-normalise the feedback")
    g.add_argument("--feedback", default=None, choices=list(settings.FEEDBACKS))
    g.add_argument("--reduction", default="sum", choices=settings.REDUCTIONS, help="feedback over the batch")
    g.add_argument("--clip", type=_none_or(_NONNEG), default=None, help="adaptive clipping λ (0: off)")
    g.add_argument("--lr-step", type=_NONNEG_INT, default=0, help="decay the lr every N steps")
    g.add_argument("--lr-gamma", type=_POSITIVE, default=0.1)
    g.add_argument("--pretrain-steps", type=_NONNEG_INT, default=0, help="gradient steps before LFP takes over")
    g = p.add_argument_group("spiking models")
    g.add_argument("--steps", type=_COUNT, default=25, help="time steps T")
    g.add_argument("--beta", type=_number(float, 0, 1), default=0.9, help="membrane decay β")
    g.add_argument("--threshold", type=_POSITIVE, default=1.0)
    g.add_argument("--reset", default="subtract", choices=settings.RESETS)
    g.add_argument("--neuron", default="lif", choices=settings.NEURONS, help="LIF or current-based CubaLIF neurons")
    g.add_argument("--alpha", type=_number(float, 0, 1), default=0.8, help="synaptic-current decay α (--neuron cuba)")
    g.add_argument(
        "--encoding",
        default="constant",
        choices=settings.ENCODINGS,
        help="rows: one image row per step (sequential MNIST, T = image height; --steps is ignored)",
    )
    g.add_argument("--gain", type=_POSITIVE, default=1.0, help="rate-encoding gain")
    g = p.add_argument_group("run")
    g.add_argument("--limit-train", type=_COUNT, default=None, help="use the first N training images")
    g.add_argument("--limit-test", type=_COUNT, default=None, help="use the first N test images")
    g.add_argument("--out", default=None, help="run folder (default: runs/<model>-<method>-<time>)")
    g.add_argument("--resume", default=None, help="continue the run in this folder (or checkpoint file)")
    g.add_argument("--checkpoint-every", type=_NONNEG_INT, default=0, help="also checkpoint every N steps")
    g.add_argument("--stats", action="store_true", help="log parameter statistics per epoch")
    g.add_argument("--threads", type=_COUNT, default=None, help="torch CPU threads")
    g.add_argument("--force", action="store_true", help="overwrite the run already in --out (instead of --resume)")
    g.add_argument(
        "--device", default="auto", help="cpu, cuda, cuda:N or auto (default; under torchrun: cuda:LOCAL_RANK)"
    )
    g.add_argument("--no-progress", action="store_true")


def _config_from(args: argparse.Namespace):
    fields = {f.name for f in dataclasses.fields(settings.Config)}
    return settings.Config(**{k: v for k, v in vars(args).items() if k in fields})


# Settings a resumed run may change (logged): they alter neither the data order nor the arithmetic.
_RESUME_OVERRIDES = ("epochs", "checkpoint_every", "stats", "data_root", "device")
_RUN_FILES = ("config.json", "checkpoint.pt", "metrics.jsonl", "model.pt")


def _explicit_train_flags(argv: list[str]) -> set[str]:
    """The ``train`` options the user typed (as argparse dests), whatever their value."""
    p = argparse.ArgumentParser(add_help=False)
    _add_train_arguments(p)
    for action in p._actions:
        action.default = argparse.SUPPRESS
    rest = argv[argv.index("train") + 1 :] if "train" in argv else argv
    namespace, _ = p.parse_known_args(rest)
    return set(vars(namespace))


def _same(a, b) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return a.lower() == b.lower()
    return a == b


def _resumed_config(args: argparse.Namespace, Config, say) -> tuple[Path, object]:
    """The saved run's config with the explicit, safe overrides; ``ValueError`` for conflicts or damage."""
    resume = Path(args.resume)
    if not resume.exists():
        raise ValueError(f"--resume {resume}: no such folder or file")
    out = resume if resume.is_dir() else resume.parent
    path = out / "config.json"
    if not path.is_file():
        raise ValueError(f"{out} holds no config.json of a spikelfp run")
    try:
        saved = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"{path} is not readable JSON ({exc})") from None
    settings.check_config_values(saved, str(path))
    explicit = getattr(args, "explicit", set())
    if "out" in explicit and Path(args.out).resolve() != out.resolve():
        raise ValueError(f"--out {args.out} conflicts with --resume {args.resume} (the run lives in {out})")
    conflicts, overrides = [], {}
    for key in sorted(explicit & set(saved)):
        value = getattr(args, key)
        if _same(value, saved[key]):
            continue
        if key in _RESUME_OVERRIDES:
            overrides[key] = value
        else:
            conflicts.append(f"--{key.replace('_', '-')} {value} (the run has {saved[key]!r})")
    if conflicts:
        raise ValueError(
            f"--resume {args.resume}: {', '.join(conflicts)} conflict(s) with {path}; drop the flag(s) or start a "
            f"new run (only {', '.join('--' + k.replace('_', '-') for k in _RESUME_OVERRIDES)} may change)"
        )
    for key, value in overrides.items():
        say(f"override: {key} = {value!r} (the run had {saved[key]!r})")
    return out, Config(**{**saved, **overrides})


def _fresh_out(args: argparse.Namespace, config, rank: int, world: int) -> Path:
    """The folder of a new run; refuses one that holds a run unless ``--force`` (then clears it)."""
    import torch

    if args.out:
        out = Path(args.out)
    else:  # a random suffix: two runs started in the same second get different folders
        out = Path(f"runs/{config.model}-{config.method}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}")
    if world > 1:  # every rank must use rank 0's folder
        shared = [str(out)]
        torch.distributed.broadcast_object_list(shared, src=0)
        out = Path(shared[0])
    present = [name for name in _RUN_FILES if (out / name).exists()]
    if present and not args.force:
        raise ValueError(
            f"{out} already holds a run ({', '.join(present)}); continue it with --resume {out}, "
            "or overwrite it with --force"
        )
    if present and rank == 0:
        for name in present:
            (out / name).unlink()
    return out


def cmd_train(args: argparse.Namespace) -> int:
    import signal

    import torch

    from .data import DataError
    from .distributed import init_from_env
    from .train import CheckpointError, Config, Trainer, TrainingStopped

    try:  # torchrun: join its process group (NCCL on CUDA, gloo on CPU); else (0, 1)
        rank, world = init_from_env(args.device)
    except ValueError as exc:  # an unknown or missing device
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    say = print if rank == 0 else (lambda *a, **k: None)
    if args.epochs is None and not args.resume:
        args.epochs = 1
    failed = True  # until the run ends normally: then every rank meets at a barrier before tearing down
    try:
        if args.resume:
            out, config = _resumed_config(args, Config, say)
        else:
            config = _config_from(args)
            out = _fresh_out(args, config, rank, world)
        trainer = Trainer(config, out, progress=not args.no_progress, rank=rank, world_size=world)
        if args.resume:
            trainer.load_checkpoint(args.resume)
            say(f"resuming {out} at epoch {trainer.epoch + 1}, step {trainer.step_in_epoch}")
        c = trainer.config
        say(
            f"training {c.model} on {c.dataset} ({trainer.device}) with {c.method} ({c.optimizer}, lr {c.lr}, "
            f"batch {c.batch_size}"
            + (f", {c.weights} weights" if c.weights != "float" else "")
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
        failed = False
    except (DataError, CheckpointError, TrainingStopped, ValueError) as exc:
        print(f"error: {exc}" + (f" (rank {rank})" if world > 1 else ""), file=sys.stderr)
        return 2
    except RuntimeError as exc:
        if world == 1:
            raise
        # a collective failed: another rank died (its own error says why); leave at once, do not wait
        print(f"error: rank {rank}: the process group broke: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 1
    finally:
        from .distributed import shutdown

        shutdown(failed)  # a failing rank skips the barrier, so the others see it gone within seconds
    if trainer._stop_requested:
        name = "SIGTERM" if trainer.stop_signal == signal.SIGTERM else "interrupted"
        say(f"{name}: checkpoint saved in {out}; continue with: spikelfp train --resume {out}")
        return 128 + (trainer.stop_signal or signal.SIGINT)
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


def cmd_export(args: argparse.Namespace) -> int:
    """Write a run's model as a binary-weight file (``model-binary.h5``) and a NIR graph (``model.nir``)."""
    from . import export
    from .binary import is_binary
    from .train import CheckpointError, load_model

    run = Path(args.run)
    if not (run / "config.json").is_file():
        print(f"error: {run} holds no config.json of a spikelfp run", file=sys.stderr)
        return 2
    try:
        model = load_model(run)
    except (CheckpointError, ValueError, OSError) as exc:
        print(f"error: cannot rebuild the model of {run}: {exc}", file=sys.stderr)
        return 2
    kind = next((m.mode for m in model.modules() if is_binary(m)), "float")
    out = Path(args.out) if args.out else run
    try:
        out.mkdir(parents=True, exist_ok=True)
        path = export.save_binary(model, out / "model-binary.h5")
    except (export.ExportError, OSError) as exc:
        print(f"error: binary weights not written to {out}: {exc}", file=sys.stderr)
        return 1
    dense = sum(p.numel() * 4 for p in model.parameters())
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
    flags = [f for f, on in (("smoke", args.smoke), ("quick", args.quick)) if on]
    if args.scale is not None and flags and flags != [args.scale]:
        print(f"error: --scale {args.scale} contradicts --{flags[0]}", file=sys.stderr)
        return 2
    scale = args.scale or (flags[0] if flags else "full")
    out = Path(args.out or f"runs/reproduce/{args.name}-{scale}")
    options = {
        k: v
        for k, v in (
            ("dataset", args.dataset),
            ("model", args.model),
            ("seeds", args.seeds),
            ("pretrained", args.pretrained),
            ("shard", args.shard),
        )
        if v is not None
    }
    if args.shard is not None and not args.sweep:
        print("error: --shard splits a sweep; add --sweep", file=sys.stderr)
        return 2
    if args.sweep:
        options["sweep"] = True
    print(f"reproducing {args.name} ({scale}) into {out}")
    try:
        results = run(args.name, out, scale, progress=not args.no_progress, **options)
    except (DataError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if results.get("shard"):  # one process's share of a sweep: no summary yet
        return 0
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
    r.add_argument("--scale", choices=("full", "quick", "smoke"), default=None, help="full (default), quick or smoke")
    r.add_argument("--out", default=None, help="run folder (default: runs/reproduce/<name>-<scale>)")
    r.add_argument("--dataset", default=None, help="fig2/fig3: a substitute data set (fashion-mnist, mnist)")
    r.add_argument("--model", default=None, help="fig4: snn-mlp (default) or snn-lenet")
    r.add_argument("--sweep", action="store_true", help="fig4: the β × T × lr grid of Fig. A.4")
    r.add_argument("--shard", default=None, help="fig4 --sweep: i/n trains every n-th cell from i (n processes)")
    r.add_argument("--seeds", type=int, default=None, help="fig5: number of seeds")
    r.add_argument("--pretrained", default=None, help="fig3: a torchvision VGG-16 state dict (.pth)")
    r.add_argument("--threads", type=int, default=None)
    r.add_argument("--no-progress", action="store_true")
    r.set_defaults(func=cmd_reproduce)
    e = sub.add_parser("export", help="write a run's model as a binary-weight file and a NIR graph")
    e.add_argument("run", help="the run folder (holds config.json and model.pt)")
    e.add_argument("--out", default=None, help="folder for model-binary.h5 and model.nir (default: the run folder)")
    e.set_defaults(func=cmd_export)
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # a bad value: argparse printed its one-line error; return its status (2)
        return exc.code if isinstance(exc.code, int) else 2
    if args.command == "train":
        args.explicit = _explicit_train_flags(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
