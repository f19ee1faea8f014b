"""LFP rules: how feedback is split between a layer's inputs and turned into parameter updates.

Notation (LFP-SPEC §1): ``z_ij = w_ij a_i`` is the contribution of input ``i`` to output ``j``,
``z_j = Σ_i z_ij + b_j``, and ``r_j`` is the feedback that reached output ``j``. A bias is a
connection from a constant input ``a = 1``. Each rule defines the feedback ``r_ij`` sent from ``j`` to
``i`` (the input feedback is ``r_i = Σ_j r_ij``) and the update ``Δw_ij``. The engine writes
``p.grad = −Δp``, so any ``torch.optim`` optimizer *ascends* the feedback.

A rule is data, as in zennit: a small object holding its hyperparameters. Composites hand each
module its own ``rule.copy()``. A rule that serves linear-like layers implements :meth:`Rule.linear`;
rules for other layer kinds implement :meth:`Rule.patch` directly. A new rule is one class here plus
one line in a composite.

Every rule keeps two invariants the tests check against float64 restatements of the formulas:
zero where nothing flows (a neuron with no input gives zero feedback and zero update, never NaN),
and updates that add up over the batch.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable
from typing import Any, Literal, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .ops import Dense, LinearOp, computes_as, op_for
from .site import NeuronLFP, RuleFunction, Run, Site
from .strict import StrictError

_DENSE_OP = Dense()

__all__ = [
    "AlphaBeta",
    "Epsilon",
    "EpsilonSum",
    "MembraneSplit",
    "PassThrough",
    "QuantizedLayer",
    "Reshape",
    "Rule",
    "RuleFunction",
    "Site",
    "WinnerTakesAll",
    "ZPlusZMinus",
    "Zero",
    "apply_linear",
    "safe_divide",
    "sign0",
    "stabilize",
]


# --------------------------------------------------------------------------------------------------
# numerics shared by the rules
# --------------------------------------------------------------------------------------------------
# Performance notes for the element-wise code below (measured on the CPU build used here):
# - bool-conditioned kernels (torch.where, masked_fill) run ~12x slower than arithmetic, so signs
#   are computed arithmetically;
# - every fresh multi-MB temporary costs page faults (glibc returns large blocks to the OS), often
#   more than the arithmetic itself, so the hot path allocates once and then works in place.


def sign0(z: Tensor) -> Tensor:
    """``sign(z)`` with ``sign(0) := +1`` (LFP-SPEC §2), computed as ``sign(sign(z) + ½)``."""
    return z.sign().add_(0.5).sign_()


def stabilize(z: Tensor, epsilon: float) -> Tensor:
    """``stab(z) = z + ε·sign(z)`` with ``sign(0) := +1``; never zero for ``ε > 0``. A new tensor."""
    if epsilon == 0:
        return z.clone()
    return sign0(z).mul_(epsilon).add_(z)


def _over_stabilized(r: Tensor, z: Tensor, epsilon: float) -> Tensor:
    """``r / stab(z)`` in one allocation (zero where ``stab(z) = 0``, i.e. only if ``ε = 0``)."""
    den = stabilize(z, epsilon)
    if epsilon > 0:  # |stab(z)| ≥ ε > 0
        return torch.div(r, den, out=den)
    return safe_divide(r, den)


def safe_divide(num: Tensor, den: Tensor) -> Tensor:
    """``num / den`` where ``den ≠ 0`` and ``0`` where ``den = 0``."""
    zero = den == 0
    return torch.where(zero, torch.zeros_like(num), num / torch.where(zero, torch.ones_like(den), den))


def _proportional(
    op: LinearOp,
    x: Tensor,
    w: Tensor,
    b: Tensor | None,
    s: Tensor,
    need: tuple[bool, ...],
    latent: Tensor | None = None,
):
    """The core of the ε, 0 and z⁺z⁻ rules: every connection's share is ``z_ij · s_j``.

    .. math::
        r_i = a_i \\sum_j w_{ij} s_j, \\qquad \\Delta w_{ij} = |w_{ij}|\\, a_i\\, s_j,
        \\qquad \\Delta b_j = |b_j|\\, s_j

    summed over the batch (and over positions for convolutions). ``|w_ij|`` is ``|latent_ij|`` when a
    binary layer passes its latent weight (LFP-SPEC §10).
    """
    need_x, need_w, need_b = need
    gx, gw = op.vjp(x, w, s, need_x, need_w)
    r_in = gx.mul_(x) if need_x else None
    dw = gw.mul_((w if latent is None else latent).abs()) if need_w else None
    db = op.bias_sum(s).mul_(b.abs()) if (need_b and b is not None) else None
    return r_in, dw, db


# --------------------------------------------------------------------------------------------------
# rules for linear-like layers (Linear, Conv1d/2d/3d)
# --------------------------------------------------------------------------------------------------
class Rule:
    """Base of every rule. Subclasses for linear-like layers implement :meth:`linear`."""

    def copy(self) -> Rule:
        """A fresh instance with the same hyperparameters (composites call this per module)."""
        return copy.copy(self)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and vars(self) == vars(other)

    def __hash__(self) -> int:
        return hash((type(self), tuple(sorted(vars(self).items()))))

    def linear(
        self,
        op: LinearOp,
        x: Tensor,
        w: Tensor,
        b: Tensor | None,
        z: Tensor,
        r: Tensor,
        need: tuple[bool, bool, bool],
        latent: Tensor | None = None,
    ) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        """Input feedback, weight update and bias update of one linear-like layer.

        Parameters
        ----------
        op
            The layer's :class:`~spikelfp.layers.LinearOp`.
        x, w, b, z
            Input, weight, bias (or None) and output ``z = f(x, w) + b`` of the forward pass.
        r
            Feedback that reached ``z``, shaped like ``z``.
        need
            Which of ``(r_in, Δw, Δb)`` the caller needs.
        latent
            A binary layer's latent weight (LFP-SPEC §10): ``w`` is then ``w_q``, and the factor
            ``|w_ij|`` of ``Δw`` (and the αβ case of a zero ``w_q``) comes from ``latent``.
        """
        raise TypeError(f"{type(self).__name__} is not a rule for linear-like layers")

    def serves(self, module: nn.Module, layer: type) -> bool:
        """Whether this rule computes what ``module`` computes, when a composite maps ``layer`` to it.

        A :class:`~spikelfp.composites.LayerMap` gives the rule of a ``layer`` entry to an instance of
        ``layer`` only if the rule serves it (else the engine refuses the module by name). A rule that runs in
        place of the module's forward (the rules for Linear and Conv layers) or runs it without autograd
        (:class:`PassThrough`, :class:`EpsilonSum`, :class:`MembraneSplit`) serves a module that computes as
        ``layer`` (:func:`~spikelfp.lfp.ops.computes_as`: no subclass overrides ``forward``); the rules for
        linear-like layers also serve a :class:`QuantizedLayer`, which declares that it computes
        ``f(x, w_q) + b``. :class:`Reshape` and :class:`WinnerTakesAll` leave the module's forward to
        autograd, where the strictness walk judges whatever it computes, so they serve every instance.

        Parameters
        ----------
        module
            The module.
        layer
            The layer type of the composite's entry (``module`` is an instance of it).

        Returns
        -------
        bool
            True if the rule serves the module.
        """
        return computes_as(module, layer) or isinstance(module, QuantizedLayer)

    def patch(
        self, module: nn.Module, name: str, run: Run, neuron: NeuronLFP | None = None
    ) -> dict[str, Callable[..., Any]]:
        """Methods to install on ``module`` while LFP is attached (the engine restores them).

        ``neuron`` is what the recogniser of :mod:`spikelfp.interop` found ``module`` to be (None for a module
        that is no neuron); only the temporal rule (:class:`MembraneSplit`) uses it.

        Raises
        ------
        TypeError
            If the module is not linear-like.
        StrictError
            If the module holds a trainable parameter besides ``weight`` and ``bias`` (it would never train).
        """
        found = op_for(module)
        if found is None:
            raise TypeError(
                f"rule {self!r} cannot handle module '{name}' of type {type(module).__name__}; "
                "it serves Linear and Conv1d/2d/3d layers"
            )
        _refuse_untrained(module, name, self, trained=("weight", "bias"))
        op, pre_pad, pad_mode = found
        rule = self
        if isinstance(module, QuantizedLayer):  # computes with other weights than it stores (sl.nn.BinaryLinear)
            return {"forward": _quantized_forward(rule, module, name, run, op, pre_pad, pad_mode)}

        def forward(x: Tensor) -> Tensor:
            if pre_pad is not None:
                x = F.pad(x, pre_pad, mode=pad_mode)
            weight, bias = module.weight, module.bias
            if torch.is_autocast_enabled(x.device.type):  # autocast: the rule runs in its dtype, forward and back
                dtype = torch.get_autocast_dtype(x.device.type)
                x, weight = x.to(dtype), weight.to(dtype)
                bias = None if bias is None else bias.to(dtype)
            if _hoistable(x, op, run):  # the same input at every step: compute once, expand the output
                layout = None if run.layout is None else (1, run.layout[1])
                z = _LinearRuleFunction.apply(x[:1], weight, bias, Site(rule, run, name, layout, op=op))
                return z.expand(x.shape[0], *z.shape[1:])
            site = Site(rule, run, name, run.layout, op=op)
            return _LinearRuleFunction.apply(x, weight, bias, site)

        return {"forward": forward}


def _refuse_untrained(module: nn.Module, name: str, rule: Rule, trained: tuple[str, ...] = ()) -> None:
    """Refuse a module holding a trainable parameter that ``rule`` does not train (LFP never falls back)."""
    left = [p for p, t in module.named_parameters(recurse=False) if t.requires_grad and p not in trained]
    if left:
        raise StrictError(
            f"module '{name}' ({type(module).__name__}) holds the trainable parameter(s) {', '.join(left)}, which "
            f"its rule {rule!r} does not train (they would never change under LFP); freeze them "
            "(requires_grad_(False)), map the module to a rule that trains them, or split it into supported layers"
        )


@runtime_checkable
class QuantizedLayer(Protocol):
    """A linear-like layer that computes with a quantised copy ``w_q`` of its latent ``.weight``
    (LFP-SPEC §10, §12; :mod:`spikelfp.binary`).

    Under LFP the rule sees the layer as it computes (contributions ``z_ij = w_q,ij · a_i``) and returns its
    update as the latent weight's ``−Δw``; ``magnitude`` says where the update's factor ``|w_ij|`` comes
    from: ``"quantized"`` (``|w_q|``) or ``"latent"`` (``|w|``).
    """

    magnitude: str

    def quantized_weight(self) -> Tensor: ...


def _quantized_forward(rule: Rule, module: QuantizedLayer, name: str, run: Run, op, pre_pad, pad_mode):
    latent = module.magnitude == "latent"
    if latent and "latent" not in inspect.signature(rule.linear).parameters:
        raise TypeError(
            f"rule {rule!r} of quantised layer '{name}' takes no 'latent' argument, so it cannot use the latent "
            "weight's magnitude (LFP-SPEC §10); add `latent=None` to its linear() or use magnitude='quantized'"
        )

    def forward(x: Tensor) -> Tensor:
        if pre_pad is not None:
            x = F.pad(x, pre_pad, mode=pad_mode)
        site = Site(rule, run, name, run.layout, op=op)
        return _QuantizedRuleFunction.apply(x, module.weight, module.bias, site, module.quantized_weight(), latent)

    return forward


class _QuantizedRuleFunction(RuleFunction):
    """LFP through a quantised layer: contributions from ``w_q``, the update returned as the latent's ``−Δw``.

    Forward: ``z = f(x, w_q) + b``. Backward: the rule's input feedback and update computed with ``w_q`` as
    the layer's weight, with the magnitude factor of the latent weight (``latent=True``) or of ``w_q``.
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None, site: Site, wq: Tensor, latent: bool) -> Tensor:
        z = site.op.forward(x, wq, bias)
        ctx.site, ctx.latent = site, latent
        ctx.save_for_backward(site.run.compact(x), weight, wq, bias, z)
        return z

    @staticmethod
    def backward(ctx, r: Tensor):
        site: Site = ctx.site
        x, w, wq, b, z = ctx.saved_tensors
        if x.dtype != r.dtype:
            x = x.to(r.dtype)
        need = (ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.needs_input_grad[2])
        extra = {"latent": w} if ctx.latent else {}
        r_in, dw, db = site.rule.linear(site.op, x, wq, b, z, r, need, **extra)
        return (*site.run.leave(site.name, site.layout, r_in, dw, db), None, None, None)


