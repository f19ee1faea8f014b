"""Quick looks at spikes: a raster plot and firing rates (matplotlib, the optional extra ``plot``).

>>> spikes = net(sl.encode.constant(images, 25))      # (T, B, N)
>>> sl.plot.raster(spikes[:, 0])                       # one sample: steps × neurons
>>> sl.plot.firing_rates(trainer.evaluate()["firing_rates"])
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

__all__ = ["firing_rates", "raster"]


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("plots need matplotlib: pip install 'spikelfp[plot]'") from exc
    return plt


def _axes(ax):
    if ax is not None:
        return ax
    _, ax = _pyplot().subplots()
    return ax


def raster(spikes: Tensor, ax: Any = None, sample: int = 0, **scatter: Any) -> Any:
    """A raster plot: a dot at ``(t, n)`` for every spike ``S[t, n] ≠ 0``.

    Parameters
    ----------
    spikes
        ``(T, N)`` spikes of one sample, ``(T, B, N)`` (sample ``sample`` is drawn), or ``(T, B, …)``
        with the features flattened to neurons.
    ax
        A matplotlib ``Axes`` to draw into (default: a new figure).
    sample
        Which sample of a batch to draw.
    **scatter
        Passed to ``ax.scatter`` (default: small black dots).

    Returns
    -------
    The ``Axes``.
    """
    if not isinstance(spikes, Tensor):
        spikes = torch.as_tensor(spikes)
    if spikes.dim() == 2:
        one = spikes
    elif spikes.dim() >= 3 and spikes.dim() <= 4:
        if not 0 <= sample < spikes.shape[1]:
            raise ValueError(f"sample {sample} is not in the batch of {spikes.shape[1]}")
        one = spikes[:, sample].reshape(spikes.shape[0], -1)
    else:
        raise ValueError(
            f"spikes must be (T, N), (T, B, N) or (T, B, C, H) time-first, got shape {tuple(spikes.shape)}"
        )
    points = torch.nonzero(one.detach().cpu())
    ax = _axes(ax)
    style = {"s": 4, "c": "black", "marker": "|" if len(points) < 5000 else "."}
    style.update(scatter)
    ax.scatter(points[:, 0].numpy(), points[:, 1].numpy(), **style)
    ax.set_xlim(-0.5, one.shape[0] - 0.5)
    ax.set_ylim(-0.5, one.shape[1] - 0.5)
    ax.set_xlabel("time step")
    ax.set_ylabel("neuron")
    return ax


def firing_rates(rates: Mapping[str, float] | Tensor, ax: Any = None, **bar: Any) -> Any:
    """A bar chart of firing rates (spikes per neuron and step).

    Parameters
    ----------
    rates
        Either the rate per layer (``{name: rate}``, as :meth:`spikelfp.LFP.firing_rates` and the
        Trainer's ``evaluate()["firing_rates"]`` give them), or spikes ``(T, B, N)`` of one layer,
        drawn as the rate of each neuron, ``mean over t and b of S[t, b, n]``.
    ax
        A matplotlib ``Axes`` (default: a new figure).
    **bar
        Passed to ``ax.bar``.

    Returns
    -------
    The ``Axes``.
    """
    ax = _axes(ax)
    if isinstance(rates, Mapping):
        names = [str(k) for k in rates]
        values = [float(v) for v in rates.values()]
        ax.bar(names, values, **bar)
        ax.set_xlabel("layer")
    else:
        spikes = torch.as_tensor(rates).detach().cpu()
        if spikes.dim() < 3:
            raise ValueError(f"spikes must be time-first (T, B, N), got shape {tuple(spikes.shape)}")
        per_neuron = spikes.double().reshape(spikes.shape[0], spikes.shape[1], -1).mean(dim=(0, 1))
        ax.bar(range(per_neuron.numel()), per_neuron.tolist(), **bar)
        ax.set_xlabel("neuron")
    ax.set_ylabel("spikes per neuron and step")
    return ax
