"""The one description of a neuron: :class:`NeuronSpec` (LFP-SPEC §5, §9).

Every part of spikelfp that needs to know what a neuron computes reads a ``NeuronSpec``: the modules of
:mod:`spikelfp.neurons` hold one, the dynamics kernel (:mod:`spikelfp.neurons.functional`) runs one, the
recogniser of other libraries' neurons (:mod:`spikelfp.interop`) maps snnTorch's and norse's neurons to
one, the Trainer's config, the CLI's choices, NIR and the binary format write and read one. Its
validation below is the only one.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

__all__ = ["KINDS", "RESETS", "NeuronSpec", "check_decay_shape"]

#: the neuron kinds (NIR's names): spiking or not, with or without a synaptic current
KINDS = ("LIF", "CubaLIF", "LI", "CubaLI")
#: what a spike does to the membrane
RESETS = ("subtract", "zero", "none")

Kind = Literal["LIF", "CubaLIF", "LI", "CubaLI"]
Reset = Literal["subtract", "zero", "none"]
Decay = float | Tensor


@dataclass(frozen=True, eq=False)
class NeuronSpec:
    """A neuron of the family: its kind, decays, threshold, reset, input gain, recurrence and what learns.

    With ``S[−1] = 0`` and every state starting at 0, per step ``t`` and per neuron:

    .. math::
        J[t] = \\alpha J[t-1] + g\\,(I[t] + R[t]) \\qquad \\text{(synaptic current: CubaLIF, CubaLI)}

        U[t] = \\beta U[t-1] + C[t] - \\theta S[t-1], \\qquad S[t] = [U[t] > \\theta]

    where the membrane's drive is ``C[t] = J[t]`` with a synaptic current and ``C[t] = g(I[t] + R[t])``
    without one, ``R[t] = V S[t−1] + b`` is the recurrent current (``recurrent=True``; the recurrent
    layer ``(V, b)`` is an ``nn.Linear`` the module holds) and ``g`` the input gain, which multiplies every
    current that enters (1 for spikelfp's and snnTorch's neurons; norse's Euler step integrates
    ``dt·τ_mem⁻¹`` times its current). The reset variants:

    - ``"subtract"``: ``−θS[t−1]`` as above (snnTorch's delayed reset);
    - ``"zero"``: the carried membrane is ``β(1 − S[t−1])U[t−1]`` instead of ``βU[t−1] − θS[t−1]``;
    - ``"none"``: no reset term;
    - ``reset_delay=False``: the reset happens within the step, and the post-reset membrane decays:
      ``U[t] = β·max(U[t−1] − θS[t−1], v_min) + C[t]`` (zero reset: ``β(1 − [S[t−1] > 0])U[t−1]``, the
      same as the delayed zero reset). This is how neuromorphic chips and their toolchains integrate (sinabs,
      rockpool, Xylo: ``V ← V − θn``, then decay). For ``β = 1`` and no floor it equals the delayed reset.
      (snnTorch's own ``reset_delay=False`` differs in how it avoids a double reset; its adapter in
      :mod:`spikelfp.interop.snntorch` runs it.)

    The spike rule: ``spikes="single"`` emits ``S[t] = [U[t] > θ]`` (``fire=">"``, snnTorch's and the
    paper's) or ``[U[t] ≥ θ]`` (``fire=">="``); ``spikes="multi"`` emits the count ``n[t] = ⌊U[t]/θ⌋`` where
    ``U[t] ≥ θ`` (sinabs's ``MultiSpike``, rockpool's ``LIFTorch``), capped at ``max_spikes``, and the
    subtractive reset removes ``θ·n[t]``. ``v_min`` floors the post-reset membrane (sinabs's ``min_v_mem``).

    ``LI`` and ``CubaLI`` (leaky integrators, the readouts) have no spikes and no reset: their output is
    ``U[t]``. ``β = 1`` makes a LIF an IF neuron, an LI an integrator ``I``.

    Under LFP every state is a sum node whose feedback is split over its contributions by the z⁺z⁻ rule
    (:class:`spikelfp.rules.MembraneSplit`); the input gain ``g`` scales a single input, so the feedback
    passes it unchanged.

    Parameters
    ----------
    kind
        ``"LIF"``, ``"CubaLIF"``, ``"LI"`` or ``"CubaLI"``.
    beta
        Membrane decay ``β ∈ [0, 1]``: a float, or a tensor per neuron that broadcasts over the features
        of one sample (e.g. ``(C, 1, 1)`` for conv features).
    alpha
        Synaptic decay ``α ∈ [0, 1]`` (CubaLIF and CubaLI only; None otherwise).
    threshold
        ``θ``, a finite float (strict ``U > θ``). Fixed: a learnable threshold has no LFP update.
    reset
        ``"subtract"``, ``"zero"`` or ``"none"`` (always ``"none"`` for LI and CubaLI).
    reset_delay
        ``True`` (the reset term uses the previous step's spike, undecayed) or ``False`` (the reset happens
        within the step and the post-reset membrane decays).
    spikes
        ``"single"`` (one spike per step at most) or ``"multi"`` (the number of whole thresholds reached).
    fire
        ``">"`` (strict) or ``">="``: the comparison of a single spike (``"multi"`` counts from ``U ≥ θ``).
    max_spikes
        The largest count of a ``"multi"`` neuron per step (None: no cap).
    v_min
        A floor of the post-reset membrane (None: none); needs ``reset_delay=False``.
    gain
        Input gain ``g > 0`` on the input and the recurrent current (1 for spikelfp's neurons; norse's cells
        integrate ``dt·τ_mem⁻¹`` times their current).
    recurrent
        The neuron holds a recurrent ``nn.Linear`` (RLIF, RCubaLIF).
    learn_alpha, learn_beta
        The decay is learnable (an ``nn.Parameter``; the forward clamps it to ``[0, 1]``), updated by LFP
        with ``Δβ = Σ_{t,b} r_carry,U[t−1]`` (``Δα`` likewise), summed to the decay's shape.

    Raises
    ------
    ValueError, TypeError
        For every value outside the above: the message names the field and the value.
    """

    kind: Kind
    beta: Decay
    alpha: Decay | None = None
    threshold: float = 1.0
    reset: Reset = "subtract"
    reset_delay: bool = True
    spikes: Literal["single", "multi"] = "single"
    fire: Literal[">", ">="] = ">"
    max_spikes: int | None = None
    v_min: float | None = None
    gain: float = 1.0
    recurrent: bool = False
    learn_alpha: bool = False
    learn_beta: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"neuron kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        object.__setattr__(self, "beta", _decay("beta", self.beta))
        if self.synaptic:
            if self.alpha is None:
                raise ValueError(f"a {self.kind} neuron needs a synaptic decay alpha")
            object.__setattr__(self, "alpha", _decay("alpha", self.alpha))
        elif self.alpha is not None:
            raise ValueError(f"a {self.kind} neuron has no synaptic current: alpha must be None, got {self.alpha!r}")
        elif self.learn_alpha:
            raise ValueError(f"a {self.kind} neuron has no synaptic decay to learn (learn_alpha=True)")
        object.__setattr__(self, "threshold", _threshold(self.threshold))
        if self.reset not in RESETS:
            raise ValueError(f"reset must be 'subtract', 'zero' or 'none', got {self.reset!r}")
        if not self.spiking and self.reset != "none":
            raise ValueError(f"a {self.kind} readout does not spike, so it has no reset: reset must be 'none'")
        if self.spikes not in ("single", "multi"):
            raise ValueError(f"spikes must be 'single' or 'multi', got {self.spikes!r}")
        if self.fire not in (">", ">="):
            raise ValueError(f"fire must be '>' or '>=', got {self.fire!r}")
        if self.spikes == "multi" and not self.threshold > 0:
            raise ValueError(
                f"a multi-spike neuron counts whole thresholds: threshold must be > 0, got {self.threshold}"
            )
        if self.max_spikes is not None and (
            isinstance(self.max_spikes, bool) or not isinstance(self.max_spikes, int) or self.max_spikes < 1
        ):
            raise ValueError(f"max_spikes must be a positive int or None, got {self.max_spikes!r}")
        if self.v_min is not None:
            if (
                isinstance(self.v_min, bool)
                or not isinstance(self.v_min, (int, float))
                or not math.isfinite(self.v_min)
            ):
                raise ValueError(f"v_min must be a finite number or None, got {self.v_min!r}")
            object.__setattr__(self, "v_min", float(self.v_min))
            if self.reset_delay:
                raise ValueError("v_min floors the post-reset membrane, which needs reset_delay=False")
        if not self.spiking and (
            self.spikes != "single" or self.fire != ">" or self.max_spikes or self.v_min is not None
        ):
            raise ValueError(f"a {self.kind} readout does not spike: spikes, fire, max_spikes and v_min do not apply")
        for name in ("reset_delay", "recurrent", "learn_alpha", "learn_beta"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool, got {getattr(self, name)!r}")
        gain = self.gain
        if isinstance(gain, Tensor):
            gain = float(gain) if gain.numel() == 1 else math.nan
        if not (isinstance(gain, (int, float)) and not isinstance(gain, bool) and math.isfinite(gain) and gain > 0):
            raise ValueError(f"gain must be a finite number > 0, got {self.gain!r}")
        object.__setattr__(self, "gain", float(gain))

    # ---- what it is ---------------------------------------------------------------------------------
    @property
    def spiking(self) -> bool:
        """It spikes and resets (LIF, CubaLIF); LI and CubaLI output their membrane."""
        return self.kind in ("LIF", "CubaLIF")

    @property
    def synaptic(self) -> bool:
        """It has a synaptic-current state ``J`` (CubaLIF, CubaLI)."""
        return self.kind in ("CubaLIF", "CubaLI")

    @property
    def standard(self) -> bool:
        """The paper's spike rule: one spike on ``U > θ``, the reset with a delay, no floor."""
        return self.spikes == "single" and self.fire == ">" and self.reset_delay and self.v_min is None

    @property
    def scalar(self) -> bool:
        """One fixed decay per layer (floats): the kernel's fast path applies to such a LIF."""
        return isinstance(self.beta, float) and (self.alpha is None or isinstance(self.alpha, float))

    def replace(self, **changes: Any) -> NeuronSpec:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NeuronSpec):
            return NotImplemented
        return all(_same(getattr(self, f.name), getattr(other, f.name)) for f in dataclasses.fields(self))

    __hash__ = None  # type: ignore[assignment]  # holds tensors

    # ---- plain values (JSON: config.json, NIR metadata, the binary format) ----------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain values: decays as floats or nested lists (per neuron), with their shape."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Tensor):
                value = {
                    "shape": list(value.shape),
                    "values": value.detach().cpu().to(torch.float64).flatten().tolist(),
                }
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, values: Any) -> NeuronSpec:
        """The spec :meth:`to_dict` wrote; every field validated, unknown keys refused."""
        if not isinstance(values, dict):
            raise ValueError(f"a neuron description must be a mapping, got {type(values).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown neuron setting(s) {', '.join(map(repr, unknown))}")
        if "kind" not in values or "beta" not in values:
            raise ValueError("a neuron description needs at least 'kind' and 'beta'")
        kwargs = {}
        for key, value in values.items():
            if isinstance(value, dict) and set(value) == {"shape", "values"}:
                shape = [int(d) for d in value["shape"]]
                flat = torch.tensor([float(v) for v in value["values"]], dtype=torch.float64)
                if flat.numel() != math.prod(shape):
                    raise ValueError(f"neuron setting {key!r}: {flat.numel()} values for shape {tuple(shape)}")
                value = flat.reshape(shape)
            kwargs[key] = value
        return cls(**kwargs)


def _decay(name: str, value: Any) -> Decay:
    """A decay as a float (one per layer) or a floating tensor per neuron, checked to lie in ``[0, 1]``."""
    if isinstance(value, Tensor):
        if value.requires_grad:
            value = value.detach()
        if not value.is_floating_point():
            value = value.to(torch.get_default_dtype())
        if not bool(torch.isfinite(value).all()) or not bool(((value >= 0) & (value <= 1)).all()):
            raise ValueError(f"{name} must lie in [0, 1], got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number or a tensor, got {type(value).__name__}")
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"{name} must lie in [0, 1], got {value!r}")
    return float(value)


def _threshold(value: Any) -> float:
    if isinstance(value, Tensor):
        if value.requires_grad:
            raise TypeError("a learnable threshold has no LFP update (LFP-SPEC §9); pass a fixed float")
        if value.numel() != 1:
            raise ValueError("threshold must be one number per layer")
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"threshold must be a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"threshold must be finite, got {value!r}")
    return float(value)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        if not (isinstance(a, Tensor) and isinstance(b, Tensor)):
            return False
        return a.shape == b.shape and bool(torch.equal(a.detach().cpu().double(), b.detach().cpu().double()))
    return a == b


def check_decay_shape(value: Decay, features: torch.Size, name: str, who: str) -> None:
    """A per-neuron decay must broadcast over the feature dimensions ``(…)`` of ``(B, …)``."""
    if isinstance(value, Tensor) and value.dim() > 0:
        try:
            shape = torch.broadcast_shapes(value.shape, features)
        except RuntimeError:
            shape = None
        if shape != features:
            raise ValueError(
                f"{who}: {name} of shape {tuple(value.shape)} does not broadcast over the features "
                f"{tuple(features)} of the input"
            )
