"""Which device a process trains on: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``.

Under ``torchrun`` (``WORLD_SIZE`` > 1) every process uses its own GPU: ``cuda`` and ``auto`` mean
``cuda:$LOCAL_RANK``. The process group's backend follows the device: NCCL for CUDA, gloo for CPU
(:func:`backend_for`).
"""

from __future__ import annotations

import os

import torch

__all__ = ["backend_for", "local_rank", "resolve"]


def local_rank() -> int | None:
    """This process's ``LOCAL_RANK`` under torchrun (``WORLD_SIZE`` > 1), else None."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    return int(os.environ.get("LOCAL_RANK", "0"))


def resolve(spec: str | torch.device | None = "auto") -> torch.device:
    """The :class:`torch.device` that ``spec`` names for this process.

    Parameters
    ----------
    spec
        ``"cpu"``, ``"cuda"`` (this process's GPU: ``cuda:$LOCAL_RANK`` under torchrun, else the current
        one), ``"cuda:N"``, ``"auto"`` (``cuda`` when a GPU is there, else ``cpu``), a
        :class:`torch.device`, or None (``auto``).

    Raises
    ------
    ValueError
        For an unknown name, or a CUDA device that this machine does not have.
    """
    if isinstance(spec, torch.device):
        spec = str(spec)
    if spec is None:
        spec = "auto"
    if not isinstance(spec, str):
        raise ValueError(f"device must be cpu, cuda, cuda:N or auto, got {spec!r}")
    name = spec.strip().lower()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {spec!r}: CUDA is not available here (torch {torch.__version__}, "
                f"built with CUDA {torch.version.cuda}); use --device cpu or auto"
            )
        if name == "cuda":
            rank = local_rank()
            index = rank if rank is not None else torch.cuda.current_device()
        else:
            try:
                index = int(name[5:])
            except ValueError:
                raise ValueError(f"device {spec!r}: expected cuda:N with an integer N") from None
        count = torch.cuda.device_count()
        if not 0 <= index < count:
            raise ValueError(f"device {spec!r}: this machine has {count} CUDA device(s) (cuda:0 to cuda:{count - 1})")
        return torch.device("cuda", index)
    raise ValueError(f"unknown device {spec!r}; use cpu, cuda, cuda:N or auto")


def backend_for(device: torch.device) -> str:
    """The process-group backend for ``device``: ``"nccl"`` for CUDA, ``"gloo"`` otherwise."""
    return "nccl" if device.type == "cuda" else "gloo"
