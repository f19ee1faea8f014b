"""The LFP engine: attach rules to a model, run the feedback backward through autograd, detach.

Each supported layer runs, while LFP is attached, as a :class:`torch.autograd.Function` whose forward
is the ordinary one and whose backward returns the rule's input feedback in place of a gradient and
``−Δw`` as the gradient of each parameter. ``lfp.backward(out, feedback)`` therefore leaves
``p.grad = −Δp`` through autograd's own accumulation, and any ``torch.optim`` optimizer ascends the
feedback. Gradient accumulation, parameter sharing and DistributedDataParallel work unchanged.

Nothing is left on the model: the engine installs per-instance ``forward`` (and ``step``) methods
while attached and removes them in a ``finally`` block.
"""

from __future__ import annotations

import logging
import math
import warnings
import weakref
from typing import Any

import torch
from torch import Tensor, nn

from ..interop import recognize
from ..nn import TimeDistributed
from .composites import DEFAULTS, Composite, resolve
from .site import NonFiniteError, Run
from .strict import StrictError, inspect

__all__ = ["LFP", "NonFiniteError", "Run", "StrictError"]

log = logging.getLogger("spikelfp")
_MISSING = object()

#: module -> weak reference to the engine whose rules are installed on it (engines may not overlap)
_ATTACHED: weakref.WeakKeyDictionary[nn.Module, weakref.ref] = weakref.WeakKeyDictionary()
#: what the composite is asked for the rule of weights held inside a neuron (norse's cells): a Linear
_LINEAR_PROBE = nn.Linear(1, 1, device="meta")


def _name_of(model: nn.Module, module: nn.Module) -> str:
    return next((name for name, m in model.named_modules() if m is module), "?")


