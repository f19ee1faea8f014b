"""The neuron modules: thin holders of a :class:`~spikelfp.neurons.spec.NeuronSpec` and its tensors.

Tensors are time-first, ``(T, B, …)``, and state is explicit (norse's design): ``neuron(x, state)`` runs
every step of ``x`` and returns the output over time, ``neuron.step(x_t, state)`` runs one step on
``(B, …)`` and returns ``(output, state)``; both give identical numbers (the same
:func:`~spikelfp.neurons.functional.step`). A module keeps no state between calls.

A module stores what its spec cannot hold as plain values: a per-neuron decay as a buffer, a learnable one
as an ``nn.Parameter`` (named ``alpha``/``beta``), the recurrent layer as ``.recurrent``. ``module.spec``
is the description with the current values. Setting ``module.threshold``, ``.reset`` or a fixed scalar
``.beta``/``.alpha`` goes through the spec's validation.

Under LFP the engine runs the Functions of :mod:`spikelfp.neurons.lfp` in place of ``forward`` and
``step`` (the recogniser of :mod:`spikelfp.interop` connects them); without LFP the module runs
:mod:`spikelfp.neurons.bptt` (the Heaviside's derivative, or a surrogate's for BPTT baselines).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from . import functional as fn
from .bptt import MultiStepBPTT, StepBPTT, Surrogate, autograd_step
from .spec import NeuronSpec, Reset, check_decay_shape

__all__ = [
    "LI",
    "LIF",
    "RLIF",
    "CubaLI",
    "CubaLIF",
    "CubaLIFState",
    "CubaLIState",
    "FamilyNeuron",
    "LIFState",
    "LIState",
    "RCubaLIF",
    "cuba_step",
    "from_spec",
    "li_step",
    "lif_feed_forward",
    "lif_step",
]


class LIFState(NamedTuple):
    """State of a LIF (or RLIF) layer after a step: membrane ``v = U[t]`` (before the reset of a spike at
    ``t``, which applies at ``t + 1``) and spikes ``s = S[t]`` (0/1, the membrane's dtype)."""

    v: Tensor
    s: Tensor


class CubaLIFState(NamedTuple):
    """State of a CubaLIF (or RCubaLIF) layer after a step: synaptic current ``j = J[t]``, membrane
    ``v = U[t]`` (before the reset of a spike at ``t``), spikes ``s = S[t]``."""

    j: Tensor
    v: Tensor
    s: Tensor


class LIState(NamedTuple):
    """State of an LI layer after a step: the membrane ``v = U[t]`` (also its output)."""

    v: Tensor


class CubaLIState(NamedTuple):
    """State of a CubaLI layer after a step: synaptic current ``j = J[t]`` and membrane ``v = U[t]``."""

    j: Tensor
    v: Tensor


_SPEC_FIELDS = ("threshold", "reset")


class FamilyNeuron(nn.Module):
    """Base of the neuron modules: holds a spec and the tensors it cannot, runs the kernel.

    Parameters
    ----------
    spec
        The neuron. Its per-neuron decays become buffers, learnable ones ``nn.Parameter`` s (copies).
    size
        The number of neurons of a recurrent layer (its ``.recurrent = nn.Linear(size, size, bias=bias)``).
    bias
        Give the recurrent layer a bias.
    surrogate
        Without LFP: None for the Heaviside's derivative (zero), or a surrogate such as
        :class:`spikelfp.surrogate.FastSigmoid` for BPTT baselines. LFP ignores it.
    """

    is_spiking = True  # time-first; the engine expects (T, B, …) input
    state_type: type = LIFState

    def __init__(
        self, spec: NeuronSpec, size: int | None = None, bias: bool = True, surrogate: Surrogate | None = None
    ) -> None:
        super().__init__()
        if not isinstance(spec, NeuronSpec):
            raise TypeError(f"expected a NeuronSpec, got {type(spec).__name__}")
        if spec.recurrent:
            if not isinstance(size, int) or isinstance(size, bool) or size < 1:
                raise ValueError(f"size must be a positive int, got {size!r}")
            self.recurrent = nn.Linear(size, size, bias=bias)
        for name in ("alpha", "beta"):  # before the spec is set: its fields would shadow the names
            value = getattr(spec, name)
            if value is None:
                continue
            if getattr(spec, f"learn_{name}"):
                t = value.detach().clone() if isinstance(value, Tensor) else torch.tensor(value)
                self.register_parameter(name, nn.Parameter(t))
            elif isinstance(value, Tensor):
                self.register_buffer(name, value.detach().clone())
        self._spec = spec
        self.surrogate = surrogate

    # ---- the spec and its fields ------------------------------------------------------------------------
    @property
    def spec(self) -> NeuronSpec:
        """The neuron's :class:`NeuronSpec` with the current decays (tensors detached)."""
        changes = {}
        for name in ("alpha", "beta"):
            value = self._parameters.get(name, self._buffers.get(name))
            if value is not None:  # as the forward uses it: a learnable decay clamped to [0, 1]
                changes[name] = value.detach().clamp(0.0, 1.0)
        return self._spec.replace(**changes) if changes else self._spec

    @property
    def spiking(self) -> bool:
        return self._spec.spiking

    @property
    def synaptic(self) -> bool:
        return self._spec.synaptic

    @property
    def recurrent_layer(self) -> bool:
        return self._spec.recurrent

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            spec = self.__dict__.get("_spec")
            if spec is not None and name in ("threshold", "reset", "alpha", "beta") and getattr(spec, name) is not None:
                return getattr(spec, name)
            raise

    def __setattr__(self, name: str, value: Any) -> None:
        spec = self.__dict__.get("_spec")
        fixed_decay = name in ("alpha", "beta") and not isinstance(value, Tensor) and spec is not None
        if spec is not None and (name in _SPEC_FIELDS or fixed_decay):
            if fixed_decay and (name in self._parameters or name in self._buffers):
                raise TypeError(f"{name} is a tensor of this neuron; change it in place (module.{name}.data)")
            self.__dict__["_spec"] = spec.replace(**{name: value})
            return
        super().__setattr__(name, value)

    # ---- state conversion -----------------------------------------------------------------------------
    def _unpack(self, state: Any) -> fn.State | None:
        if state is None:
            return None
        if not self._spec.spiking and self._spec.synaptic:
            j, v = state if isinstance(state, CubaLIState) else CubaLIState(*state)
            return fn.State(j, v, None)
        if not self._spec.spiking:
            v = state.v if isinstance(state, LIState) else (state[0] if isinstance(state, tuple) else state)
            return fn.State(None, v, None)
        if self._spec.synaptic:
            j, v, s = state if isinstance(state, CubaLIFState) else CubaLIFState(*state)
            return fn.State(j, v, s)
        v, s = state if isinstance(state, LIFState) else LIFState(*state)
        return fn.State(None, v, s)

    def _pack(self, state: fn.State) -> Any:
        if not self._spec.spiking and self._spec.synaptic:
            return CubaLIState(state.j, state.v)
        if not self._spec.spiking:
            return LIState(state.v)
        if self._spec.synaptic:
            return CubaLIFState(state.j, state.v, state.s)
        return LIFState(state.v, state.s)

    # ---- the tensors the kernel takes ----------------------------------------------------------------------
    @property
    def fast(self) -> bool:
        """A LIF with one fixed decay and no recurrence: the kernel's scalar fast path."""
        s = self._spec
        return s.kind == "LIF" and not s.recurrent and isinstance(s.beta, float) and not s.learn_beta and s.standard

    def decay_inputs(self, like: Tensor) -> tuple[Tensor | None, Tensor | None]:
        """The decays as the LFP Functions take them: a learnable one as it is (it receives ``−Δ``), a fixed
        one as a tensor; ``beta`` None on the fast path (the spec's float)."""

        def one(value):
            if isinstance(value, nn.Parameter):
                return value
            if isinstance(value, Tensor):
                return value.to(device=like.device)
            return torch.tensor(float(value), dtype=like.dtype, device=like.device)

        alpha = one(self.alpha) if self._spec.synaptic else None
        return alpha, (None if self.fast else one(self.beta))

    def _autograd_decays(self, like: Tensor) -> tuple[Tensor | None, Tensor]:
        """The decays for the autograd path: clamped to ``[0, 1]`` (with autograd if learnable)."""

        def one(value):
            if isinstance(value, Tensor):
                return value.to(device=like.device).clamp(0.0, 1.0)
            return torch.tensor(float(value), dtype=like.dtype, device=like.device)

        return (one(self.alpha) if self._spec.synaptic else None), one(self.beta)

    def check_features(self, x_t: Tensor) -> None:
        """Refuse one step's input ``(B, …)`` whose features do not fit the decays or the recurrent layer."""
        features = x_t.shape[1:]
        who = type(self).__name__
        check_decay_shape(self.beta, features, "beta", who)
        if self._spec.synaptic:
            check_decay_shape(self.alpha, features, "alpha", who)
        if self._spec.recurrent and (x_t.dim() != 2 or x_t.shape[-1] != self.recurrent.in_features):
            n = self.recurrent.in_features
            raise ValueError(
                f"{who} expects features of size {n} (input (T, B, {n}) or (B, {n}) per step), got {tuple(x_t.shape)}"
            )

    def state_tensors(self, state: Any) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        """``(j, v, s)`` of a state in this module's convention (Nones at rest)."""
        s = self._unpack(state)
        return (None, None, None) if s is None else (s.j, s.v, s.s)

    def recurrent_params(self) -> tuple[Tensor | None, Tensor | None]:
        if not self._spec.recurrent:
            return None, None
        return self.recurrent.weight, self.recurrent.bias

    # ---- without LFP ----------------------------------------------------------------------------------
    def forward(self, x: Tensor, state: Any = None) -> Tensor:
        """Outputs ``(T, B, …)`` (spikes; the membrane for LI) for input currents ``(T, B, …)``."""
        check_time_first(x, type(self).__name__)
        self.check_features(x[0])
        if self.fast:
            _, v0, s0 = self.state_tensors(state)
            return MultiStepBPTT.apply(x, v0, s0, self._spec, self.surrogate)
        fs = self._unpack(state)
        alpha, beta = self._autograd_decays(x)
        rec = self.recurrent if self._spec.recurrent else None
        outs = []
        for t in range(x.shape[0]):
            fs = autograd_step(x[t], fs, alpha, beta, self._spec, self.surrogate, rec)
            outs.append(fs.s if self._spec.spiking else fs.v)
        return torch.stack(outs)

    def step(self, x: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        """One step on ``(B, …)``: ``(output, state)``; identical numbers to the multi-step forward."""
        self.check_features(x)
        if self.fast:
            _, v, s = self.state_tensors(state)
            spikes, u = StepBPTT.apply(x, v, s, self._spec, self.surrogate)
            return spikes, LIFState(u, spikes)
        fs = self._unpack(state)
        alpha, beta = self._autograd_decays(x)
        rec = self.recurrent if self._spec.recurrent else None
        fs = autograd_step(x, fs, alpha, beta, self._spec, self.surrogate, rec)
        return (fs.s if self._spec.spiking else fs.v), self._pack(fs)

    def extra_repr(self) -> str:
        parts = []
        for name in ("alpha", "beta"):
            if name == "alpha" and not self._spec.synaptic:
                continue
            value = getattr(self, name)
            if isinstance(value, nn.Parameter):
                parts.append(f"{name}=learnable{tuple(value.shape)}")
            elif isinstance(value, Tensor):
                parts.append(f"{name}=per-neuron{tuple(value.shape)}")
            else:
                parts.append(f"{name}={value}")
        if self._spec.spiking:
            parts += [f"threshold={self.threshold}", f"reset={self.reset!r}"]
            if self.surrogate is not None:
                parts.append(f"surrogate={self.surrogate!r}")
        return ", ".join(parts)


def check_time_first(x: Any, who: str) -> None:
    """Refuse input that is not a time-first tensor ``(T, B, …)``."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{who} expects a tensor, got {type(x).__name__}")
    if x.dim() < 3:
        raise ValueError(
            f"{who} expects time-first input (T, B, ...) with at least 3 dimensions, got shape "
            f"{tuple(x.shape)}; use {who}.step() for a single step"
        )


class LIF(FamilyNeuron):
    """Leaky integrate-and-fire neurons over time-first input (LFP-SPEC §5; A.14, A.15).

    .. math::
        U[t] = \\beta U[t-1] + I[t] - \\theta S[t-1], \\qquad S[t] = [U[t] > \\theta]

    (zero reset: ``U[t] = β(1 − S[t−1])U[t−1] + I[t]``; ``reset="none"`` drops the reset term), from
    ``U[−1] = 0, S[−1] = 0``. The reset uses the previous step's spike, as snnTorch's ``Leaky`` does.

    ``lif(x)`` runs all steps of ``x`` with shape ``(T, B, …)`` (dense or convolutional features) and
    returns spikes of the same shape. ``lif.step(x_t, state)`` runs one step on ``(B, …)`` and returns
    ``(spikes, LIFState)``.

    Parameters
    ----------
    beta
        Membrane decay: a float in ``[0, 1]``, or a per-neuron tensor in ``[0, 1]`` broadcasting over the
        feature dimensions (e.g. ``(C, 1, 1)`` for conv features). ``β = 1`` is an IF neuron.
    threshold
        Firing threshold ``θ`` (strict ``U > θ``); fixed (a learnable threshold has no LFP update).
    reset
        ``"subtract"`` (``U −= θ`` after a spike), ``"zero"`` or ``"none"``.
    surrogate
        Without LFP: None for the Heaviside's true derivative (zero), or a surrogate such as
        :class:`spikelfp.surrogate.FastSigmoid` for BPTT baselines. LFP ignores it.
    learn_beta
        Make ``beta`` an ``nn.Parameter`` named ``beta`` (clamped to ``[0, 1]`` in the forward), updated
        under LFP by ``Δβ = Σ_{t,b} r_carry[t−1]`` (LFP-SPEC §9), summed to ``β``'s shape.
    """

    def __init__(
        self,
        beta: float | Tensor,
        threshold: float = 1.0,
        reset: Reset = "subtract",
        surrogate: Surrogate | None = None,
        learn_beta: bool = False,
    ) -> None:
        if isinstance(beta, Tensor) and beta.numel() == 1 and not learn_beta and beta.dim() == 0:
            beta = float(beta)
        super().__init__(
            NeuronSpec("LIF", beta, threshold=threshold, reset=reset, learn_beta=learn_beta), surrogate=surrogate
        )


class CubaLIF(FamilyNeuron):
    """Current-based LIF neurons over time-first input (snnTorch ``Synaptic``, NIR ``CubaLIF``; LFP-SPEC §9).

    .. math::
        J[t] = \\alpha J[t-1] + I[t], \\qquad
        U[t] = \\beta U[t-1] + J[t] - \\theta S[t-1], \\qquad
        S[t] = [U[t] > \\theta]

    (zero reset: ``U[t] = β(1 − S[t−1])U[t−1] + J[t]``; ``reset="none"`` drops the reset term). Under LFP
    both states are sum nodes: ``U`` over ``{J[t], βU[t−1]}`` with ``σ = +1`` and ``J`` over
    ``{I[t], αJ[t−1]}`` with ``σ = sign(J[t])``. With ``α = 0`` it is :class:`LIF`. snnTorch
    ``Synaptic(alpha, beta, reset_mechanism="subtract")`` gives the same spikes; its zero reset differs
    (snnTorch sets ``U[t] = (1 − S[t−1])(βU[t−1] + J[t])``, discarding this step's current too).

    Parameters
    ----------
    alpha, beta
        Synaptic and membrane decays in ``[0, 1]``: a float, or a tensor per neuron broadcasting over the
        feature dimensions (e.g. ``(C, 1, 1)`` for conv features).
    threshold, reset, surrogate
        As for :class:`LIF`.
    learn_alpha, learn_beta
        Make the decay an ``nn.Parameter`` (named ``alpha``/``beta``), clamped to ``[0, 1]`` in the forward.
    """

    state_type = CubaLIFState

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
        spec = NeuronSpec(
            "CubaLIF", beta, alpha, threshold=threshold, reset=reset, learn_alpha=learn_alpha, learn_beta=learn_beta
        )
        super().__init__(spec, surrogate=surrogate)


class RLIF(FamilyNeuron):
    """Recurrent LIF neurons over time-first input ``(T, B, size)`` (snnTorch ``RLeaky``; LFP-SPEC §9).

    .. math::
        R[t] = V S[t-1] + b, \\qquad U[t] = \\beta U[t-1] + I[t] + R[t] - \\theta S[t-1]

    with the recurrent layer ``.recurrent = nn.Linear(size, size, bias=bias)``. Under LFP ``U`` is a sum
    node over ``{I[t], R[t], βU[t−1]}``; the share ``r_R[t]`` goes to the rule the composite gives the
    recurrent layer, which distributes it to ``V``, ``b`` and the spikes ``S[t−1]``.

    Parameters
    ----------
    size
        Number of neurons.
    beta
        Membrane decay in ``[0, 1]`` (float or per-neuron tensor of shape ``(size,)``).
    threshold, reset, surrogate
        As for :class:`LIF`.
    bias
        Give the recurrent layer a bias.
    learn_beta
        Make ``beta`` an ``nn.Parameter``, clamped to ``[0, 1]`` in the forward.
    """

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
        spec = NeuronSpec("LIF", beta, threshold=threshold, reset=reset, recurrent=True, learn_beta=learn_beta)
        super().__init__(spec, size, bias, surrogate)


class RCubaLIF(FamilyNeuron):
    """Recurrent current-based LIF neurons over ``(T, B, size)`` (snnTorch ``RSynaptic``; LFP-SPEC §9).

    .. math::
        J[t] = \\alpha J[t-1] + I[t] + R[t], \\qquad U[t] = \\beta U[t-1] + J[t] - \\theta S[t-1]

    with ``R[t] = V S[t−1] + b`` from ``.recurrent``. Under LFP ``J`` is a sum node over
    ``{I[t], R[t], αJ[t−1]}`` (``σ = sign(J[t])``).

    Parameters
    ----------
    size
        Number of neurons.
    alpha, beta
        Synaptic and membrane decays in ``[0, 1]`` (floats or per-neuron tensors of shape ``(size,)``).
    threshold, reset, surrogate
        As for :class:`CubaLIF`.
    bias
        Give the recurrent layer a bias.
    learn_alpha, learn_beta
        Make the decay an ``nn.Parameter``, clamped to ``[0, 1]`` in the forward.
    """

    state_type = CubaLIFState

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
        spec = NeuronSpec(
            "CubaLIF",
            beta,
            alpha,
            threshold=threshold,
            reset=reset,
            recurrent=True,
            learn_alpha=learn_alpha,
            learn_beta=learn_beta,
        )
        super().__init__(spec, size, bias, surrogate)


class LI(FamilyNeuron):
    """Leaky-integrator readout over time-first input (NIR ``LI``): output = membrane ``(T, B, …)``.

    .. math:: U[t] = \\beta U[t-1] + I[t], \\qquad \\text{output } U[t]

    with ``U[−1] = 0``: no spikes and no reset. Under LFP ``U`` is a sum node over ``{I[t], βU[t−1]}`` whose
    sign factor is the sign of its own value, ``σ = sign(U[t])``; ``Δβ = Σ r_carry`` for a learnable ``β``.

    Parameters
    ----------
    beta
        Decay in ``[0, 1]`` (a float or a per-neuron tensor broadcasting over the features).
    learn_beta
        Make ``beta`` an ``nn.Parameter``, clamped to ``[0, 1]`` in the forward.
    """

    state_type = LIState

    def __init__(self, beta: float | Tensor, learn_beta: bool = False) -> None:
        super().__init__(NeuronSpec("LI", beta, reset="none", learn_beta=learn_beta))


class CubaLI(FamilyNeuron):
    """Current-based leaky-integrator readout (NIR ``CubaLI``; norse's ``LICell``): output = membrane.

    .. math:: J[t] = \\alpha J[t-1] + I[t], \\qquad U[t] = \\beta U[t-1] + J[t], \\qquad \\text{output } U[t]

    with the states starting at 0: no spikes and no reset. Under LFP both states are sum nodes whose sign
    factor is the sign of their own value: ``J`` over ``{I[t], αJ[t−1]}`` (``σ = sign(J)``), ``U`` over
    ``{J[t], βU[t−1]}`` (``σ = sign(U)``). With ``α = 0`` it is :class:`LI`.

    Parameters
    ----------
    alpha, beta
        Synaptic and membrane decays in ``[0, 1]`` (floats or per-neuron tensors broadcasting over the features).
    learn_alpha, learn_beta
        Make the decay an ``nn.Parameter``, clamped to ``[0, 1]`` in the forward.
    """

    state_type = CubaLIState

    def __init__(
        self, alpha: float | Tensor, beta: float | Tensor, learn_alpha: bool = False, learn_beta: bool = False
    ) -> None:
        super().__init__(
            NeuronSpec("CubaLI", beta, alpha, reset="none", learn_alpha=learn_alpha, learn_beta=learn_beta)
        )


def from_spec(spec: NeuronSpec, size: int | None = None, bias: bool = True) -> FamilyNeuron:
    """The module of a spec: :class:`LIF`, :class:`CubaLIF`, :class:`RLIF`, :class:`RCubaLIF`, :class:`LI` or
    :class:`CubaLI` holding ``spec`` (its decays copied into buffers or parameters).

    ``size`` (and ``bias``) give a recurrent neuron's layer ``nn.Linear(size, size, bias=bias)``.
    """
    cls = {
        ("LIF", False): LIF,
        ("CubaLIF", False): CubaLIF,
        ("LIF", True): RLIF,
        ("CubaLIF", True): RCubaLIF,
        ("LI", False): LI,
        ("CubaLI", False): CubaLI,
    }.get((spec.kind, spec.recurrent))
    if cls is None:
        raise ValueError(f"no spikelfp module computes a recurrent {spec.kind}")
    module = cls.__new__(cls)
    FamilyNeuron.__init__(module, spec, size, bias)
    return module


def _pure(spec: NeuronSpec, i: Tensor, state: fn.State | None, alpha, beta) -> fn.State:
    def as_tensor(value):
        if value is None:
            return None
        t = value if isinstance(value, Tensor) else torch.tensor(float(value))
        return t.to(dtype=i.dtype, device=i.device).clamp(0.0, 1.0)

    return fn.step(fn.gained(i, spec), state, as_tensor(alpha), as_tensor(beta), spec)


def lif_step(i: Tensor, state: LIFState | None, spec: NeuronSpec) -> tuple[Tensor, LIFState]:
    """One LIF step (pure; what :meth:`LIF.step` runs): ``(S[t], LIFState(U[t], S[t]))``.

    ``spec`` is a ``"LIF"`` :class:`NeuronSpec` (e.g. ``sl.LIF(0.9).spec``). A fixed scalar ``β`` takes the
    kernel's fast path, as the module does.
    """
    if spec.kind != "LIF" or spec.recurrent:
        raise ValueError(f"lif_step needs a feed-forward LIF spec, got kind {spec.kind!r}")
    prev = None if state is None else fn.State(None, *LIFState(*state))
    beta = spec.beta if isinstance(spec.beta, float) else spec.beta.to(dtype=i.dtype, device=i.device).clamp(0, 1)
    new = fn.step(fn.gained(i, spec), prev, None, beta, spec)
    return new.s, LIFState(new.v, new.s)


def cuba_step(
    i: Tensor,
    state: CubaLIFState | None,
    alpha: float | Tensor,
    beta: float | Tensor,
    threshold: float = 1.0,
    reset: Reset = "subtract",
) -> tuple[Tensor, CubaLIFState]:
    """One CubaLIF step (pure): ``(S[t], CubaLIFState(J[t], U[t], S[t]))`` from ``I[t]`` and the state."""
    spec = NeuronSpec("CubaLIF", beta, alpha, threshold=threshold, reset=reset)
    fs = _pure(spec, i, None if state is None else fn.State(*state), alpha, beta)
    return fs.s, CubaLIFState(fs.j, fs.v, fs.s)


def li_step(i: Tensor, state: LIState | None, beta: float | Tensor) -> tuple[Tensor, LIState]:
    """One LI step (pure): ``(U[t], LIState(U[t]))``."""
    spec = NeuronSpec("LI", beta, reset="none")
    fs = _pure(spec, i, None if state is None else fn.State(None, state.v, None), None, beta)
    return fs.v, LIState(fs.v)


def lif_feed_forward(i: Tensor, state: LIFState | None, spec: NeuronSpec) -> tuple[Tensor, Tensor, LIFState]:
    """Run a LIF over a time-first current ``(T, B, …)``: ``(spikes, membranes, final state)``."""
    if spec.kind != "LIF" or spec.recurrent:
        raise ValueError(f"lif_feed_forward needs a feed-forward LIF spec, got kind {spec.kind!r}")
    prev = None if state is None else fn.State(None, *LIFState(*state))
    beta = spec.beta if isinstance(spec.beta, float) else spec.beta.to(dtype=i.dtype, device=i.device).clamp(0, 1)
    tr, last = fn.trace(fn.gained(i, spec), prev, None, beta, spec)
    spikes = tr.s.to(i.dtype)
    return spikes, tr.u, LIFState(last.v, spikes[-1])
