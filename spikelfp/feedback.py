"""Feedback functions: the reward at the output that LFP distributes (LFP-SPEC §4).

Each is a callable ``(output, target) -> Tensor`` shaped like ``output``. A positive feedback
encourages an output, a negative one discourages it. ``target`` is a vector of class indices
``(B,)`` or a one-hot/soft matrix shaped like the (per-step) output ``(B, C)``.

Updates add up over the batch, as in the reference code (``reduction="sum"``). ``reduction="mean"``
divides the feedback by the batch size, the way a loss's ``reduction`` does; with SGD this is a
learning rate ``B`` times smaller.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

__all__ = [
    "Feedback",
    "Readout",
    "Reward",
    "Sigmoid",
    "Softmax",
    "SpikeSequence",
    "one_hot",
    "spike_count_prediction",
]

Reduction = Literal["sum", "mean"]


def one_hot(target: Tensor, like: Tensor) -> Tensor:
    """``target`` as a float one-hot matrix shaped like ``like`` (``(B, C)``), validated."""
    if not isinstance(target, Tensor):
        raise TypeError(f"target must be a tensor, got {type(target).__name__}")
    batch, classes = like.shape[0], like.shape[-1]
    if target.dim() == 1 and not target.is_floating_point():
        if target.shape[0] != batch:
            raise ValueError(f"target has {target.shape[0]} labels for a batch of {batch}")
        if target.numel() and (int(target.min()) < 0 or int(target.max()) >= classes):
            raise ValueError(
                f"target labels must lie in [0, {classes}), got range [{int(target.min())}, {int(target.max())}]"
            )
        return torch.nn.functional.one_hot(target.long(), classes).to(like.dtype)
    if target.shape != (batch, classes):
        raise ValueError(
            f"target must be class indices of shape ({batch},) or a matrix of shape ({batch}, {classes}), "
            f"got shape {tuple(target.shape)}"
        )
    return target.to(like.dtype)


class Feedback:
    """Base class: validates shapes and applies the batch reduction.

    Subclasses implement :meth:`compute` on a detached output and a one-hot target; ``output_dims``
    says whether the output is per sample ``(B, C)`` or time-first ``(T, B, C)``.
    """

    output_dims = 2
    output_shape = "logits of shape (B, C)"

    def __init__(self, reduction: Reduction = "sum") -> None:
        if reduction not in ("sum", "mean"):
            raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
        self.reduction = reduction

    def __call__(self, output: Tensor, target: Tensor) -> Tensor:
        if not isinstance(output, Tensor):
            raise TypeError(f"output must be a tensor, got {type(output).__name__}")
        if output.dim() != self.output_dims:
            raise ValueError(f"{type(self).__name__} expects {self.output_shape}, got {tuple(output.shape)}")
        output = output.detach()
        one_step = output if self.output_dims == 2 else output[0]  # (B, C)
        r = self.compute(output, one_hot(target, one_step))
        return r / one_step.shape[0] if self.reduction == "mean" else r

    def compute(self, output: Tensor, y: Tensor) -> Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(reduction={self.reduction!r})"


class Sigmoid(Feedback):
    """Eq. 7: ``r(o_c) = o_c · (y_c − σ(o_c))``.

    The factor ``y_c − σ(o_c)`` is the negative derivative of a sigmoid binary cross-entropy; the
    logit ``o_c`` makes the feedback decay for confident outputs (Theorem 1 relies on this form).
    """

    def compute(self, output, y):
        return output * (y - torch.sigmoid(output))


class Softmax(Feedback):
    """The reference code's default: ``r(o) = o ⊙ (y − softmax(o))``."""

    def compute(self, output, y):
        return output * (y - torch.softmax(output, dim=-1))


class Reward(Feedback):
    """A.1, a plain ±1 reward: only the true class gets feedback, ``+1`` if the prediction (arg-max,
    ties to the lowest index) is right and ``−1`` if it is wrong. It does not decay, so training
    with it needs a decaying learning rate."""

    def compute(self, output, y):
        true = y.argmax(dim=-1)
        right = output.argmax(dim=-1) == true
        sign = torch.where(right, 1.0, -1.0).to(output.dtype)
        return torch.zeros_like(output).scatter_(-1, true[:, None], sign[:, None])