class LFP:
    """Layer-wise Feedback Propagation on a PyTorch model.

    ``out = lfp(x)`` runs the model with the rules attached; ``lfp.backward(out, feedback)`` then
    writes ``p.grad = −Δp`` for every trainable parameter (accumulating like autograd), and the
    feedback that reached ``x`` into ``x.grad`` when ``x`` requires grad. Used as a context manager,
    the rules stay attached for the whole block, e.g. for a user's own step loop. Either way, the
    model is untouched afterwards: no hooks or replaced methods remain.

    Parameters
    ----------
    model
        Any :class:`torch.nn.Module` whose layers have rules (see :mod:`spikelfp.composites`). A module
        holding parameters with no rule is an error that names it, and so is a subclass of a layer type
        with a rule that overrides what the type computes (:class:`StrictError`, unless the composite maps
        it explicitly; :meth:`spikelfp.rules.Rule.serves`).
    composite
        A preset name (``"epsilon"``, ``"zplus-zminus"``, …) or a :class:`~spikelfp.composites.Composite`.
    normalize
        ``None``, ``"max"`` or ``"max-batch"``. ``"max"`` divides the feedback leaving each rule layer
        by its maximum absolute value per sample (A.6.3, LFP-SPEC §5); for time-first ``(T, B, …)``
        input the maximum of a sample is over all steps and features. ``"max-batch"`` divides by one
        maximum over the whole batch instead, which keeps how much each sample contributes: the
        feedback of a learned sample stays small, so training converges (see benchmarks/RESULTS.md).
        A user's own time loop (``with lfp:`` and one call per step) cannot be normalised this way:
        each call's feedback would be divided by the maximum of its own step, and autograd passes it
        on before the other steps' feedback exists, so the updates would differ from the multi-step
        model's. :meth:`backward` therefore refuses (``ValueError``, before anything is written) a
        spiking graph in which a layer ran more than once while ``normalize`` is set; run the model
        multi-step (``out = lfp(x)`` on ``(T, B, …)``) or pass ``normalize=None``.
    strict
        Refuse (:class:`StrictError`) a graph in which feedback would pass an autograd node that is
        neither a rule nor pure routing (LFP-SPEC §9 "Strictness"): a bare ``+``, ``torch.sigmoid``
        inside a custom module, a surrogate spike function. The check walks the output's graph at
        :meth:`backward`, before anything is written to ``.grad``. ``strict=False`` lets autograd
        differentiate such nodes (a mix of LFP and gradients) and warns once per engine. Every node
        of the graph is checked, also those that built the input (e.g. ``lfp(encoder(x))`` with a
        learnable encoder outside the model): autograd would write a gradient into whatever tensor
        requiring grad lies behind them. Routing in front of the model (``lfp(x.expand(...))``) passes.
    check_finite
        Raise :class:`NonFiniteError` rather than run a non-finite input or write a non-finite update
        (one reduction per layer, and one over the input of each ``lfp(x)`` call).

    Raises
    ------
    RuntimeError
        When the model is attached while another engine's rules are installed on one of its modules
        (engines may not overlap on a model; detach the other one first).

    Notes
    -----
    While attached, a patched module copies clean: ``copy.deepcopy`` and ``pickle`` see the module
    without the rules (no method bound to the original's weights is carried over).

    Examples
    --------
    >>> lfp = LFP(net, "epsilon")
    >>> out = lfp(x)
    >>> lfp.backward(out, spikelfp.feedback.Softmax()(out, y))
    >>> optimizer.step(); optimizer.zero_grad()
    """

    def __init__(
        self,
        model: nn.Module,
        composite: str | Composite = "epsilon",
        normalize: str | None = None,
        *,
        strict: bool = True,
        check_finite: bool = True,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"LFP needs a torch.nn.Module, got {type(model).__name__}")
        if normalize not in (None, "max", "max-batch"):
            raise ValueError(f"normalize must be None, 'max' or 'max-batch', got {normalize!r}")
        self.model = model
        self.composite = resolve(composite)
        self.normalize = normalize
        self.strict = bool(strict)
        self.check_finite = bool(check_finite)
        self.run = Run(normalize, check_finite)
        self.spiking = any(getattr(m, "is_spiking", False) for m in model.modules())
        self._depth = 0
        self._patched: list[tuple[nn.Module, dict[str, Any], bool | None]] = []
        self._plan: list[tuple[nn.Module, dict[str, Any], bool | None]] | None = None
        self._plan_key: tuple | None = None
        self._strict_warned = False
        self._silence_warned: set[str] = set()

    # ---- attach / detach ------------------------------------------------------------------------
    def rules(self) -> dict[str, Any]:
        """The rule every named module gets (None where it needs none), without attaching."""
        return {name: self._rule_for(name, m) for name, m in self.model.named_modules()}

    def _rule_for(self, name: str, module: nn.Module):
        rule = self.composite.rule_for(name, module)
        if rule is None:
            rule = DEFAULTS.rule_for(name, module)
        if rule is None:
            layer = self.composite.declined(name, module) or DEFAULTS.declined(name, module)
            if layer is not None:
                raise StrictError(_declined(name, module, layer))
            if any(True for _ in module.parameters(recurse=False)):
                raise TypeError(
                    f"module '{name}' of type {type(module).__name__} holds parameters but the composite "
                    "has no rule for it; map it to a rule (LFP never falls back to gradients)"
                )
            if not any(True for _ in module.children()):
                raise TypeError(
                    f"module '{name}' of type {type(module).__name__} has no LFP rule; map it to a rule "
                    "in the composite (e.g. spikelfp.rules.PassThrough() for an element-wise function)"
                )
        return rule

    def _build_plan(self) -> list[tuple[nn.Module, dict[str, Any], bool | None]]:
        """Every module's rule and the methods it installs: computed once, reused by every later attach.

        Two passes: first every module's rule (a recurrent neuron's methods need the rule of its recurrent
        layer, a child that comes after it), then the methods.
        """
        self.run.clear_rules()
        self.run.kinds.clear()
        chosen: list[tuple[str, nn.Module, Any, Any, Exception | None]] = []
        for name, module in self.model.named_modules():
            try:
                rule = self._rule_for(name, module)
            except TypeError as exc:  # raised in module order below, so a refused neuron speaks before its children
                chosen.append((name, module, None, None, exc))
                continue
            if rule is None:
                continue
            neuron = recognize(module)
            self.run.set_rule(module, rule)
            for attr in () if neuron is None else neuron.inner:  # weights inside a neuron: the rule of a Linear
                inner = self.composite.rule_for(f"{name}.{attr}", _LINEAR_PROBE) or DEFAULTS.rule_for(
                    name, _LINEAR_PROBE
                )
                if inner is None:
                    raise TypeError(
                        f"the weights '{name}.{attr}' inside {type(module).__name__} need the composite's rule for "
                        "nn.Linear, and it has none"
                    )
                self.run.set_inner_rule(module, attr, inner)
            chosen.append((name, module, rule, neuron, None))
        plan = []
        for name, module, rule, neuron, error in chosen:
            if error is not None:
                raise error
            methods = rule.patch(module, name, self.run, neuron)
            inplace = getattr(module, "inplace", None)
            inplace = inplace if isinstance(inplace, bool) else None
            plan.append((module, methods, inplace))
            self.run.kinds[name] = type(module).__name__
        return plan

    def _current_plan(self) -> list[tuple[nn.Module, dict[str, Any], bool | None]]:
        """The cached plan while the model holds the same module objects, else a new one."""
        key = tuple((name, id(m)) for name, m in self.model.named_modules())
        if self._plan is None or key != self._plan_key:
            self._plan, self._plan_key = self._build_plan(), key
        return self._plan

    def refresh(self) -> None:
        """Forget the rules computed at the first attach (after changing a module's settings in place, e.g. a
        snnTorch neuron's threshold, which its adapter reads when the rules are computed)."""
        if self._depth:
            raise RuntimeError("refresh() inside an active `with lfp:` block; leave it first")
        self._plan = self._plan_key = None

    def attach(self) -> LFP:
        """Install the rules (re-entrant; :meth:`detach` undoes the outermost call).

        The rules and the methods they install are computed at the first attach and reused while the model
        holds the same module objects (see :meth:`refresh`).

        Raises
        ------
        RuntimeError
            If another engine's rules are installed on one of the model's modules.
        """
        if self._depth == 0:
            try:
                for module, methods, inplace in self._current_plan():
                    owner = _ATTACHED.get(module)
                    other = owner() if owner is not None else None
                    if other is not None and other is not self:
                        raise RuntimeError(
                            f"module '{_name_of(self.model, module)}' ({type(module).__name__}) is attached to "
                            f"another LFP engine ({other!r}); two engines cannot be attached to one model at the "
                            "same time: leave the other engine's `with` block (or call its detach()) first"
                        )
                    saved = {attr: module.__dict__.get(attr, _MISSING) for attr in (*methods, "__reduce_ex__")}
                    self._patched.append((module, saved, inplace))
                    _ATTACHED[module] = weakref.ref(self)
                    module.__dict__.update(methods)
                    module.__dict__["__reduce_ex__"] = _clean_reduce(module, saved, inplace)
                    if inplace:
                        module.inplace = False  # rules save outputs; in-place ops would corrupt them
            except BaseException:
                self._restore()
                raise
        self._depth += 1
        return self

    def detach(self) -> None:
        """Remove the rules once the outermost :meth:`attach` is matched."""
        if self._depth == 0:
            return
        self._depth -= 1
        if self._depth == 0:
            self._restore()

    def _restore(self) -> None:
        while self._patched:
            module, saved, inplace = self._patched.pop()
            for attr, old in saved.items():
                if old is _MISSING:
                    module.__dict__.pop(attr, None)
                else:
                    module.__dict__[attr] = old
            if inplace is not None:
                module.inplace = inplace
            owner = _ATTACHED.get(module)
            if owner is not None and owner() is self:
                del _ATTACHED[module]

    def __enter__(self) -> LFP:
        return self.attach()

    def __exit__(self, *exc: object) -> None:
        self.detach()

    # ---- forward / backward ---------------------------------------------------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        layout = None
        x = args[0] if args else next(iter(kwargs.values()), None)
        if isinstance(x, Tensor):
            if self.spiking:
                _check_time_first(self.model, x)
                layout = (int(x.shape[0]), int(x.shape[1]))
            if self.check_finite:
                _check_input_finite(x)
        self.attach()
        previous = self.run.layout
        self.run.begin_forward(layout)
        try:
            return self.model(*args, **kwargs)
        finally:
            self.run.layout = previous
            self.run.end_forward()
            self.detach()

    def backward(self, output: Tensor, feedback: Tensor, *, retain_graph: bool = False) -> None:
        """Propagate ``feedback`` from ``output`` and write ``p.grad = −Δp`` (accumulating).

        Before anything is written, the output's autograd graph is walked once
        (:func:`spikelfp.strict.inspect`): it must hold a rule of this engine, and (``strict=True``)
        only rules and routing nodes.

        Raises
        ------
        TypeError, ValueError
            If the feedback's shape differs from the output's, either holds NaN or Inf, the output was
            not produced by this engine with grad enabled (e.g. a plain ``net(x)`` or another engine's
            output), or a normalised spiking model ran a layer more than once (a step loop).
        StrictError
            (a TypeError) If ``strict`` and an operation without a rule lies on the feedback's path (also an
            in-place operation on a view that is not a write: :mod:`spikelfp.lfp.inplace`).
        RuntimeError
            If a tensor a rule saved in the forward pass was changed in place afterwards (autograd would
            raise it half-way through the backward).
        NonFiniteError
            (a ValueError) If the output or feedback holds NaN or Inf, or a feedback or update becomes
            non-finite on the way; nothing non-finite is ever written to ``.grad``.
        """
        if not isinstance(output, Tensor) or not isinstance(feedback, Tensor):
            raise TypeError(
                f"output and feedback must be tensors, got {type(output).__name__} and {type(feedback).__name__}"
            )
        if feedback.shape != output.shape:
            raise ValueError(f"feedback shape {tuple(feedback.shape)} differs from output shape {tuple(output.shape)}")
        if not torch.isfinite(output).all():
            raise NonFiniteError("non-finite model output: the output contains NaN or Inf; no update was written")
        if not torch.isfinite(feedback).all():
            raise NonFiniteError("non-finite feedback: the feedback contains NaN or Inf; no update was written")
        if output.grad_fn is None:
            raise ValueError(
                "the output carries no LFP graph: produce it with `out = lfp(x)` while grad is enabled "
                "and the model has trainable parameters"
            )
        self._check_graph(output)
        self._warn_silent_layers()
        torch.autograd.backward(output, feedback.to(output.dtype), retain_graph=retain_graph)

    def _check_graph(self, output: Tensor) -> None:
        report = inspect(output.grad_fn, self.run)
        if not report.own and (report.foreign or report.rule_nodes == 0):
            whose = "another LFP engine" if report.foreign else "no LFP engine (a plain forward pass)"
            raise ValueError(
                f"this output was produced by {whose}, not by this one: produce it with `out = lfp(x)` (or "
                "inside `with lfp:`) so that its rules run; nothing was written to .grad"
            )
        if self.normalize is not None and self.run.spike_counts():
            repeated = sorted(name for name, n in report.calls.items() if n > 1)
            if repeated:
                raise ValueError(
                    f"normalize={self.normalize!r} needs the whole sequence in one call, but layer "
                    f"'{repeated[0]}' ran {report.calls[repeated[0]]} times in this graph (a step loop): each "
                    "call would be normalised by the maximum of its own step, and the updates would differ "
                    "from the multi-step model's. Run the model multi-step (`out = lfp(x)` on (T, B, ...)) "
                    "or pass normalize=None; nothing was written to .grad"
                )
        if report.violation is not None:
            message = (
                f"{report.describe()} has no LFP rule; wrap it in a module with a rule (e.g. sl.nn.Add for a "
                "residual sum) or pass strict=False"
            )
            if self.strict:
                raise StrictError(message + "; nothing was written to .grad")
            if not self._strict_warned:
                self._strict_warned = True
                warnings.warn(
                    message.replace(
                        "or pass strict=False",
                        "(strict=False: autograd differentiates it, mixing a gradient into LFP; warned once)",
                    ),
                    stacklevel=3,
                )
        if report.unusable is not None:
            layer, reason = report.unusable
            hint = ""
            if "inplace" in reason:
                hint = (
                    " A rule keeps the tensors it saved in the forward pass (its input and output): write into a "
                    "copy (`h = h.clone()`) rather than into a layer's output in place."
                )
            raise RuntimeError(
                f"layer '{layer}' cannot run its LFP backward: {reason.rstrip('.')}.{hint} Nothing was written to .grad"
            )

    def _warn_silent_layers(self) -> None:
        silent = [n for n in self.run.silent_layers() if n not in self._silence_warned]
        self.run.mark_seen()
        for name in silent:
            self._silence_warned.add(name)
            kind = self.run.kinds.get(name, "spiking layer")
            log.warning(
                "layer '%s' (%s) did not fire in this batch: the feedback through it and the updates of the "
                "layers before it are zero (raise the input gain, lower its threshold, or check the "
                "encoding); reported once per layer",
                name,
                kind,
            )

    def firing_rates(self) -> dict[str, float]:
        """Mean firing rate per spiking layer in the last forward pass (syncs with the device)."""
        return self.run.firing_rates()

    def __repr__(self) -> str:
        return f"LFP({type(self.model).__name__}, composite={self.composite!r}, normalize={self.normalize!r})"


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------
def _clean_reduce(module: nn.Module, saved: dict[str, Any], inplace: bool | None):
    """A ``__reduce_ex__`` for a patched module: the reduction of the module as it is without LFP.

    ``copy.deepcopy``, ``copy.copy`` and ``pickle`` look ``__reduce_ex__`` up on the instance, so the
    copy gets the module's state with the engine's methods removed (and ``inplace`` restored).
    """

    def __reduce_ex__(protocol: int):
        rv = object.__reduce_ex__(module, protocol)
        if not (isinstance(rv, tuple) and len(rv) >= 3 and isinstance(rv[2], dict)):
            raise TypeError(
                f"{type(module).__name__} cannot be copied or pickled while LFP is attached; copy it outside "
                "the `with lfp:` block"
            )
        state = dict(rv[2])
        for attr, old in saved.items():
            if old is _MISSING:
                state.pop(attr, None)
            else:
                state[attr] = old
        if inplace is not None:
            state["inplace"] = inplace
        return (rv[0], rv[1], state, *rv[3:])

    return __reduce_ex__


