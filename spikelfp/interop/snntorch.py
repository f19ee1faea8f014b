"""snnTorch's neurons: each maps to a :class:`~spikelfp.neurons.spec.NeuronSpec` and keeps its call signature.

While LFP is attached, a snnTorch neuron's forward runs one step of the family's
:class:`~spikelfp.neurons.lfp.StepLFP` (LFP-SPEC §9), so a user's snnTorch-style step loop trains by LFP
unchanged and produces the same spikes. snnTorch's ``mem`` is the pre-reset membrane ``U[t]`` and its reset
signal ``H(mem[t−1] − θ)`` is ``S[t−1]``:

- ``Leaky(beta, threshold, reset_mechanism)`` is ``sl.LIF`` (``β`` scalar or per neuron, learnable or not);
- ``Synaptic(alpha, beta, …)`` is ``sl.CubaLIF`` (``"subtract"``, ``"none"``);
- ``RLeaky``/``RSynaptic`` with ``linear_features=n`` are ``sl.RLIF``/``sl.RCubaLIF``, ``R[t] = V·S[t−1] + b``
  from snnTorch's ``recurrent`` ``nn.Linear``, whose feedback and updates follow the composite's rule for it;
- ``Lapicque(R, C, time_step)`` is ``sl.LIF(β = 1 − Δt/(RC))`` on the input scaled by ``Δt/C``.

``reset_delay=False`` (``Leaky``, ``Synaptic``) resets within the step: snnTorch's state is then the post-reset
membrane ``U[t] − θ(S[t] − S̃[t])`` (zero: ``U[t] − (S[t] − S̃[t])·U[t]``), with ``S̃[t] = H(mem[t−1] − θ)`` the
delayed reset signal already applied inside ``U[t]``; it is carried into ``k[t+1]``. The reset is a gate, not
a contribution: the feedback of the post-reset state passes to ``U[t]`` unchanged.

Refused, with the reason: a learnable threshold (no LFP update), snnTorch's delayed zero reset of
``Synaptic``/``RLeaky``/``RSynaptic``/``Lapicque`` (it sets ``U[t] = (1 − S[t−1])·(βU[t−1] + …)``, discarding
this step's input too), ``reset_delay=False`` on a recurrent neuron with a reset, graded spikes, inhibition,
state quantisation, one-to-one and convolutional recurrence; ``Alpha``, ``SLSTM``, ``SConv2dLSTM``,
``DeltaLeaky`` have no LFP rule.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from ..lfp.rules import _PassThroughFunction
from ..neurons import NeuronSpec
from ..neurons.lfp import StepLFP, neuron_site, recurrent_rule
from .registry import ENTRIES, Neuron, Unsupported

__all__ = ["spec_of"]

_RESETS = {0: "subtract", 1: "zero", 2: "none"}


def _scalar(module: nn.Module, name: str, value: Any) -> float:
    t = torch.as_tensor(value).detach()
    if t.numel() != 1:
        raise Unsupported(f"a per-neuron {name} ({type(module).__name__} supports one {name} per layer here)")
    return float(t)


def _decay_value(module: nn.Module, attr: str) -> float | Tensor:
    """The decay for the spec: clamped to ``[0, 1]`` as snnTorch's forward clamps it."""
    value = getattr(module, attr)
    t = torch.as_tensor(value).detach().clamp(0.0, 1.0)
    return t.clone() if t.numel() > 1 else float(t)


def _learnable(module: nn.Module, attr: str) -> bool:
    value = getattr(module, attr, None)
    return isinstance(value, nn.Parameter) and value.requires_grad


