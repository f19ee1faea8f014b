"""Composites: which rule each module of a model gets (zennit's design).

A composite maps layer types (:class:`LayerMap`) or module names (:class:`NameMap`) to rule
*templates*. The first match wins and each module gets its own ``template.copy()``. Parameter-free
layers get the engine's defaults (:data:`DEFAULTS`) unless a composite maps them too:

==========================================================  ==============================
layer                                                       rule
==========================================================  ==============================
ReLU, LeakyReLU, ELU, GELU, SiLU, Tanh, Sigmoid, Heaviside  :class:`~spikelfp.rules.PassThrough`
Dropout, Dropout1d/2d/3d, AlphaDropout                      :class:`~spikelfp.rules.PassThrough`
AvgPool1d/2d/3d, AdaptiveAvgPool1d/2d/3d, ``sl.nn.Add``     :class:`~spikelfp.rules.EpsilonSum`
MaxPool1d/2d/3d, AdaptiveMaxPool1d/2d/3d                    :class:`~spikelfp.rules.WinnerTakesAll`
Flatten, Unflatten, Identity                                :class:`~spikelfp.rules.Reshape`
``sl.LIF``, ``sl.CubaLIF``, ``sl.RLIF``, ``sl.RCubaLIF``   :class:`~spikelfp.rules.MembraneSplit` (LFP-SPEC §5, §9)
``sl.LI``                                                   :class:`~spikelfp.rules.MembraneSplit` (σ = sign(U))
snnTorch ``Leaky``, ``Synaptic``, ``RLeaky``, ``RSynaptic``  :class:`~spikelfp.rules.MembraneSplit` (through
``Lapicque``; norse ``LIFBoxCell``, ``LIFCell``, ``LIF``,     the adapters of :mod:`spikelfp.interop`)
``IAFCell``, ``LIBoxCell``
==========================================================  ==============================

A type entry serves the instances of the type that compute as it: a subclass that overrides ``forward``
(or another method that defines the computation, see :func:`spikelfp.lfp.ops.computes_as`) is another
layer, and an entry for its base type does not give it the base type's rule when that rule would run in
place of the subclass's own forward (:meth:`~spikelfp.rules.Rule.serves`): the engine then refuses it by
name (:class:`~spikelfp.strict.StrictError`). An entry that names the subclass itself (``LayerMap([(MyLinear,
Epsilon())])``) or a :class:`NameMap` entry is the user's explicit choice, and the rule then runs in place
of the subclass's forward. spikelfp's binary layers (:class:`~spikelfp.rules.QuantizedLayer`) are served by
the rules for Linear and Conv layers as they declare.

Named presets (:func:`get`), as in the paper (A.6.2):

- ``epsilon``, ``zero``, ``zplus-zminus``, ``alpha2-beta1``: one rule on every Linear/Conv layer;
- ``epsilon-zplus-zminus``, ``epsilon-alpha2-beta1``: LFP-ε on dense layers, the other rule on
  convolutions.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from ..interop import recognize
from ..neurons import FamilyNeuron
from ..nn import Add, Heaviside
from . import rules
from .ops import computes_as
from .rules import Rule

__all__ = ["DEFAULTS", "PRESETS", "Composite", "LayerMap", "Mixed", "NameMap", "get", "resolve"]

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_DENSE = (nn.Linear,)
_LINEAR_LIKE = _DENSE + _CONV


class Composite:
    """Maps modules to rules. Subclasses implement :meth:`rule_for`."""

    def rule_for(self, name: str, module: nn.Module) -> Rule | None:
        """A fresh rule for ``module`` (reached as ``name``), or None if this composite has none."""
        raise NotImplementedError

    def declined(self, name: str, module: nn.Module) -> type | None:
        """A layer type this composite maps that ``module`` is an instance of but whose rule does not serve it.

        The engine asks when no composite has a rule for ``module``, to refuse it by name: e.g. ``nn.Linear``
        for a subclass of ``nn.Linear`` that overrides ``forward`` (see :meth:`spikelfp.rules.Rule.serves`).

        Parameters
        ----------
        name
            The module's name in the model.
        module
            The module.

        Returns
        -------
        type or None
            The layer type, or None if there is none.
        """
        return None


class LayerMap(Composite):
    """Rules by module type: ``LayerMap([((nn.Linear,), Epsilon()), (nn.Conv2d, ZPlusZMinus())])``.

    Parameters
    ----------
    layer_map
        Pairs of (type or tuple of types, rule template). The first pair with a type that ``module`` is an
        instance of, and whose rule serves it (:meth:`~spikelfp.rules.Rule.serves`), wins.
    """

    def __init__(self, layer_map: Sequence[tuple[type | tuple[type, ...], Rule]]) -> None:
        self.layer_map: list[tuple[tuple[type, ...], Rule]] = []
        for types, rule in layer_map:
            types = types if isinstance(types, tuple) else (types,)
            if not all(isinstance(t, type) for t in types):
                raise TypeError(f"LayerMap keys must be types or tuples of types, got {types!r}")
            if not isinstance(rule, Rule):
                raise TypeError(f"LayerMap values must be spikelfp rules, got {rule!r}")
            self.layer_map.append((types, rule))

    def rule_for(self, name, module):
        for types, template in self.layer_map:
            if isinstance(module, types) and any(isinstance(module, t) and template.serves(module, t) for t in types):
                return template.copy()
        return None

    def declined(self, name, module):
        for types, template in self.layer_map:
            for t in types:
                if isinstance(module, t) and not template.serves(module, t):
                    return t
        return None

    def __repr__(self) -> str:
        return f"LayerMap({self.layer_map!r})"


class NameMap(Composite):
    """Rules by module name (as in ``model.named_modules()``): ``NameMap([(["0", "3"], Epsilon())])``."""

    def __init__(self, name_map: Sequence[tuple[str | Sequence[str], Rule]]) -> None:
        self.name_map: list[tuple[tuple[str, ...], Rule]] = []
        for names, rule in name_map:
            names = (names,) if isinstance(names, str) else tuple(names)
            if not isinstance(rule, Rule):
                raise TypeError(f"NameMap values must be spikelfp rules, got {rule!r}")
            self.name_map.append((names, rule))

    def rule_for(self, name, module):
        for names, template in self.name_map:
            if name in names:
                return template.copy()
        return None

    def __repr__(self) -> str:
        return f"NameMap({self.name_map!r})"


class Mixed(Composite):
    """The first of several composites that has a rule for a module wins."""

    def __init__(self, composites: Sequence[Composite]) -> None:
        self.composites = list(composites)

    def rule_for(self, name, module):
        for composite in self.composites:
            rule = composite.rule_for(name, module)
            if rule is not None:
                return rule
        return None

    def declined(self, name, module):
        return next((t for c in self.composites if (t := c.declined(name, module)) is not None), None)

    def __repr__(self) -> str:
        return f"Mixed({self.composites!r})"


def _default_map() -> LayerMap:
    elementwise = (
        nn.ReLU,
        nn.ReLU6,
        nn.LeakyReLU,
        nn.ELU,
        nn.GELU,
        nn.SiLU,
        nn.Tanh,
        nn.Sigmoid,
        nn.Softplus,
        nn.Hardtanh,
        Heaviside,
        nn.Dropout,
        nn.Dropout1d,
        nn.Dropout2d,
        nn.Dropout3d,
        nn.AlphaDropout,
    )
    sums = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d)
    sums += (nn.AdaptiveAvgPool3d, Add)
    maxes = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d)
    maxes += (nn.AdaptiveMaxPool3d,)
    return LayerMap(
        [
            (elementwise, rules.PassThrough()),
            (sums, rules.EpsilonSum()),
            (maxes, rules.WinnerTakesAll()),
            ((nn.Flatten, nn.Unflatten, nn.Identity), rules.Reshape()),
            (FamilyNeuron, rules.MembraneSplit()),  # LIF, CubaLIF, RLIF, RCubaLIF, LI
        ]
    )


class _Defaults(Composite):
    """The defaults, built on first use (they import the neuron, nn and interop modules)."""

    def __init__(self) -> None:
        self._map: LayerMap | None = None

    def _default_map(self) -> LayerMap:
        if self._map is None:
            self._map = _default_map()
        return self._map

    def rule_for(self, name, module):
        rule = self._default_map().rule_for(name, module)
        if rule is None:  # snnTorch's and norse's neurons
            neuron = self._foreign_neuron(module)
            if neuron is not None and computes_as(module, neuron):
                rule = rules.MembraneSplit()
        return rule

    def declined(self, name, module):
        layer = self._default_map().declined(name, module)
        if layer is None:
            neuron = self._foreign_neuron(module)
            layer = neuron if neuron is not None and not computes_as(module, neuron) else None
        return layer

    @staticmethod
    def _foreign_neuron(module: nn.Module) -> type | None:
        """The class of the snnTorch or norse neuron that ``module`` is recognised as (one of its classes)."""
        neuron = None if isinstance(module, FamilyNeuron) else recognize(module)
        if neuron is None:
            return None
        return next((c for c in type(module).__mro__ if c.__name__ == neuron.cls), type(module))


#: the rules of parameter-free layers, used wherever a composite has none
DEFAULTS = _Defaults()


def _one(rule: Rule) -> LayerMap:
    return LayerMap([(_LINEAR_LIKE, rule)])


def _split(dense: Rule, conv: Rule) -> LayerMap:
    return LayerMap([(_DENSE, dense), (_CONV, conv)])


#: factories of the named presets
PRESETS = {
    "epsilon": lambda: _one(rules.Epsilon()),
    "zero": lambda: _one(rules.Zero()),
    "zplus-zminus": lambda: _one(rules.ZPlusZMinus()),
    "alpha2-beta1": lambda: _one(rules.AlphaBeta(2.0, 1.0)),
    "epsilon-zplus-zminus": lambda: _split(rules.Epsilon(), rules.ZPlusZMinus()),
    "epsilon-alpha2-beta1": lambda: _split(rules.Epsilon(), rules.AlphaBeta(2.0, 1.0)),
}


def get(name: str) -> Composite:
    """The named preset composite (see the module docstring for the list)."""
    if not isinstance(name, str) or name not in PRESETS:
        raise ValueError(f"unknown composite {name!r}; known composites: {', '.join(PRESETS)}")
    return PRESETS[name]()


def resolve(composite: str | Composite) -> Composite:
    """A composite from a preset name or a :class:`Composite` object."""
    if isinstance(composite, str):
        return get(composite)
    if isinstance(composite, Composite):
        return composite
    raise TypeError(f"composite must be a preset name or a Composite, got {type(composite).__name__}")
