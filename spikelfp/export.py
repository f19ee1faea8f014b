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

Shapes in NIR are per sample: no time or batch axis. A spikelfp ``nn.Flatten(2)`` on ``(T, B, C, H, W)``
is written as NIR's ``Flatten(start_dim=-3, end_dim=-1)``: negative dimensions name the same axes per
sample (NIR's shape rule) and on the batched tensors that snnTorch's and norse's importers run, where
``start_dim=0`` would flatten the batch.

Models built from snnTorch ``Leaky`` or norse ``LIFBoxCell`` (step-wise, ``(B, …)`` per call) export
too; ``convention="norse"`` writes LIF nodes the way norse's importer reads them (see :func:`to_nir`).

Binary weights: :func:`binarize` replaces every weight by ``sign(w)·α_row`` (``sign(0) := +1``);
:func:`save_binary` writes bit-packed signs, the per-row scales, the biases and the architecture to
HDF5, and :func:`load_binary` restores the model exactly. Neither loader executes anything from the
file: NIR and the binary format are HDF5 arrays, and the architecture is JSON over a fixed list of
layer types.
"""

from __future__ import annotations

import copy
import json
import os
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

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
BINARY_VERSION = 1


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
            f"{type(model).__name__} is not sequential: a module with its own forward() cannot be exported, "
            "because its data flow is code, not a chain of layers. Export supports nn.Sequential, SpikingSequential, "
            "TimeDistributed and norse SequentialState chains; rebuild the model as one of these"
        )
    return [("", model)]


@dataclass(frozen=True)
class _Neuron:
    """A spiking layer as NIR sees it: ``U[t] = β·U[t−1] + gain·I[t] − reset``, spike on ``U > θ``."""

    beta: float
    threshold: float
    reset: str
    gain: float
    source: str
    step_layout: bool  # called once per step on (B, …) (snnTorch, norse) rather than on (T, B, …)


def _library_class(layer: nn.Module, module_prefix: str, name: str) -> bool:
    """Whether ``layer`` is ``name`` from a library module starting with ``module_prefix`` (never imports it)."""
    return any(c.__name__ == name and c.__module__.startswith(module_prefix) for c in type(layer).__mro__)


def _one(name: str, layer: nn.Module, what: str, value) -> float:
    t = torch.as_tensor(value).detach()
    if t.numel() != 1 and not bool((t == t.reshape(-1)[0]).all()):
        raise ExportError(
            f"layer '{name}' ({type(layer).__name__}) has a per-neuron {what}; the NIR export writes one {what} "
            "per layer (as spikelfp's LIF has)"
        )
    return float(t.reshape(-1)[0])


def _neuron(name: str, layer: nn.Module) -> _Neuron | None:
    """The NIR view of a spiking layer (spikelfp ``LIF``, snnTorch ``Leaky``, norse ``LIFBoxCell``), else None.

    - snnTorch ``Leaky(β, θ, reset_mechanism)`` is ``U[t] = clamp(β, 0, 1)·U[t−1] + I[t] − reset`` (gain 1);
      with ``reset_delay=False`` a zero reset gives the same spikes as the delayed one for ``θ > 0`` (the
      membrane is 0 either way at the next step), a subtractive one does not (refused).
    - norse ``LIFBoxCell`` is ``v ← v + dt·τ⁻¹·(v_leak − v + i)``: ``β = 1 − dt·τ⁻¹`` and gain ``dt·τ⁻¹``,
      zero reset (``reset_value``) with ``v_leak = v_reset = 0``.
    """
    if isinstance(layer, LIF):
        p = layer.params
        return _Neuron(p.beta, p.threshold, p.reset, 1.0, "spikelfp.LIF", False)
    if _library_class(layer, "snntorch", "Leaky"):
        what = f"layer '{name}' (snntorch.Leaky)"
        reset = {0: "subtract", 1: "zero"}.get(int(layer.reset_mechanism_val))
        if reset is None:
            raise ExportError(f"{what}: reset_mechanism='none' has no NIR LIF equivalent in this exporter")
        threshold = _one(name, layer, "threshold", layer.threshold)
        if not getattr(layer, "reset_delay", True) and (reset == "subtract" or threshold <= 0):
            raise ExportError(
                f"{what}: reset_delay=False with a subtractive reset (or θ ≤ 0) resets within the step, which "
                "spikelfp's LIF and NIR's metadata do not describe"
            )
        if getattr(layer, "state_quant", False) or getattr(layer, "inhibition", False):
            raise ExportError(f"{what}: state quantisation and inhibition do not export to NIR")
        if _one(name, layer, "graded_spikes_factor", layer.graded_spikes_factor) != 1.0:
            raise ExportError(f"{what}: graded spikes do not export to NIR")
        beta = min(max(_one(name, layer, "beta", layer.beta), 0.0), 1.0)  # snnTorch clamps β to [0, 1]
        if beta == 0.0:
            raise ExportError(f"{what}: β = 0 has no NIR LIF (τ = dt/(1 − β) needs β > 0 for a memory)")
        return _Neuron(beta, threshold, reset, 1.0, "snntorch.Leaky", True)
    if _library_class(layer, "norse", "LIFBoxCell"):
        what = f"layer '{name}' (norse LIFBoxCell)"
        p = layer.p
        if getattr(getattr(p, "reset_method", None), "__name__", "reset_value") != "reset_value":
            raise ExportError(f"{what}: only norse's reset_value (reset to v_reset) exports to NIR")
        if _one(name, layer, "v_leak", p.v_leak) != 0.0 or _one(name, layer, "v_reset", p.v_reset) != 0.0:
            raise ExportError(f"{what}: v_leak and v_reset must be 0")
        gain = float(layer.dt) * _one(name, layer, "tau_mem_inv", p.tau_mem_inv)
        if not 0.0 < gain < 1.0:
            raise ExportError(f"{what}: dt·tau_mem_inv = {gain} must lie in (0, 1)")
        return _Neuron(1.0 - gain, _one(name, layer, "v_th", p.v_th), "zero", gain, "norse.LIFBoxCell", True)
    return None


def _layout(chain) -> int:
    """Leading axes before a sample: 2 for spikelfp's time-first ``(T, B, …)``, 1 for step-wise neurons."""
    steps = {_neuron(name, layer).step_layout for name, layer in chain if _neuron(name, layer) is not None}
    if len(steps) > 1:
        raise ExportError(
            "the model mixes time-first spikelfp neurons with step-wise snnTorch/norse neurons; its layers do not "
            "agree on the batch axis"
        )
    return 1 if steps == {True} else 2


def _infer_input_shape(chain, lead: int) -> tuple[int, ...]:
    """The per-sample input shape the first layer determines: ``(in_features,)`` for a Linear, also behind a
    Flatten that flattens the whole sample (any shape with that many elements flattens to it; the flat one is
    chosen). A Conv fixes the channels but not the spatial size, so it needs ``input_shape=``."""
    first = chain[0][1] if chain else None
    if isinstance(first, nn.Flatten) and len(chain) > 1 and isinstance(chain[1][1], nn.Linear):
        if first.start_dim == lead and first.end_dim == -1:
            return (chain[1][1].in_features,)
    if isinstance(first, nn.Linear):
        return (first.in_features,)
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


def _input_shape(model: nn.Module, input_shape, chain=(), lead: int = 2) -> tuple[int, ...]:
    if input_shape is None:
        input_shape = getattr(model, "input_shape", None)
    if input_shape is None:
        return _infer_input_shape(list(chain), lead)
    return tuple(int(d) for d in input_shape)


_SPATIAL = (nn.Conv1d, nn.Conv2d, nn.AvgPool2d, nn.MaxPool2d, nn.AvgPool1d, nn.MaxPool1d)


def _shapes(chain, input_shape, lead: int = 2) -> list[tuple[int, ...]]:
    """Per-sample input shape of every layer, by running one zero sample through the chain.

    Neurons are element-wise: they keep the shape and are not called (a snnTorch neuron with
    ``init_hidden=True`` would keep the zero step in its state)."""
    x = torch.zeros(*([1] * lead), *input_shape)
    shapes = []
    with torch.no_grad():
        for name, layer in chain:
            shapes.append(tuple(x.shape[lead:]))
            if _neuron(name, layer) is not None:
                continue
            if isinstance(layer, _SPATIAL):
                y = layer(x.reshape(1, *x.shape[lead:]))
                x = y.reshape(*([1] * lead), *y.shape[1:])
            else:
                x = layer(x)
    shapes.append(tuple(x.shape[lead:]))
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


CONVENTIONS = ("nir", "snntorch", "norse")
SNNTORCH_DT = 1e-4  # snnTorch's import_from_nir assumes this dt


def to_nir(
    model: nn.Module,
    path: str | os.PathLike | None = None,
    dt: float | None = None,
    input_shape=None,
    convention: str = "nir",
):
    """Export a sequential (spiking) model as a NIR graph, written to ``path`` (HDF5) if given.

    Supported layers: Linear (NIR Affine/Linear), Conv1d/Conv2d, AvgPool2d, Flatten, and the neurons
    spikelfp ``LIF``, snnTorch ``Leaky`` and norse ``LIFBoxCell`` (NIR ``LIF``, or ``IF`` for ``β = 1``),
    inside nn.Sequential / SpikingSequential / TimeDistributed / norse SequentialState; Dropout and Identity
    are skipped (identities at inference). Anything else is an :class:`ExportError` that names the layer.

    A discrete neuron ``U[t] = β·U[t−1] + g·I[t]`` (``g = 1`` for spikelfp and snnTorch, ``g = dt·τ⁻¹`` for
    norse's box cell) is NIR's ``τ·dv/dt = (v_leak − v) + r·I`` under forward Euler with

    .. math:: τ = dt/(1 − β), \\qquad r·dt/τ = γ,

    where ``γ`` is the input gain written into the node (``convention``):

    - ``"nir"`` (default) and ``"snntorch"``: ``γ = 1``, i.e. ``r = τ/dt`` (LFP-SPEC §8);
    - ``"norse"``: ``γ = 1 − β``, i.e. ``r = 1``: norse's ``from_nir`` ignores ``r`` on LIF nodes and
      integrates ``v ← βv + (1 − β)·I``; the graph is still correct NIR.

    Where ``g ≠ γ``, the factor ``g/γ`` is multiplied into the weights and bias of the nearest preceding
    Linear/Conv layer (through Flatten/AvgPool, which commute with it); without one the export is refused.
    ``Flatten`` is written with negative per-sample dimensions (``start_dim = −ndim``), which NIR's own
    shape rule and both snnTorch's and norse's importers (which apply ``torch.nn.Flatten(start_dim,
    end_dim)`` to a batched tensor) read the same way.

    Parameters
    ----------
    model
        The sequential model.
    path
        Where to write the ``.nir`` file (optional).
    dt
        The time step; default ``1e-4`` (norse cells: their own ``dt``). ``convention="snntorch"`` needs
        ``1e-4``, the value snnTorch's importer assumes.
    input_shape
        One sample at one step; inferred when the first layer determines it (a Linear, or a Flatten of
        the whole sample then a Linear: ``(in_features,)``), else required.
    convention
        ``"nir"``, ``"snntorch"`` or ``"norse"``. For the latter two, a subtractive reset (which their
        importers replace by a reset to zero) is a ``UserWarning`` that names the difference.

    Returns
    -------
    nir.NIRGraph
    """
    nir = _nir()
    if convention not in CONVENTIONS:
        raise ExportError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
    chain = [(n, m) for n, m in _chain(model) if not isinstance(m, (nn.Dropout, nn.Identity))]
    lead = _layout(chain)
    neurons = [(n, neuron) for n, m in chain if (neuron := _neuron(n, m)) is not None]
    if dt is None:
        norse_dts = [float(m.dt) for _, m in chain if _library_class(m, "norse", "LIFBoxCell")]
        dt = norse_dts[0] if norse_dts else 1e-4
    dt = float(dt)
    if not dt > 0:
        raise ExportError(f"dt must be > 0, got {dt}")
    if convention == "snntorch" and dt != SNNTORCH_DT:
        raise ExportError(f"convention='snntorch' needs dt = {SNNTORCH_DT} (snnTorch's importer assumes it), got {dt}")
    _warn_importer(convention, neurons)
    shape = _input_shape(model, input_shape, chain, lead)
    shapes = _shapes(chain, shape, lead)
    nodes: dict[str, Any] = {"input": nir.Input(input_type=np.array(shape))}
    edges = []
    previous = "input"
    for (name, layer), in_shape in zip(chain, shapes):
        key = name.replace(".", "_") or "layer"
        nodes[key] = _to_nir_node(nir, name, layer, in_shape, dt, convention, lead)
        _fold_gain(nodes, edges, key, name, layer, convention)
        edges.append((previous, key))
        previous = key
    nodes["output"] = nir.Output(output_type=np.array(shapes[-1]))
    edges.append((previous, "output"))
    metadata = {"exporter": "spikelfp", "dt": dt, "convention": convention}
    graph = nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata)
    if path is not None:
        nir.write(str(path), graph)
    return graph


