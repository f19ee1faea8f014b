"""snnTorch's neurons under LFP: each runs through the neuron family's step Function with its own call signature.

While LFP is attached, a snnTorch neuron's forward is replaced by one step of
:class:`~spikelfp.neurons.core.FamilyStepLFP` (LFP-SPEC §9), so a user's snnTorch-style step loop trains by LFP
unchanged and produces the same spikes. The equivalences (checked in ``tests/test_interop.py`` and
``tests/test_interop_family.py``), with snnTorch's ``mem`` the pre-reset membrane ``U[t]`` and its reset signal
``H(mem[t−1] − θ) = S[t−1]``:

- ``Leaky(beta, threshold, reset_mechanism)`` is ``sl.LIF``: ``U[t] = βU[t−1] + I[t] − θS[t−1]`` (``"zero"``:
  ``β(1−S[t−1])U[t−1]``; ``"none"``: no reset term); ``β`` a scalar or per-neuron tensor, learnable or not.
- ``Synaptic(alpha, beta, …)`` is ``sl.CubaLIF``: ``J[t] = αJ[t−1] + I[t]``, ``U[t] = βU[t−1] + J[t] − θS[t−1]``
  (``"subtract"`` and ``"none"``).
- ``RLeaky(beta, linear_features=n)`` / ``RSynaptic(alpha, beta, linear_features=n)`` are ``sl.RLIF`` /
  ``sl.RCubaLIF`` with ``R[t] = V·S[t−1] + b`` from snnTorch's ``recurrent`` ``nn.Linear``, whose feedback and
  updates follow the composite's rule for that Linear.
- ``Lapicque(R, C, time_step)`` is ``sl.LIF(β = 1 − Δt/(RC))`` on the input scaled by ``Δt/C``; the gain is a
  single-input scaling, so the feedback passes it unchanged (a rule node).

A learnable decay (``learn_beta``/``learn_alpha``) receives ``p.grad = −Δβ`` with ``Δβ = Σ_{t,b} r_carry[t−1]``.

``reset_delay=False`` (``Leaky``, ``Synaptic``) resets within the step: snnTorch's state is then the post-reset
membrane ``U[t] − θ(S[t] − S̃[t])`` (zero: ``U[t] − (S[t] − S̃[t])·U[t]``), with ``S̃[t] = H(mem[t−1] − θ)`` the
delayed reset signal already applied inside ``U[t]``; it is carried into ``k[t+1]`` (LFP-SPEC §9, "Reset
variants"). The reset is a gate, not a contribution: the feedback of the post-reset state passes to ``U[t]``
unchanged. For the zero reset (θ ≥ 0) this is exactly the family's zero reset.

Refused by name (each a ``TypeError`` naming the module): a learnable threshold (no LFP update), snnTorch's
delayed zero reset of ``Synaptic``/``RLeaky``/``RSynaptic``/``Lapicque`` (it sets
``U[t] = (1 − S[t−1])·(βU[t−1] + …)``, discarding this step's input too, which no §9 neuron does),
``reset_delay=False`` on a recurrent neuron with a reset (its recurrent input ``S[t−1]`` and its reset signal
``H(mem[t−1] − θ)`` then differ; the family's step takes one), graded spikes, inhibition, state quantisation,
one-to-one recurrence (``all_to_all=False``: its ``V`` is a per-neuron product, not a linear layer the composite
has a rule for) and convolutional recurrence. snnTorch's neurons with no LFP rule (``Alpha``, ``SLSTM``,
``SConv2dLSTM``, ``DeltaLeaky``) are refused by :func:`no_lfp_rule`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from ..neurons.core import FamilyStepLFP, Structure, lfp_site, recurrent_rule
from ..rules import MembraneSplit, _PassThroughFunction
from ._common import _scalar, _unsupported

__all__ = ["lapicque", "leaky", "no_lfp_rule", "rleaky", "rsynaptic", "synaptic"]

_RESETS = {0: "subtract", 1: "zero", 2: "none"}


def _common_checks(module: nn.Module, name: str, zero_drops_input: bool, recurrent: bool = False) -> str:
    """The reset mode, after refusing the options LFP does not support (by name).

    ``zero_drops_input``: snnTorch's delayed zero reset of this neuron multiplies the whole new membrane by
    ``1 − S[t−1]`` (Synaptic, RLeaky, RSynaptic, Lapicque), discarding the step's input.
    """
    reset = _RESETS.get(int(module.reset_mechanism_val))
    if reset is None:  # pragma: no cover - snnTorch knows only these three
        raise _unsupported(module, name, f"reset_mechanism_val={module.reset_mechanism_val}")
    th = module.threshold
    if isinstance(th, nn.Parameter) and th.requires_grad:
        raise _unsupported(module, name, "a learnable threshold (it has no LFP update, LFP-SPEC §9)")
    if _scalar(module, "threshold", th) < 0:
        raise _unsupported(
            module, name, "a negative threshold (snnTorch's reset signal H(0 − θ) already fires at the resting state)"
        )
    delayed = getattr(module, "reset_delay", True)
    if not delayed and recurrent and reset != "none":
        raise _unsupported(
            module,
            name,
            "reset_delay=False on a recurrent neuron (its recurrent input S[t−1] and its delayed reset signal "
            "H(mem[t−1] − θ) then differ, while the family's step takes one S[t−1] for both)",
        )
    if reset == "zero" and zero_drops_input and delayed:
        raise _unsupported(
            module,
            name,
            "reset_mechanism='zero' with reset_delay=True (snnTorch's delayed zero reset of this neuron sets "
            "U[t] = (1 − S[t−1])·(βU[t−1] + input), discarding this step's input too, which no LFP-SPEC §9 neuron "
            "does; use reset_delay=False, 'subtract' or 'none')",
        )
    if getattr(module, "state_quant", False) or getattr(module, "inhibition", False):
        raise _unsupported(module, name, "state quantisation or inhibition")
    gsf = module.graded_spikes_factor
    if (isinstance(gsf, nn.Parameter) and gsf.requires_grad) or _scalar(module, "graded_spikes_factor", gsf) != 1.0:
        raise _unsupported(module, name, "graded spikes")
    return reset


def _same_step_reset(module: nn.Module, st: Structure) -> Callable[[Tensor, Tensor, Tensor | None], Tensor]:
    """snnTorch's state after the step: ``U[t]`` (``reset_delay=True``), or with ``reset_delay=False`` its
    post-reset membrane ``U[t] − θ(S[t] − S̃)`` (subtract) / ``U[t] − (S[t] − S̃)·U[t]`` (zero), with the
    delayed reset signal ``S̃ = H(mem[t−1] − θ)`` already applied inside ``U[t]``: snnTorch's own arithmetic.

    The reset is a gate, not a contribution (LFP-SPEC §9): the feedback that reaches the post-reset state (the
    next step's carry) passes to ``U[t]`` unchanged, through a rule node.
    """
    if getattr(module, "reset_delay", True) or st.reset == "none":
        return lambda u, spikes, signal: u
    th = st.threshold

    def post(u: Tensor, spikes: Tensor, signal: Tensor | None) -> Tensor:
        do_reset = spikes.detach() if signal is None else spikes.detach() - signal
        if st.reset == "subtract":
            return _PassThroughFunction.apply(u, lambda t: t - do_reset * th)
        return _PassThroughFunction.apply(u, lambda t: t - do_reset * t)

    return post


def _decay(module: nn.Module, attr: str) -> Tensor:
    """The decay as the Function's input: the parameter itself when learnable (it receives ``−Δ``)."""
    value = getattr(module, attr)
    if isinstance(value, nn.Parameter) and not value.requires_grad:
        return value.detach()
    return value if isinstance(value, Tensor) else torch.as_tensor(float(value))


def _state(value: Any, like: Tensor) -> Tensor | None:
    """A state tensor of the input's shape, or None (snnTorch's lazily sized initial states mean 'at rest')."""
    return value if isinstance(value, Tensor) and value.shape == like.shape else None


def _family(
    module: nn.Module,
    rule: MembraneSplit,
    name: str,
    run,
    synaptic: bool,
    recurrent: bool,
    zero_drops_input: bool,
):
    """The pieces every adapter shares: a ``step(i, j, v, s) -> (S, J, U)`` on the family's Function and the
    same-step reset ``post(U, S, S̃)``."""
    reset = _common_checks(module, name, zero_drops_input, recurrent)
    st = Structure(synaptic, True, _scalar(module, "threshold", module.threshold), reset)
    if recurrent:
        if not getattr(module, "all_to_all", True):
            raise _unsupported(
                module,
                name,
                "one-to-one recurrence (all_to_all=False: R = V·S[t−1] is no layer the composite has a rule "
                "for, and the rules differ on it; the exact replacement is all_to_all=True with linear_features, "
                "recurrent.weight = diag(V) and a zero bias: zero weights get no LFP update)",
            )
        if not isinstance(module.recurrent, nn.Linear):
            raise _unsupported(module, name, "convolutional recurrence (only an nn.Linear recurrent layer)")
    alpha_in = _decay(module, "alpha") if synaptic else None
    beta_in = _decay(module, "beta")

    def step(i: Tensor, j: Tensor | None, v: Tensor | None, s: Tensor | None):
        rec_rule = recurrent_rule(run, module, name) if recurrent else None
        weight = module.recurrent.weight if recurrent else None
        bias = module.recurrent.bias if recurrent else None
        if v is None and j is not None:
            v = torch.zeros_like(i)
        if v is not None and synaptic and j is None:
            j = torch.zeros_like(i)
        if v is None:
            s = None
        site = lfp_site(rule, run, name, st, rec_rule)
        a = None if alpha_in is None else alpha_in.to(device=i.device)
        return FamilyStepLFP.apply(i, weight, bias, a, beta_in.to(device=i.device), j, v, s, site)

    return st, step, _same_step_reset(module, st)


def _reset_signal(mem: Tensor | None, threshold: float) -> Tensor | None:
    """snnTorch's reset signal ``H(mem[t−1] − θ)``, i.e. ``S[t−1]`` (not part of the feedback path)."""
    return None if mem is None else (mem.detach() > threshold).to(mem.dtype)


def leaky(module: nn.Module, rule: MembraneSplit, name: str, run) -> dict[str, Callable[..., Any]]:
    """``snntorch.Leaky`` as ``sl.LIF`` (scalar or per-neuron, fixed or learnable β; subtract/zero/none)."""
    st, step, post = _family(module, rule, name, run, synaptic=False, recurrent=False, zero_drops_input=False)

    def forward(input_: Tensor, mem: Tensor | None = None):
        if module.init_hidden:
            if mem is not None:
                raise TypeError("`mem` should not be passed as an argument while `init_hidden=True`")
            mem = module.mem
        v = _state(mem, input_)
        signal = _reset_signal(v, st.threshold)
        spikes, _, u = step(input_, None, v, signal)
        u = post(u, spikes, signal)
        if module.init_hidden:
            module.mem = u
            return (spikes, u) if module.output else spikes
        return spikes, u

    return {"forward": forward}


def lapicque(module: nn.Module, rule: MembraneSplit, name: str, run) -> dict[str, Callable[..., Any]]:
    """``snntorch.Lapicque`` as ``sl.LIF(β = 1 − Δt/(RC))`` on the input ``I·R·(1/(RC))·Δt`` (snnTorch's order)."""
    for p_name in ("beta", "R", "C"):
        p = getattr(module, p_name, None)
        if isinstance(p, nn.Parameter) and p.requires_grad:
            raise _unsupported(module, name, f"a learnable {p_name} (Lapicque's decay is computed from R and C)")
    r_, c_, dt = module.R, module.C, module.time_step
    beta = 1 - (dt / (r_ * c_))  # snnTorch's expression (it does not clamp it)
    if not bool(((torch.as_tensor(beta) >= 0) & (torch.as_tensor(beta) <= 1)).all()):
        raise _unsupported(module, name, f"a decay 1 − Δt/(RC) = {beta} outside [0, 1]")
    reset = _common_checks(module, name, zero_drops_input=True)
    st = Structure(False, True, _scalar(module, "threshold", module.threshold), reset)
    post = _same_step_reset(module, st)
    beta_in = torch.as_tensor(beta)

    def scale(t: Tensor) -> Tensor:
        return t * r_ * (1 / (r_ * c_)) * dt

    def forward(input_: Tensor, mem: Tensor | None = None):
        if module.init_hidden:
            if mem is not None:
                raise TypeError("`mem` should not be passed as an argument while `init_hidden=True`")
            mem = module.mem
        v = _state(mem, input_)
        current = _PassThroughFunction.apply(input_, scale)  # one input per output: feedback passes unchanged
        site = lfp_site(rule, run, name, st, None)
        s = _reset_signal(v, st.threshold)
        spikes, _, u = FamilyStepLFP.apply(
            current, None, None, None, beta_in.to(input_.device), None, v, None if v is None else s, site
        )
        u = post(u, spikes, s)
        if module.init_hidden:
            module.mem = u
            return (spikes, u) if module.output else spikes
        return spikes, u

    return {"forward": forward}


def synaptic(module: nn.Module, rule: MembraneSplit, name: str, run) -> dict[str, Callable[..., Any]]:
    """``snntorch.Synaptic`` as ``sl.CubaLIF`` (subtract or no reset)."""
    st, step, post = _family(module, rule, name, run, synaptic=True, recurrent=False, zero_drops_input=True)

    def forward(input_: Tensor, syn: Tensor | None = None, mem: Tensor | None = None):
        if module.init_hidden:
            if mem is not None or syn is not None:
                raise TypeError("`mem` or `syn` should not be passed as an argument while `init_hidden=True`")
            syn, mem = module.syn, module.mem
        j, v = _state(syn, input_), _state(mem, input_)
        signal = _reset_signal(v, st.threshold)
        spikes, j_new, u = step(input_, j, v, signal)
        u = post(u, spikes, signal)
        if module.init_hidden:
            module.syn, module.mem = j_new, u
            return (spikes, j_new, u) if module.output else spikes
        return spikes, j_new, u

    return {"forward": forward}


def rleaky(module: nn.Module, rule: MembraneSplit, name: str, run) -> dict[str, Callable[..., Any]]:
    """``snntorch.RLeaky(all_to_all=True, linear_features=n)`` as ``sl.RLIF`` (its ``recurrent`` Linear)."""
    _, step, _ = _family(module, rule, name, run, synaptic=False, recurrent=True, zero_drops_input=True)

    def forward(input_: Tensor, spk: Tensor | None = None, mem: Tensor | None = None):
        if module.init_hidden:
            if mem is not None or spk is not None:
                raise TypeError("When `init_hidden=True`, RLeaky expects 1 input argument.")
            spk, mem = module.spk, module.mem
        v, s = _state(mem, input_), _state(spk, input_)
        spikes, _, u = step(input_, None, v, s if v is not None else None)
        if module.init_hidden:
            module.spk, module.mem = spikes, u
            return (spikes, u) if module.output else spikes
        return spikes, u

    return {"forward": forward}


def rsynaptic(module: nn.Module, rule: MembraneSplit, name: str, run) -> dict[str, Callable[..., Any]]:
    """``snntorch.RSynaptic(all_to_all=True, linear_features=n)`` as ``sl.RCubaLIF`` (its ``recurrent`` Linear)."""
    _, step, _ = _family(module, rule, name, run, synaptic=True, recurrent=True, zero_drops_input=True)

    def forward(input_: Tensor, spk: Tensor | None = None, syn: Tensor | None = None, mem: Tensor | None = None):
        if module.init_hidden:
            if mem is not None or spk is not None or syn is not None:
                raise TypeError("When `init_hidden=True`, RSynaptic expects 1 input argument.")
            spk, syn, mem = module.spk, module.syn, module.mem
        j, v, s = _state(syn, input_), _state(mem, input_), _state(spk, input_)
        spikes, j_new, u = step(input_, j, v, s if v is not None else None)
        if module.init_hidden:
            module.spk, module.syn, module.mem = spikes, j_new, u
            return (spikes, j_new, u) if module.output else spikes
        return spikes, j_new, u

    return {"forward": forward}


def no_lfp_rule(reason: str) -> Callable[..., dict[str, Callable[..., Any]]]:
    """An adapter that refuses a neuron with no LFP rule, naming it and why (never suggesting PassThrough)."""

    def refuse(module: nn.Module, rule: MembraneSplit, name: str, run) -> dict[str, Callable[..., Any]]:
        raise TypeError(
            f"module '{name}' ({type(module).__module__}.{type(module).__name__}) has no LFP rule: {reason}. "
            "LFP never falls back to gradients; use a neuron of the family (LIF, CubaLIF, RLIF, RCubaLIF, LI) "
            "or the snnTorch/norse neurons that map to one"
        )

    return refuse
