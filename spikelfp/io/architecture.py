"""A model's architecture as JSON over a fixed list of layer types: :func:`describe` and :func:`from_description`.

The binary-weight format (:mod:`spikelfp.io.weights`) stores the architecture this way, so that loading a file
builds layers from a closed list and never executes anything from it. A neuron of the family (``LIF``,
``CubaLIF``, ``LI``, ``CubaLI``, ``RLIF``, ``RCubaLIF``) is written as its class and its
:class:`~spikelfp.neurons.spec.NeuronSpec` (its ``to_dict()``: per-neuron and
learnable decays as arrays with their shape), plus the size and bias of a recurrent layer, whose weights are a
layer of the file like any Linear. Files written before (format version 1 and 2) describe a LIF by its
``beta``, ``threshold`` and ``reset``; they are still read. :func:`declared_layers` reads, from the description
alone and before anything is built or allocated, the weight shapes it declares, so that a reader can check them
against the data first.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
import torch
from torch import nn

from ..binary import is_binary
from ..neurons import LI, LIF, RLIF, CubaLI, CubaLIF, FamilyNeuron, NeuronSpec, RCubaLIF
from ..nn import Heaviside, SpikingSequential, TimeDistributed
from .errors import ExportError
from .nir_write import refuse_own_computation
from .rebuild import module_from_spec

__all__ = ["NEURONS", "declared_layers", "describe", "from_description"]

_CONTAINERS = ("SpikingSequential", "TimeDistributed", "Sequential")
#: the neuron classes the format holds, each by its spec
NEURONS = {cls.__name__: cls for cls in (LIF, CubaLIF, LI, CubaLI, RLIF, RCubaLIF)}
_UNWEIGHTED = ("MaxPool2d", "AvgPool2d", "Flatten", "LIF", "CubaLIF", "LI", "CubaLI", "Heaviside", "ReLU")
_UNWEIGHTED += ("Identity", "Dropout")
_MAX_DIM = 1 << 31  # a single dimension larger than this is not a model this format holds
_MAX_DEPTH = 64  # nesting of the architecture


def describe(model: nn.Module) -> dict:
    """A JSON-able description of a model built from supported layers (see :func:`from_description`)."""
    pair = nn.modules.utils._pair
    if isinstance(model, (SpikingSequential, TimeDistributed)) or type(model) is nn.Sequential:
        desc = {
            "type": type(model).__name__,
            "names": [name for name, _ in model.named_children()],
            "children": [describe(m) for m in model],
        }
        if isinstance(model, SpikingSequential):
            desc["input_shape"] = list(model.input_shape)
        return desc
    refuse_own_computation(type(model).__name__, model)
    if isinstance(model, nn.Linear):
        return {"type": "Linear", "in": model.in_features, "out": model.out_features, "bias": model.bias is not None}
    if type(model) in (nn.Conv1d, nn.Conv2d) or (isinstance(model, nn.Conv2d) and is_binary(model)):
        if isinstance(model.padding, str) or model.padding_mode != "zeros":
            raise ExportError("only integer zero padding is supported in binary export")
        return {
            "type": "Conv2d" if isinstance(model, nn.Conv2d) else "Conv1d",
            "in": model.in_channels,
            "out": model.out_channels,
            "kernel": list(model.kernel_size),
            "stride": list(model.stride),
            "padding": list(model.padding),
            "dilation": list(model.dilation),
            "groups": model.groups,
            "bias": model.bias is not None,
        }
    if type(model) in (nn.MaxPool2d, nn.AvgPool2d):
        stride = model.stride if model.stride is not None else model.kernel_size
        return {
            "type": type(model).__name__,
            "kernel": list(pair(model.kernel_size)),
            "stride": list(pair(stride)),
            "padding": list(pair(model.padding)),
        }
    if isinstance(model, nn.Flatten):
        return {"type": "Flatten", "start": model.start_dim, "end": model.end_dim}
    if isinstance(model, FamilyNeuron):
        return _describe_neuron(model)
    if isinstance(model, Heaviside):
        return {"type": "Heaviside", "threshold": model.threshold}
    if type(model) in (nn.ReLU, nn.Identity):
        return {"type": type(model).__name__}
    if isinstance(model, nn.Dropout):
        return {"type": "Dropout", "p": model.p}
    raise ExportError(f"layer {type(model).__name__} is not supported by the binary format")


def _describe_neuron(model: FamilyNeuron) -> dict:
    name = type(model).__name__
    if type(model) is not NEURONS.get(name):
        raise ExportError(f"layer {name}: a subclass of a neuron may compute something else; not supported")
    try:
        spec = model.spec
    except ValueError as exc:  # a learnable decay trained outside [0, 1]
        raise ExportError(f"layer {name}: its neuron cannot be described ({exc})") from exc
    desc = {"type": name, "spec": spec.to_dict()}
    if spec.recurrent:
        desc.update(size=model.recurrent.in_features, bias=model.recurrent.bias is not None)
    return desc


def _neuron_from(t: str, desc: dict) -> nn.Module:
    """A neuron module from its class and spec (a legacy LIF entry: from ``beta``, ``threshold``, ``reset``)."""
    if "spec" not in desc and t == "LIF":
        return LIF(float(desc["beta"]), float(desc["threshold"]), str(desc["reset"]))
    spec = NeuronSpec.from_dict(desc["spec"])
    decays = {k: v.to(torch.float32) for k in ("alpha", "beta") if isinstance(v := getattr(spec, k), torch.Tensor)}
    spec = spec.replace(**decays) if decays else spec  # the file's weights are float32; so are its decays
    size = desc.get("size") if spec.recurrent else None
    module = module_from_spec(spec, size, bias=bool(desc.get("bias", True)))
    if type(module).__name__ != t:
        raise ExportError(f"malformed {t} entry in the architecture: its spec describes a {type(module).__name__}")
    return module


def from_description(desc: dict) -> nn.Module:
    """Build the model a :func:`describe` dictionary describes (only the fixed list of types)."""
    if not isinstance(desc, dict) or "type" not in desc:
        raise ExportError("malformed architecture description")
    t = desc["type"]
    try:
        if t in _CONTAINERS:
            children = [from_description(c) for c in desc["children"]]
            names = [str(n) for n in desc.get("names", range(len(children)))]
            if len(names) != len(children) or len(set(names)) != len(names) or any("." in n or not n for n in names):
                raise ExportError(f"malformed {t} entry in the architecture: bad child names {names}")
            named = OrderedDict(zip(names, children))
            if t == "SpikingSequential":
                return SpikingSequential(named, input_shape=tuple(desc["input_shape"]))
            return TimeDistributed(named) if t == "TimeDistributed" else nn.Sequential(named)
        if t == "Linear":
            return nn.Linear(int(desc["in"]), int(desc["out"]), bias=bool(desc["bias"]))
        if t in ("Conv1d", "Conv2d"):
            cls = nn.Conv2d if t == "Conv2d" else nn.Conv1d
            return cls(
                int(desc["in"]),
                int(desc["out"]),
                tuple(desc["kernel"]),
                tuple(desc["stride"]),
                tuple(desc["padding"]),
                tuple(desc["dilation"]),
                int(desc["groups"]),
                bool(desc["bias"]),
            )
        if t in ("MaxPool2d", "AvgPool2d"):
            cls = nn.MaxPool2d if t == "MaxPool2d" else nn.AvgPool2d
            return cls(tuple(desc["kernel"]), tuple(desc["stride"]), tuple(desc["padding"]))
        if t == "Flatten":
            return nn.Flatten(int(desc["start"]), int(desc["end"]))
        if t in NEURONS:
            return _neuron_from(t, desc)
        if t == "Heaviside":
            return Heaviside(float(desc["threshold"]))
        if t == "ReLU":
            return nn.ReLU()
        if t == "Identity":
            return nn.Identity()
        if t == "Dropout":
            return nn.Dropout(float(desc["p"]))
    except ExportError:
        raise
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise ExportError(f"malformed {t} entry in the architecture: {exc}") from exc
    raise ExportError(f"unknown layer type {t!r} in the architecture")


def _dim(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _MAX_DIM:
        raise ExportError(f"malformed architecture: {what} must be an integer in [1, 2^31], got {value!r}")
    return value


def declared_layers(desc) -> list[tuple[str, tuple[int, ...], bool]]:
    """``(name, weight shape, has bias)`` of every weighted layer the description declares, named as
    ``named_modules`` names them; nothing is built or allocated. At most 2^36 weights in all.

    Parameters
    ----------
    desc
        The description (:func:`describe`), as read from a file: anything is checked.
    """
    out: list[tuple[str, tuple[int, ...], bool]] = []
    _walk(desc, "", 0, out)
    if sum(float(np.prod(s, dtype=np.float64)) for _, s, _ in out) > 2.0**36:
        raise ExportError("malformed architecture: more than 2^36 weights")
    return out


def _walk(desc, prefix: str, depth: int, out: list) -> None:
    if depth > _MAX_DEPTH:
        raise ExportError(f"malformed architecture: nested deeper than {_MAX_DEPTH}")
    if not isinstance(desc, dict):
        raise ExportError("malformed architecture description")
    t = desc.get("type")
    if t in _CONTAINERS:
        children = desc.get("children")
        if not isinstance(children, list):
            raise ExportError(f"malformed {t} entry in the architecture: no list of children")
        names = desc.get("names", [str(i) for i in range(len(children))])
        if not isinstance(names, list) or len(names) != len(children):
            raise ExportError(f"malformed {t} entry in the architecture: bad child names")
        for name, child in zip(names, children):
            _walk(child, f"{prefix}.{name}" if prefix else str(name), depth + 1, out)
        return
    if t == "Linear":
        shape = (_dim(desc.get("out"), "Linear out"), _dim(desc.get("in"), "Linear in"))
        out.append((prefix, shape, bool(desc.get("bias"))))
    elif t in ("Conv1d", "Conv2d"):
        kernel = desc.get("kernel")
        if not isinstance(kernel, list) or len(kernel) != (2 if t == "Conv2d" else 1):
            raise ExportError(f"malformed {t} entry in the architecture: bad kernel {kernel!r}")
        groups = _dim(desc.get("groups"), f"{t} groups")
        channels = _dim(desc.get("in"), f"{t} in")
        if channels % groups:
            raise ExportError(f"malformed {t} entry in the architecture: {channels} channels in {groups} groups")
        shape = (_dim(desc.get("out"), f"{t} out"), channels // groups, *(_dim(k, f"{t} kernel") for k in kernel))
        out.append((prefix, shape, bool(desc.get("bias"))))
    elif t in ("RLIF", "RCubaLIF"):
        size = _dim(desc.get("size"), f"{t} size")
        out.append((f"{prefix}.recurrent" if prefix else "recurrent", (size, size), bool(desc.get("bias"))))
    elif t not in _UNWEIGHTED:
        raise ExportError(f"unknown layer type {t!r} in the architecture")
    if t in NEURONS and "spec" in desc and not isinstance(desc["spec"], dict):
        raise ExportError(f"malformed {t} entry in the architecture: its spec is not a mapping")
    for key in ("p", "threshold", "beta"):  # Dropout's p, Heaviside's and LIF's threshold, LIF's β
        value = desc.get(key)
        if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value)):
            raise ExportError(f"malformed {t} entry in the architecture: {key} = {value!r}")
    if t == "Dropout" and not 0 <= desc.get("p", 0) <= 1:
        raise ExportError(f"malformed Dropout entry in the architecture: p = {desc.get('p')!r}")
