"""The current-based LIF neuron (CubaLIF; snnTorch ``Synaptic``, NIR ``CubaLIF``) and its step function.

.. math::
    J[t] = \\alpha J[t-1] + I[t], \\qquad
    U[t] = \\beta U[t-1] + J[t] - \\theta S[t-1], \\qquad
    S[t] = [U[t] > \\theta]

(zero reset: ``U[t] = β(1 − S[t−1])U[t−1] + J[t]``; ``reset="none"`` drops the reset term), with
``S[−1] = 0`` and the states starting at 0. Under LFP (LFP-SPEC §9) both states are sum nodes:
``U`` over ``{J[t], βU[t−1]}`` with ``σ = +1`` and ``J`` over ``{I[t], αJ[t−1]}`` with ``σ = sign(J[t])``:

.. math::
    r_J[t] = \\frac{J[t]}{|J[t]| + |k_U[t]| + \\varepsilon} r_U[t] + r_{carry,J}[t], \\qquad
    r_I[t] = \\frac{I[t]}{|I[t]| + |\\alpha J[t-1]| + \\varepsilon}\\,\\mathrm{sign}(J[t])\\, r_J[t]

and ``Δα = Σ r_carry,J``, ``Δβ = Σ r_carry,U`` for learnable decays. With ``α = 0`` it is
:class:`~spikelfp.LIF` (up to the ``ε`` in the split of the single-contribution ``J``).

snnTorch ``Synaptic(alpha, beta, reset_mechanism="subtract")`` is the same spike for spike. Its zero
reset differs: snnTorch sets ``U[t] = (1 − S[t−1])(βU[t−1] + J[t])``, discarding this step's current too,
while spikelfp zeroes only the carried membrane, as its LIF does.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from .core import FamilyNeuron, FamilyState, Reset, Structure, Surrogate, check_reset, check_threshold, decay
from .core import family_step as _family_step

__all__ = ["CubaLIF", "CubaLIFState", "cuba_step"]


class CubaLIFState(NamedTuple):
    """State of a CubaLIF layer after a step: synaptic current ``j = J[t]``, membrane ``v = U[t]``
    (before the reset of a spike at ``t``), spikes ``s = S[t]``."""

    j: Tensor
    v: Tensor
    s: Tensor


def cuba_step(
    i: Tensor,
    state: CubaLIFState | None,
    alpha: float | Tensor,
    beta: float | Tensor,
    threshold: float = 1.0,
    reset: Reset = "subtract",
) -> tuple[Tensor, CubaLIFState]:
    """One CubaLIF step (pure): ``(S[t], CubaLIFState(J[t], U[t], S[t]))`` from ``I[t]`` and the state."""
    st = Structure(True, True, check_threshold(threshold), check_reset(reset))
    fs = _family_step(i, None if state is None else FamilyState(*state), _tensor(alpha, i), _tensor(beta, i), st)
    return fs.s, CubaLIFState(fs.j, fs.v, fs.s)


def _tensor(value: float | Tensor, like: Tensor) -> Tensor:
    if isinstance(value, Tensor):
        return value.to(dtype=like.dtype, device=like.device).clamp(0.0, 1.0)
    return torch.tensor(float(value), dtype=like.dtype, device=like.device).clamp(0.0, 1.0)


class CubaLIF(FamilyNeuron):
    """Current-based LIF neurons over time-first input (see the module docstring).

    ``cuba(x)`` runs all steps of ``x`` ``(T, B, …)`` (dense or convolutional features) and returns spikes
    of the same shape; ``cuba.step(x_t, state)`` runs one step and returns ``(spikes, CubaLIFState)``.

    Parameters
    ----------
    alpha, beta
        Synaptic and membrane decays in ``[0, 1]``: a float, or a tensor per neuron broadcasting over the
        feature dimensions (e.g. ``(C, 1, 1)`` for conv features).
    threshold
        ``θ`` (strict ``U > θ``); fixed (a learnable threshold has no LFP update).
    reset
        ``"subtract"``, ``"zero"`` or ``"none"``.
    learn_alpha, learn_beta
        Make the decay an ``nn.Parameter`` (named ``alpha``/``beta``), clamped to ``[0, 1]`` in the forward.
    surrogate
        Without LFP: None for the Heaviside's derivative (zero), or e.g. ``sl.surrogate.FastSigmoid()``
        for BPTT. LFP ignores it.
    """

    synaptic = True

    def __init__(
        self,
        alpha: float | Tensor,
        beta: float | Tensor,
        threshold: float = 1.0,
        reset: Reset = "subtract",
        learn_alpha: bool = False,
        learn_beta: bool = False,
        surrogate: Surrogate | None = None,
    ) -> None:
        super().__init__()
        decay(self, "alpha", alpha, learn_alpha)
        decay(self, "beta", beta, learn_beta)
        self.threshold = check_threshold(threshold)
        self.reset = check_reset(reset)
        self.surrogate = surrogate

    def _unpack(self, state: Any) -> FamilyState | None:
        if state is None:
            return None
        j, v, s = state if isinstance(state, CubaLIFState) else CubaLIFState(*state)
        return FamilyState(j, v, s)

    def _pack(self, state: FamilyState) -> CubaLIFState:
        return CubaLIFState(state.j, state.v, state.s)
