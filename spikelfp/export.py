"""Export for neuromorphic hardware (NIR) and for binary weights.

NIR (the Neuromorphic Intermediate Representation, PyPI ``nir``) conventions, LFP-SPEC §8:

- a discrete LIF with decay ``β`` and threshold ``θ`` is NIR's continuous LIF
  ``τ dv/dt = (v_leak − v) + R·I`` with ``τ = dt/(1 − β)``, ``R = τ/dt`` (unit input gain under
  forward Euler: ``v ← β v + I``), ``v_leak = 0``, ``v_threshold = θ``, ``v_reset = 0``; ``β = 1`` is
  NIR's ``IF``;
- every parameter is a full per-neuron array;
- NIR has no subtractive reset, so the reset mode, ``dt`` and ``β`` go into each neuron node's
  metadata, and :func:`from_nir` restores them. Importers that ignore metadata (snnTorch, norse)
  run such a node with a reset to zero.

Shapes in NIR are per sample: no time or batch axis. A spikelfp ``nn.Flatten(2)`` on ``(T, B, …)``
is NIR's ``Flatten(start_dim=0)``.

Binary weights: :func:`binarize` replaces every weight by ``sign(w)·α_row`` (``sign(0) := +1``);
:func:`save_binary` writes bit-packed signs, the per-row scales, the biases and the architecture to
HDF5, and :func:`load_binary` restores the model exactly. For a model trained with binary or ternary
weights (:mod:`spikelfp.binary`) it writes exactly the ``w_q`` the forward used (plus a bit-packed
mask for ternary layers), so the loaded model of plain Linear/Conv layers computes the same spikes. Neither loader
executes anything from the file: NIR and the binary format are HDF5 arrays, and the architecture is
JSON over a fixed list of layer types.
"""

from __future__ import annotations

import copy
import json
import math
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .binary import is_binary, quantize
from .neurons import LIF
from .nn import Heaviside, SpikingSequential, TimeDistributed

__all__ = [
    "ExportError",
    "binarize",
    "describe",
    "from_description",
    "from_nir",
    "load_binary",
    "save_binary",
    "to_nir",
]

BINARY_FORMAT = "spikelfp-binary"
BINARY_VERSION = 2
#: versions :func:`load_binary` reads (1: binary layers only, no mode attribute)
_READABLE_VERSIONS = (1, 2)


class ExportError(ValueError):
    """A model cannot be exported, or a file cannot be imported."""


