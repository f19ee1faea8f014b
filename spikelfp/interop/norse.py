"""norse's neurons: each maps to a :class:`~spikelfp.neurons.spec.NeuronSpec` and keeps its call signature.

With ``v_leak = 0`` and ``v_reset = 0``, norse's Euler steps are neurons of the family on a gained input
(``g = dt·τ_mem⁻¹``, ``h = dt·τ_syn⁻¹``):

- ``LIFBoxCell``: ``v ← (1 − g)·v + g·x``, spike on ``v > v_th``, reset to 0: ``LIF(1 − g, reset="zero")``, gain ``g``;
- ``LIFCell``/``LIF``: ``i ← i_d + x``, ``v ← v + g((0 − v) + i)``, ``i_d ← (1 − h)·i``:
  ``CubaLIF(1 − h, 1 − g, reset="zero")``, gain ``g`` (``J = g·i``);
- ``LIFRecurrentCell``/``LIFRecurrent``: the same with ``i ← i_d + W_in·x + W_rec·z[t−1]``, the input weights
  ``W_in`` and the recurrent weights ``W_rec`` held inside the cell: a bias-free linear layer, then a recurrent
  ``CubaLIF`` whose gain multiplies both currents;
- ``IAFCell``/``IAF``: ``LIF(1, reset="zero")``;
- ``LIBoxCell``: ``LI(1 − g)``, gain ``g``;
- ``LICell``/``LI``: ``CubaLI(1 − h, 1 − g)``, gain ``g`` (a leaky integrator fed by a synaptic current);
- ``LILinearCell``: ``W_in`` inside the cell, then ``CubaLI``.

The weights inside a cell get the composite's rule for ``nn.Linear`` (asked under the names
``"<cell>.input_weights"`` and ``"<cell>.recurrent_weights"``). norse's outputs and states are its own numbers,
computed by norse without autograd and carried on the family's feedback path (:func:`_as`); norse's state
``v`` is the post-reset membrane ``(1 − z)·U`` and its ``i`` the decayed current, which map to the family's
states by single-input scalings, so the feedback passes them unchanged.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from ..lfp.rules import _PassThroughFunction, apply_linear
from ..neurons import NeuronSpec
from ..neurons.lfp import StepLFP, neuron_site
from .registry import ENTRIES, Neuron, Unsupported

__all__: list[str] = []


def _scalar(module: nn.Module, name: str, value: Any) -> float:
    t = torch.as_tensor(value).detach()
    if t.numel() != 1:
        raise Unsupported(f"a per-neuron {name} (norse parameters are one value per layer here)")
    return float(t)


def _gain(module: nn.Module, tau_inv: Any, what: str, closed: bool = True) -> float:
    g = float(module.dt * torch.as_tensor(tau_inv))  # norse's own product dt·τ⁻¹
    if not (0.0 < g <= 1.0 if closed else 0.0 < g < 1.0):
        raise Unsupported(f"dt·{what} = {g} (must lie in (0, {'1]' if closed else '1)'})")
    return g


def _no_leak_or_reset(module: nn.Module, p: Any, reset: bool = True) -> None:
    if _scalar(module, "v_leak", getattr(p, "v_leak", 0.0)) != 0.0:
        raise Unsupported("v_leak other than 0 (a constant contribution with no LFP site)")
    if reset and _scalar(module, "v_reset", p.v_reset) != 0.0:
        raise Unsupported("v_reset other than 0 (a reset to a non-zero value is a contribution)")
    if getattr(module, "record_states", False):
        raise Unsupported("record_states=True")


def _as(value: Tensor, like: Tensor) -> Tensor:
    """``value`` in norse's own numbers (computed without autograd), carried on ``like``'s feedback path.

    A rule node: the forward gives norse's value, the feedback passes to ``like`` unchanged. ``like`` is the
    family's value of the same quantity (equal up to the rounding of norse's Euler arithmetic), so the output is
    norse's spike for spike while the feedback follows the family's split.
    """
    return _PassThroughFunction.apply(like, lambda t: value)


def _expand(v: Tensor, like: Tensor) -> Tensor:
    return v if v.shape == like.shape else v.expand_as(like)


class _Cell:
    """norse's call convention: ``cell(x, state) -> (output, state)``, the state passed explicitly."""

    def spikes(self, output: Any) -> Tensor:
        return output[0] if isinstance(output, (tuple, list)) else output

    def reset_state(self, module: nn.Module) -> None:  # explicit state: nothing kept on the module
        return None


