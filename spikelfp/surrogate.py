"""Surrogate-gradient baselines (A.6.3, LFP-SPEC §6).

The forward pass is the same Heaviside; the backward pass uses the fast-sigmoid surrogate, whose
derivative is ``1/(1 + k|U − θ|)²`` with slope ``k = 25`` (snnTorch's ``surrogate.fast_sigmoid``; the
paper writes the function as ``x/(1 + 25|x|)``). The loss is cross-entropy on spike counts
(snnTorch's ``ce_count_loss``). Gradients flow through the membrane recurrence (BPTT) with the reset
detached, as in snnTorch.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch.nn.functional as F
from torch import Tensor, nn

from .neurons import FamilyNeuron

__all__ = ["FastSigmoid", "ce_count_loss", "use"]


class FastSigmoid:
    """Fast-sigmoid surrogate: ``∂S/∂U ≈ 1/(1 + k|U − θ|)²``.

    Parameters
    ----------
    slope
        ``k > 0`` (default 25).
    """

    def __init__(self, slope: float = 25.0) -> None:
        if not slope > 0:
            raise ValueError(f"slope must be > 0, got {slope}")
        self.slope = float(slope)

    def derivative(self, x: Tensor) -> Tensor:
        return 1.0 / (self.slope * x.abs() + 1.0) ** 2

    def __repr__(self) -> str:
        return f"FastSigmoid(slope={self.slope})"


def ce_count_loss(spikes: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """Cross-entropy on spike counts: ``CE(Σ_t S[t], y)`` for output spikes ``(T, B, C)``."""
    if spikes.dim() != 3:
        raise ValueError(f"ce_count_loss expects spikes of shape (T, B, C), got {tuple(spikes.shape)}")
    return F.cross_entropy(spikes.sum(dim=0), target, reduction=reduction)


def _spiking(model: nn.Module) -> list[FamilyNeuron]:
    """spikelfp's spiking neurons in ``model`` (the LI readout has no spike, hence no surrogate)."""
    return [m for m in model.modules() if isinstance(m, FamilyNeuron) and m.spiking]


@contextmanager
def use(model: nn.Module, surrogate: FastSigmoid | None = None):
    """Give every spiking neuron of spikelfp in ``model`` (LIF, CubaLIF, RLIF, RCubaLIF) a surrogate for
    the block, then restore it.

    >>> with use(net, FastSigmoid(25)):
    ...     loss = ce_count_loss(net(x), y); loss.backward()
    """
    surrogate = FastSigmoid() if surrogate is None else surrogate
    lifs = _spiking(model)
    saved = [m.surrogate for m in lifs]
    try:
        for m in lifs:
            m.surrogate = surrogate
        yield model
    finally:
        for m, s in zip(lifs, saved):
            m.surrogate = s


def set_surrogate(model: nn.Module, surrogate: FastSigmoid | None) -> nn.Module:
    """Set (or with None, remove) the surrogate of every spiking neuron in ``model``; returns ``model``."""
    for m in _spiking(model):
        m.surrogate = surrogate
    return model