def apply_linear(rule: Rule, run: Run, name: str, x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``x Wᵀ + b`` under ``rule``, for weights that live inside another module (norse's cells hold their input
    and recurrent weights as parameters, not as ``nn.Linear`` layers): the feedback and update are the rule's
    for a dense layer, exactly as for an ``nn.Linear`` holding ``weight`` and ``bias``."""
    if type(rule).linear is Rule.linear:
        raise TypeError(f"'{name}': the rule {rule!r} is not a rule for linear-like layers")
    return _LinearRuleFunction.apply(x, weight, bias, Site(rule, run, name, run.layout, op=_DENSE_OP))


# autograd nodes that only re-view their input: feedback through them reaches the expansion behind
_VIEW_NODES = frozenset({"ViewBackward0", "UnsafeViewBackward0", "ReshapeAliasBackward0", "AliasBackward0"})


def _hoistable(x: Tensor, op: LinearOp, run: Run) -> bool:
    """Whether a linear-like layer may compute once on ``x[:1]`` and expand: constant-input hoisting.

    ``x`` must repeat one slice along dimension 0 (stride 0, as :func:`spikelfp.encode.constant` or
    ``expand`` make it; ``Flatten(2)`` keeps it), with dimension 0 a time or batch axis (a
    convolution's input batched). The layer's output is then the same at every step, and the update is
    exact: autograd's backward of the expansion sums the feedback over steps, and every rule is linear
    in the feedback with a denominator that is the same at every step, so
    ``Δw(Σ_t r_t) = Σ_t Δw(r_t)``. The input feedback is the step-sum ``Σ_t r_in,t`` at step 0 and zero
    elsewhere, so the layer hoists only if nothing reads the per-step input feedback: the input needs
    no grad, or it is a view of an ``expand`` (whose backward sums over steps anyway) and no
    normalisation rescales the feedback by its per-step maximum.
    """
    if x.dim() < 2 or x.shape[0] < 2 or x.stride(0) != 0:
        return False
    spatial = getattr(op, "stride", None)
    if spatial is not None and x.dim() != len(spatial) + 2:  # an unbatched convolution input
        return False
    if not x.requires_grad:
        return True
    if run.normalize is not None:
        return False
    node = x.grad_fn
    while node is not None and type(node).__name__ in _VIEW_NODES:
        node = node.next_functions[0][0]
    return node is not None and type(node).__name__ == "ExpandBackward0"


class Zero(Rule):
    """LFP-0 (Eq. 2, 4): the plain proportional split.

    .. math::
        r_{ij} = \\frac{z_{ij}}{z_j} r_j, \\qquad
        \\Delta w_{ij} = \\frac{|w_{ij}|\\, a_i}{z_j} r_j

    A neuron with ``z_j = 0`` passes no feedback and gets no update (instead of dividing by zero).
    """

    def linear(self, op, x, w, b, z, r, need, latent=None):
        return _proportional(op, x, w, b, safe_divide(r, z), need, latent)


class Epsilon(Rule):
    """LFP-ε (Eq. 8, 9): the proportional split with a stabilised denominator.

    .. math::
        r_{ij} = \\frac{z_{ij}}{z_j + \\varepsilon\\,\\mathrm{sign}(z_j)} r_j, \\qquad
        \\Delta w_{ij} = \\frac{|w_{ij}|\\, a_i}{z_j + \\varepsilon\\,\\mathrm{sign}(z_j)} r_j

    with ``sign(0) := +1``. For ``ε → 0`` and no bias the feedback is conserved: ``Σ_i r_i = Σ_j r_j``.

    Parameters
    ----------
    epsilon
        The stabiliser ``ε ≥ 0`` (default ``1e-6``, as in the paper).
    """

    def __init__(self, epsilon: float = 1e-6) -> None:
        if not epsilon >= 0:
            raise ValueError(f"epsilon must be >= 0, got {epsilon}")
        self.epsilon = float(epsilon)

    def linear(self, op, x, w, b, z, r, need, latent=None):
        return _proportional(op, x, w, b, _over_stabilized(r, z, self.epsilon), need, latent)


class ZPlusZMinus(Rule):
    """LFP-z⁺z⁻ (Eq. 12, 13, A.13): positive and negative contributions weighted by their shares.

    Both cases of Eq. 12 reduce to one expression (LFP-SPEC §2),

    .. math::
        r_{ij} = \\frac{z_{ij}}{|z_j^+| + |z_j^-| + \\varepsilon}\\,\\mathrm{sign}(z_j)\\, r_j, \\qquad
        \\Delta w_{ij} = \\frac{|w_{ij}|\\, a_i}{|z_j^+| + |z_j^-| + \\varepsilon}\\,\\mathrm{sign}(z_j)\\, r_j

    where ``|z⁺_j| + |z⁻_j| = Σ_i |w_ij a_i| + |b_j|``. The feedback a neuron passes on is bounded by
    the feedback it received: ``Σ_i |r_ij| ≤ |r_j|``.

    Parameters
    ----------
    epsilon
        Stabiliser of the denominator (default ``1e-6``).
    """

    def __init__(self, epsilon: float = 1e-6) -> None:
        if not epsilon >= 0:
            raise ValueError(f"epsilon must be >= 0, got {epsilon}")
        self.epsilon = float(epsilon)

    def linear(self, op, x, w, b, z, r, need, latent=None):
        den = op.forward(x.abs(), w.abs(), None if b is None else b.abs())
        signed = sign0(z).mul_(r)
        s = signed.div_(den.add_(self.epsilon)) if self.epsilon > 0 else safe_divide(signed, den)
        return _proportional(op, x, w, b, s, need, latent)


class AlphaBeta(Rule):
    """LFP-αβ (Eq. 10, 11): positive and negative contributions split with fixed weights α and β.

    .. math::
        r_{ij} = \\begin{cases}
            \\alpha \\frac{z_{ij}}{z_j^+}\\,\\mathrm{sign}(z_j)\\, r_j & z_{ij} \\ge 0 \\\\
            -\\beta \\frac{z_{ij}}{z_j^-}\\,\\mathrm{sign}(z_j)\\, r_j & z_{ij} < 0
        \\end{cases}

    and the same split with ``|w_ij| a_i`` in place of ``z_ij`` for ``Δw_ij`` (the case chosen by the
    sign of ``w_ij a_i``). ``z⁺_j = Σ_i max(z_ij, 0)`` and ``z⁻_j = Σ_i min(z_ij, 0)`` come from the
    signs of the products, i.e. the four-term split ``W⁺a⁺ + W⁻a⁻`` against ``W⁺a⁻ + W⁻a⁺``, with the
    bias counted by its sign. Both denominators are stabilised with ε.

    Parameters
    ----------
    alpha, beta
        Weights of the positive and negative parts. ``α − β = 1`` conserves the feedback's sum and
        is enforced unless ``conserve=False``.
    epsilon
        Stabiliser (default ``1e-6``).
    conserve
        Check ``α − β = 1``.
    """

    def __init__(self, alpha: float = 2.0, beta: float = 1.0, epsilon: float = 1e-6, conserve: bool = True):
        if conserve and abs((alpha - beta) - 1.0) > 1e-12:
            raise ValueError(
                f"AlphaBeta needs alpha - beta = 1 to conserve feedback, got alpha={alpha}, beta={beta}; "
                "pass conserve=False to use these values anyway"
            )
        if not (alpha >= 0 and beta >= 0 and epsilon >= 0):
            raise ValueError(f"alpha, beta and epsilon must be >= 0, got {alpha}, {beta}, {epsilon}")
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.epsilon = float(epsilon)

    def linear(self, op, x, w, b, z, r, need, latent=None):
        need_x, need_w, need_b = need
        xp, xn = x.clamp(min=0), x.clamp(max=0)
        wp, wn = w.clamp(min=0), w.clamp(max=0)
        bp = bn = None
        if b is not None:
            bp, bn = b.clamp(min=0), b.clamp(max=0)
        zp = op.forward(xp, wp, bp) + op.forward(xn, wn, None)
        zn = op.forward(xp, wn, bn) + op.forward(xn, wp, None)
        signed = sign0(z).mul_(r)
        divide = torch.div if self.epsilon > 0 else safe_divide
        sp = divide(self.alpha * signed, stabilize(zp, self.epsilon))  # for z_ij >= 0
        sn = divide(self.beta * signed, stabilize(zn, self.epsilon))  # for z_ij < 0, enters with −
        r_in = dw = db = None
        if need_x:
            gpp, _ = op.vjp(xp, wp, sp, True, False)
            gpn, _ = op.vjp(xp, wn, sn, True, False)
            gnp, _ = op.vjp(xn, wn, sp, True, False)
            gnn, _ = op.vjp(xn, wp, sn, True, False)
            r_in = xp * (gpp - gpn) + xn * (gnp - gnn)
        if need_w:
            _, g_xp_sp = op.vjp(xp, w, sp, False, True)
            _, g_xn_sn = op.vjp(xn, w, sn, False, True)
            _, g_xn_sp = op.vjp(xn, w, sp, False, True)
            _, g_xp_sn = op.vjp(xp, w, sn, False, True)
            positive_w = g_xp_sp - g_xn_sn  # w > 0: a > 0 is the α case, a < 0 the β case
            negative_w = g_xn_sp - g_xp_sn  # w < 0: a < 0 is the α case, a > 0 the β case
            m = w if latent is None else latent
            dw = m.abs() * torch.where(m > 0, positive_w, negative_w)
        if need_b and b is not None:
            db = b.abs() * torch.where(b >= 0, op.bias_sum(sp), -op.bias_sum(sn))
        return r_in, dw, db


class _LinearRuleFunction(RuleFunction):
    """Forward: the layer as it is. Backward: the rule's input feedback, and ``−Δw``, ``−Δb``."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None, site: Site) -> Tensor:
        z = site.op.forward(x, weight, bias)
        ctx.site = site
        ctx.save_for_backward(site.run.compact(x), weight, bias, z)
        return z

    @staticmethod
    def backward(ctx, r: Tensor):
        site: Site = ctx.site
        x, w, b, z = ctx.saved_tensors
        if x.dtype != r.dtype:
            x = x.to(r.dtype)
        need = (ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.needs_input_grad[2])
        r_in, dw, db = site.rule.linear(site.op, x, w, b, z, r, need)
        return (*site.run.leave(site.name, site.layout, r_in, dw, db), None)


# --------------------------------------------------------------------------------------------------
# rules for parameter-free layers (the engine's defaults; composites may override them)
# --------------------------------------------------------------------------------------------------
class PassThrough(Rule):
    """Element-wise activations (ReLU, Tanh, Sigmoid, Heaviside, …) and Dropout: ``r_in = r``.

    An element-wise activation has a single input per output, so all of ``r_j`` goes to it. This is
    what lets LFP train through step functions, whose derivative is zero. For Dropout, the dropped
    units' feedback is zero wherever the next layer follows a rule, because their output is zero.
    """

    def serves(self, module, layer):  # the rule runs the module's forward without autograd
        return computes_as(module, layer)

    def patch(self, module, name, run, neuron=None):
        _refuse_untrained(module, name, self)
        original = module.forward

        def forward(x: Tensor) -> Tensor:
            return _PassThroughFunction.apply(x, original)

        return {"forward": forward}


class _PassThroughFunction(RuleFunction):
    @staticmethod
    def forward(ctx, x: Tensor, fn: Callable[[Tensor], Tensor]) -> Tensor:
        y = fn(x)
        return y.view_as(y) if y is x else y

    @staticmethod
    def backward(ctx, r: Tensor):
        return r, None


class EpsilonSum(Rule):
    """A parameter-free sum (AvgPool, AdaptiveAvgPool, :class:`spikelfp.nn.Add`) under the ε-rule.

    For a sum ``z_j = Σ_i c_ij a_i`` with fixed coefficients,

    .. math:: r_i = a_i \\sum_j c_{ij} \\frac{r_j}{z_j + \\varepsilon\\,\\mathrm{sign}(z_j)}.

    For a residual sum ``z = a + b`` this splits the feedback in proportion to the summands.
    """

    def __init__(self, epsilon: float = 1e-6) -> None:
        self.epsilon = float(epsilon)

    def serves(self, module, layer):  # the rule differentiates the module's forward as a fixed linear sum
        return computes_as(module, layer)

    def patch(self, module, name, run, neuron=None):
        _refuse_untrained(module, name, self)
        original = module.forward
        eps = self.epsilon

        def forward(*inputs: Tensor) -> Tensor:
            return _EpsilonSumFunction.apply(original, eps, *inputs)

        return {"forward": forward}


class _EpsilonSumFunction(RuleFunction):
    @staticmethod
    def forward(ctx, fn, eps, *inputs):
        z = fn(*inputs)
        ctx.fn, ctx.eps = fn, eps
        ctx.save_for_backward(z, *inputs)
        return z

    @staticmethod
    def backward(ctx, r):
        z, *inputs = ctx.saved_tensors
        s = safe_divide(r, stabilize(z, ctx.eps))
        leaves = [x.detach().requires_grad_(True) for x in inputs]
        with torch.enable_grad():
            out = ctx.fn(*leaves)
        wanted = [i for i, x in enumerate(leaves) if ctx.needs_input_grad[2 + i]]
        grads = torch.autograd.grad(out, [leaves[i] for i in wanted], s) if wanted else []
        result: list[Tensor | None] = [None] * len(inputs)
        for i, g in zip(wanted, grads):
            result[i] = inputs[i] * g
        return (None, None, *result)


class WinnerTakesAll(Rule):
    """Max-pooling: all feedback of an output goes to the input that won the max.

    This is exactly autograd's own backward of max-pooling (it routes to the arg-max), so the
    engine leaves such modules as they are.
    """

    def serves(self, module, layer):  # the module's own forward runs under autograd: the walk judges it
        return True

    def patch(self, module, name, run, neuron=None):
        return {}


class Reshape(Rule):
    """Flatten, Unflatten, Identity: the feedback only changes shape (autograd's own backward)."""

    def serves(self, module, layer):  # the module's own forward runs under autograd: the walk judges it
        return True

    def patch(self, module, name, run, neuron=None):
        return {}


class MembraneSplit(Rule):
    """The temporal rule at spiking neurons (LFP-SPEC §5): the z⁺z⁻ split over two contributions.

    Feedback reaches the membrane as ``r_U[t] = r_S[t] + r_carry[t]``: ``r_S`` arrives through the
    Heaviside unchanged and ``r_carry`` comes back from step ``t+1``. It is split between the input
    current ``I[t]`` and the carried membrane ``k[t] = β·U[t−1]`` (zero reset: ``β(1−S[t−1])U[t−1]``):

    .. math::
        D = |I[t]| + |k[t]| + \\varepsilon, \\quad
        r_I[t] = \\frac{I[t]}{D} r_U[t], \\quad
        r_{carry}[t-1] = \\frac{k[t]}{D} r_U[t]

    The reset term gets no feedback and is not in ``D``. The sign factor of z⁺z⁻ is the sign of the
    neuron's output, a spike, so it is +1.

    The same rule serves the whole neuron family (LFP-SPEC §9; :mod:`spikelfp.neurons.lfp`): every state
    is a sum node ``z = Σ_k c_k`` whose feedback is split as ``r_k = c_k/(Σ_k|c_k| + ε)·σ_z·r_z``, with
    ``σ_z = +1`` at a spiking membrane and ``sign(z)`` at a synaptic current or a leaky integrator, and a
    learnable decay gets ``Δβ = Σ_{t,b} r_carry[t−1]``.

    Parameters
    ----------
    epsilon
        Stabiliser of ``D``.
    carry
        ``"signed"`` (the spec) or ``"abs"``: the variant ``r_carry[t−1] = |k[t]|/D · r_U[t]``, which
        moves the previous membrane the same way as this one.
    """

    def __init__(self, epsilon: float = 1e-6, carry: Literal["signed", "abs"] = "signed") -> None:
        if carry not in ("signed", "abs"):
            raise ValueError(f"carry must be 'signed' or 'abs', got {carry!r}")
        if not epsilon >= 0:
            raise ValueError(f"epsilon must be >= 0, got {epsilon}")
        self.epsilon = float(epsilon)
        self.carry = carry

    def serves(self, module, layer):  # the rule installs the neuron family's methods in place of the module's
        return computes_as(module, layer)

    def patch(self, module, name, run, neuron=None):
        if neuron is None:
            raise TypeError(
                f"rule {self!r} cannot handle module '{name}' of type {type(module).__name__}; it serves "
                "spikelfp's neurons (LIF, CubaLIF, RLIF, RCubaLIF, LI) and the snnTorch and norse neurons that "
                "spikelfp.interop recognises"
            )
        return neuron.lfp_methods(module, self, name, run)