class _LIFBox(_Cell):
    """``LIFBoxCell`` (the scalar fast path: one fixed decay)."""

    def lfp(self, neuron: Neuron, module: nn.Module, rule: Any, name: str, run) -> dict[str, Callable]:
        from norse.torch.functional.lif_box import LIFBoxFeedForwardState

        spec = neuron.spec

        def forward(input_tensor: Tensor, state=None):
            v = None if state is None else _expand(state.v, input_tensor)
            site = neuron_site(rule, run, name, spec, None)
            spikes, _, u = StepLFP.apply(input_tensor, None, None, None, None, None, v, None, site)
            # the post-reset state (1 − z)·U: a gate, not a contribution; feedback reaches it only through the next
            # step's carry, which is zero where z = 1, so it passes unchanged (a rule node, for strictness)
            reset = _PassThroughFunction.apply(u, lambda t: t * (1.0 - spikes.detach()))
            return spikes, LIFBoxFeedForwardState(v=reset)

        return {"forward": forward}


def _lif_box(module: nn.Module) -> Neuron:
    from norse.torch.functional.reset import reset_value

    p = module.p
    if getattr(p, "reset_method", reset_value) is not reset_value:
        raise Unsupported("a reset other than reset_value (subtractive resets scale by β)")
    if _scalar(module, "v_leak", p.v_leak) != 0.0 or _scalar(module, "v_reset", p.v_reset) != 0.0:
        raise Unsupported("v_leak or v_reset other than 0")
    g = float(module.dt) * _scalar(module, "tau_mem_inv", p.tau_mem_inv)
    if not 0.0 < g < 1.0:
        raise Unsupported(f"dt·tau_mem_inv = {g} (must lie in (0, 1))")
    spec = NeuronSpec("LIF", 1.0 - g, threshold=_scalar(module, "v_th", p.v_th), reset="zero", gain=g)
    return Neuron(spec, "norse", "LIFBoxCell", True, _LIFBox())


class _Synaptic(_Cell):
    """``LIFCell``, ``LIFRecurrentCell``, ``LICell``, ``LILinearCell``: a synaptic current ``i`` (``J = g·i``)."""

    def __init__(self, step_fn: Callable, state_cls: Callable, inner: tuple[str, ...] = ()) -> None:
        self.step_fn, self.state_cls, self.inner = step_fn, state_cls, inner

    @staticmethod
    def initial(module: nn.Module, x: Tensor) -> Any:
        """norse's state at rest (``LILinearCell`` builds it inside its forward, the others have a fallback)."""
        fallback = getattr(module, "state_fallback", None)
        if fallback is not None:
            return fallback(x)
        from norse.torch.functional.leaky_integrator import LIState

        zeros = torch.zeros((x.shape[0], module.hidden_size), dtype=x.dtype, device=x.device)
        return LIState(v=module.p.v_leak.detach().to(x.dtype), i=zeros)

    def lfp(self, neuron: Neuron, module: nn.Module, rule: Any, name: str, run) -> dict[str, Callable]:
        spec = neuron.spec
        p, dt = module.p, module.dt
        g, alpha = spec.gain, spec.alpha
        recurrent = "recurrent_weights" in self.inner
        w_rule = run.inner_rule(module, "input_weights") if "input_weights" in self.inner else None
        rec_rule = run.inner_rule(module, "recurrent_weights") if recurrent else None

        def step(x: Tensor, state=None):
            initial = state is None
            state = self.initial(module, x) if initial else state
            with torch.no_grad():  # norse's own numbers
                z, new = self.step_fn(module, x.detach(), _detached(state), p, dt)
            current = (
                x if w_rule is None else apply_linear(w_rule, run, f"{name}.input_weights", x, module.input_weights)
            )
            j = v = s = None
            if not initial:
                v = _expand(state.v, current)
                j = _PassThroughFunction.apply(state.i, lambda t: t * (g / alpha) if alpha > 0 else t * 0.0)
                s = state.z if recurrent else None  # norse's v is post-reset: a second zero reset changes nothing
            a = torch.tensor(alpha, dtype=current.dtype, device=current.device)
            b = torch.tensor(spec.beta, dtype=current.dtype, device=current.device)
            weight = module.recurrent_weights if recurrent else None
            site = neuron_site(rule, run, name, spec, rec_rule)
            out, j_new, u = StepLFP.apply(current, weight, None, a, b, j, v, s, site)
            if not spec.spiking:
                value = _as(new.v, u)
                return value, self.state_cls(new, v=value, i=_as(new.i, j_new))
            return _as(z, out), self.state_cls(new, z=_as(z, out), v=_as(new.v, u), i=_as(new.i, j_new))

        return {"forward": step}


