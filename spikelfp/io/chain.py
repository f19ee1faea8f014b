"""A sequential model as the writers see it: a flat chain of layers, its batch layout and its per-sample shapes.

NIR and the binary format describe a model as a chain ``input → layer → … → output``. :func:`chain` flattens
``nn.Sequential``-like containers (spikelfp's ``SpikingSequential`` and ``TimeDistributed``, norse's
``SequentialState``) into their leaf layers; a neuron that holds its own layers (a recurrent one) stays one
leaf. :func:`lead` says how many axes come before a sample, :func:`input_shape` infers the per-sample input
where the first layer fixes it, and :func:`shapes` runs one zero sample through the chain.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..interop import Neuron, recognize
from .errors import ExportError

__all__ = ["chain", "infer_input_shape", "input_shape", "lead", "neuron_of", "shapes"]


def neuron_of(name: str, module: nn.Module) -> Neuron | None:
    """:func:`spikelfp.interop.recognize`, with a neuron whose state cannot be described (a learnable decay
    trained outside ``[0, 1]``: its spec refuses it) an :class:`ExportError` that names the layer.

    Parameters
    ----------
    name
        The layer's name in the model (for the message).
    module
        The layer.
    """
    try:
        return recognize(module)
    except ValueError as exc:
        raise ExportError(f"layer '{name}' ({type(module).__name__}) cannot be described: {exc}") from exc


def chain(model: nn.Module, prefix: str = "") -> list[tuple[str, nn.Module]]:
    """The leaf layers of a sequential model in order, named as ``named_modules`` names them.

    Parameters
    ----------
    model
        ``nn.Sequential`` (or a subclass: SpikingSequential, TimeDistributed, norse's SequentialState), or a
        single layer.
    prefix
        The name of ``model`` itself.
    """
    if isinstance(model, nn.Sequential):
        out = []
        for name, child in model.named_children():
            out.extend(chain(child, f"{prefix}.{name}" if prefix else name))
        return out
    if neuron_of(prefix, model) is not None:
        return [(prefix, model)]  # a recurrent neuron holds its recurrent Linear as a child
    if any(True for _ in model.children()):
        raise ExportError(
            f"{type(model).__name__} is not sequential: a module with its own forward() cannot be exported, "
            "because its data flow is code, not a chain of layers. Export supports nn.Sequential, SpikingSequential, "
            "TimeDistributed and norse SequentialState chains; rebuild the model as one of these"
        )
    return [(prefix, model)]


def lead(neurons: Sequence[Neuron]) -> int:
    """Leading axes before a sample: 2 for time-first ``(T, B, …)`` neurons, 1 for step-wise ones.

    Parameters
    ----------
    neurons
        The model's neurons, as :func:`spikelfp.interop.recognize` gives them.
    """
    steps = {n.stepwise for n in neurons}
    if len(steps) > 1:
        raise ExportError(
            "the model mixes time-first spikelfp neurons with step-wise snnTorch/norse neurons; its layers do not "
            "agree on the batch axis"
        )
    return 1 if steps == {True} else 2


def infer_input_shape(layers: Sequence[tuple[str, nn.Module]], lead: int) -> tuple[int, ...]:
    """The per-sample input shape the first layer determines: ``(in_features,)`` for a Linear, also behind a
    Flatten that flattens the whole sample (any shape with that many elements flattens to it; the flat one is
    chosen). A Conv fixes the channels but not the spatial size, so it needs ``input_shape=``.

    Parameters
    ----------
    layers
        The chain (:func:`chain`).
    lead
        Axes before a sample (:func:`lead`).
    """
    first = layers[0][1] if layers else None
    if isinstance(first, nn.Flatten) and len(layers) > 1 and isinstance(layers[1][1], nn.Linear):
        if first.start_dim == lead and first.end_dim == -1:
            return (layers[1][1].in_features,)
    if isinstance(first, nn.Linear):
        return (first.in_features,)
    neuron = neuron_of(layers[0][0], first) if first is not None else None
    if neuron is not None and neuron.input_weight is not None:
        return (int(neuron.input_weight.shape[1]),)  # a cell that holds its input weights
    if isinstance(first, (nn.Conv1d, nn.Conv2d)):
        dims = "L" if isinstance(first, nn.Conv1d) else "H, W"
        raise ExportError(
            f"the first layer {type(first).__name__} fixes the channels ({first.in_channels}) but not the spatial "
            f"size: pass input_shape=({first.in_channels}, {dims})"
        )
    what = type(first).__name__ if first is not None else "an empty model"
    raise ExportError(
        f"cannot infer the input shape from {what}: pass input_shape= (one sample at one step, e.g. (1, 28, 28))"
    )


def input_shape(model: nn.Module, given, layers: Sequence[tuple[str, nn.Module]] = (), lead: int = 2):
    """``given``, else the model's ``input_shape`` attribute, else :func:`infer_input_shape`.

    Parameters
    ----------
    model
        The model (it may carry ``input_shape``).
    given
        The shape the caller passed, or None.
    layers, lead
        As for :func:`infer_input_shape`.
    """
    if given is None:
        given = getattr(model, "input_shape", None)
    if given is None:
        return infer_input_shape(list(layers), lead)
    return tuple(int(d) for d in given)


_SPATIAL = (nn.Conv1d, nn.Conv2d, nn.AvgPool2d, nn.MaxPool2d, nn.AvgPool1d, nn.MaxPool1d)


def shapes(
    layers: Sequence[tuple[str, nn.Module]], neurons: dict[str, Neuron | None], sample, lead: int = 2
) -> list[tuple[int, ...]]:
    """Per-sample input shape of every layer and the output's, by running one zero sample through the chain.

    Neurons are element-wise: they keep the shape and are not called (a snnTorch neuron with
    ``init_hidden=True`` would keep the zero step in its state); a cell that holds input weights
    ``(hidden, in)`` maps the last axis to ``hidden``.

    Parameters
    ----------
    layers
        The chain (:func:`chain`).
    neurons
        ``{name: Neuron or None}`` for the layers.
    sample
        The per-sample input shape.
    lead
        Axes before a sample.
    """
    x = torch.zeros(*([1] * lead), *sample)
    out = []
    with torch.no_grad():
        for name, layer in layers:
            out.append(tuple(x.shape[lead:]))
            neuron = neurons.get(name)
            if neuron is not None:
                if neuron.input_weight is not None:
                    x = x.new_zeros(*x.shape[:-1], int(neuron.input_weight.shape[0]))
                continue
            try:
                if isinstance(layer, _SPATIAL):
                    y = layer(x.reshape(1, *x.shape[lead:]))
                    x = y.reshape(*([1] * lead), *y.shape[1:])
                else:
                    x = layer(x)
            except RuntimeError as exc:
                reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise ExportError(
                    f"layer '{name}' ({type(layer).__name__}) cannot take a sample of shape {out[-1]}: {reason}"
                ) from exc
    out.append(tuple(x.shape[lead:]))
    return out
