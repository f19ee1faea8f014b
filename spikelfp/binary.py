"""Binary- and ternary-weight layers (LFP-SPEC §10) and the conversion of float models to them.

A binary-weight layer keeps a real **latent** weight ``w`` (its ``.weight``) and computes with

.. math::
    w_q = \\alpha_{row}\\,\\mathrm{sign}(w), \\qquad \\alpha_{row} = \\operatorname{mean}_i |w_{row,i}|,
    \\qquad \\mathrm{sign}(0) := +1

(one scale per output unit: a row of a Linear, an output channel of a conv). A ternary layer (TWN)
computes with

.. math::
    w_q = \\alpha_{row}\\,\\mathrm{sign}(w)\\,[|w| > \\delta_{row}], \\qquad
    \\delta_{row} = 0.7 \\operatorname{mean}_i |w_{row,i}|, \\qquad
    \\alpha_{row} = \\operatorname{mean}\\{|w_{row,i}| : |w_{row,i}| > \\delta_{row}\\}

Biases stay real.

- **Under LFP** the rule sees the layer as it computes: contributions ``z_ij = w_q,ij · a_i``, so the
  feedback passed down is the binary network's. The latent weight's update is the rule's update with
  the magnitude factor ``|w_ij|`` of the *latent* weight (``magnitude="latent"``, the spec's default,
  which lets a ternary zero grow back), or of ``w_q`` (``magnitude="quantized"``, the variant).
  No derivative of the sign function is needed.
- **Under gradients** (the surrogate and gradient baselines) the layer uses the straight-through
  estimator of BinaryConnect: ``∂w_q/∂w := 1`` (identity, not clipped at ``|w| ≤ 1``).

:func:`convert` turns the Linear/Conv2d layers of a float model into binary ones (latent weights
copied), and :func:`spikelfp.export.save_binary` writes exactly ``w_q``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .lfp.rules import sign0

__all__ = ["MODES", "BinaryConv2d", "BinaryLinear", "convert", "is_binary", "quantize"]

#: the weight modes of a binary layer
MODES = ("binary", "ternary")
_MAGNITUDES = ("latent", "quantized")

#: the ternary threshold factor of TWN: ``δ_row = 0.7 · mean |w_row|``
TERNARY_DELTA = 0.7


def _check_mode(mode: str, magnitude: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be 'binary' or 'ternary', got {mode!r}")
    if magnitude not in _MAGNITUDES:
        raise ValueError(f"magnitude must be 'latent' or 'quantized', got {magnitude!r}")


def quantize(weight: Tensor, mode: str = "binary") -> tuple[Tensor, Tensor, Tensor | None]:
    """The quantised weight of LFP-SPEC §10, with its parts.

    Parameters
    ----------
    weight
        The latent weight, output units along dimension 0.
    mode
        ``"binary"``: ``w_q = α_row · sign(w)``, ``α_row = mean |w_row|``; ``"ternary"``:
        ``w_q = α_row · sign(w) · [|w| > δ_row]``, ``δ_row = 0.7 · mean |w_row|``, ``α_row`` = mean of
        ``|w|`` over the kept entries (0 for a row that keeps none). ``sign(0) := +1``.

    Returns
    -------
    w_q, alpha, mask
        ``w_q`` shaped like ``weight``; ``alpha`` of shape ``(out,)``; the bool keep-mask (ternary) or None.
        ``w_q`` is computed as ``(sign · mask) · α``, a product of exact factors, so ``±α`` and ``0``
        are exact and a file holding ``sign``, ``mask`` and ``α`` reproduces it bit for bit.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be 'binary' or 'ternary', got {mode!r}")
    rows = weight.reshape(weight.shape[0], -1)
    mag = rows.abs()
    signs = sign0(rows)
    if mode == "binary":
        alpha = mag.mean(dim=1)
        mask = None
        wq = signs * alpha[:, None]
    else:
        delta = TERNARY_DELTA * mag.mean(dim=1, keepdim=True)
        keep = mag > delta
        kept = keep.to(weight.dtype)
        alpha = (mag * kept).sum(dim=1) / kept.sum(dim=1).clamp(min=1.0)
        mask = keep.reshape(weight.shape)
        wq = (signs * kept) * alpha[:, None]
    return wq.reshape(weight.shape), alpha, mask