def _detached(state: Any) -> Any:
    return type(state)(*[t.detach() if isinstance(t, Tensor) else t for t in state])


def _lif_step(module, x, state, p, dt):
    from norse.torch.functional.lif import LIFFeedForwardState, lif_feed_forward_step

    plain = LIFFeedForwardState(state.v.expand_as(x), state.i)
    return lif_feed_forward_step(x, plain, p, dt)


def _lif_recurrent_step(module, x, state, p, dt):
    from norse.torch.functional.lif import lif_step

    return lif_step(x, state, module.input_weights.detach(), module.recurrent_weights.detach(), p, dt)


def _li_step(module, x, state, p, dt):
    from norse.torch.functional.leaky_integrator import LIState, li_feed_forward_step

    v, i = state.v, state.i
    out, new = li_feed_forward_step(x, LIState(v.expand_as(x) if v.dim() == 0 else v, i), p, dt)
    return out, new


def _li_linear_step(module, x, state, p, dt):
    from norse.torch.functional.leaky_integrator import LIState, li_step

    v = state.v if state.v.dim() else state.v.expand(x.shape[0], module.hidden_size)
    return li_step(x, LIState(v, state.i), module.input_weights.detach(), p, dt)


def _lif_state(new, z=None, v=None, i=None):
    """norse's state type of ``new`` with the values given (``z`` only where the state has spikes)."""
    return type(new)(z=z, v=v, i=i) if "z" in type(new)._fields else type(new)(v=v, i=i)


def _synaptic_spec(module: nn.Module, spiking: bool, recurrent: bool) -> NeuronSpec:
    p = module.p
    _no_leak_or_reset(module, p, reset=spiking)
    g = _gain(module, p.tau_mem_inv, "tau_mem_inv")
    h = _gain(module, p.tau_syn_inv, "tau_syn_inv")
    if spiking:
        return NeuronSpec(
            "CubaLIF", 1.0 - g, 1.0 - h, threshold=_scalar(module, "v_th", p.v_th), reset="zero", gain=g,
            recurrent=recurrent,
        )  # fmt: skip
    return NeuronSpec("CubaLI", 1.0 - g, 1.0 - h, reset="none", gain=g)


def _lif_cell(module: nn.Module, cls: str = "LIFCell") -> Neuron:
    spec = _synaptic_spec(module, spiking=True, recurrent=False)
    return Neuron(spec, "norse", cls, True, _Synaptic(_lif_step, _lif_state))


def _lif_recurrent_cell(module: nn.Module, cls: str = "LIFRecurrentCell") -> Neuron:
    if getattr(module.p, "method", "super") == "adjoint":
        raise Unsupported("the adjoint method (its own backward pass)")
    spec = _synaptic_spec(module, spiking=True, recurrent=True)
    adapter = _Synaptic(_lif_recurrent_step, _lif_state, ("input_weights", "recurrent_weights"))
    return Neuron(
        spec, "norse", cls, True, adapter, (module.recurrent_weights, None), module.input_weights, None, adapter.inner
    )


def _li_cell(module: nn.Module, cls: str = "LICell") -> Neuron:
    spec = _synaptic_spec(module, spiking=False, recurrent=False)
    return Neuron(spec, "norse", cls, True, _Synaptic(_li_step, _lif_state))


def _li_linear_cell(module: nn.Module) -> Neuron:
    spec = _synaptic_spec(module, spiking=False, recurrent=False)
    adapter = _Synaptic(_li_linear_step, _lif_state, ("input_weights",))
    return Neuron(spec, "norse", "LILinearCell", True, adapter, None, module.input_weights, None, adapter.inner)


class _Single(_Cell):
    """``IAFCell`` and ``LIBoxCell``: one state ``v``; ``norse_step(module, x, v) -> (output, v')`` gives norse's
    own numbers, and ``state(v)`` builds norse's state."""

    def __init__(self, norse_step: Callable, state: Callable) -> None:
        self.norse_step, self.state = norse_step, state

    def lfp(self, neuron: Neuron, module: nn.Module, rule: Any, name: str, run) -> dict[str, Callable]:
        spec = neuron.spec

        def step(x: Tensor, state=None):
            initial = state is None
            state = module.state_fallback(x) if initial else state
            with torch.no_grad():
                out, v_new = self.norse_step(module, x.detach(), state.v.detach())
            v = None if initial else _expand(state.v, x)
            b = torch.tensor(spec.beta, dtype=x.dtype, device=x.device)
            site = neuron_site(rule, run, name, spec, None)
            y, _, u = StepLFP.apply(x, None, None, None, b, None, v, None, site)
            if not spec.spiking:
                value = _as(out, y)
                return value, self.state(value)
            return _as(out, y), self.state(_as(v_new, u))

        return {"forward": step}