def spike_count_prediction(spikes: Tensor) -> Tensor:
    """Predicted class of time-first output spikes ``(T, B, C)``: the largest spike count, ties to
    the lowest class index."""
    return spikes.sum(dim=0).argmax(dim=-1)


class SpikeSequence(Feedback):
    """Eq. A.16, the sequence feedback for output spikes ``o_{c,t} ∈ {0, 1}`` of shape ``(T, B, C)``.

    With spike counts ``n_c = Σ_t o_{c,t}``:

    - true class: ``r_{c,t} = 1 − σ(n_c − T/2)`` at every step;
    - other classes: ``r_{c,t} = −o_{c,t} · (1 − σ((T − n_c) − T/2))``.

    Each term decays as its class approaches its target. The paper prints the second term as
    ``σ(Σ_t (o_{c,t} − 1) − n/2)``, which never decays; the reference code and spikelfp use
    ``Σ_t (1 − o_{c,t}) = T − n_c`` (LFP-SPEC §4). The reference code also rounds ``T/2`` down; this
    uses ``T/2`` exactly. Predictions are by spike count (:func:`spike_count_prediction`).
    """

    output_dims = 3
    output_shape = "output spikes of shape (T, B, C)"

    def compute(self, output, y):
        steps = output.shape[0]
        n = output.sum(dim=0)
        pos = 1.0 - torch.sigmoid(n - steps / 2)
        neg = 1.0 - torch.sigmoid((steps - n) - steps / 2)
        return torch.where(y.bool(), pos, -output * neg)


class Readout(Feedback):
    """Feedback for a time-first real-valued readout ``U`` of shape ``(T, B, C)`` (e.g. ``sl.LI``).

    A per-sample feedback ``base`` (default :class:`Softmax`) is computed on the reduction ``m`` of the
    readout over time, then spread back over the steps by the ε-rule of that reduction (LFP-SPEC §9):

    - ``over="mean"``: ``m = (1/T) Σ_t U[t]``, a sum node, so
      ``r[t] = (U[t]/T) / (m + ε·sign(m)) · r_m`` (``sign(0) = +1``);
    - ``over="max"``: ``m = max_t U[t]``; all of ``r_m`` goes to the step that won the max (the first one
      on ties), as for max-pooling.

    Predictions are ``argmax_c m``.

    Parameters
    ----------
    base
        The feedback on ``m`` (its own ``reduction`` is ignored; this one's applies).
    over
        ``"mean"`` or ``"max"``.
    epsilon
        Stabiliser of the mean's ε-rule.
    """

    output_dims = 3
    output_shape = "a readout of shape (T, B, C)"

    def __init__(
        self,
        base: Feedback | None = None,
        over: Literal["mean", "max"] = "mean",
        epsilon: float = 1e-6,
        reduction: Reduction = "sum",
    ) -> None:
        super().__init__(reduction)
        base = Softmax() if base is None else base
        if not isinstance(base, Feedback) or base.output_dims != 2:
            raise TypeError(f"base must be a per-sample feedback such as Softmax(), got {base!r}")
        if over not in ("mean", "max"):
            raise ValueError(f"over must be 'mean' or 'max', got {over!r}")
        if not epsilon >= 0:
            raise ValueError(f"epsilon must be >= 0, got {epsilon}")
        self.base, self.over, self.epsilon = base, over, float(epsilon)

    def compute(self, output, y):
        if self.over == "max":
            winner = output.argmax(dim=0)  # the first maximal step
            m = output.gather(0, winner[None])[0]
            r_m = self.base.compute(m, y)
            return torch.zeros_like(output).scatter_(0, winner[None], r_m[None])
        steps = output.shape[0]
        m = output.mean(dim=0)
        sign = torch.where(m >= 0, 1.0, -1.0).to(m.dtype)
        den = m + self.epsilon * sign
        scale = torch.where(den == 0, torch.zeros_like(den), self.base.compute(m, y) / torch.where(den == 0, 1.0, den))
        return output / steps * scale

    def __repr__(self) -> str:
        return f"Readout(base={self.base!r}, over={self.over!r}, epsilon={self.epsilon}, reduction={self.reduction!r})"