def spec_of(module: nn.Module, synaptic: bool, recurrent: bool, zero_drops_input: bool) -> NeuronSpec:
    """The spec of a snnTorch neuron, after refusing (:class:`Unsupported`) what LFP does not support.

    ``zero_drops_input``: snnTorch's delayed zero reset of this neuron multiplies the whole new membrane by
    ``1 − S[t−1]`` (Synaptic, RLeaky, RSynaptic, Lapicque), discarding the step's input.
    """
    reset = _RESETS.get(int(module.reset_mechanism_val))
    if reset is None:  # pragma: no cover - snnTorch knows only these three
        raise Unsupported(f"reset_mechanism_val={module.reset_mechanism_val}")
    th = module.threshold
    if isinstance(th, nn.Parameter) and th.requires_grad:
        raise Unsupported("a learnable threshold (it has no LFP update, LFP-SPEC §9)")
    threshold = _scalar(module, "threshold", th)
    if threshold < 0:
        raise Unsupported("a negative threshold (snnTorch's reset signal H(0 − θ) already fires at the resting state)")
    delayed = bool(getattr(module, "reset_delay", True))
    if reset == "zero" and zero_drops_input and delayed:
        raise Unsupported(
            "reset_mechanism='zero' with reset_delay=True (snnTorch's delayed zero reset of this neuron sets "
            "U[t] = (1 − S[t−1])·(βU[t−1] + input), discarding this step's input too, which no LFP-SPEC §9 neuron "
            "does; use reset_delay=False, 'subtract' or 'none')"
        )
    if getattr(module, "state_quant", False) or getattr(module, "inhibition", False):
        raise Unsupported("state quantisation or inhibition")
    gsf = module.graded_spikes_factor
    if (isinstance(gsf, nn.Parameter) and gsf.requires_grad) or _scalar(module, "graded_spikes_factor", gsf) != 1.0:
        raise Unsupported("graded spikes")
    if recurrent and getattr(module, "all_to_all", True) and not isinstance(module.recurrent, nn.Linear):
        raise Unsupported("convolutional recurrence (only an nn.Linear recurrent layer)")
    return NeuronSpec(
        "CubaLIF" if synaptic else "LIF",
        _decay_value(module, "beta"),
        _decay_value(module, "alpha") if synaptic else None,
        threshold=threshold,
        reset=reset,
        reset_delay=delayed,
        recurrent=recurrent,
        learn_alpha=synaptic and _learnable(module, "alpha"),
        learn_beta=_learnable(module, "beta"),
    )


def _lfp_recurrence(module: nn.Module, name: str, spec: NeuronSpec) -> None:
    """What LFP cannot train of a recurrent neuron that NIR can still describe."""
    where = f"module '{name}' ({type(module).__module__}.{type(module).__name__})"
    if not getattr(module, "all_to_all", True):
        raise TypeError(
            f"{where}: one-to-one recurrence (all_to_all=False: R = V·S[t−1] is no layer the composite has a rule "
            "for, and the rules differ on it; the exact replacement is all_to_all=True with linear_features, "
            "recurrent.weight = diag(V) and a zero bias: zero weights get no LFP update) is not supported by LFP"
        )
    if not spec.reset_delay and spec.reset != "none":
        raise TypeError(
            f"{where}: reset_delay=False on a recurrent neuron (its recurrent input S[t−1] and its delayed reset "
            "signal H(mem[t−1] − θ) then differ, while the family's step takes one S[t−1] for both) is not "
            "supported by LFP"
        )


def _decay_input(module: nn.Module, attr: str) -> Tensor:
    """The decay as the Function's input: the parameter itself when learnable (it receives ``−Δ``)."""
    value = getattr(module, attr)
    if isinstance(value, nn.Parameter) and not value.requires_grad:
        return value.detach()
    return value if isinstance(value, Tensor) else torch.as_tensor(float(value))


def _state(value: Any, like: Tensor) -> Tensor | None:
    """A state tensor of the input's shape, or None (snnTorch's lazily sized initial states mean 'at rest')."""
    return value if isinstance(value, Tensor) and value.shape == like.shape else None