def _warn_importer(convention: str, neurons) -> None:
    """Warn where the target importer runs a neuron differently from the model (it knows only zero reset)."""
    if convention == "nir":
        return
    importer = {"snntorch": "snnTorch's import_from_nir", "norse": "norse's from_nir"}[convention]
    for name, n in neurons:
        if n.reset == "subtract":
            warnings.warn(
                f"layer '{name}' resets by subtraction (U ← U − θ after a spike); {importer} knows only a reset to "
                "zero (U ← 0), so its spikes will differ. The reset mode is kept in the node metadata for "
                "spikelfp.export.from_nir; export a reset='zero' model for identical spikes there",
                UserWarning,
                stacklevel=3,
            )
        if n.beta == 1.0 and convention == "snntorch":
            warnings.warn(
                f"layer '{name}' is an IF neuron (β = 1); snnTorch's import_from_nir builds every NIR IF node as "
                "a Leaky with β = 0.9, so its spikes will differ",
                UserWarning,
                stacklevel=3,
            )


def _target_gain(beta: float, convention: str) -> float:
    """The input gain ``γ = r·dt/τ`` written into a LIF node (1 for IF nodes: ``r = 1``, see _to_nir_node)."""
    if beta == 1.0 or convention != "norse":
        return 1.0
    return 1.0 - beta