def _iaf_step(module: nn.Module, x: Tensor, v: Tensor):
    from norse.torch.functional.iaf import IAFFeedForwardState, iaf_feed_forward_step

    z, new = iaf_feed_forward_step(x, IAFFeedForwardState(v), module.p, module.dt)
    return z, new.v


def _iaf_state(v: Tensor):
    from norse.torch.functional.iaf import IAFFeedForwardState

    return IAFFeedForwardState(v=v)


def _li_box_step(module: nn.Module, x: Tensor, v: Tensor):
    from norse.torch.functional.leaky_integrator_box import LIBoxState, li_box_feed_forward_step

    out, new = li_box_feed_forward_step(x, LIBoxState(v), module.p, module.dt)
    return out, new.v


def _li_box_state(v: Tensor):
    from norse.torch.functional.leaky_integrator_box import LIBoxState

    return LIBoxState(v=v)


def _iaf_cell(module: nn.Module, cls: str = "IAFCell") -> Neuron:
    p = module.p
    _no_leak_or_reset(module, p)
    spec = NeuronSpec("LIF", 1.0, threshold=_scalar(module, "v_th", p.v_th), reset="zero")
    return Neuron(spec, "norse", cls, True, _Single(_iaf_step, _iaf_state))


def _li_box_cell(module: nn.Module) -> Neuron:
    p = module.p
    _no_leak_or_reset(module, p, reset=False)
    g = _gain(module, p.tau_mem_inv, "tau_mem_inv")
    spec = NeuronSpec("LI", 1.0 - g, reset="none", gain=g)
    return Neuron(spec, "norse", "LIBoxCell", True, _Single(_li_box_step, _li_box_state))


class _TimeFirst(_Cell):
    """norse's time-first modules (``LIF``, ``IAF``, ``LI``, ``LIFRecurrent``): the cell's step in norse's loop,
    ``(stack of outputs, final state)``."""

    def __init__(self, cell: _Cell) -> None:
        self.cell = cell

    def lfp(self, neuron: Neuron, module: nn.Module, rule: Any, name: str, run) -> dict[str, Callable]:
        step = self.cell.lfp(neuron, module, rule, name, run)["forward"]

        def forward(input_tensor: Tensor, state=None):
            outputs = []
            for t in range(input_tensor.shape[0]):
                out, state = step(input_tensor[t], state)
                outputs.append(out)
            return torch.stack(outputs), state

        return {"forward": forward}


def _time_first(make: Callable[..., Neuron], cls: str) -> Callable[[nn.Module], Neuron]:
    def recognise(module: nn.Module) -> Neuron:
        neuron = make(module, cls)
        return Neuron(
            neuron.spec,
            "norse",
            cls,
            False,
            _TimeFirst(neuron.adapter),
            neuron.recurrent,
            neuron.input_weight,
            neuron.recurrent_module,
            neuron.inner,
        )

    return recognise


ENTRIES.extend(
    [
        ("norse.torch.module.lif_box", "LIFBoxCell", _lif_box),
        ("norse.torch.module.lif", "LIFCell", _lif_cell),
        ("norse.torch.module.lif", "LIF", _time_first(_lif_cell, "LIF")),
        ("norse.torch.module.lif", "LIFRecurrentCell", _lif_recurrent_cell),
        ("norse.torch.module.lif", "LIFRecurrent", _time_first(_lif_recurrent_cell, "LIFRecurrent")),
        ("norse.torch.module.iaf", "IAFCell", _iaf_cell),
        ("norse.torch.module.iaf", "IAF", _time_first(_iaf_cell, "IAF")),
        ("norse.torch.module.leaky_integrator_box", "LIBoxCell", _li_box_cell),
        ("norse.torch.module.leaky_integrator", "LICell", _li_cell),
        ("norse.torch.module.leaky_integrator", "LI", _time_first(_li_cell, "LI")),
        ("norse.torch.module.leaky_integrator", "LILinearCell", _li_linear_cell),
    ]
)


def no_mapping(module: nn.Module) -> Neuron:
    """A norse neuron class spikelfp has no mapping for (refused by name)."""
    raise Unsupported(f"spikelfp has no mapping of norse's {type(module).__name__} to a neuron of the family")


def is_sequential_state(model: nn.Module) -> bool:
    """Whether ``model`` is norse's ``SequentialState`` (a step model whose state is passed back in)."""
    cls = getattr(sys.modules.get("norse.torch.module.sequential"), "SequentialState", None)
    return isinstance(cls, type) and isinstance(model, cls)