def _reset_signal(mem: Tensor | None, threshold: float) -> Tensor | None:
    """snnTorch's reset signal ``H(mem[t−1] − θ)``, i.e. ``S[t−1]`` (not part of the feedback path)."""
    return None if mem is None else (mem.detach() > threshold).to(mem.dtype)


def _post_reset(spec: NeuronSpec) -> Callable[[Tensor, Tensor, Tensor | None], Tensor]:
    """snnTorch's state after the step: ``U[t]`` (``reset_delay=True``), or with ``reset_delay=False`` its
    post-reset membrane ``U[t] − θ(S[t] − S̃)`` (subtract) / ``U[t] − (S[t] − S̃)·U[t]`` (zero): snnTorch's own
    arithmetic, on the feedback path as a gate (a rule node that passes the feedback unchanged)."""
    if spec.reset_delay or spec.reset == "none":
        return lambda u, spikes, signal: u
    th = spec.threshold

    def post(u: Tensor, spikes: Tensor, signal: Tensor | None) -> Tensor:
        do_reset = spikes.detach() if signal is None else spikes.detach() - signal
        if spec.reset == "subtract":
            return _PassThroughFunction.apply(u, lambda t: t - do_reset * th)
        return _PassThroughFunction.apply(u, lambda t: t - do_reset * t)

    return post


class _Adapter:
    """snnTorch's call convention: ``forward(input, *states)``, ``init_hidden`` states kept on the module."""

    #: the state attributes in the order snnTorch takes and returns them
    states: tuple[str, ...] = ("mem",)

    def spikes(self, output: Any) -> Tensor:
        return output[0] if isinstance(output, (tuple, list)) else output

    def reset_state(self, module: nn.Module) -> None:
        if getattr(module, "init_hidden", False) is True and callable(getattr(module, "reset_mem", None)):
            module.reset_mem()

    def _stepper(self, neuron: Neuron, module: nn.Module, rule: Any, name: str, run):
        """``step(i, j, v, s) -> (S, J, U)`` on the family's Function, with this neuron's tensors."""
        spec = neuron.spec
        if spec.recurrent:
            _lfp_recurrence(module, name, spec)
        kernel = spec.replace(reset_delay=True)  # snnTorch's own same-step reset is applied by _post_reset
        rec_rule = recurrent_rule(run, module, name) if spec.recurrent else None
        alpha_in = _decay_input(module, "alpha") if spec.synaptic else None
        beta_in = _decay_input(module, "beta")

        def step(i: Tensor, j: Tensor | None, v: Tensor | None, s: Tensor | None):
            weight = module.recurrent.weight if spec.recurrent else None
            bias = module.recurrent.bias if spec.recurrent else None
            if v is None and j is not None:
                v = torch.zeros_like(i)
            if v is not None and spec.synaptic and j is None:
                j = torch.zeros_like(i)
            if v is None:
                s = None
            site = neuron_site(rule, run, name, kernel, rec_rule)
            a = None if alpha_in is None else alpha_in.to(device=i.device)
            return StepLFP.apply(i, weight, bias, a, beta_in.to(device=i.device), j, v, s, site)

        return step

    def _hidden(self, module: nn.Module, given: tuple, message: str) -> tuple:
        if module.init_hidden:
            if any(g is not None for g in given):
                raise TypeError(message)
            return tuple(getattr(module, n) for n in self.states)
        return given

    def _result(self, module: nn.Module, spikes: Tensor, values: tuple) -> Any:
        if module.init_hidden:
            for attr, value in zip(self.states, values):
                setattr(module, attr, value)
            return (spikes, *values[-(len(values)) :]) if module.output else spikes
        return (spikes, *values)


