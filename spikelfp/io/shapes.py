"""Per-sample shapes along a chain of layers, computed from the layers' sizes alone (nothing is allocated or run).

The readers check a model they build from a file against the data it declares before returning it: every layer
must accept the shape the layer before it gives (a Linear its ``in_features``, a Conv its channels, a neuron the
shape of its per-neuron decays, a recurrent neuron its size), so that a file whose sizes disagree (a Conv2d whose
``groups`` was changed, a Linear of the wrong width) is an :class:`ExportError` that names the layer, not an
error at the first forward. A dimension may be unknown (``None``: e.g. the spatial size of a model whose input
shape is not recorded); it is then not checked.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from ..neurons import FamilyNeuron
from ..nn import Heaviside
from .errors import ExportError

__all__ = ["propagate"]

Shape = tuple[int | None, ...]
_ELEMENTWISE = (nn.ReLU, nn.Identity, nn.Dropout, Heaviside)


def propagate(layers: Iterable[tuple[str, nn.Module]], sample: Shape, lead: int) -> Shape:
    """The per-sample output shape of the chain ``layers`` on a sample of shape ``sample``.

    Containers (``nn.Sequential``, ``TimeDistributed``) are walked.

    Parameters
    ----------
    layers
        ``(name, module)`` pairs, in order.
    sample
        The per-sample input shape (``None`` for an unknown dimension).
    lead
        The number of axes before a sample (2 for time-first ``(T, B, …)``, 1 for ``(B, …)``); a ``Flatten``'s
        dimensions count them.

    Raises
    ------
    ExportError
        Where a layer cannot take the shape it is given, naming the layer and both shapes.
    """
    shape = tuple(sample)
    for name, layer in layers:
        if isinstance(layer, nn.Sequential):
            shape = propagate(((f"{name}.{n}" if name else n, m) for n, m in layer.named_children()), shape, lead)
            continue
        try:
            shape = _one(layer, shape, lead)
        except _Mismatch as exc:
            raise ExportError(
                f"layer '{name}' ({type(layer).__name__}) cannot take a sample of shape {_show(shape)}: {exc}; "
                "the file's sizes disagree"
            ) from None
    return shape


class _Mismatch(ValueError):
    pass


def _show(shape: Shape) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + (",)" if len(shape) == 1 else ")")


def _need(shape: Shape, ndim: int, what: str) -> None:
    if len(shape) != ndim:
        raise _Mismatch(f"{what} needs {ndim} dimension(s) per sample")


def _same(have: int | None, want: int, what: str) -> None:
    if have is not None and have != want:
        raise _Mismatch(f"{what} is {want}, the input has {have}")


def _spatial(size: int | None, kernel: int, stride: int, padding: int, dilation: int = 1) -> int | None:
    if size is None:
        return None
    out = (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1
    if out < 1:
        raise _Mismatch(f"its window ({kernel}, dilation {dilation}, padding {padding}) exceeds the input ({size})")
    return out


def _one(layer: nn.Module, shape: Shape, lead: int) -> Shape:
    pair = nn.modules.utils._pair
    if isinstance(layer, nn.Linear):
        if not shape:
            raise _Mismatch("a Linear needs at least one dimension per sample")
        _same(shape[-1], layer.in_features, "in_features")
        return (*shape[:-1], layer.out_features)
    if isinstance(layer, (nn.Conv1d, nn.Conv2d)):
        two = isinstance(layer, nn.Conv2d)
        _need(shape, 3 if two else 2, type(layer).__name__)
        _same(shape[0], layer.in_channels, "in_channels (groups × the weight's input channels)")
        if isinstance(layer.padding, str):
            raise _Mismatch("padding must be numbers")
        dims = [
            _spatial(size, k, s, p, d)
            for size, k, s, p, d in zip(shape[1:], layer.kernel_size, layer.stride, layer.padding, layer.dilation)
        ]
        return (layer.out_channels, *dims)
    if isinstance(layer, (nn.AvgPool2d, nn.MaxPool2d)):
        if len(shape) not in (3, 2):
            raise _Mismatch("a 2-d pooling needs (C, H, W) or (H, W) per sample")
        kernel, padding = pair(layer.kernel_size), pair(layer.padding)
        stride = pair(layer.stride if layer.stride is not None else layer.kernel_size)
        if any(2 * p > k for p, k in zip(padding, kernel)):
            raise _Mismatch("its padding is more than half its kernel")
        dims = [_spatial(size, k, s, p) for size, k, s, p in zip(shape[-2:], kernel, stride, padding)]
        return (*shape[:-2], *dims)
    if isinstance(layer, nn.Flatten):
        full = len(shape) + lead
        start = layer.start_dim if layer.start_dim >= 0 else layer.start_dim + full
        end = layer.end_dim if layer.end_dim >= 0 else layer.end_dim + full
        if not (lead <= start <= end < full):
            raise _Mismatch(f"Flatten({layer.start_dim}, {layer.end_dim}) does not name axes of the sample")
        s, e = start - lead, end - lead
        span = shape[s : e + 1]
        merged = None if any(d is None for d in span) else int(torch.Size(span).numel())
        return (*shape[:s], merged, *shape[e + 1 :])
    if isinstance(layer, FamilyNeuron):
        spec = layer.spec
        if spec.recurrent:
            _need(shape, 1, "a recurrent neuron")
            _same(shape[0], layer.recurrent.in_features, "its number of neurons")
        for decay in (spec.alpha, spec.beta):
            if isinstance(decay, torch.Tensor) and decay.dim() > 0:
                if decay.dim() > len(shape) or any(
                    d != 1 and s is not None and d != s for d, s in zip(reversed(decay.shape), reversed(shape))
                ):
                    raise _Mismatch(f"its per-neuron decays of shape {tuple(decay.shape)} do not broadcast over it")
        return shape
    if isinstance(layer, _ELEMENTWISE):
        return shape
    raise _Mismatch("no shape rule for this layer")
