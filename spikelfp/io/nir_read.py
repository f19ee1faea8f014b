"""The NIR reader: :func:`from_nir` turns a NIR graph (or a ``.nir`` file) back into a spikelfp model.

Each neuron node becomes a :class:`~spikelfp.neurons.spec.NeuronSpec` (the inverse of the node mappings of
:mod:`spikelfp.io.nir_write`), validated there, and the spec becomes the module that holds it
(:func:`spikelfp.io.rebuild.module_from_spec`). A file is opened through :mod:`spikelfp.io.hdf5` and refused
before anything of a declared size is read; every malformed graph is an :class:`ExportError`.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from torch import nn

from ..neurons import NeuronSpec
from ..nn import SpikingSequential, TimeDistributed
from .errors import ExportError, optional
from .hdf5 import open_file, read_tree
from .isolated import run_isolated
from .rebuild import module_from_spec
from .shapes import propagate

__all__ = ["from_nir"]

#: NIR's neuron nodes and the spec kind each becomes
_NEURON_NODES = {"LIF": "LIF", "IF": "LIF", "CubaLIF": "CubaLIF", "LI": "LI", "I": "LI", "CubaLI": "CubaLI"}
_KNOWN_NODES = {"Input", "Output", "Conv1d", "Conv2d", "AvgPool2d", "Affine", "Linear", "Flatten", *_NEURON_NODES}


def from_nir(source, dt: float | None = None) -> SpikingSequential:
    """Rebuild a spikelfp model from a NIR graph or a ``.nir`` file.

    The graph must be a chain ``input → … → output`` of Affine/Linear, Conv1d/Conv2d, AvgPool2d, Flatten and
    neuron nodes: LIF/IF (→ ``LIF``), CubaLIF (→ ``CubaLIF``), LI/I (→ ``LI``), CubaLI (→ ``CubaLI``), and a
    LIF/CubaLIF with a recurrent Affine/Linear (a 2-cycle, as snnTorch writes RLeaky/RSynaptic, or a 4-node
    subgraph; → ``RLIF``/``RCubaLIF``). Neuron nodes need ``v_leak = v_reset = 0``, one threshold per node and
    unit input gains (``r·dt/τ = 1``, CubaLIF and CubaLI also ``w_in·dt/τ_syn = 1``); decays ``1 − dt/τ`` may
    differ between neurons. The reset mode comes from the metadata (spikelfp's export writes it); without it,
    NIR's own semantics apply: reset to zero. ``dt`` defaults to the metadata's, else 1e-4.

    Hostile or malformed input is refused with :class:`ExportError`: files with external links, external
    storage or virtual datasets, or that declare more data than they can hold
    (:func:`spikelfp.io.hdf5.check_safe`); non-finite weights, biases or neuron parameters, ``τ <= 0``, biases
    whose shape is not ``(out,)``.
    """
    nir = optional("nir")
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise ExportError(f"no NIR file at {path}")
        graph = _read_file(nir, path)
    else:
        graph = source
    if not hasattr(graph, "nodes") or not hasattr(graph, "edges"):
        raise ExportError("from_nir needs a NIR graph or the path of a .nir file")
    try:
        return _model_from_graph(graph, dt)
    except ExportError:
        raise
    except (
        KeyError, IndexError, TypeError, ValueError, AttributeError, ZeroDivisionError, OverflowError, RuntimeError,
    ) as exc:  # fmt: skip
        raise ExportError(f"malformed NIR graph: {type(exc).__name__}: {exc}") from exc


def _read_file(nir, path: Path):
    """What ``nir.read`` returns, from the tree :func:`_nir_tree` reads in a child process; every failure is an
    :class:`ExportError`."""
    tree = run_isolated(_nir_tree, path)
    try:
        if "type_check" in tree:
            raise ValueError("the graph holds a 'type_check' key, which NIR's reader refuses")
        # NIR's type check is quadratic in the number of nodes (each node asks for the graph's inputs); the shapes
        # are checked instead where they matter, on the layers built (spikelfp.io.shapes)
        tree["type_check"] = False
        return nir.dict2NIRNode(tree)
    except Exception as exc:  # nir raises many types (RecursionError included) for foreign or corrupt graphs
        raise ExportError(f"{path} is not a readable NIR file: {type(exc).__name__}: {exc}") from exc


def _nir_tree(path: Path) -> dict:
    """The file's ``/node`` group as the dict NIR's reader builds (runs in the reading process), read by
    :func:`spikelfp.io.hdf5.read_tree` with every check of :func:`spikelfp.io.hdf5.check_safe`."""
    with open_file(path, "a readable NIR file: not HDF5") as f:
        tree = read_tree(f, path)
    if not isinstance(tree.get("node"), dict):
        raise ExportError(f"{path} is not a readable NIR file: it has no graph (/node)")
    return tree["node"]


# --------------------------------------------------------------------------------------------------
# values
# --------------------------------------------------------------------------------------------------
def _finite_array(key: str, name: str, value, ndim: int | tuple[int, ...] | None = None) -> np.ndarray:
    """``value`` as a float32 array; ``ExportError`` unless it is numeric, finite and of ``ndim`` dimensions."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ExportError(f"NIR node '{key}': {name} is not numeric ({exc})") from None
    if ndim is not None and arr.ndim not in ((ndim,) if isinstance(ndim, int) else ndim):
        raise ExportError(f"NIR node '{key}': {name} has shape {arr.shape}, expected {ndim} dimension(s)")
    arr32 = arr.astype(np.float32)
    if not np.all(np.isfinite(arr32)):
        raise ExportError(f"NIR node '{key}': {name} holds NaN or Inf (or values beyond float32)")
    return arr32


def _bias(key: str, value, out_features: int) -> np.ndarray:
    bias = _finite_array(key, "bias", value)
    if bias.shape != (out_features,):
        raise ExportError(
            f"NIR node '{key}': bias has shape {bias.shape}, expected ({out_features},) (no broadcasting)"
        )
    return bias


def _ints(key: str, name: str, value, low: int) -> tuple[int, ...]:
    arr = np.asarray(value).reshape(-1)
    if arr.dtype.kind not in "iu" and not (arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr % 1 == 0)):
        raise ExportError(f"NIR node '{key}': {name} must be integers, got {arr!r}")
    if np.any(arr < low):
        raise ExportError(f"NIR node '{key}': {name} must be >= {low}, got {arr.tolist()}")
    return tuple(int(v) for v in arr)