class _Leaky(_Adapter):
    def lfp(self, neuron: Neuron, module: nn.Module, rule: Any, name: str, run) -> dict[str, Callable]:
        step, post, th = self._stepper(neuron, module, rule, name, run), _post_reset(neuron.spec), neuron.spec.threshold

        def forward(input_: Tensor, mem: Tensor | None = None):
            (mem,) = self._hidden(module, (mem,), "`mem` should not be passed as an argument while `init_hidden=True`")
            v = _state(mem, input_)
            signal = _reset_signal(v, th)
            spikes, _, u = step(input_, None, v, signal)
            u = post(u, spikes, signal)
            return self._result(module, spikes, (u,))

        return {"forward": forward}


class _Synaptic(_Adapter):
    states = ("syn", "mem")

    def lfp(self, neuron: Neuron, module: nn.Module, rule: Any, name: str, run) -> dict[str, Callable]:
        step, post, th = self._stepper(neuron, module, rule, name, run), _post_reset(neuron.spec), neuron.spec.threshold

        def forward(input_: Tensor, syn: Tensor | None = None, mem: Tensor | None = None):
            syn, mem = self._hidden(
                module, (syn, mem), "`mem` or `syn` should not be passed as an argument while `init_hidden=True`"
            )
            j, v = _state(syn, input_), _state(mem, input_)
            signal = _reset_signal(v, th)
            spikes, j_new, u = step(input_, j, v, signal)
            u = post(u, spikes, signal)
            return self._result(module, spikes, (j_new, u))

        return {"forward": forward}


class _Recurrent(_Adapter):
    def __init__(self, synaptic: bool) -> None:
        self.synaptic = synaptic
        self.states = ("spk", "syn", "mem") if synaptic else ("spk", "mem")

    def lfp(self, neuron: Neuron, module: nn.Module, rule: Any, name: str, run) -> dict[str, Callable]:
        step = self._stepper(neuron, module, rule, name, run)
        cls = "RSynaptic" if self.synaptic else "RLeaky"
        message = f"When `init_hidden=True`, {cls} expects 1 input argument."

        def forward(input_: Tensor, *states: Tensor | None):
            given = tuple(states) + (None,) * (len(self.states) - len(states))
            values = self._hidden(module, given, message)
            spk, mem = values[0], values[-1]
            syn = values[1] if self.synaptic else None
            j, v, s = _state(syn, input_), _state(mem, input_), _state(spk, input_)
            spikes, j_new, u = step(input_, j, v, s if v is not None else None)
            new = (spikes, j_new, u) if self.synaptic else (spikes, u)
            if module.init_hidden:
                for attr, value in zip(self.states, new):
                    setattr(module, attr, value)
                return new if module.output else spikes
            return new

        return {"forward": forward}


class _Lapicque(_Adapter):
    """``Lapicque`` as ``sl.LIF(β = 1 − Δt/(RC))`` on the input ``I·R·(1/(RC))·Δt`` (snnTorch's order)."""

    def lfp(self, neuron: Neuron, module: nn.Module, rule: Any, name: str, run) -> dict[str, Callable]:
        # the gain is applied below in snnTorch's order of operations; its same-step reset by _post_reset
        spec = neuron.spec.replace(gain=1.0, reset_delay=True)
        post = _post_reset(neuron.spec)
        r_, c_, dt = module.R, module.C, module.time_step
        beta_in = torch.as_tensor(1 - (dt / (r_ * c_)))

        def scale(t: Tensor) -> Tensor:
            return t * r_ * (1 / (r_ * c_)) * dt

        def forward(input_: Tensor, mem: Tensor | None = None):
            (mem,) = self._hidden(module, (mem,), "`mem` should not be passed as an argument while `init_hidden=True`")
            v = _state(mem, input_)
            current = _PassThroughFunction.apply(input_, scale)  # one input per output: feedback passes unchanged
            s = _reset_signal(v, spec.threshold)
            site = neuron_site(rule, run, name, spec, None)
            spikes, _, u = StepLFP.apply(
                current, None, None, None, beta_in.to(input_.device), None, v, None if v is None else s, site
            )
            u = post(u, spikes, s)
            return self._result(module, spikes, (u,))

        return {"forward": forward}