class _StraightThrough(torch.autograd.Function):
    """``w_q`` forward; the identity backward of BinaryConnect (``∂w_q/∂w := 1``)."""

    @staticmethod
    def forward(ctx, weight: Tensor, mode: str) -> Tensor:
        return quantize(weight, mode)[0]

    @staticmethod
    def backward(ctx, grad: Tensor):
        return grad, None


class _BinaryMixin:
    """What BinaryLinear and BinaryConv2d share: the mode and ``w_q``.

    Under LFP the rules see such a layer through :class:`spikelfp.lfp.rules.QuantizedLayer`: it computes with
    :meth:`quantized_weight`, and ``magnitude`` says where the update's ``|w|`` factor comes from.
    """

    weight: Tensor
    bias: Tensor | None
    mode: str
    magnitude: str

    def quantized_weight(self) -> Tensor:
        """``w_q`` of the current latent weight (no autograd history)."""
        with torch.no_grad():
            return quantize(self.weight, self.mode)[0]

    def scales(self) -> Tensor:
        """``α_row`` of the current latent weight, shape ``(out,)``."""
        with torch.no_grad():
            return quantize(self.weight, self.mode)[1]

    def zero_fraction(self) -> float:
        """The fraction of entries of ``w_q`` that are exactly zero (ternary sparsity)."""
        return float((self.quantized_weight() == 0).float().mean())

    def _ste_weight(self) -> Tensor:
        return _StraightThrough.apply(self.weight, self.mode)

    def _binary_repr(self) -> str:
        return f"mode={self.mode!r}, magnitude={self.magnitude!r}"


