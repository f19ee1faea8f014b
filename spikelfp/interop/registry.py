"""The one recogniser of neuron modules: :func:`recognize` (spikelfp's own, snnTorch's and norse's).

``recognize(module)`` answers, for any module, whether it is a neuron and which: a :class:`Neuron` with the
:class:`~spikelfp.neurons.spec.NeuronSpec` it computes, how it is called (time-first or one step per call;
its library's call signature, as an :class:`Adapter`), the weights it holds (a recurrent layer, input
weights inside the cell), or the reason it cannot be run by LFP. The engine (which methods to install),
the composites (which modules get the temporal rule), the Trainer (which models are spiking, who loops over
time, how to read spikes and reset states) and the NIR writer all ask it, and nothing else recognises a
neuron. A new foreign neuron is one entry of :data:`ENTRIES`: its library's module and class name, a function
from the module to its spec, and its adapter.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from torch import Tensor, nn

from ..lfp.site import Run
from ..neurons import FamilyNeuron, NeuronSpec
from ..neurons.lfp import module_methods

__all__ = ["ENTRIES", "Adapter", "Neuron", "Unsupported", "recognize", "spiking_modules"]


class Unsupported(TypeError):
    """A neuron option or class that LFP (or a format) cannot run, with the reason as the message."""


class Adapter(Protocol):
    """A library's call convention: how LFP runs the module, and how its output and state are read."""

    def lfp(self, neuron: Neuron, module: nn.Module, rule: Any, name: str, run: Run) -> dict[str, Callable]: ...

    def spikes(self, output: Any) -> Tensor: ...

    def reset_state(self, module: nn.Module) -> None: ...


@dataclass(frozen=True)
class Neuron:
    """A neuron module as spikelfp sees it (see :func:`recognize`).

    Attributes
    ----------
    spec
        What it computes (None when it cannot be run: then ``refusal`` says why).
    library, cls
        ``"spikelfp"``, ``"snntorch"`` or ``"norse"``, and the class name.
    stepwise
        Called once per time step on ``(B, …)`` (snnTorch's neurons, norse's cells), rather than on the
        whole sequence ``(T, B, …)`` (spikelfp's modules, norse's time-first modules).
    adapter
        Its call convention.
    recurrent
        ``(weight, bias or None)`` of its recurrent layer (the module's own tensors), else None.
    input_weight
        Input weights held inside the neuron (norse's ``LIFRecurrentCell``, ``LILinearCell``), else None.
    recurrent_module
        The ``nn.Linear`` that holds the recurrent weights, where it is a module (spikelfp, snnTorch).
    inner
        Names of weights held inside the module as parameters (norse's ``input_weights``,
        ``recurrent_weights``): each gets the composite's rule for ``nn.Linear``, asked as ``"<name>.<attr>"``.
    refusal
        Why LFP cannot run it (spec is then None).
    """

    spec: NeuronSpec | None
    library: str
    cls: str
    stepwise: bool
    adapter: Adapter | None
    recurrent: tuple[Tensor, Tensor | None] | None = None
    input_weight: Tensor | None = None
    recurrent_module: nn.Module | None = None
    inner: tuple[str, ...] = ()
    refusal: str | None = field(default=None)

    @property
    def qualname(self) -> str:
        return f"{self.library}.{self.cls}"

    def lfp_methods(self, module: nn.Module, rule: Any, name: str, run: Run) -> dict[str, Callable]:
        """The methods the engine installs on ``module`` while LFP is attached (a refusal raises here)."""
        if self.spec is None or self.adapter is None:
            raise TypeError(
                f"module '{name}' ({type(module).__module__}.{type(module).__name__}) has no LFP rule: "
                f"{self.refusal}. LFP never falls back to gradients; use a neuron of the family (LIF, CubaLIF, "
                "RLIF, RCubaLIF, LI) or the snnTorch/norse neurons that map to one"
            )
        return self.adapter.lfp(self, module, rule, name, run)

    def reset_state(self, module: nn.Module) -> None:
        """Reset the state the module keeps between calls (snnTorch's ``init_hidden``), if it keeps one."""
        if self.adapter is not None:
            self.adapter.reset_state(module)
        elif getattr(module, "init_hidden", False) is True and callable(getattr(module, "reset_mem", None)):
            module.reset_mem()  # a neuron LFP cannot run may still train by BPTT: reset it as its library does

    def spikes(self, output: Any) -> Tensor:
        """The spikes (or a readout's membrane) in what the module returned."""
        if self.adapter is None:
            return output[0] if isinstance(output, (tuple, list)) else output
        return self.adapter.spikes(output)


class _Native:
    """spikelfp's own modules: time-first ``forward`` and ``step``, states as NamedTuples."""

    def lfp(self, neuron: Neuron, module: nn.Module, rule: Any, name: str, run: Run) -> dict[str, Callable]:
        return module_methods(module, rule, name, run)

    def spikes(self, output: Any) -> Tensor:
        return output[0] if isinstance(output, tuple) else output

    def reset_state(self, module: nn.Module) -> None:  # explicit state: nothing kept on the module
        return None


_NATIVE = _Native()


def _native(module: FamilyNeuron) -> Neuron:
    rec = module.recurrent if module.recurrent_layer else None
    return Neuron(
        module.spec,
        "spikelfp",
        type(module).__name__,
        False,
        _NATIVE,
        None if rec is None else (rec.weight, rec.bias),
        None,
        rec,
    )


#: ``(module that defines the class, class name, recogniser)``: each recogniser maps an instance to a
#: :class:`Neuron` (raising :class:`Unsupported` for options it cannot run). Filled by the library modules
#: below; a model holding one of these neurons has imported its library, so the look-up reads sys.modules
#: and never imports a library itself.
ENTRIES: list[tuple[str, str, Callable[[nn.Module], Neuron]]] = []


def _entries() -> list[tuple[type, str, str, Callable[[nn.Module], Neuron]]]:
    found = []
    for module_name, class_name, make in ENTRIES:
        cls = getattr(sys.modules.get(module_name), class_name, None)
        if isinstance(cls, type):
            found.append((cls, module_name.split(".")[0], class_name, make))
    return found


def recognize(module: nn.Module) -> Neuron | None:
    """The neuron ``module`` is, or None if it is none.

    An exact class match wins over a subclass match (snnTorch's ``DeltaLeaky`` subclasses ``Leaky``). A known
    neuron whose options LFP cannot run comes back with ``spec=None`` and the reason in ``refusal``.
    """
    if isinstance(module, FamilyNeuron):
        return _native(module)
    entries = _entries()
    match = next((e for e in entries if type(module) is e[0]), None)
    if match is None:
        match = next((e for e in entries if isinstance(module, e[0])), None)
    if match is None:
        return None
    _, library, class_name, make = match
    try:
        return make(module)
    except Unsupported as exc:
        return Neuron(None, library, class_name, True, None, refusal=str(exc))


def spiking_modules(model: nn.Module) -> list[tuple[str, nn.Module, Neuron]]:
    """``(name, module, neuron)`` of every neuron in ``model``, in ``named_modules`` order."""
    out = []
    for name, m in model.named_modules():
        neuron = recognize(m)
        if neuron is not None:
            out.append((name, m, neuron))
    return out
