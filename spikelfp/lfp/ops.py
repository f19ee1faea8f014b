"""Linear-like layers as the rules see them.

Every rule of LFP-SPEC §2 works on a layer of the form

.. math:: z_j = \\sum_i w_{ij} a_i + b_j = f(a, w)_j + b_j

with ``f`` bilinear in the input ``a`` and the weight ``w``. A rule needs three things from such a
layer: ``f`` itself (for the z⁺/z⁻ splits), and the two vector-Jacobian products
``(∂f/∂a)ᵀ s`` and ``(∂f/∂w)ᵀ s`` for a per-output signal ``s``. These are exactly the two products a
gradient backward computes, so every rule costs what backprop costs, plus element-wise work.

:class:`Dense` serves :class:`torch.nn.Linear` and :class:`Conv` serves ``Conv1d/2d/3d``. A new
linear-like layer type is one more subclass and one line in :func:`op_for`. :func:`computes_as` says whether
a module computes exactly what its layer type computes (a subclass that overrides ``forward`` does not).
"""

from __future__ import annotations

import types
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["Conv", "Dense", "LinearOp", "computes_as", "op_for"]


class LinearOp:
    """``z = f(x, w) + b`` for a bilinear ``f``; the interface a rule calls."""

    #: dimension of ``z`` that indexes output units (channels)
    channel_dim: int

    def forward(self, x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
        raise NotImplementedError

    def vjp(self, x: Tensor, w: Tensor, s: Tensor, need_x: bool, need_w: bool):
        """Return ``((∂f/∂x)ᵀ s, (∂f/∂w)ᵀ s)``, with ``None`` where not needed."""
        raise NotImplementedError

    def bias_sum(self, s: Tensor) -> Tensor:
        """``Σ s`` over every dimension but the channel one: the bias's share of a signal."""
        dims = [d for d in range(s.dim()) if d != self.channel_dim % s.dim()]
        return s.sum(dim=dims)


@dataclass(frozen=True)
class Dense(LinearOp):
    """``z = x wᵀ + b`` over any leading dimensions (``(B, F)`` or time-first ``(T, B, F)``)."""

    channel_dim: int = -1

    def forward(self, x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
        return F.linear(x, w, b)

    def vjp(self, x: Tensor, w: Tensor, s: Tensor, need_x: bool, need_w: bool):
        gx = s @ w if need_x else None
        gw = None
        if need_w:
            s2 = s.reshape(-1, s.shape[-1])
            gw = s2.t() @ x.reshape(-1, x.shape[-1]).to(s2.dtype)
        return gx, gw


@dataclass(frozen=True)
class Conv(LinearOp):
    """``z = conv(x, w) + b`` for 1-, 2- or 3-d convolutions with integer padding."""

    stride: tuple[int, ...]
    padding: tuple[int, ...]
    dilation: tuple[int, ...]
    groups: int
    channel_dim: int = 1

    def forward(self, x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
        conv = (F.conv1d, F.conv2d, F.conv3d)[w.dim() - 3]
        return conv(x, w, b, self.stride, self.padding, self.dilation, self.groups)

    def vjp(self, x: Tensor, w: Tensor, s: Tensor, need_x: bool, need_w: bool):
        gx, gw, _ = torch.ops.aten.convolution_backward(
            s,
            x.to(s.dtype),
            w,
            None,
            list(self.stride),
            list(self.padding),
            list(self.dilation),
            False,
            [0] * len(self.stride),
            self.groups,
            [need_x, need_w, False],
        )
        return gx, gw


def _same_padding(module: nn.modules.conv._ConvNd) -> tuple[tuple[int, ...], tuple[int, ...] | None]:
    """Integer padding for ``padding='same'``; the second item is an extra asymmetric pad or None."""
    left, right = [], []
    for k, d in zip(module.kernel_size, module.dilation):
        total = d * (k - 1)
        left.append(total // 2)
        right.append(total - total // 2)
    if left == right:
        return tuple(left), None
    pad: list[int] = []
    for lo, hi in zip(reversed(left), reversed(right)):
        pad += [lo, hi]
    return (0,) * len(left), tuple(pad)


def op_for(module: nn.Module) -> tuple[LinearOp, tuple[int, ...] | None, str] | None:
    """The :class:`LinearOp` that computes ``module``, or None if it is not linear-like.

    Returns ``(op, pre_pad, pad_mode)``: ``pre_pad`` is an ``F.pad`` argument applied to the input
    before the op (for non-zero padding modes and asymmetric 'same' padding), else None. A pad only
    copies inputs, so autograd's own backward of it sums the copies' feedback: the rule stays exact.
    """
    if isinstance(module, nn.Linear):
        return Dense(), None, "constant"
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        if module.transposed:  # pragma: no cover - ConvTranspose is not a subclass, kept for safety
            return None
        pre_pad = None
        if isinstance(module.padding, str):
            if module.padding == "valid":
                padding = (0,) * len(module.kernel_size)
            else:
                padding, pre_pad = _same_padding(module)
        else:
            padding = tuple(module.padding)
        mode = "constant"
        if module.padding_mode != "zeros":
            pre_pad = module._reversed_padding_repeated_twice
            padding = (0,) * len(module.kernel_size)
            mode = module.padding_mode
        op = Conv(tuple(module.stride), padding, tuple(module.dilation), module.groups)
        return op, (tuple(pre_pad) if pre_pad is not None else None), mode
    return None


#: methods a subclass may override without changing what the layer computes: how it is built, initialised,
#: printed and saved (plus every dunder but ``__call__``)
_HARMLESS = frozenset(
    {"extra_repr", "reset_parameters", "_reset_parameters", "_load_from_state_dict", "_save_to_state_dict"}
)


def _computation(layer: type) -> set[str]:
    """The methods that define what instances of ``layer`` compute: those its classes below ``nn.Module`` define."""
    names = {"__call__"}
    for cls in layer.__mro__:
        if cls is nn.Module or cls is object:
            break
        names.update(
            name
            for name, value in vars(cls).items()
            if isinstance(value, (types.FunctionType, staticmethod, classmethod))
            and not (name.startswith("__") and name.endswith("__"))
            and name not in _HARMLESS
            and not name.startswith(("init_", "reset_"))
        )
    return names


def computes_as(module: nn.Module, layer: type | tuple[type, ...]) -> bool:
    """Whether ``module`` computes exactly what ``layer`` computes, so that what serves ``layer`` serves it.

    True when ``module`` is an instance of ``layer`` (of the first type of a tuple it is an instance of) and
    no class between ``type(module)`` and ``layer`` overrides a method that defines the computation:
    ``forward``, ``__call__`` and every other method the layer's own classes (those below ``nn.Module``)
    define, such as ``_conv_forward`` or a neuron's ``step``. A subclass may override how it is built,
    initialised, printed or saved (``__init__``, ``reset_parameters``, ``extra_repr``, ``init_*``/``reset_*``,
    state-dict hooks). A ``forward`` assigned to the instance itself is not looked at.

    ``computes_as(BinaryLinear(...), nn.Linear)`` is False: it computes with ``w_q``, not ``.weight``
    (the rules serve it through :class:`~spikelfp.lfp.rules.QuantizedLayer`).

    Parameters
    ----------
    module
        The module.
    layer
        A layer type, or a tuple of them.

    Returns
    -------
    bool
        True if ``module`` computes as ``layer``.

    Examples
    --------
    >>> class Scaled(nn.Linear):
    ...     def forward(self, x):
    ...         return 2 * super().forward(x)
    >>> computes_as(nn.Linear(2, 2), nn.Linear), computes_as(Scaled(2, 2), nn.Linear)
    (True, False)
    """
    types = layer if isinstance(layer, tuple) else (layer,)
    base = next((t for t in types if isinstance(module, t)), None)
    if base is None:
        return False
    cls = type(module)
    if cls is base:
        return True
    names = _computation(base)
    for sub in cls.__mro__:
        if sub is base:
            return True
        if any(name in vars(sub) for name in names):
            return False
    return True