class BinaryLinear(_BinaryMixin, nn.Linear):
    """A Linear layer that computes with binary or ternary weights (LFP-SPEC §10).

    ``z = x w_qᵀ + b`` with ``w_q`` from :func:`quantize` of the latent ``.weight``. Gradients reach
    the latent weight through the straight-through estimator; LFP updates it with the rule's update
    (contributions from ``w_q``, magnitude from the latent weight by default).

    Parameters
    ----------
    in_features, out_features, bias
        As :class:`torch.nn.Linear`.
    mode
        ``"binary"`` or ``"ternary"``.
    magnitude
        ``"latent"`` (spec default) or ``"quantized"``: where the factor ``|w_ij|`` of the LFP update comes from.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        mode: Literal["binary", "ternary"] = "binary",
        magnitude: Literal["latent", "quantized"] = "latent",
        device=None,
        dtype=None,
    ) -> None:
        _check_mode(mode, magnitude)
        super().__init__(in_features, out_features, bias, device=device, dtype=dtype)
        self.mode, self.magnitude = mode, magnitude

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self._ste_weight(), self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, {self._binary_repr()}"


class BinaryConv2d(_BinaryMixin, nn.Conv2d):
    """A Conv2d layer that computes with binary or ternary weights (one ``α`` per output channel).

    Parameters
    ----------
    *args, **kwargs
        As :class:`torch.nn.Conv2d`.
    mode, magnitude
        As :class:`BinaryLinear`.
    """

    def __init__(
        self,
        *args,
        mode: Literal["binary", "ternary"] = "binary",
        magnitude: Literal["latent", "quantized"] = "latent",
        **kwargs,
    ) -> None:
        _check_mode(mode, magnitude)
        super().__init__(*args, **kwargs)
        self.mode, self.magnitude = mode, magnitude

    def forward(self, x: Tensor) -> Tensor:
        return self._conv_forward(x, self._ste_weight(), self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, {self._binary_repr()}"


def is_binary(module: nn.Module) -> bool:
    """True for :class:`BinaryLinear` and :class:`BinaryConv2d`."""
    return isinstance(module, _BinaryMixin)


_BINARY_FORMS: dict[type, type] = {nn.Linear: BinaryLinear, nn.Conv2d: BinaryConv2d}


def _binary_of(layer: nn.Module, mode: str, magnitude: str) -> nn.Module:
    w = layer.weight
    factory = {"device": w.device, "dtype": w.dtype}
    if isinstance(layer, nn.Linear):
        new: nn.Module = BinaryLinear(
            layer.in_features, layer.out_features, layer.bias is not None, mode, magnitude, **factory
        )
    else:
        new = BinaryConv2d(
            layer.in_channels,
            layer.out_channels,
            layer.kernel_size,
            stride=layer.stride,
            padding=layer.padding,
            dilation=layer.dilation,
            groups=layer.groups,
            bias=layer.bias is not None,
            padding_mode=layer.padding_mode,
            mode=mode,
            magnitude=magnitude,
            **factory,
        )
    with torch.no_grad():
        new.weight.copy_(layer.weight)
        if layer.bias is not None:
            new.bias.copy_(layer.bias)
    new.train(layer.training)
    return new


def convert(
    model: nn.Module,
    mode: Literal["binary", "ternary"] = "binary",
    layers: Sequence[type] | None = None,
    keep_first: bool = False,
    keep_last: bool = False,
    magnitude: Literal["latent", "quantized"] = "latent",
) -> nn.Module:
    """A copy of ``model`` whose Linear/Conv2d layers compute with binary (or ternary) weights.

    Each converted layer's latent weight and bias are copies of the float layer's, so ``w_q`` is the
    post-hoc binarisation of the float weight until training moves it. The input ``model`` is not
    changed. Binary layers already in the model get the new ``mode`` and ``magnitude``.

    Parameters
    ----------
    model
        Any model.
    mode
        ``"binary"`` or ``"ternary"``.
    layers
        The layer types to convert (default ``(nn.Linear, nn.Conv2d)``). A type with no binary form
        is a ``TypeError`` that names it. Only layers of exactly these types are converted (a
        subclass of Linear may compute something else).
    keep_first, keep_last
        Keep the first / last convertible layer (in module order) real-valued.
    magnitude
        Where the LFP update's ``|w|`` factor comes from (see :class:`BinaryLinear`).

    Returns
    -------
    nn.Module
        The converted copy.
    """
    _check_mode(mode, magnitude)
    if layers is None:
        types: tuple[type, ...] = (nn.Linear, nn.Conv2d)
    else:
        if isinstance(layers, type):
            layers = [layers]
        types = tuple(layers)
        for t in types:
            if not isinstance(t, type):
                raise TypeError(f"layers must be layer types (nn.Linear, nn.Conv2d), got {t!r}")
            if t not in _BINARY_FORMS and t not in (BinaryLinear, BinaryConv2d):
                raise TypeError(
                    f"layer type {t.__module__}.{t.__qualname__} has no binary form; binary layers exist for "
                    "torch.nn.Linear and torch.nn.Conv2d"
                )
    floats = {t for t in types if t in _BINARY_FORMS}
    binaries = {_BINARY_FORMS[t] for t in floats} | {t for t in types if t in (BinaryLinear, BinaryConv2d)}
    out = copy.deepcopy(model)
    targets = [(name, m) for name, m in out.named_modules() if type(m) in floats or type(m) in binaries]
    if keep_first and targets:
        targets = targets[1:]
    if keep_last and targets:
        targets = targets[:-1]
    for name, layer in targets:
        if not name:  # the model is itself one layer
            return _binary_of(layer, mode, magnitude)
        parent_name, _, child = name.rpartition(".")
        parent = out.get_submodule(parent_name) if parent_name else out
        setattr(parent, child, _binary_of(layer, mode, magnitude))
    return out