def _values(key: str, name: str, value) -> np.ndarray:
    """A neuron parameter as a float64 array: numeric, not empty, finite."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ExportError(f"NIR node '{key}': {name} is not numeric ({exc})") from None
    if arr.size == 0:
        raise ExportError(f"NIR node '{key}': {name} is empty")
    if not np.all(np.isfinite(arr)):
        raise ExportError(f"NIR node '{key}': {name} holds NaN or Inf")
    return arr


def _uniform(key: str, name: str, value) -> float:
    arr = _values(key, name, value).reshape(-1)
    if not np.all(arr == arr[0]):
        raise ExportError(f"NIR node '{key}': {name} differs between neurons; spikelfp's LIF has one per layer")
    return float(arr[0])


# --------------------------------------------------------------------------------------------------
# the graph as a chain
# --------------------------------------------------------------------------------------------------
def _model_from_graph(graph, dt: float | None) -> SpikingSequential:
    graph, recurrent = _recurrent_pairs(graph)
    order = _chain_order(graph)
    for key in order:  # every node is known before any layer is built: a refusal costs no more than the walk
        kind = type(graph.nodes[key]).__name__
        if kind not in _KNOWN_NODES:
            raise ExportError(f"NIR node '{key}' of type {kind} cannot run in spikelfp")
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
            input_shape = _ints(key, "input shape", node.input_type["input"], 1)
            continue
        if kind == "Output":
            continue
        if kind in ("Conv1d", "Conv2d", "AvgPool2d"):
            pending_spatial.append(_spatial(key, node))
            continue
        flush()
        if kind in ("Affine", "Linear"):
            layers.append(_linear(key, node))
        elif kind == "Flatten":
            start, end = int(node.start_dim), int(node.end_dim)
            layers.append(nn.Flatten(start + 2 if start >= 0 else start, end + 2 if end >= 0 else end))
        elif kind in _NEURON_NODES:
            layers.append(_neuron(key, node, recurrent.get(key), dt if dt is not None else graph_dt))
        else:
            raise ExportError(f"NIR node '{key}' of type {kind} cannot run in spikelfp")
    flush()
    if input_shape is None:
        raise ExportError("the NIR graph has no Input node")
    model = SpikingSequential(*layers, input_shape=input_shape)
    propagate(model.named_children(), input_shape, lead=2)  # the layers fit together before anyone runs them
    return model


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


def _recurrent_pairs(graph):
    """The graph without its recurrent weight nodes, and ``{neuron key: weight node}``, in one pass.

    A recurrent neuron is a LIF/CubaLIF node ``L`` and an Affine/Linear node ``W`` with edges ``L → W`` and
    ``W → L`` only (snnTorch's flat form of RLeaky/RSynaptic), or a subgraph node holding exactly
    ``Input → L ⇄ W``, ``L → Output`` (nirtorch's nested form).
    """
    nodes = dict(graph.nodes)
    edges = [tuple(e) for e in graph.edges]
    recurrent: dict[str, Any] = {}
    for key, node in list(nodes.items()):
        if type(node).__name__ == "NIRGraph":
            neuron, weight = _recurrent_subgraph(key, node)
            nodes[key] = neuron
            recurrent[key] = weight
    present = set(edges)
    touching: dict[Any, int] = {}
    for e in edges:
        for end in set(e):
            touching[end] = touching.get(end, 0) + 1
    removed = set()
    for a, b in edges:
        if a == b or (b, a) not in present or a not in nodes or b not in nodes or a in recurrent or a in removed:
            continue
        if type(nodes[a]).__name__ not in ("LIF", "CubaLIF") or type(nodes[b]).__name__ not in ("Affine", "Linear"):
            continue
        if touching[b] != 2:  # W's only edges are the two to and from L
            continue
        recurrent[a] = nodes.pop(b)
        removed.add(b)
    if removed:
        edges = [e for e in edges if e[0] not in removed and e[1] not in removed]
    return SimpleNamespace(nodes=nodes, edges=edges, metadata=getattr(graph, "metadata", None)), recurrent


def _recurrent_subgraph(key: str, sub):
    kinds = {k: type(n).__name__ for k, n in sub.nodes.items()}
    neurons = [k for k, t in kinds.items() if t in ("LIF", "CubaLIF")]
    weights = [k for k, t in kinds.items() if t in ("Affine", "Linear")]
    ins = [k for k, t in kinds.items() if t == "Input"]
    outs = [k for k, t in kinds.items() if t == "Output"]
    if len(kinds) == 4 and len(neurons) == len(weights) == len(ins) == len(outs) == 1:
        n, w = neurons[0], weights[0]
        if {tuple(e) for e in sub.edges} == {(ins[0], n), (n, w), (w, n), (n, outs[0])}:
            return sub.nodes[n], sub.nodes[w]
    raise ExportError(
        f"NIR node '{key}' is a subgraph spikelfp cannot run (only a LIF/CubaLIF with one recurrent Affine/Linear)"
    )


# --------------------------------------------------------------------------------------------------
# nodes → layers
# --------------------------------------------------------------------------------------------------
def _linear(key: str, node) -> nn.Linear:
    weight = torch.as_tensor(_finite_array(key, "weight", node.weight, 2))
    bias = getattr(node, "bias", None)
    if bias is not None:
        bias = torch.as_tensor(_bias(key, bias, weight.shape[0]))
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    with torch.no_grad():
        layer.weight.copy_(weight)
        if bias is not None:
            layer.bias.copy_(bias)
    return layer


def _spatial(key: str, node) -> nn.Module:
    kind = type(node).__name__
    if kind == "AvgPool2d":
        return nn.AvgPool2d(
            _ints(key, "kernel_size", node.kernel_size, 1),
            _ints(key, "stride", node.stride, 1),
            _ints(key, "padding", node.padding, 0),
        )
    weight = torch.as_tensor(_finite_array(key, "weight", node.weight, 4 if kind == "Conv2d" else 3))
    bias = torch.as_tensor(_bias(key, node.bias, weight.shape[0]))
    cls = nn.Conv2d if kind == "Conv2d" else nn.Conv1d
    if isinstance(node.padding, str):
        padding = node.padding
    else:
        padding = _ints(key, "padding", node.padding, 0)
    (groups,) = _ints(key, "groups", node.groups, 1)
    layer = cls(
        weight.shape[1] * groups,
        weight.shape[0],
        tuple(weight.shape[2:]),
        stride=_ints(key, "stride", node.stride, 1),
        padding=padding,
        dilation=_ints(key, "dilation", node.dilation, 1),
        groups=groups,
    )
    with torch.no_grad():
        layer.weight.copy_(weight)
        layer.bias.copy_(bias)
    return layer


def _decay_from(key: str, label: str, value: np.ndarray, exact) -> float | torch.Tensor:
    """``1 − dt/τ`` as a float (one per layer; the metadata's exact value when it agrees) or a per-neuron tensor."""
    if not np.all(np.isfinite(value)) or np.any(value < 0.0) or np.any(value > 1.0):
        raise ExportError(f"NIR node '{key}': {label} = 1 − dt/τ lies outside [0, 1] (τ < dt, or τ not finite)")
    flat = value.reshape(-1)
    if np.all(flat == flat[0]):
        one = float(flat[0])
        if isinstance(exact, (int, float)) and np.isclose(float(exact), one, rtol=0, atol=1e-9):
            return float(exact)  # the exact value the exporter had
        return one
    return torch.as_tensor(value, dtype=torch.get_default_dtype())


def node_spec(key: str, node, dt: float | None, recurrent: bool = False) -> NeuronSpec:
    """The :class:`NeuronSpec` of a NIR neuron node (the inverse of the writer's mapping).

    Forward Euler with step ``dt`` on NIR's equations: ``β = 1 − dt/τ`` (``τ_mem`` for CubaLIF/CubaLI; 1 for
    IF and I), ``α = 1 − dt/τ_syn``; the input gains ``r·dt/τ`` (and ``w_in·dt/τ_syn``) must be 1, IF's and I's
    ``r`` must be 1, ``v_leak`` and ``v_reset`` 0 and the threshold one per node. The reset mode is the
    metadata's (spikelfp writes it), else NIR's reset to zero.
    """
    kind = type(node).__name__
    meta = dict(getattr(node, "metadata", None) or {})
    dt = _uniform(key, "dt", meta.get("dt", dt if dt is not None else 1e-4))
    if not dt > 0:
        raise ExportError(f"NIR node '{key}': dt must be > 0, got {dt}")

    def arr(name: str) -> np.ndarray:
        a = _values(key, name, getattr(node, name))
        if name.startswith("tau") and np.any(a <= 0):
            raise ExportError(f"NIR node '{key}': {name} must be > 0")
        return a

    def unit(label: str, gain: np.ndarray) -> None:
        if not np.allclose(gain, 1.0, rtol=1e-6, atol=0.0):
            raise ExportError(
                f"NIR node '{key}': input gain {label} = {float(gain.reshape(-1)[0]):.6g}; spikelfp needs 1"
            )

    for name in ("v_leak", "v_reset"):
        if getattr(node, name, None) is not None and np.any(arr(name) != 0.0):
            raise ExportError(f"NIR node '{key}': {name} must be 0")
    if kind in ("IF", "I"):
        if np.any(arr("r") != 1.0):
            raise ExportError(f"NIR node '{key}': {kind} with r != 1 is not supported")
        beta = np.ones_like(arr("r"))
    else:
        tau = arr("tau_mem" if kind in ("CubaLIF", "CubaLI") else "tau")
        unit("r·dt/τ", arr("r") * dt / tau)
        beta = 1.0 - dt / tau
    spec_kind = _NEURON_NODES[kind]
    values: dict[str, Any] = {"beta": _decay_from(key, "β", beta, meta.get("beta")), "recurrent": recurrent}
    if spec_kind in ("CubaLIF", "CubaLI"):
        tau_syn = arr("tau_syn")
        unit("w_in·dt/τ_syn", arr("w_in") * dt / tau_syn)
        values["alpha"] = _decay_from(key, "α", 1.0 - dt / tau_syn, meta.get("alpha"))
    if spec_kind in ("LIF", "CubaLIF"):
        values["threshold"] = _uniform(key, "v_threshold", node.v_threshold)
        values["reset"] = str(meta.get("reset", "zero"))
        if values["reset"] not in ("subtract", "zero"):
            raise ExportError(f"NIR node '{key}': unknown reset {values['reset']!r} in metadata")
    else:
        values["reset"] = "none"
    try:
        return NeuronSpec(spec_kind, **values)
    except (TypeError, ValueError) as exc:
        raise ExportError(f"NIR node '{key}': {exc}") from exc


def _neuron(key: str, node, weight_node, dt: float | None) -> nn.Module:
    """The spikelfp module of a NIR neuron node; with ``weight_node``, the recurrent ``RLIF``/``RCubaLIF``."""
    spec = node_spec(key, node, dt, recurrent=weight_node is not None)
    if weight_node is None:
        return module_from_spec(spec)
    size = int(np.asarray(node.tau_mem if spec.synaptic else node.tau).size)
    weight = _finite_array(key, "recurrent weight", weight_node.weight, 2)
    if weight.shape != (size, size) or np.ndim(node.tau_mem if spec.synaptic else node.tau) != 1:
        raise ExportError(f"NIR node '{key}': recurrent weight of shape {weight.shape} for {size} neurons")
    bias = getattr(weight_node, "bias", None)
    if bias is not None:
        bias = _bias(key, bias, size)
    layer = module_from_spec(spec, size, bias=bias is not None)
    with torch.no_grad():
        layer.recurrent.weight.copy_(torch.as_tensor(weight))
        if bias is not None:
            layer.recurrent.bias.copy_(torch.as_tensor(bias))
    return layer