def _declined(name: str, module: nn.Module, layer: type) -> str:
    """Why a subclass of a layer type with a rule gets no rule, and what to do."""
    cls = type(module)
    overrides_forward = getattr(cls, "forward", None) is not getattr(layer, "forward", None)
    what = "forward" if overrides_forward else "a method that defines what it computes"
    return (
        f"module '{name}' ({cls.__module__}.{cls.__qualname__}) subclasses {layer.__module__}.{layer.__qualname__} "
        f"but overrides {what}, so the rule for {layer.__name__} does not serve it: "
        "under LFP the rule would replace or hide its own computation (the model would compute something else, "
        "and parameters it adds would not train). Split it into layers that have rules (e.g. an nn.Linear "
        "followed by modules with rules), or, if the rule is meant to serve it, map it explicitly: "
        f"spikelfp.composites.LayerMap([({cls.__name__}, rule), ...]) or a NameMap([('{name}', rule)]) in a "
        "spikelfp.composites.Mixed"
    )


def _check_input_finite(x: Tensor) -> None:
    """Refuse a floating-point input holding NaN or Inf (a stride-0 axis is checked once)."""
    if not x.is_floating_point() or x.numel() == 0:
        return
    view = x
    for dim in range(x.dim()):
        if x.stride(dim) == 0 and x.shape[dim] > 1:
            view = view.narrow(dim, 0, 1)
    if not bool(torch.isfinite(view).all()):
        raise NonFiniteError(
            f"the input to the model (shape {tuple(x.shape)}) contains NaN or Inf: this is bad input data, "
            "not an LFP failure; check the data and its encoding. Nothing was run"
        )