def _fold_gain(nodes: dict, edges: list, key: str, name: str, layer: nn.Module, convention: str) -> None:
    """Multiply ``g/γ`` into the nearest preceding Affine/Linear/Conv node (the chain so far is ``edges``)."""
    n = _neuron(name, layer)
    if n is None:
        return
    factor = n.gain / _target_gain(n.beta, convention)
    if factor == 1.0:
        return
    for _, prev in reversed(edges):
        node = nodes[prev]
        kind = type(node).__name__
        if kind in ("Affine", "Linear", "Conv1d", "Conv2d"):
            node.weight = (node.weight * factor).astype(node.weight.dtype)
            if getattr(node, "bias", None) is not None:
                node.bias = (node.bias * factor).astype(node.bias.dtype)
            meta = dict(getattr(node, "metadata", None) or {})
            meta["input_gain_folded"] = float(factor)
            node.metadata = meta
            return
        if kind not in ("Flatten", "AvgPool2d"):
            break
    raise ExportError(
        f"layer '{name}': its input gain {factor:.6g} (the neuron's own gain over the convention's) must be "
        "multiplied into a preceding Linear/Conv layer, and there is none directly before it"
    )


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().copy()


def _exportable_lif(name: str, layer: LIF) -> None:
    """Refuse, by name, the LIF options NIR's LIF/IF nodes cannot hold here (for now)."""
    if isinstance(layer.beta, torch.Tensor):
        raise ExportError(f"layer '{name}' (LIF): a per-neuron or learnable beta is not exported yet")
    if layer.reset == "none":
        raise ExportError(f"layer '{name}' (LIF): reset='none' has no NIR LIF/IF equivalent (they always reset)")


