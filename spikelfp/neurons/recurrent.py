"""Recurrent spiking neurons: RLIF (snnTorch ``RLeaky``) and RCubaLIF (snnTorch ``RSynaptic``).

Each layer holds its recurrent linear layer as ``.recurrent = nn.Linear(size, size, bias=bias)``,
``R[t] = V·S[t−1] + b`` (``S[−1] = 0``, so ``R[0] = b``):

.. math::
    \\text{RLIF:}\\quad U[t] = \\beta U[t-1] + I[t] + R[t] - \\theta S[t-1]

    \\text{RCubaLIF:}\\quad J[t] = \\alpha J[t-1] + I[t] + R[t], \\quad U[t] = \\beta U[t-1] + J[t] - \\theta S[t-1]

Under LFP (LFP-SPEC §9) ``U`` of RLIF is a sum node over ``{I[t], R[t], βU[t−1]}`` (``σ = +1``), ``J`` of
RCubaLIF over ``{I[t], R[t], αJ[t−1]}`` (``σ = sign(J[t])``). The share ``r_R[t]`` goes to the rule the
composite gives the recurrent layer (ε under ``"epsilon"``, z⁺z⁻ under ``"zplus-zminus"``, …), which
distributes it to ``V``, ``b`` and the spikes ``S[t−1]``; what reaches ``S[t−1]`` adds to their
feedback at step ``t − 1``. ``ΔV`` and ``Δb`` add up over ``t``. The multi-step backward is one reverse
loop over ``t``; the recurrent feedback stays inside the layer (it is not max-normalised).

Without LFP both run BPTT through the same dynamics (the reset detached, the surrogate's derivative
through the spikes that feed the recurrent layer), as snnTorch's ``RLeaky``/``RSynaptic`` do.
"""

from __future__ import annotations

from torch import Tensor, nn

from .core import FamilyNeuron, Reset, Surrogate, check_reset, check_threshold, decay
from .cuba import CubaLIF
from .lif import LIF

__all__ = ["RLIF", "RCubaLIF"]


def _size(size: int) -> int:
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ValueError(f"size must be a positive int, got {size!r}")
    return size


class RLIF(FamilyNeuron):
    """Recurrent LIF neurons over time-first input ``(T, B, size)`` (see the module docstring).

    Parameters
    ----------
    size
        Number of neurons (the recurrent layer is ``nn.Linear(size, size, bias=bias)``).
    beta
        Membrane decay in ``[0, 1]`` (float or per-neuron tensor of shape ``(size,)``).
    threshold, reset, surrogate
        As for :class:`~spikelfp.LIF`; ``reset`` may also be ``"none"``.
    bias
        Give the recurrent layer a bias.
    learn_beta
        Make ``beta`` an ``nn.Parameter``, clamped to ``[0, 1]`` in the forward.
    """

    recurrent_layer = True

    def __init__(
        self,
        size: int,
        beta: float | Tensor,
        threshold: float = 1.0,
        reset: Reset = "subtract",
        bias: bool = True,
        learn_beta: bool = False,
        surrogate: Surrogate | None = None,
    ) -> None:
        super().__init__()
        self.recurrent = nn.Linear(_size(size), size, bias=bias)
        decay(self, "beta", beta, learn_beta)
        self.threshold = check_threshold(threshold)
        self.reset = check_reset(reset)
        self.surrogate = surrogate

    # the state is LIF's: LIFState(v, s)
    _unpack = LIF._unpack
    _pack = LIF._pack


class RCubaLIF(FamilyNeuron):
    """Recurrent current-based LIF neurons over time-first input ``(T, B, size)`` (see the module docstring).

    Parameters
    ----------
    size
        Number of neurons (the recurrent layer is ``nn.Linear(size, size, bias=bias)``).
    alpha, beta
        Synaptic and membrane decays in ``[0, 1]`` (floats or per-neuron tensors of shape ``(size,)``).
    threshold, reset, surrogate
        As for :class:`~spikelfp.CubaLIF`.
    bias
        Give the recurrent layer a bias.
    learn_alpha, learn_beta
        Make the decay an ``nn.Parameter``, clamped to ``[0, 1]`` in the forward.
    """

    synaptic = True
    recurrent_layer = True

    def __init__(
        self,
        size: int,
        alpha: float | Tensor,
        beta: float | Tensor,
        threshold: float = 1.0,
        reset: Reset = "subtract",
        bias: bool = True,
        learn_alpha: bool = False,
        learn_beta: bool = False,
        surrogate: Surrogate | None = None,
    ) -> None:
        super().__init__()
        self.recurrent = nn.Linear(_size(size), size, bias=bias)
        decay(self, "alpha", alpha, learn_alpha)
        decay(self, "beta", beta, learn_beta)
        self.threshold = check_threshold(threshold)
        self.reset = check_reset(reset)
        self.surrogate = surrogate

    # the state is CubaLIF's: CubaLIFState(j, v, s)
    _unpack = CubaLIF._unpack
    _pack = CubaLIF._pack
