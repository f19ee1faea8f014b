"""Helpers shared by the adapters of other libraries' neurons."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def _scalar(module: nn.Module, name: str, value: Any) -> float:
    t = torch.as_tensor(value).detach()
    if t.numel() != 1:
        raise TypeError(f"{type(module).__name__} has a per-neuron {name}; LFP supports one {name} per layer here")
    return float(t)


def _unsupported(module: nn.Module, name: str, what: str) -> TypeError:
    return TypeError(
        f"module '{name}' ({type(module).__module__}.{type(module).__name__}): {what} is not supported by LFP"
    )