def _to_nir_node(nir, name: str, layer: nn.Module, in_shape, dt: float, convention: str = "nir", lead: int = 2):
    if isinstance(layer, nn.Linear):
        if layer.bias is None:
            return nir.Linear(weight=_numpy(layer.weight))
        return nir.Affine(weight=_numpy(layer.weight), bias=_numpy(layer.bias))
    if isinstance(layer, (nn.Conv1d, nn.Conv2d)):
        if layer.padding_mode != "zeros" or isinstance(layer.padding, str):
            raise ExportError(f"layer '{name}' ({type(layer).__name__}): only integer zero padding exports to NIR")
        bias = _numpy(layer.bias) if layer.bias is not None else np.zeros(layer.out_channels, dtype=np.float32)
        cls = nir.Conv2d if isinstance(layer, nn.Conv2d) else nir.Conv1d
        spatial = tuple(in_shape[1:]) if isinstance(layer, nn.Conv2d) else int(in_shape[1])
        return cls(
            input_shape=spatial,
            weight=_numpy(layer.weight),
            stride=tuple(layer.stride) if isinstance(layer, nn.Conv2d) else layer.stride[0],
            padding=tuple(layer.padding) if isinstance(layer, nn.Conv2d) else layer.padding[0],
            dilation=tuple(layer.dilation) if isinstance(layer, nn.Conv2d) else layer.dilation[0],
            groups=layer.groups,
            bias=bias,
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
        return _flatten_node(nir, name, layer, in_shape, lead)
    neuron = _neuron(name, layer)
    if neuron is not None:
        return _lif_node(nir, neuron, tuple(in_shape), dt, convention)
    raise ExportError(
        f"layer '{name}' of type {type(layer).__name__} has no NIR equivalent supported by spikelfp "
        "(supported: Linear, Conv1d, Conv2d, AvgPool2d, Flatten, LIF, snntorch.Leaky, norse LIFBoxCell; "
        "NIR has no max-pooling)"
    )


def _flatten_node(nir, name: str, layer: nn.Flatten, in_shape, lead: int):
    """NIR ``Flatten`` with negative per-sample dims: ``d ↦ d − ndim``.

    NIR shapes have no batch axis, so a per-sample ``Flatten(start_dim=0)`` is the literal form; but
    snnTorch's and norse's importers build ``torch.nn.Flatten(start_dim, end_dim)`` and run it on a
    batched ``(B, …)`` tensor, where ``0`` is the batch axis. A negative dimension counts from the end,
    so it names the same axis per sample (NIR's ``calc_flatten_output``) and on a batched tensor.
    """
    ndim = len(in_shape)
    start, end = _flatten_dims(layer, ndim, ndim + lead)
    if start is None:
        raise ExportError(f"layer '{name}' (Flatten): flattening the time or batch axis does not export")
    return nir.Flatten(input_type={"input": np.array(in_shape)}, start_dim=start, end_dim=end)


def _flatten_dims(layer: nn.Flatten, ndim: int, full: int):
    """Torch Flatten dims on a tensor of ``full`` axes → negative per-sample dims (None if it touches T/B)."""
    start = layer.start_dim if layer.start_dim >= 0 else layer.start_dim + full
    end = layer.end_dim if layer.end_dim >= 0 else layer.end_dim + full
    lead = full - ndim
    if start < lead or end < lead:
        return None, None
    return start - full, end - full


def _lif_node(nir, n: _Neuron, shape: tuple[int, ...], dt: float, convention: str):
    """NIR ``LIF`` (``IF`` for ``β = 1``) with full per-neuron arrays and the reset mode, ``dt``, ``β``
    and the source type in the metadata."""
    meta = {"reset": n.reset, "dt": dt, "beta": n.beta, "threshold": n.threshold, "node": n.source}
    if convention != "nir":
        meta["convention"] = convention
    threshold = np.full(shape, n.threshold, dtype=np.float64)
    zeros = np.zeros(shape, dtype=np.float64)
    if n.beta == 1.0:
        return nir.IF(r=np.ones(shape), v_threshold=threshold, v_reset=zeros, metadata=meta)
    tau = dt / (1.0 - n.beta)
    r = _target_gain(n.beta, convention) * tau / dt
    return nir.LIF(
        tau=np.full(shape, tau),
        r=np.full(shape, r),
        v_leak=zeros,
        v_threshold=threshold,
        v_reset=zeros,
        metadata=meta,
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
    if type(model) in (nn.Conv1d, nn.Conv2d):
        if isinstance(model.padding, str) or model.padding_mode != "zeros":
            raise ExportError("only integer zero padding is supported in binary export")
        return {
            "type": type(model).__name__,
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
        _exportable_lif(type(model).__name__, model)
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


def save_binary(model: nn.Module, path: str | os.PathLike, scale: str = "row-mean-abs") -> Path:
    """Write ``binarize(model, scale)`` as bit-packed signs, per-row scales, biases and architecture (HDF5)."""
    import h5py

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
            g.create_dataset("signs", data=np.packbits((w >= 0).numpy().reshape(-1)))
            g.create_dataset("shape", data=np.array(w.shape, dtype=np.int64))
            g.create_dataset("scale", data=_row_scale(w, scale).numpy().astype(np.float32))
            if layer.bias is not None:
                g.create_dataset("bias", data=layer.bias.detach().cpu().numpy().astype(np.float32))
    return path


def load_binary(path: str | os.PathLike) -> nn.Module:
    """Restore a model written by :func:`save_binary`; refuses foreign or corrupt files."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise ExportError(f"no binary model at {path}")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise ExportError(f"{path} is not an HDF5 file: {exc}") from exc
    with f:
        if f.attrs.get("format") != BINARY_FORMAT:
            raise ExportError(f"{path} is not a spikelfp binary model")
        if int(f.attrs.get("version", -1)) != BINARY_VERSION:
            raise ExportError(f"{path} has binary format version {f.attrs.get('version')}, expected {BINARY_VERSION}")
        try:
            model = from_description(json.loads(f.attrs["architecture"]))
        except json.JSONDecodeError as exc:
            raise ExportError(f"{path}: the architecture is not valid JSON ({exc})") from exc
        for name, layer in _weighted(model):
            key = f"layers/{name or 'model'}"
            if key not in f:
                raise ExportError(f"{path}: missing weights of layer '{name}'")
            g = f[key]
            shape = tuple(int(d) for d in g["shape"][()])
            if shape != tuple(layer.weight.shape):
                raise ExportError(
                    f"{path}: layer '{name}' has shape {shape}, the architecture says {tuple(layer.weight.shape)}"
                )
            n = int(np.prod(shape))
            packed = g["signs"][()]
            if packed.size * 8 < n:
                raise ExportError(f"{path}: layer '{name}' has too few sign bits")
            signs = np.unpackbits(packed)[:n].reshape(shape).astype(np.float32) * 2 - 1
            alpha = np.asarray(g["scale"][()], dtype=np.float32)
            if alpha.shape != (shape[0],):
                raise ExportError(f"{path}: layer '{name}' has {alpha.shape} scales for {shape[0]} rows")
            with torch.no_grad():
                layer.weight.copy_(torch.from_numpy(signs * alpha.reshape(-1, *([1] * (len(shape) - 1)))))
                if layer.bias is not None:
                    if "bias" not in g:
                        raise ExportError(f"{path}: layer '{name}' has no bias")
                    layer.bias.copy_(torch.from_numpy(np.asarray(g["bias"][()], dtype=np.float32)))
    return model
