"""Small modules that LFP needs as modules: a residual sum, a Heaviside step, and time distribution."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .binary import BinaryConv2d, BinaryLinear

__all__ = ["Add", "BinaryConv2d", "BinaryLinear", "Heaviside", "SpikingSequential", "TimeDistributed"]


class Add(nn.Module):
    """Residual sum ``z = x₁ + x₂ + …``. Under LFP the feedback splits in proportion to the summands
    (ε-rule): ``r_k = x_k / (z + ε·sign(z)) · r``. Write ``self.add(out, identity)`` instead of
    ``out + identity`` so that the split applies; a bare ``+`` would pass ``r`` to both summands."""

    def forward(self, *inputs: Tensor) -> Tensor:
        if len(inputs) < 2:
            raise ValueError(f"Add needs at least two inputs, got {len(inputs)}")
        out = inputs[0]
        for x in inputs[1:]:
            out = out + x
        return out


class _HeavisideFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, threshold: float) -> Tensor:
        return (x > threshold).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor):
        return torch.zeros_like(grad), None  # the step's true derivative, almost everywhere


class Heaviside(nn.Module):
    """Element-wise step ``H(x − θ) = [x > θ]``.

    Its autograd derivative is the true one, zero, so gradient descent cannot train through it; LFP
    passes feedback through it unchanged and can.
    """

    def __init__(self, threshold: float = 0.0) -> None:
        super().__init__()
        self.threshold = float(threshold)

    def forward(self, x: Tensor) -> Tensor:
        return _HeavisideFunction.apply(x, self.threshold)

    def extra_repr(self) -> str:
        return f"threshold={self.threshold}"


class TimeDistributed(nn.Sequential):
    """Run stateless layers once over all steps: ``(T, B, …) → (T·B, …) → layers → (T, B, …)``.

    Layers that accept extra leading dimensions (Linear, Flatten(2), Dropout) need no wrapper; those
    that expect ``(N, C, H, W)`` (convolutions, pooling) do. The reshape is a view, so the layers see
    one large batch (SpikingJelly's multi-step mode) and LFP sees every ``(t, b)`` sample.

    Examples
    --------
    >>> TimeDistributed(nn.Conv2d(1, 12, 5), nn.MaxPool2d(2))(torch.rand(25, 8, 1, 28, 28)).shape
    torch.Size([25, 8, 12, 12, 12])
    """

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() < 3:
            raise ValueError(f"TimeDistributed expects time-first input (T, B, ...), got shape {tuple(x.shape)}")
        steps, batch = x.shape[:2]
        y = super().forward(x.reshape(steps * batch, *x.shape[2:]))
        return y.reshape(steps, batch, *y.shape[1:])


def _time_invariant(module: nn.Module) -> bool:
    """True if ``module`` maps equal steps to equal steps: no state, no randomness."""
    for m in module.modules():
        if getattr(m, "is_spiking", False):
            return False
        if isinstance(m, nn.modules.dropout._DropoutNd) and m.training and m.p > 0:
            return False
    return True


class SpikingSequential(nn.Sequential):
    """A sequential spiking model that checks its input is time-first: ``(T, B, *input_shape)``.

    A model that starts with ``nn.Flatten(2)`` would otherwise read a batch ``(B, C, H, W)`` as ``B``
    time steps without complaint.

    When the input is the same at every step (a stride-0 time axis, as from
    :func:`spikelfp.encode.constant`), the deterministic stateless layers before the first spiking
    layer run once, on one step, and their output is expanded over time. This is exact: those
    layers would compute the same numbers ``T`` times, autograd's backward of the expansion sums
    over time, and every LFP rule is linear in the feedback with a denominator that is the same at
    every step. With the paper's constant encoding it removes ``(T−1)/T`` of the first layer's work.

    Parameters
    ----------
    *layers
        The layers, time-first throughout (see :class:`TimeDistributed` for convolutions).
    input_shape
        The shape of one sample at one step, e.g. ``(1, 28, 28)``.
    """

    def __init__(self, *layers: nn.Module, input_shape: tuple[int, ...]) -> None:
        super().__init__(*layers)
        self.input_shape = tuple(int(d) for d in input_shape)

    def forward(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor):
            raise TypeError(f"expected a tensor, got {type(x).__name__}")
        if tuple(x.shape[2:]) != self.input_shape or x.dim() != len(self.input_shape) + 2:
            raise ValueError(
                f"this spiking model needs time-first input (T, B, {', '.join(map(str, self.input_shape))}), "
                f"got shape {tuple(x.shape)}; encode static inputs first, e.g. "
                "spikelfp.encode.constant(images, steps=25)"
            )
        steps = x.shape[0]
        constant = steps > 1 and x.stride(0) == 0
        if constant:
            x = x[:1]
        for module in self:
            if constant and not _time_invariant(module):
                x = x.expand(steps, *x.shape[1:])
                constant = False
            x = module(x)
        return x.expand(steps, *x.shape[1:]) if constant else x

    def extra_repr(self) -> str:
        return f"input_shape={self.input_shape}"
