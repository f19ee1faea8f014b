"""Small modules that LFP needs as modules: a residual sum, a Heaviside step, and time distribution."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .binary import BinaryConv2d, BinaryLinear
from .interop import recognize

__all__ = [
    "Add",
    "BinaryConv2d",
    "BinaryLinear",
    "CallWith",
    "Heaviside",
    "SpikingSequential",
    "TimeDistributed",
    "TimeLoop",
]


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
        if recognize(m) is not None:
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


class TimeLoop(nn.Module):
    """Run a step model over time: ``(T, B, …) → (T, B, …)``, one call of ``model`` per step.

    .. math::
        o_t = \\mathrm{model}(x_t), \\quad t = 0, …, T−1, \\qquad \\text{output} = \\mathrm{stack}_t(o_t)

    This is how snnTorch networks whose neurons keep their own state (``init_hidden=True``, e.g. an
    ``nn.Sequential`` of ``Linear`` and ``snn.Leaky``) are run: the state of every such neuron is reset
    before the first step (each neuron's ``reset_mem()``, what ``snntorch.utils.reset(net)`` does for
    the neurons of ``net`` alone), and a step's output that is a tuple (``output=True``) contributes its
    first item, the spikes. With ``stateful=True`` the model is called as ``model(x_t, state)`` and
    returns ``(o_t, state)`` (norse's ``SequentialState``); the state starts as None.

    Parameters
    ----------
    model
        The step model.
    stateful
        Pass the state returned by one step into the next.
    """

    def __init__(self, model: nn.Module, stateful: bool = False) -> None:
        super().__init__()
        self.model = model
        self.stateful = bool(stateful)

    def reset(self) -> None:
        """Reset the hidden state of every neuron that keeps its own (snnTorch's ``init_hidden``)."""
        for m in self.model.modules():
            neuron = recognize(m)
            if neuron is not None:
                neuron.reset_state(m)

    def forward(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor) or x.dim() < 2:
            raise ValueError(
                f"TimeLoop expects time-first input (T, B, ...), got {getattr(x, 'shape', type(x).__name__)}"
            )
        self.reset()
        state = None
        outs = []
        for t in range(x.shape[0]):
            if self.stateful:
                out, state = self.model(x[t], state)
            else:
                out = self.model(x[t])
                if isinstance(out, (tuple, list)):
                    out = out[0]
            outs.append(out)
        return torch.stack(outs)


class CallWith(nn.Module):
    """A module whose forward is ``fn(model, x)``: a user's own way of running ``model`` on an input.

    Parameters
    ----------
    model
        The model (registered as a submodule, so the Trainer and LFP see its layers).
    fn
        ``fn(model, x) -> output``; for a spiking model ``x`` is time-first ``(T, B, …)`` and the output
        should be ``(T, B, C)``.
    """

    def __init__(self, model: nn.Module, fn) -> None:
        super().__init__()
        if not callable(fn):
            raise TypeError(f"forward must be callable as fn(model, x), got {type(fn).__name__}")
        self.model = model
        self.fn = fn

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(self.model, x)