def _lapicque(module: nn.Module) -> Neuron:
    for p_name in ("beta", "R", "C"):
        p = getattr(module, p_name, None)
        if isinstance(p, nn.Parameter) and p.requires_grad:
            raise Unsupported(f"a learnable {p_name} (Lapicque's decay is computed from R and C)")
    r_, c_, dt = module.R, module.C, module.time_step
    beta = 1 - (dt / (r_ * c_))  # snnTorch's expression (it does not clamp it)
    if not bool(((torch.as_tensor(beta) >= 0) & (torch.as_tensor(beta) <= 1)).all()):
        raise Unsupported(f"a decay 1 − Δt/(RC) = {beta} outside [0, 1]")
    spec = spec_of(module, synaptic=False, recurrent=False, zero_drops_input=True)
    gain = float(torch.as_tensor(r_ * (1 / (r_ * c_)) * dt))
    spec = spec.replace(beta=float(torch.as_tensor(beta)), gain=gain)
    return Neuron(spec, "snntorch", "Lapicque", True, _Lapicque())


def _make(cls: str, adapter: _Adapter, synaptic: bool, recurrent: bool, zero_drops_input: bool):
    def make(module: nn.Module) -> Neuron:
        spec = spec_of(module, synaptic, recurrent, zero_drops_input)
        rec = pair = None
        if recurrent and getattr(module, "all_to_all", True):
            rec = module.recurrent
            pair = (rec.weight, rec.bias)
        elif recurrent:  # one-to-one: R = V ⊙ S[t−1], a diagonal weight matrix (a scalar V fixes no size)
            v = module.recurrent.V.detach().reshape(-1)
            pair = (torch.diag(v), None) if v.numel() > 1 else None
        return Neuron(spec, "snntorch", cls, True, adapter, pair, None, rec)

    return make


def _no_lfp_rule(cls: str, reason: str):
    def make(module: nn.Module) -> Neuron:
        raise Unsupported(reason)

    return make


ENTRIES.extend(
    [
        ("snntorch._neurons.leaky", "Leaky", _make("Leaky", _Leaky(), False, False, False)),
        ("snntorch._neurons.synaptic", "Synaptic", _make("Synaptic", _Synaptic(), True, False, True)),
        ("snntorch._neurons.rleaky", "RLeaky", _make("RLeaky", _Recurrent(False), False, True, True)),
        ("snntorch._neurons.rsynaptic", "RSynaptic", _make("RSynaptic", _Recurrent(True), True, True, True)),
        ("snntorch._neurons.lapicque", "Lapicque", _lapicque),
        (
            "snntorch._neurons.alpha",
            "Alpha",
            _no_lfp_rule(
                "Alpha",
                "its membrane is the difference of two synaptic currents (excitatory minus inhibitory), a "
                "dual-exponential kernel that is not a sum node of LFP-SPEC §9",
            ),
        ),
        (
            "snntorch._neurons.deltaleaky",
            "DeltaLeaky",
            _no_lfp_rule(
                "DeltaLeaky",
                "it fires on the change of the membrane between steps, a difference that is not a sum node",
            ),
        ),
        (
            "snntorch._neurons.slstm",
            "SLSTM",
            _no_lfp_rule("SLSTM", "its LSTM gates are products of states, which no LFP rule splits"),
        ),
        (
            "snntorch._neurons.sconv2dlstm",
            "SConv2dLSTM",
            _no_lfp_rule("SConv2dLSTM", "its LSTM gates are products of states, which no LFP rule splits"),
        ),
    ]
)


def no_mapping(module: nn.Module) -> Neuron:
    """A snnTorch neuron class spikelfp has no mapping for (refused by name)."""
    raise Unsupported(f"spikelfp has no mapping of snnTorch's {type(module).__name__} to a neuron of the family")
