"""The checkpoint format: its version, its SHA-256 over the contents, and the checks of a loaded one.

A checkpoint is a dict saved by ``torch.save`` and read with ``torch.load(weights_only=True)`` (loading
never executes code). It holds ``format`` (:data:`CHECKPOINT_FORMAT`), ``version``
(:data:`CHECKPOINT_VERSION`), the run's ``config``, ``model``, ``optimizer`` and ``scheduler`` states,
``epoch``, ``step_in_epoch``, ``global_step``, the RNG states (``rng``, ``cuda_rng``), ``world_size``
and every rank's running tally (``tallies``), the epoch records (``history``, JSON), ``stats_prev``,
and ``sha256`` = :func:`payload_digest` of all the rest.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "CheckpointError",
    "check_checkpoint",
    "check_same_run",
    "payload_digest",
    "read_checkpoint",
    "read_run_file",
]

CHECKPOINT_FORMAT = "spikelfp-checkpoint"
CHECKPOINT_VERSION = 2  # 2: payload checksum, world size and per-rank tallies

# the settings a checkpoint must share with the run that resumes it
RUN_IDENTITY = ("model", "dataset", "method", "seed", "batch_size", "steps")


class CheckpointError(ValueError):
    """A checkpoint is torn, foreign, or belongs to a different run."""


def _hash_into(h: Any, obj: Any) -> None:
    """Feed ``obj`` (nested dicts/lists of tensors, numbers, strings, None) into the hash ``h``, typed."""
    if isinstance(obj, Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}:".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(obj, dict):
        h.update(f"D{len(obj)}:".encode())
        for key in sorted(obj, key=repr):
            _hash_into(h, key)
            _hash_into(h, obj[key])
    elif isinstance(obj, (list, tuple)):
        h.update(f"L{len(obj)}:".encode())
        for item in obj:
            _hash_into(h, item)
    elif obj is None or isinstance(obj, (bool, int, float, str, bytes)):
        h.update(f"{type(obj).__name__}:{obj!r};".encode())
    else:
        raise TypeError(f"cannot checksum a {type(obj).__name__}")


def payload_digest(state: dict) -> str:
    """SHA-256 over every entry of a checkpoint except ``"sha256"``: tensor bytes, dtypes, shapes, values.

    A flipped bit anywhere in a tensor or a value changes it; the zip container's own layout does not.
    """
    h = hashlib.sha256()
    _hash_into(h, {k: v for k, v in state.items() if k != "sha256"})
    return h.hexdigest()


_CHECKPOINT_KEYS = (
    "config", "model", "optimizer", "scheduler", "epoch", "step_in_epoch", "global_step", "rng", "tallies",
    "world_size", "history", "sha256",
)  # fmt: skip


def check_checkpoint(state: dict, path: Path) -> None:
    """Refuse a damaged checkpoint with one line naming ``path``: missing entries, bad checksum, bad values."""
    missing = [k for k in _CHECKPOINT_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"{path} is damaged: it lacks {', '.join(missing)}")
    try:
        actual = payload_digest(state)
    except TypeError as exc:
        raise CheckpointError(f"{path} is damaged: {exc}") from None
    if actual != state["sha256"]:
        raise CheckpointError(
            f"{path} is corrupt: the SHA-256 of its contents is {actual}, the file says {state['sha256']!r}"
        )
    for key in ("epoch", "step_in_epoch", "global_step", "world_size"):
        value = state[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < (1 if key == "world_size" else 0):
            raise CheckpointError(f"{path} is damaged: {key} = {value!r}")
    rng = state["rng"]
    if not isinstance(rng, Tensor) or rng.dtype != torch.uint8 or rng.dim() != 1:
        raise CheckpointError(f"{path} is damaged: its RNG state is not a byte tensor")
    tallies = state["tallies"]
    if not isinstance(tallies, list) or len(tallies) != state["world_size"]:
        raise CheckpointError(f"{path} is damaged: it holds no running tally for each of its processes")
    for t in tallies:
        if not (isinstance(t, dict) and isinstance(t.get("correct"), Tensor) and isinstance(t.get("loss"), Tensor)):
            raise CheckpointError(f"{path} is damaged: a running tally lacks correct/loss")
        if not isinstance(t.get("seen"), int) or t["seen"] < 0:
            raise CheckpointError(f"{path} is damaged: a running tally has seen = {t.get('seen')!r}")
    if not isinstance(state["config"], dict):
        raise CheckpointError(f"{path} is damaged: its config is not a mapping")
    try:
        history = json.loads(state["history"])
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path} is damaged: its history is not JSON ({exc})") from None
    if not isinstance(history, list) or not all(isinstance(m, dict) for m in history):
        raise CheckpointError(f"{path} is damaged: its history is not a list of epoch records")
    if len(history) != state["epoch"]:
        raise CheckpointError(f"{path} is damaged: {len(history)} epoch record(s) for epoch {state['epoch']}")


def read_run_file(path: str | os.PathLike, name: str, what: str, missing: str) -> tuple[Path, Any]:
    """``(path, contents)`` of a run's ``name`` (``path`` may be the run folder), read with
    ``weights_only=True`` so that loading never executes code; :class:`CheckpointError` names the file."""
    path = Path(path)
    if path.is_dir():
        path = path / name
    if not path.is_file():
        raise CheckpointError(missing.format(path=path))
    try:
        return path, torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torn zip, foreign pickle, unsafe globals
        raise CheckpointError(f"{path} is not a readable spikelfp {what}: {exc}") from exc


def read_checkpoint(path: str | os.PathLike) -> tuple[Path, dict]:
    """``(path, state)`` of ``checkpoint.pt`` (or its folder), of this format and version and intact.

    Raises
    ------
    CheckpointError
        For a missing, unreadable, foreign, older or damaged file (see :func:`check_checkpoint`).
    """
    path, state = read_run_file(path, "checkpoint.pt", "checkpoint", "no checkpoint at {path}")
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a spikelfp checkpoint")
    if state.get("version") != CHECKPOINT_VERSION:
        older = " (an older spikelfp's, without a checksum: start afresh)" if state.get("version") == 1 else ""
        raise CheckpointError(
            f"{path} has checkpoint version {state.get('version')}, expected {CHECKPOINT_VERSION}{older}"
        )
    check_checkpoint(state, path)
    return path, state


def check_same_run(state: dict, path: Path, config: dict[str, Any], world_size: int) -> None:
    """Refuse to resume a run (``config`` as a dict, ``world_size`` processes) from another run's checkpoint.

    The number of processes must match (the data order and the summed updates depend on it), and so must
    the settings of :data:`RUN_IDENTITY`.
    """
    if state["world_size"] != world_size:
        raise CheckpointError(
            f"{path} was written by {state['world_size']} process(es); resume it with the same number "
            f"(here: {world_size}): the data order and the summed updates depend on it"
        )
    saved = state["config"]
    changed = [k for k in RUN_IDENTITY if saved.get(k) != config[k]]
    if changed:
        raise CheckpointError(
            f"{path} belongs to a different run: "
            + ", ".join(f"{k} {saved.get(k)!r} there, {config[k]!r} here" for k in changed)
        )