_PASS_SHAPE = (nn.Dropout, nn.Identity)


def _expected_sample_shape(model: nn.Module) -> tuple[str, Any] | None:
    """What the first Linear/Conv of a sequential model says about one sample at one step.

    Returns ``("shape", shape)`` when it fixes the shape, ``("flat", (start, features))`` when a
    ``Flatten(start)`` before a ``Linear`` fixes only the number of features, or None.
    """

    def leaves(m: nn.Module):
        if isinstance(m, nn.Sequential) and not isinstance(m, TimeDistributed):
            for child in m:
                yield from leaves(child)
        else:
            yield m

    if not isinstance(model, nn.Sequential):
        return None
    flatten = None
    for layer in leaves(model):
        if isinstance(layer, _PASS_SHAPE):
            continue
        if isinstance(layer, nn.Flatten) and flatten is None and layer.end_dim == -1:
            flatten = layer.start_dim
            continue
        if isinstance(layer, nn.Linear):
            if flatten is None:
                return "shape", (layer.in_features,)
            return ("flat", (flatten, layer.in_features)) if flatten == 2 else None
        if isinstance(layer, TimeDistributed) and flatten is None:
            first = next((m for m in leaves(nn.Sequential(*layer)) if not isinstance(m, _PASS_SHAPE)), None)
            if isinstance(first, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
                dims = {nn.Conv1d: 1, nn.Conv2d: 2, nn.Conv3d: 3}[type(first)]
                return "conv", (dims, first.in_channels)
        return None
    return None


def _check_time_first(model: nn.Module, x: Tensor) -> None:
    """Refuse input to a spiking model that is not time-first ``(T, B, *sample)``."""
    hint = "encode static inputs first, e.g. spikelfp.encode.constant(images, steps=25)"
    if x.dim() < 3:
        raise ValueError(
            f"this model has spiking layers and needs time-first input (T, B, ...); got a {x.dim()}-d tensor "
            f"of shape {tuple(x.shape)} ({hint})"
        )
    stated = getattr(model, "input_shape", None)
    if stated is not None:
        stated = tuple(int(d) for d in stated)
        if tuple(x.shape[2:]) != stated:
            raise ValueError(
                f"this spiking model needs time-first input (T, B, {', '.join(map(str, stated))}), got shape "
                f"{tuple(x.shape)}; {hint}"
            )
        return
    expected = _expected_sample_shape(model)
    if expected is None:
        return
    kind, info = expected
    got = tuple(x.shape)
    if kind == "shape" and got[-1] != info[0]:  # a Linear first reads the last dimension
        raise ValueError(f"this spiking model needs time-first input (T, B, {info[0]}), got shape {got}; {hint}")
    if kind == "conv":
        dims, channels = info
        if x.dim() != dims + 3 or got[2] != channels:
            want = ", ".join([str(channels)] + ["…"] * dims)
            raise ValueError(f"this spiking model needs time-first input (T, B, {want}), got shape {got}; {hint}")
    if kind == "flat":
        _, features = info
        if math.prod(got[2:]) != features:
            raise ValueError(
                f"this spiking model needs time-first input (T, B, ...) with {features} features per sample and "
                f"step, got shape {got}; {hint}"
            )
        if x.dim() == 4 and got[1] == 1:
            raise ValueError(
                f"input of shape {got} looks like a batch of one-channel images (B, C, H, W), which this model "
                f"would read as {got[0]} time steps of batch 1; it needs time-first input (T, B, C, H, W): "
                f"{hint}. If it is time-first already, state the shape of one sample: "
                f"model.input_shape = {got[2:]}"
            )
