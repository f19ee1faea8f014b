"""Encoders: static inputs to time-first sequences ``(T, B, …)``."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["constant", "latency", "rate", "rows"]


def _check_steps(steps: int) -> int:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    return steps


def constant(x: Tensor, steps: int) -> Tensor:
    """The paper's encoding (A.6.3): the same input at every step, ``(T, *x.shape)``.

    Returns a stride-0 view (no copy); layers that need a contiguous tensor copy it themselves.
    """
    _check_steps(steps)
    return x.unsqueeze(0).expand(steps, *x.shape)


def rate(x: Tensor, steps: int, gain: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
    """Bernoulli rate coding: ``S[t] ~ Bernoulli(clamp(gain·x, 0, 1))`` independently per step,
    like ``snntorch.spikegen.rate``. Returns ``(T, *x.shape)`` spikes in ``x``'s dtype."""
    _check_steps(steps)
    p = (x * gain).clamp(0.0, 1.0)
    u = torch.rand((steps, *x.shape), generator=generator, device=x.device, dtype=x.dtype)
    return (u < p).to(x.dtype)


def latency(x: Tensor, steps: int, threshold: float = 0.01, clip: bool = True) -> Tensor:
    """Linear latency coding: one spike per input, brighter inputs earlier.

    The spike of input ``x ∈ [0, 1]`` comes at ``t = round((T−1)·(1 − max(x, threshold)))``; inputs
    below ``threshold`` do not spike when ``clip`` (else they spike at the last step). This equals
    ``snntorch.spikegen.latency(x, T, threshold=threshold, normalize=True, linear=True, clip=clip)``.
    """
    _check_steps(steps)
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must lie in [0, 1], got {threshold}")
    if x.numel() and (float(x.min()) < 0.0 or float(x.max()) > 1.0):
        raise ValueError("latency coding needs inputs in [0, 1]")
    tau = steps - 1
    time = torch.clamp_max(-tau * (x - 1), -tau * (threshold - 1))
    index = torch.round(time).long().clamp_(0, steps - 1)
    out = torch.zeros((steps, *x.shape), dtype=x.dtype, device=x.device)
    out.scatter_(0, index.unsqueeze(0), 1.0)
    if clip:
        out = out * (x >= threshold).to(x.dtype)
    return out


def rows(x: Tensor) -> Tensor:
    """Sequential reading, one image row per step: ``(B, C, H, W)`` to ``(H, B, C·W)``.

    Row-by-row sequential MNIST is 28 steps of 28 pixels. Unlike :func:`constant`, the steps differ,
    so a network has to remember earlier rows to classify: the task for recurrent neurons
    (:class:`spikelfp.RLIF`) and synaptic currents (:class:`spikelfp.CubaLIF`).
    """
    if not isinstance(x, Tensor) or x.dim() != 4:
        raise ValueError(f"rows encoding needs images (B, C, H, W), got {getattr(x, 'shape', type(x).__name__)}")
    return x.permute(2, 0, 1, 3).flatten(2)