# --------------------------------------------------------------------------------------------------
# a model as a flat chain of layers
# --------------------------------------------------------------------------------------------------
def _chain(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The leaf layers of a sequential model in order (containers are expanded)."""
    if isinstance(model, nn.Sequential):
        out = []
        for name, child in model.named_children():
            for sub, leaf in _chain(child):
                out.append((f"{name}.{sub}" if sub else name, leaf))
        return out
    if any(True for _ in model.children()):
        raise ExportError(
            f"{type(model).__name__} is not sequential; export supports nn.Sequential, SpikingSequential and "
            "TimeDistributed chains"
        )
    return [("", model)]


def _input_shape(model: nn.Module, input_shape) -> tuple[int, ...]:
    if input_shape is None:
        input_shape = getattr(model, "input_shape", None)
    if input_shape is None:
        raise ExportError("pass input_shape= (one sample at one step, e.g. (1, 28, 28))")
    return tuple(int(d) for d in input_shape)


def _shapes(chain, input_shape) -> list[tuple[int, ...]]:
    """Per-sample input shape of every layer, by running one zero step through the chain."""
    x = torch.zeros(1, 1, *input_shape)
    shapes = []
    with torch.no_grad():
        for _, layer in chain:
            shapes.append(tuple(x.shape[2:]))
            if isinstance(layer, (nn.Conv1d, nn.Conv2d, nn.AvgPool2d, nn.MaxPool2d, nn.AvgPool1d, nn.MaxPool1d)):
                y = layer(x.reshape(1, *x.shape[2:]))
                x = y.reshape(1, 1, *y.shape[1:])
            else:
                x = layer(x)
    shapes.append(tuple(x.shape[2:]))
    return shapes


# --------------------------------------------------------------------------------------------------
# NIR
# --------------------------------------------------------------------------------------------------
def _nir():
    try:
        import nir
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("NIR export needs the 'export' extra: pip install 'spikelfp[export]'") from exc
    return nir


def to_nir(model: nn.Module, path: str | os.PathLike | None = None, dt: float = 1e-4, input_shape=None):
    """Export a sequential (spiking) model as a NIR graph, written to ``path`` (HDF5) if given.

    Supported layers: Linear (NIR Affine/Linear), Conv1d/Conv2d, AvgPool2d, Flatten, LIF (NIR LIF,
    or IF for ``β = 1``), inside nn.Sequential / SpikingSequential / TimeDistributed; Dropout and
    Identity are skipped (identities at inference). Anything else is an :class:`ExportError` that
    names the layer. Returns the :class:`nir.NIRGraph`.
    """
    nir = _nir()
    if not dt > 0:
        raise ExportError(f"dt must be > 0, got {dt}")
    shape = _input_shape(model, input_shape)
    chain = [(n, m) for n, m in _chain(model) if not isinstance(m, (nn.Dropout, nn.Identity))]
    shapes = _shapes(chain, shape)
    nodes: dict[str, Any] = {"input": nir.Input(input_type=np.array(shape))}
    edges = []
    previous = "input"
    for (name, layer), in_shape in zip(chain, shapes):
        key = name.replace(".", "_") or "layer"
        nodes[key] = _to_nir_node(nir, name, layer, in_shape, dt)
        edges.append((previous, key))
        previous = key
    nodes["output"] = nir.Output(output_type=np.array(shapes[-1]))
    edges.append((previous, "output"))
    meta: dict[str, Any] = {"exporter": "spikelfp", "dt": dt}
    binary = [name for name, layer in chain if is_binary(layer)]
    if binary:  # LFP-SPEC §10: the weights of these nodes are ±α_row (and 0 for ternary)
        meta["binary_layers"] = [n.replace(".", "_") or "layer" for n in binary]
    graph = nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta)
    if path is not None:
        nir.write(str(path), graph)
    return graph


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().copy()


def _weight_of(layer: nn.Module) -> tuple[np.ndarray, dict[str, Any]]:
    """The weight a layer computes with, and node metadata: ``w_q`` and its mode for binary layers."""
    if is_binary(layer):
        return _numpy(layer.quantized_weight()), {"binary": True, "mode": layer.mode, "weights": "alpha_row*sign"}
    return _numpy(layer.weight), {}


def _to_nir_node(nir, name: str, layer: nn.Module, in_shape, dt: float):
    if isinstance(layer, nn.Linear):
        weight, meta = _weight_of(layer)
        if layer.bias is None:
            return nir.Linear(weight=weight, metadata=meta)
        return nir.Affine(weight=weight, bias=_numpy(layer.bias), metadata=meta)
    if isinstance(layer, (nn.Conv1d, nn.Conv2d)):
        if layer.padding_mode != "zeros" or isinstance(layer.padding, str):
            raise ExportError(f"layer '{name}' ({type(layer).__name__}): only integer zero padding exports to NIR")
        bias = _numpy(layer.bias) if layer.bias is not None else np.zeros(layer.out_channels, dtype=np.float32)
        cls = nir.Conv2d if isinstance(layer, nn.Conv2d) else nir.Conv1d
        spatial = tuple(in_shape[1:]) if isinstance(layer, nn.Conv2d) else int(in_shape[1])
        weight, meta = _weight_of(layer)
        return cls(
            input_shape=spatial,
            weight=weight,
            stride=tuple(layer.stride) if isinstance(layer, nn.Conv2d) else layer.stride[0],
            padding=tuple(layer.padding) if isinstance(layer, nn.Conv2d) else layer.padding[0],
            dilation=tuple(layer.dilation) if isinstance(layer, nn.Conv2d) else layer.dilation[0],
            groups=layer.groups,
            bias=bias,
            metadata=meta,
        )
    if isinstance(layer, nn.AvgPool2d):
        pair = nn.modules.utils._pair
        if layer.ceil_mode or not layer.count_include_pad or layer.divisor_override is not None:
            raise ExportError(f"layer '{name}' (AvgPool2d): only the default options export to NIR")
        return nir.AvgPool2d(
            kernel_size=np.array(pair(layer.kernel_size)),
            stride=np.array(pair(layer.stride if layer.stride is not None else layer.kernel_size)),
            padding=np.array(pair(layer.padding)),
        )
    if isinstance(layer, nn.Flatten):
        start = layer.start_dim - 2 if layer.start_dim >= 0 else layer.start_dim
        end = layer.end_dim - 2 if layer.end_dim >= 0 else layer.end_dim
        if start < 0 and layer.start_dim >= 0:
            raise ExportError(f"layer '{name}' (Flatten): flattening the time or batch axis does not export")
        return nir.Flatten(input_type={"input": np.array(in_shape)}, start_dim=start, end_dim=end)
    if isinstance(layer, LIF):
        p = layer.params
        shape = tuple(in_shape)
        meta = {"reset": p.reset, "dt": dt, "beta": p.beta, "threshold": p.threshold, "node": "spikelfp.LIF"}
        threshold = np.full(shape, p.threshold, dtype=np.float64)
        zeros = np.zeros(shape, dtype=np.float64)
        if p.beta == 1.0:
            return nir.IF(r=np.ones(shape), v_threshold=threshold, v_reset=zeros, metadata=meta)
        tau = dt / (1.0 - p.beta)
        return nir.LIF(
            tau=np.full(shape, tau),
            r=np.full(shape, tau / dt),
            v_leak=zeros,
            v_threshold=threshold,
            v_reset=zeros,
            metadata=meta,
        )
    raise ExportError(
        f"layer '{name}' of type {type(layer).__name__} has no NIR equivalent supported by spikelfp "
        "(supported: Linear, Conv1d, Conv2d, AvgPool2d, Flatten, LIF; NIR has no max-pooling)"
    )


def from_nir(source, dt: float | None = None) -> SpikingSequential:
    """Rebuild a spikelfp model from a NIR graph or a ``.nir`` file.

    The graph must be a chain ``input → … → output`` of Affine/Linear, Conv1d/Conv2d, AvgPool2d,
    SumPool2d-free, Flatten and LIF/IF nodes. LIF parameters must be the same for every neuron of a
    node (spikelfp's LIF has one ``β`` and ``θ`` per layer), with ``v_leak = v_reset = 0`` and unit
    input gain ``R·dt/τ = 1``. The reset mode comes from the metadata (spikelfp's export writes it);
    without it, NIR's own semantics apply: reset to zero. ``dt`` defaults to the metadata's, else 1e-4.
    """
    nir = _nir()
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise ExportError(f"no NIR file at {path}")
        try:
            graph = nir.read(str(path))
        except Exception as exc:  # h5py/nir raise many types for foreign or corrupt files
            raise ExportError(f"{path} is not a readable NIR file: {type(exc).__name__}: {exc}") from exc
    else:
        graph = source
    if not hasattr(graph, "nodes") or not hasattr(graph, "edges"):
        raise ExportError("from_nir needs a NIR graph or the path of a .nir file")
    order = _chain_order(graph)
    graph_dt = (getattr(graph, "metadata", None) or {}).get("dt")
    layers: list[nn.Module] = []
    pending_spatial: list[nn.Module] = []

    def flush():
        if pending_spatial:
            layers.append(TimeDistributed(*pending_spatial))
            pending_spatial.clear()

    input_shape = None
    for key in order:
        node = graph.nodes[key]
        kind = type(node).__name__
        if kind == "Input":
            input_shape = tuple(int(d) for d in np.asarray(node.input_type["input"]).reshape(-1))
            continue
        if kind == "Output":
            continue
        if kind in ("Conv1d", "Conv2d", "AvgPool2d"):
            pending_spatial.append(_from_nir_spatial(key, node))
            continue
        flush()
        if kind in ("Affine", "Linear"):
            weight = torch.as_tensor(np.asarray(node.weight, dtype=np.float32))
            bias = getattr(node, "bias", None)
            layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
            with torch.no_grad():
                layer.weight.copy_(weight)
                if bias is not None:
                    layer.bias.copy_(torch.as_tensor(np.asarray(bias, dtype=np.float32)))
            layers.append(layer)
        elif kind == "Flatten":
            start, end = int(node.start_dim), int(node.end_dim)
            layers.append(nn.Flatten(start + 2 if start >= 0 else start, end + 2 if end >= 0 else end))
        elif kind in ("LIF", "IF"):
            layers.append(_from_nir_neuron(key, node, dt if dt is not None else graph_dt))
        else:
            raise ExportError(f"NIR node '{key}' of type {kind} cannot run in spikelfp")
    flush()
    if input_shape is None:
        raise ExportError("the NIR graph has no Input node")
    return SpikingSequential(*layers, input_shape=input_shape)


def _chain_order(graph) -> list[str]:
    succ: dict[str, list[str]] = {}
    pred: dict[str, list[str]] = {}
    for a, b in graph.edges:
        succ.setdefault(a, []).append(b)
        pred.setdefault(b, []).append(a)
    inputs = [k for k, n in graph.nodes.items() if type(n).__name__ == "Input"]
    if len(inputs) != 1:
        raise ExportError(f"the NIR graph needs exactly one Input node, found {len(inputs)}")
    order, seen = [inputs[0]], {inputs[0]}
    while succ.get(order[-1]):
        nxt = succ[order[-1]]
        if len(nxt) != 1 or len(pred.get(nxt[0], [])) != 1:
            raise ExportError(f"NIR node '{order[-1]}' branches or merges; only chains are supported")
        if nxt[0] in seen:
            raise ExportError(f"NIR graph has a cycle at '{nxt[0]}' (recurrence is not supported)")
        if nxt[0] not in graph.nodes:
            raise ExportError(f"NIR edge points to a missing node '{nxt[0]}'")
        order.append(nxt[0])
        seen.add(nxt[0])
    if len(order) != len(graph.nodes):
        missing = sorted(set(graph.nodes) - seen)
        raise ExportError(f"NIR nodes not on the input→output chain: {', '.join(missing)}")
    return order


def _from_nir_spatial(key: str, node) -> nn.Module:
    kind = type(node).__name__
    if kind == "AvgPool2d":
        return nn.AvgPool2d(
            tuple(int(k) for k in np.asarray(node.kernel_size).reshape(-1)),
            tuple(int(k) for k in np.asarray(node.stride).reshape(-1)),
            tuple(int(k) for k in np.asarray(node.padding).reshape(-1)),
        )
    weight = torch.as_tensor(np.asarray(node.weight, dtype=np.float32))
    cls = nn.Conv2d if kind == "Conv2d" else nn.Conv1d
    if isinstance(node.padding, str):
        padding = node.padding
    else:
        padding = tuple(int(p) for p in np.asarray(node.padding).reshape(-1))
    layer = cls(
        weight.shape[1] * int(node.groups),
        weight.shape[0],
        tuple(weight.shape[2:]),
        stride=tuple(int(s) for s in np.asarray(node.stride).reshape(-1)),
        padding=padding,
        dilation=tuple(int(d) for d in np.asarray(node.dilation).reshape(-1)),
        groups=int(node.groups),
    )
    with torch.no_grad():
        layer.weight.copy_(weight)
        layer.bias.copy_(torch.as_tensor(np.asarray(node.bias, dtype=np.float32)))
    return layer


def _uniform(key: str, name: str, value) -> float:
    arr = np.asarray(value, dtype=np.float64).reshape(-1)
    if arr.size == 0:
        raise ExportError(f"NIR node '{key}': {name} is empty")
    if not np.all(arr == arr[0]):
        raise ExportError(f"NIR node '{key}': {name} differs between neurons; spikelfp's LIF has one per layer")
    return float(arr[0])


def _from_nir_neuron(key: str, node, dt: float | None) -> LIF:
    meta = dict(getattr(node, "metadata", None) or {})
    dt = float(meta.get("dt", dt if dt is not None else 1e-4))
    threshold = _uniform(key, "v_threshold", node.v_threshold)
    if _uniform(key, "v_reset", node.v_reset) != 0.0:
        raise ExportError(f"NIR node '{key}': v_reset must be 0")
    if type(node).__name__ == "IF":
        if _uniform(key, "r", node.r) != 1.0:
            raise ExportError(f"NIR node '{key}': IF with r != 1 is not supported")
        beta = 1.0
    else:
        if _uniform(key, "v_leak", node.v_leak) != 0.0:
            raise ExportError(f"NIR node '{key}': v_leak must be 0")
        tau = _uniform(key, "tau", node.tau)
        gain = _uniform(key, "r", node.r) * dt / tau
        if not np.isclose(gain, 1.0, rtol=1e-6):
            raise ExportError(f"NIR node '{key}': input gain r·dt/τ = {gain:.6g}; spikelfp needs 1")
        beta = 1.0 - dt / tau
        if "beta" in meta and np.isclose(float(meta["beta"]), beta, rtol=0, atol=1e-9):
            beta = float(meta["beta"])  # the exact value the exporter had
    reset = str(meta.get("reset", "zero"))
    if reset not in ("subtract", "zero"):
        raise ExportError(f"NIR node '{key}': unknown reset {reset!r} in metadata")
    try:
        return LIF(beta, threshold, reset)
    except ValueError as exc:
        raise ExportError(f"NIR node '{key}': {exc}") from exc


# --------------------------------------------------------------------------------------------------
# architecture descriptions (JSON over a fixed list of layer types)
# --------------------------------------------------------------------------------------------------
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
    if isinstance(model, LIF):
        return {"type": "LIF", "beta": model.beta, "threshold": model.threshold, "reset": model.reset}
    if isinstance(model, Heaviside):
        return {"type": "Heaviside", "threshold": model.threshold}
    if type(model) in (nn.ReLU, nn.Identity):
        return {"type": type(model).__name__}
    if isinstance(model, nn.Dropout):
        return {"type": "Dropout", "p": model.p}
    raise ExportError(f"layer {type(model).__name__} is not supported by the binary format")


def from_description(desc: dict) -> nn.Module:
    """Build the model a :func:`describe` dictionary describes (only the fixed list of types)."""
    if not isinstance(desc, dict) or "type" not in desc:
        raise ExportError("malformed architecture description")
    t = desc["type"]
    try:
        if t in ("SpikingSequential", "TimeDistributed", "Sequential"):
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
        if t == "LIF":
            return LIF(float(desc["beta"]), float(desc["threshold"]), str(desc["reset"]))
        if t == "Heaviside":
            return Heaviside(float(desc["threshold"]))
        if t == "ReLU":
            return nn.ReLU()
        if t == "Identity":
            return nn.Identity()
        if t == "Dropout":
            return nn.Dropout(float(desc["p"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ExportError(f"malformed {t} entry in the architecture: {exc}") from exc
    raise ExportError(f"unknown layer type {t!r} in the architecture")


# --------------------------------------------------------------------------------------------------
# binary weights
# --------------------------------------------------------------------------------------------------
def _weighted(model: nn.Module):
    return [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d))]


def _row_scale(w: torch.Tensor, scale: str) -> torch.Tensor:
    if scale == "row-mean-abs":
        return w.abs().reshape(w.shape[0], -1).mean(dim=1)
    if scale == "row-rms":  # keeps every row's L2 norm, so input currents keep their size
        return w.reshape(w.shape[0], -1).pow(2).mean(dim=1).sqrt()
    if scale == "tensor-mean-abs":
        return w.abs().mean().expand(w.shape[0]).clone()
    if scale == "none":
        return torch.ones(w.shape[0], dtype=w.dtype, device=w.device)
    raise ValueError(f"scale must be 'row-mean-abs', 'row-rms', 'tensor-mean-abs' or 'none', got {scale!r}")


def _signs(w: torch.Tensor) -> torch.Tensor:
    return torch.where(w >= 0, 1.0, -1.0).to(w.dtype)


def binarize(model: nn.Module, scale: str = "row-mean-abs") -> nn.Module:
    """A copy of ``model`` whose Linear/Conv weights are ``sign(w)·α_row`` (biases kept).

    ``scale``: ``"row-mean-abs"`` (``α_row = mean |w_row|``, the default), ``"row-rms"`` (``α_row =
    ‖w_row‖/√n``, which keeps each row's norm), ``"tensor-mean-abs"`` or ``"none"`` (``α = 1``).
    """
    out = copy.deepcopy(model)
    with torch.no_grad():
        for _, layer in _weighted(out):
            w = layer.weight
            alpha = _row_scale(w, scale)
            w.copy_(_signs(w) * alpha.view(-1, *([1] * (w.dim() - 1))))
    return out


def save_binary(
    model: nn.Module,
    path: str | os.PathLike,
    scale: str = "row-mean-abs",
    float_layers: str | None = None,
) -> Path:
    """Write a model's binary weights to HDF5: bit-packed signs, per-row scales, biases, architecture.

    - A binary or ternary layer (:mod:`spikelfp.binary`) is written as exactly the ``w_q`` its forward
      uses: the signs of the latent weight (``sign(0) := +1``) bit-packed, ``α_row`` (float32) and, for
      ternary layers, the bit-packed mask ``[|w| > δ_row]``; ``w_q = sign · mask · α_row``.
    - A plain Linear/Conv layer is binarised post hoc (``sign(w)·α_row`` with ``α_row`` chosen by
      ``scale``, see :func:`binarize`), or written as float32 (``float_layers="keep"``). The default
      keeps plain layers real in a model that has binary layers (e.g. a first layer kept real by
      :func:`spikelfp.binary.convert`) and binarises them in a model that has none.

    Biases stay real (float32). For a float32 model, :func:`load_binary` reproduces the forward bit
    for bit.

    Parameters
    ----------
    model
        A sequential model of the layers :func:`describe` supports.
    path
        The file to write.
    scale
        ``α_row`` of post-hoc binarised plain layers.
    float_layers
        ``"binarize"``, ``"keep"`` or None (the default above).
    """
    import h5py

    _row_scale(torch.ones(1, 1), scale)  # validates the name
    if float_layers is None:
        float_layers = "keep" if any(is_binary(m) for m in model.modules()) else "binarize"
    if float_layers not in ("binarize", "keep"):
        raise ValueError(f"float_layers must be 'binarize' or 'keep', got {float_layers!r}")
    arch = json.dumps(describe(model))
    path = Path(path)
    with h5py.File(path, "w") as f:
        f.attrs["format"] = BINARY_FORMAT
        f.attrs["version"] = BINARY_VERSION
        f.attrs["scale"] = scale
        f.attrs["architecture"] = arch
        layers = f.create_group("layers")
        for name, layer in _weighted(model):
            w = layer.weight.detach().cpu()
            g = layers.create_group(name or "model")
            g.create_dataset("shape", data=np.array(w.shape, dtype=np.int64))
            if is_binary(layer):
                _, alpha, mask = quantize(w, layer.mode)
                g.attrs["mode"] = layer.mode
                g.create_dataset("signs", data=np.packbits((w >= 0).numpy().reshape(-1)))
                g.create_dataset("scale", data=alpha.numpy().astype(np.float32))
                if mask is not None:
                    g.create_dataset("mask", data=np.packbits(mask.numpy().reshape(-1)))
            elif float_layers == "keep":
                g.attrs["mode"] = "float"
                g.create_dataset("weight", data=w.numpy().astype(np.float32))
            else:
                g.attrs["mode"] = "binary"
                g.create_dataset("signs", data=np.packbits((w >= 0).numpy().reshape(-1)))
                g.create_dataset("scale", data=_row_scale(w, scale).numpy().astype(np.float32))
            if layer.bias is not None:
                g.create_dataset("bias", data=layer.bias.detach().cpu().numpy().astype(np.float32))
    return path


# ---- reading: every check runs on the file's metadata before anything of a declared size is allocated ----
_MAX_DIM = 1 << 31  # a single dimension larger than this is not a model this format holds
_MAX_DEPTH = 64  # nesting of the architecture
_UNWEIGHTED = ("MaxPool2d", "AvgPool2d", "Flatten", "LIF", "Heaviside", "ReLU", "Identity", "Dropout")


def load_binary(path: str | os.PathLike) -> nn.Module:
    """Restore a model written by :func:`save_binary` as plain ``nn.Linear``/``nn.Conv*`` layers.

    The weights are the binary values ``sign · mask · α_row`` (or the float32 weights of layers saved
    real). Nothing in the file is executed: the architecture is JSON over a fixed list of layer types.
    A foreign, corrupt or hostile file raises :class:`ExportError`: HDF5 soft or external links,
    datasets with external storage, virtual datasets, datasets that declare more data than they
    store, shapes or dtypes that disagree with the architecture, a bias of another length than the
    layer's outputs (no broadcasting), and NaN/Inf scales, biases or weights. Shapes and sizes are
    checked against the architecture before anything of the declared size is allocated or read.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise ExportError(f"no binary model at {path}")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise ExportError(f"{path} is not an HDF5 file: {exc}") from exc
    with f:
        try:
            return _read_binary(f, path)
        except ExportError:
            raise
        except Exception as exc:  # h5py/numpy/json raise many types on malformed files; RecursionError too
            raise ExportError(f"{path}: malformed binary model file ({type(exc).__name__}: {exc})") from exc


def _read_binary(f, path: Path) -> nn.Module:
    fmt = f.attrs.get("format")
    if not isinstance(fmt, str) or fmt != BINARY_FORMAT:
        raise ExportError(f"{path} is not a spikelfp binary model")
    version = f.attrs.get("version", -1)
    if not isinstance(version, (int, np.integer)) or int(version) not in _READABLE_VERSIONS:
        raise ExportError(f"{path} has binary format version {version!r}, expected one of {_READABLE_VERSIONS}")
    arch = f.attrs.get("architecture")
    if not isinstance(arch, str):
        raise ExportError(f"{path}: the architecture attribute is missing or not a string")
    try:
        desc = json.loads(arch)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ExportError(f"{path}: the architecture is not valid JSON ({type(exc).__name__})") from exc
    declared: list[tuple[str, tuple[int, ...], bool]] = []
    _declared_layers(desc, "", 0, declared)
    layers = _child(f, "layers", path, "the layers group", group=True)
    stored = set(layers.keys())
    expected = {name or "model" for name, _, _ in declared}
    if stored != expected:
        raise ExportError(
            f"{path}: the file holds weights for layers {sorted(stored)}, the architecture has {sorted(expected)}"
        )
    weights: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
    for name, shape, has_bias in declared:
        weights[name] = _read_layer(layers, name, shape, has_bias, int(version), path)
    model = from_description(desc)
    built = [(n, tuple(m.weight.shape)) for n, m in _weighted(model)]
    if built != [(n, s) for n, s, _ in declared]:  # pragma: no cover - _declared_layers mirrors from_description
        raise ExportError(f"{path}: the architecture's layers do not match their weights")
    with torch.no_grad():
        for name, layer in _weighted(model):
            w, b = weights[name]
            layer.weight.copy_(torch.from_numpy(w))
            if b is not None:
                layer.bias.copy_(torch.from_numpy(b))
    return model


def _dim(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _MAX_DIM:
        raise ExportError(f"malformed architecture: {what} must be an integer in [1, 2^31], got {value!r}")
    return value


def _declared_layers(desc, prefix: str, depth: int, out: list) -> None:
    """The weight shapes the architecture declares, named as ``named_modules`` names them (no allocation)."""
    if depth > _MAX_DEPTH:
        raise ExportError(f"malformed architecture: nested deeper than {_MAX_DEPTH}")
    if not isinstance(desc, dict):
        raise ExportError("malformed architecture description")
    t = desc.get("type")
    if t in ("SpikingSequential", "TimeDistributed", "Sequential"):
        children = desc.get("children")
        if not isinstance(children, list):
            raise ExportError(f"malformed {t} entry in the architecture: no list of children")
        names = desc.get("names", [str(i) for i in range(len(children))])
        if not isinstance(names, list) or len(names) != len(children):
            raise ExportError(f"malformed {t} entry in the architecture: bad child names")
        for name, child in zip(names, children):
            _declared_layers(child, f"{prefix}.{name}" if prefix else str(name), depth + 1, out)
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
    elif t not in _UNWEIGHTED:
        raise ExportError(f"unknown layer type {t!r} in the architecture")
    for key in ("p", "threshold", "beta"):  # Dropout's p, Heaviside's and LIF's threshold, LIF's β
        value = desc.get(key)
        if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value)):
            raise ExportError(f"malformed {t} entry in the architecture: {key} = {value!r}")
    if t == "Dropout" and not 0 <= desc.get("p", 0) <= 1:
        raise ExportError(f"malformed Dropout entry in the architecture: p = {desc.get('p')!r}")
    if t in ("Linear", "Conv1d", "Conv2d") and sum(int(np.prod(s, dtype=np.float64)) for _, s, _ in out) > 1 << 36:
        raise ExportError("malformed architecture: more than 2^36 weights")


def _child(parent, key: str, path: Path, what: str, *, group: bool = False):
    """``group[key]`` if it is a hard link to a group (``group=True``) or a dataset stored in this file."""
    import h5py

    link = parent.get(key, getlink=True)
    if link is None:
        raise ExportError(f"{path}: {what} is missing")
    if not isinstance(link, h5py.HardLink):
        raise ExportError(f"{path}: {what} is a {type(link).__name__}; only data inside the file is read")
    obj = parent[key]
    if group:
        if not isinstance(obj, h5py.Group):
            raise ExportError(f"{path}: {what} is not a group")
        return obj
    if not isinstance(obj, h5py.Dataset):
        raise ExportError(f"{path}: {what} is not a dataset")
    if obj.is_virtual:
        raise ExportError(f"{path}: {what} is a virtual dataset; only data inside the file is read")
    if obj.external:
        raise ExportError(f"{path}: {what} has external storage; only data inside the file is read")
    return obj


def _dataset(g, key: str, path: Path, layer: str, shape: tuple[int, ...], kinds: str) -> np.ndarray:
    """Read a dataset after checking its link, storage, dtype kind and shape against what is expected."""
    what = f"'{key}' of layer '{layer}'"
    ds = _child(g, key, path, what)
    if ds.dtype.kind not in kinds:
        raise ExportError(f"{path}: {what} has dtype {ds.dtype}")
    if tuple(ds.shape) != shape:
        raise ExportError(f"{path}: {what} has shape {tuple(ds.shape)}, expected {shape}")
    if ds.id.get_storage_size() < ds.size * ds.dtype.itemsize:
        raise ExportError(f"{path}: {what} declares more data than the file stores")
    data = ds[()]
    if kinds == "f" and not np.all(np.isfinite(data)):
        raise ExportError(f"{path}: {what} holds NaN or Inf")
    return np.asarray(data)


def _read_layer(layers, name: str, shape: tuple[int, ...], has_bias: bool, version: int, path: Path):
    label = name or "model"
    g = _child(layers, label, path, f"the weights of layer '{name}'", group=True)
    mode = g.attrs.get("mode", "binary") if version >= 2 else "binary"
    if mode not in ("binary", "ternary", "float"):
        raise ExportError(f"{path}: layer '{name}' has unknown mode {mode!r}")
    declared = _dataset(g, "shape", path, name, (len(shape),), "iu")
    if tuple(int(d) for d in declared) != shape:
        raise ExportError(
            f"{path}: layer '{name}' has shape {tuple(int(d) for d in declared)}, the architecture says {shape}"
        )
    n = int(np.prod(shape))
    rows = shape[0]
    if mode == "float":
        w = _dataset(g, "weight", path, name, shape, "f").astype(np.float32)
    else:
        bits = (n + 7) // 8
        signs = np.unpackbits(_dataset(g, "signs", path, name, (bits,), "u"))[:n].astype(np.float32) * 2 - 1
        alpha = _dataset(g, "scale", path, name, (rows,), "f").astype(np.float32)
        if np.any(alpha < 0):
            raise ExportError(f"{path}: layer '{name}' has negative scales")
        if mode == "ternary":
            signs = signs * np.unpackbits(_dataset(g, "mask", path, name, (bits,), "u"))[:n].astype(np.float32)
        elif "mask" in g:
            raise ExportError(f"{path}: layer '{name}' is binary but holds a mask")
        w = signs.reshape(rows, -1) * alpha[:, None]
        w = w.reshape(shape)
    bias = None
    if has_bias:
        bias = _dataset(g, "bias", path, name, (rows,), "f").astype(np.float32)
    elif "bias" in g:
        raise ExportError(f"{path}: layer '{name}' holds a bias the architecture does not have")
    return w, bias
