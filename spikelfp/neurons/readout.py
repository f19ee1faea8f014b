"""The leaky-integrator readout (LI; NIR ``LI``) and its step function.

.. math:: U[t] = \\beta U[t-1] + I[t], \\qquad \\text{output } U[t]

with ``U[−1] = 0``: no spikes and no reset. Under LFP (LFP-SPEC §9) ``U`` is a sum node over
``{I[t], βU[t−1]}`` whose sign factor is the sign of its own value, ``σ = sign(U[t])`` (``sign(0) = +1``):

.. math::
    r_U[t] = r_{out}[t] + r_{carry}[t], \\quad
    r_I[t] = \\frac{I[t]}{D}\\,\\mathrm{sign}(U[t])\\, r_U[t], \\quad
    r_{carry}[t-1] = \\frac{\\beta U[t-1]}{D}\\,\\mathrm{sign}(U[t])\\, r_U[t]

with ``D = |I[t]| + |βU[t−1]| + ε``, and ``Δβ = Σ r_carry`` for a learnable ``β``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from .core import FamilyNeuron, FamilyState, Structure, decay
from .core import family_step as _family_step

__all__ = ["LI", "LIState", "li_step"]


class LIState(NamedTuple):
    """State of an LI layer after a step: the membrane ``v = U[t]`` (also its output)."""

    v: Tensor


def li_step(i: Tensor, state: LIState | None, beta: float | Tensor) -> tuple[Tensor, LIState]:
    """One LI step (pure): ``(U[t], LIState(U[t]))``."""
    b = beta if isinstance(beta, Tensor) else torch.tensor(float(beta), dtype=i.dtype, device=i.device)
    st = Structure(False, False, 0.0, "none")
    fs = _family_step(i, None if state is None else FamilyState(None, state.v, None), None, b.clamp(0.0, 1.0), st)
    return fs.v, LIState(fs.v)


class LI(FamilyNeuron):
    """Leaky-integrator readout over time-first input: output = membrane ``(T, B, …)``.

    Parameters
    ----------
    beta
        Decay in ``[0, 1]`` (a float or a per-neuron tensor broadcasting over the features).
    learn_beta
        Make ``beta`` an ``nn.Parameter``, clamped to ``[0, 1]`` in the forward.
    """

    spiking = False
    threshold = 0.0
    reset = "none"
    surrogate = None

    def __init__(self, beta: float | Tensor, learn_beta: bool = False) -> None:
        super().__init__()
        decay(self, "beta", beta, learn_beta)

    def _unpack(self, state: Any) -> FamilyState | None:
        if state is None:
            return None
        v = state.v if isinstance(state, LIState) else (state[0] if isinstance(state, tuple) else state)
        return FamilyState(None, v, None)

    def _pack(self, state: FamilyState) -> LIState:
        return LIState(state.v)
