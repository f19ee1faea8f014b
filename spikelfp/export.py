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

Models built from snnTorch ``Leaky``/``Synaptic``/``RLeaky``/``RSynaptic`` or norse ``LIFBoxCell``/``LIFCell``/
``IAFCell``/``LIBoxCell`` (step-wise, ``(B, …)`` per call) export too; ``convention="norse"`` writes LIF nodes
the way norse's importer reads them (see :func:`to_nir`).

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
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from torch import nn

from .binary import is_binary, quantize
from .interop import recognize
from .neurons import LI, LIF, RLIF, CubaLIF, RCubaLIF
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
    if _is_neuron_type(model):
        return [("", model)]  # a recurrent neuron holds its recurrent Linear as a child
    if any(True for _ in model.children()):
        raise ExportError(
            f"{type(model).__name__} is not sequential: a module with its own forward() cannot be exported, "
            "because its data flow is code, not a chain of layers. Export supports nn.Sequential, SpikingSequential, "
            "TimeDistributed and norse SequentialState chains; rebuild the model as one of these"
        )
    return [("", model)]


def _is_neuron_type(layer: nn.Module) -> bool:
    return recognize(layer) is not None


@dataclass(frozen=True)
class _Neuron:
    """A neuron layer as NIR sees it (LFP-SPEC §9), per step and per neuron, from its :class:`NeuronSpec`:

    ``J[t] = α·J[t−1] + g·I[t] (+ R[t])`` (CubaLIF only), ``U[t] = β·U[t−1] + J[t] − reset`` (LIF: ``J = g·I
    (+ R)``), spike on ``U > θ``; LI outputs ``U`` and never resets. ``R[t] = V·S[t−1] + b`` is the
    recurrent layer, if any. ``g`` is the library's own input gain (1 but for norse's cells).
    """

    kind: str  # "LIF", "CubaLIF" or "LI"
    beta: float | np.ndarray
    threshold: float
    reset: str
    gain: float
    source: str
    step_layout: bool  # called once per step on (B, …) (snnTorch, norse) rather than on (T, B, …)
    alpha: float | np.ndarray | None = None
    recurrent: Any = None  # (weight, bias or None) as numpy arrays


def _decay(value) -> float | np.ndarray:
    """A decay as a float (one per layer) or a float64 array (per neuron), clamped to ``[0, 1]``."""
    if not isinstance(value, torch.Tensor):
        return min(max(float(value), 0.0), 1.0)
    t = value.detach().cpu().to(torch.float64).clamp(0.0, 1.0)
    if t.numel() == 1:
        return float(t.reshape(-1)[0])
    return t.numpy().copy()


def _neuron(name: str, layer: nn.Module) -> _Neuron | None:
    """The NIR view of a neuron layer (from the recogniser of :mod:`spikelfp.interop`), else None.

    NIR's neurons always reset, so ``reset="none"`` is refused; snnTorch's same-step subtractive reset
    (``reset_delay=False``) is refused (its carried membrane differs); norse's cells whose weights live
    inside the neuron or whose LI has a synaptic current are refused until their nodes are written.
    """
    neuron = recognize(layer)
    if neuron is None:
        return None
    what = f"layer '{name}' ({neuron.qualname})"
    spec = neuron.spec
    if spec is None:
        raise ExportError(f"{what} does not export to NIR: {neuron.refusal}")
    if neuron.library == "snntorch" and neuron.cls == "Lapicque":
        raise ExportError(
            f"{what} does not export to NIR: its input scaling R·(1/(RC))·Δt is not written; build the model from "
            "Leaky (β = 1 − Δt/(RC)) with the scaling folded into the Linear before it"
        )
    if neuron.library == "norse" and neuron.cls in _NORSE_REFUSED:
        raise ExportError(f"layer '{name}' (norse {neuron.cls}) does not export to NIR: {_NORSE_REFUSED[neuron.cls]}")
    if spec.spiking and spec.reset == "none":
        option = "reset_mechanism='none'" if neuron.library == "snntorch" else "reset='none'"
        what = what if neuron.library != "spikelfp" else f"layer '{name}' ({neuron.cls})"
        raise ExportError(
            f"{what}: {option} has no NIR equivalent (NIR's LIF, IF and CubaLIF always reset after a spike)"
        )
    if not spec.reset_delay and (spec.reset == "subtract" or spec.threshold <= 0):
        raise ExportError(
            f"{what}: reset_delay=False with a subtractive reset (or θ ≤ 0) resets within the step, which "
            "spikelfp's neurons and NIR's metadata do not describe"
        )
    beta = _decay(spec.beta)
    if neuron.library == "snntorch" and isinstance(beta, float) and beta == 0.0:
        raise ExportError(f"{what}: β = 0 (no memory) does not round-trip: spikelfp's neurons need β in (0, 1]")
    if spec.recurrent and neuron.recurrent is None:
        raise ExportError(f"{what}: a scalar one-to-one V does not fix the layer size; give V per neuron")
    recurrent = None
    if neuron.recurrent is not None:
        weight, bias = neuron.recurrent
        recurrent = (_numpy(weight).astype(np.float32), None if bias is None else _numpy(bias))
    kind = {"LIF": "LIF", "CubaLIF": "CubaLIF", "LI": "LI"}[spec.kind]
    alpha = _decay(spec.alpha) if spec.synaptic else None
    threshold = spec.threshold if spec.spiking else 0.0
    return _Neuron(kind, beta, threshold, spec.reset, spec.gain, neuron.qualname, neuron.stepwise, alpha, recurrent)


_NORSE_BOX = ("LIFBoxCell", "LIBoxCell")  # cells whose dynamics use their dt
_NORSE_REFUSED = {
    "LICell": "it is a current-based integrator (a synaptic current feeding a leaky membrane), which NIR's LI does "
    "not describe",
    "LIFRecurrentCell": "it holds its input and recurrent weights inside the cell, where no Affine node can hold them; "
    "build the model from Linear and spikelfp's RCubaLIF instead",
    "LILinearCell": "it holds its input weights inside a current-based integrator (see LICell)",
    "LIF": "it runs norse's LIFCell over the whole sequence; export a SequentialState of Linear and LIFCell steps",
    "LIFRecurrent": "it runs norse's LIFRecurrentCell over time (see LIFRecurrentCell)",
    "LI": "it runs norse's current-based LICell over time (see LICell)",
    "IAF": "it runs norse's IAFCell over the whole sequence; export a SequentialState of Linear and IAFCell steps",
}


def _is_norse_box(layer: nn.Module) -> bool:
    neuron = recognize(layer)
    return neuron is not None and neuron.library == "norse" and neuron.cls in _NORSE_BOX


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
    (see :func:`_neuron_node` for each mapping): spikelfp ``LIF`` (NIR ``LIF``, ``IF`` for ``β = 1``),
    ``CubaLIF`` (``CubaLIF``), ``LI`` (``LI``, ``I`` for ``β = 1``), ``RLIF``/``RCubaLIF`` (a subgraph
    ``input → lif ⇄ w_rec → output``, as snnTorch writes ``RLeaky``); snnTorch ``Leaky``, ``Synaptic``,
    ``RLeaky``, ``RSynaptic``; norse ``LIFBoxCell``, ``IAFCell``, ``LIBoxCell``; inside nn.Sequential /
    SpikingSequential / TimeDistributed / norse SequentialState. Dropout and Identity are skipped
    (identities at inference). Anything else is an :class:`ExportError` that names the layer.

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
    for name, layer in chain:  # every layer is known before any runs (shapes come from running them)
        if not isinstance(layer, _PLAIN) and _neuron(name, layer) is None:
            raise _unsupported(name, layer)
    lead = _layout(chain)
    neurons = [(n, neuron) for n, m in chain if (neuron := _neuron(n, m)) is not None]
    if dt is None:
        norse_dts = [float(m.dt) for _, m in chain if _is_norse_box(m)]
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
        neuron = _neuron(name, layer)
        if neuron is not None and neuron.recurrent is not None:
            nodes[key] = _recurrent_node(nir, name, layer, neuron, in_shape, dt, convention, lead, nodes, edges)
            edges.append((previous, key))
            previous = key
            continue
        nodes[key] = _to_nir_node(nir, name, layer, in_shape, dt, convention, lead)
        if neuron is not None:
            _fold_gain(nodes, edges, name, neuron, convention)
        edges.append((previous, key))
        previous = key
    nodes["output"] = nir.Output(output_type=np.array(shapes[-1]))
    edges.append((previous, "output"))
    metadata: dict[str, Any] = {"exporter": "spikelfp", "dt": dt, "convention": convention}
    binary = [name for name, layer in chain if is_binary(layer)]
    if binary:  # LFP-SPEC §10: the weights of these nodes are ±α_row (and 0 for ternary)
        metadata["binary_layers"] = [n.replace(".", "_") or "layer" for n in binary]
    graph = nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata)
    if path is not None:
        nir.write(str(path), graph)
    return graph


def _warn_importer(convention: str, neurons) -> None:
    """Warn where the target importer runs a layer differently from the model (by layer name)."""
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
        if n.kind == "LIF" and np.all(np.asarray(n.beta) == 1.0) and convention == "snntorch":
            warnings.warn(
                f"layer '{name}' is an IF neuron (β = 1); snnTorch's import_from_nir builds every NIR IF node as "
                "a Leaky with β = 0.9, so its spikes will differ",
                UserWarning,
                stacklevel=3,
            )
        if n.kind == "LI":
            what = "raises on NIR LI nodes" if convention == "snntorch" else "silently skips NIR LI nodes"
            warnings.warn(
                f"layer '{name}' is a leaky integrator (NIR LI); {importer} {what}", UserWarning, stacklevel=3
            )


def _target_gain(n: _Neuron, convention: str) -> float | np.ndarray:
    """The input gain ``γ = r·dt/τ`` written into the node: 1, except ``1 − β`` for a LIF under
    ``convention="norse"`` (norse drops ``r``); IF nodes keep ``r = 1`` (see :func:`_neuron_node`)."""
    beta = np.asarray(n.beta, dtype=np.float64)
    if n.kind != "LIF" or convention != "norse" or np.all(beta == 1.0):
        return 1.0
    return 1.0 - beta


def _fold_gain(nodes: dict, edges: list, name: str, n: _Neuron, convention: str, also=None) -> None:
    """Multiply ``g/γ`` into the nearest preceding Affine/Linear/Conv node (the chain so far is ``edges``),
    and into the recurrent node ``also``: both feed the neuron's input."""
    factor = np.asarray(n.gain / _target_gain(n, convention), dtype=np.float64)
    if np.all(factor == 1.0):
        return
    if np.all(factor == factor.reshape(-1)[0]):
        factor = np.asarray(factor.reshape(-1)[0])
    found = None
    for _, prev in reversed(edges):
        kind = type(nodes[prev]).__name__
        if kind in ("Affine", "Linear", "Conv1d", "Conv2d"):
            found = prev
            break
        if kind not in ("Flatten", "AvgPool2d"):
            break
    if found is None:
        raise ExportError(
            f"layer '{name}': its input gain {float(factor.reshape(-1)[0]):.6g} (the neuron's own gain over the "
            "convention's) must be multiplied into a preceding Linear/Conv layer, and there is none directly before it"
        )
    for node in [nodes[found]] + ([also] if also is not None else []):
        if factor.ndim > 0 and (type(node).__name__ not in ("Affine", "Linear") or node.weight.shape[0] != factor.size):
            raise ExportError(
                f"layer '{name}': a per-neuron input gain can be folded only into a Linear right before it"
            )
        column = factor.reshape(-1, 1) if factor.ndim > 0 else factor
        node.weight = (node.weight * column).astype(node.weight.dtype)
        if getattr(node, "bias", None) is not None:
            node.bias = (node.bias * factor.reshape(-1)).astype(node.bias.dtype)
        meta = dict(getattr(node, "metadata", None) or {})
        meta["input_gain_folded"] = float(factor) if factor.ndim == 0 else factor.tolist()
        node.metadata = meta


def _recurrent_node(nir, name, layer, n: _Neuron, in_shape, dt: float, convention: str, lead: int, nodes, edges):
    """A recurrent neuron as snnTorch's exporter writes RLeaky/RSynaptic: a subgraph node holding
    ``input → lif ⇄ w_rec``, ``lif → output``, with ``R[t] = w_rec(S[t−1])`` added to the neuron's input.

    Both snnTorch's ``import_from_nir`` and norse's ``from_nir`` run this nested form (snnTorch's importer
    rewires the flat 2-cycle form so that the feed-forward input also passes through ``w_rec``). Their
    executor (nirtorch) feeds zero on the recurrent edge at the first step, where spikelfp and snnTorch
    have ``R[0] = b``: for ``convention="snntorch"``/``"norse"`` the recurrent bias ``b`` is therefore moved
    into the bias of the Linear right before the neuron (``I[t] + b + V·S[t−1]``, the same sum), with a
    warning where there is none.
    """
    weight, bias = n.recurrent
    lif = _to_nir_node(nir, name, layer, in_shape, dt, convention, lead)
    if bias is not None and convention != "nir":
        before = nodes[edges[-1][1]] if edges else None
        if type(before).__name__ in ("Affine", "Linear") and before.weight.shape[0] == bias.shape[0]:
            old = getattr(before, "bias", None)
            merged = (bias if old is None else old + bias).astype(before.weight.dtype)
            meta = dict(getattr(before, "metadata", None) or {})
            meta["recurrent_bias_of"] = name
            nodes[edges[-1][1]] = nir.Affine(weight=before.weight, bias=merged, metadata=meta)
            bias = None
        else:
            warnings.warn(
                f"layer '{name}': its recurrent bias b enters at t = 0 in spikelfp (R[0] = b), but the importer feeds "
                "zero on the recurrent edge at the first step, and there is no Linear right before it to carry b",
                UserWarning,
                stacklevel=4,
            )
    w_rec = _affine(nir, weight, bias)
    shape = np.array(tuple(in_shape))
    sub = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=shape),
            "lif": lif,
            "w_rec": w_rec,
            "output": nir.Output(output_type=shape),
        },
        edges=[("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")],
        metadata={"node": n.source},
    )
    _fold_gain(nodes, edges, name, n, convention, also=w_rec)
    return sub


def _affine(nir, weight: np.ndarray, bias: np.ndarray | None):
    return nir.Linear(weight=weight.copy()) if bias is None else nir.Affine(weight=weight.copy(), bias=bias.copy())


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().copy()


def _exportable_lif(name: str, layer: LIF) -> None:
    """Refuse, by name, the LIF options NIR's LIF/IF nodes cannot hold here (for now)."""
    if isinstance(layer.beta, torch.Tensor):
        raise ExportError(f"layer '{name}' (LIF): a per-neuron or learnable beta is not exported yet")
    if layer.reset == "none":
        raise ExportError(f"layer '{name}' (LIF): reset='none' has no NIR LIF/IF equivalent (they always reset)")


def _weight_of(layer: nn.Module) -> tuple[np.ndarray, dict[str, Any]]:
    """The weight a layer computes with, and node metadata: ``w_q`` and its mode for binary layers."""
    if is_binary(layer):
        return _numpy(layer.quantized_weight()), {"binary": True, "mode": layer.mode, "weights": "alpha_row*sign"}
    return _numpy(layer.weight), {}


def _to_nir_node(nir, name: str, layer: nn.Module, in_shape, dt: float, convention: str = "nir", lead: int = 2):
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
        return _flatten_node(nir, name, layer, in_shape, lead)
    neuron = _neuron(name, layer)
    if neuron is not None:
        return _neuron_node(nir, name, neuron, tuple(in_shape), dt, convention)
    raise _unsupported(name, layer)


_PLAIN = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.AvgPool2d, nn.Flatten)


def _unsupported(name: str, layer: nn.Module) -> ExportError:
    return ExportError(
        f"layer '{name}' of type {type(layer).__name__} has no NIR equivalent supported by spikelfp "
        "(supported: Linear, Conv1d, Conv2d, AvgPool2d, Flatten, spikelfp's LIF/CubaLIF/LI/RLIF/RCubaLIF, snnTorch's "
        "Leaky/Synaptic/RLeaky/RSynaptic, norse's LIFBoxCell/IAFCell/LIBoxCell; NIR has no max-pooling)"
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


def _neuron_node(nir, name: str, n: _Neuron, shape: tuple[int, ...], dt: float, convention: str):
    """The NIR node of a neuron layer, every parameter a full per-neuron array (LFP-SPEC §8), with the reset
    mode, ``dt``, the decays (when one per layer), ``θ`` and the source type in the metadata.

    Forward Euler with step ``dt`` on NIR's equations gives the discrete neurons with

    - ``LIF`` (``τ·dv/dt = (v_leak − v) + r·I``): ``τ = dt/(1 − β)``, ``r = γ·τ/dt`` (``γ``: see
      :func:`to_nir`), ``v_leak = 0``; ``β = 1`` is ``IF`` (``dv/dt = r·I``) with ``r = 1``, the unit gain
      per step both snnTorch's and norse's importers read;
    - ``CubaLIF`` (``τ_syn·dI/dt = −I + w_in·S``, ``τ_mem·dv/dt = (v_leak − v) + r·I``): ``τ_syn = dt/(1 − α)``,
      ``w_in = τ_syn/dt``, ``τ_mem = dt/(1 − β)``, ``r = τ_mem/dt`` (the mapping snnTorch's exporter uses;
      norse's importer reads ``w_in`` and ``r`` as NIR does). ``α = 1`` or ``β = 1`` has no NIR CubaLIF;
    - ``LI`` (``τ·dv/dt = (v_leak − v) + r·I``): ``τ = dt/(1 − β)``, ``r = τ/dt``; ``β = 1`` is NIR's
      integrator ``I`` with ``r = 1``.
    """
    meta: dict[str, Any] = {"reset": n.reset, "dt": dt, "threshold": n.threshold, "node": n.source}
    for label, value in (("beta", n.beta), ("alpha", n.alpha)):
        if isinstance(value, float):
            meta[label] = value
    if convention != "nir":
        meta["convention"] = convention
    beta = np.broadcast_to(np.asarray(n.beta, dtype=np.float64), shape).copy()
    threshold = np.full(shape, n.threshold, dtype=np.float64)
    zeros = np.zeros(shape, dtype=np.float64)
    integrate = np.all(beta == 1.0)
    if not integrate and np.any(beta == 1.0):
        raise ExportError(f"layer '{name}': β = 1 for some neurons only; NIR has no node that mixes IF and LIF")
    if np.any(beta <= 0.0) and n.kind != "CubaLIF":
        raise ExportError(f"layer '{name}': β = 0 (no memory) does not round-trip: spikelfp needs β in (0, 1]")
    if n.kind == "LI":
        if integrate:
            return nir.I(r=np.ones(shape), metadata=meta)
        tau = dt / (1.0 - beta)
        return nir.LI(tau=tau, r=tau / dt, v_leak=zeros, metadata=meta)
    if n.kind == "CubaLIF":
        alpha = np.broadcast_to(np.asarray(n.alpha, dtype=np.float64), shape).copy()
        if integrate or np.any(alpha == 1.0):
            raise ExportError(
                f"layer '{name}' (CubaLIF): α = 1 or β = 1 has no NIR CubaLIF (τ = dt/(1 − decay) would be infinite)"
            )
        tau_syn, tau_mem = dt / (1.0 - alpha), dt / (1.0 - beta)
        return nir.CubaLIF(
            tau_syn=tau_syn,
            tau_mem=tau_mem,
            r=tau_mem / dt,
            v_leak=zeros,
            v_threshold=threshold,
            v_reset=zeros,
            w_in=tau_syn / dt,
            metadata=meta,
        )
    if integrate:
        return nir.IF(r=np.ones(shape), v_threshold=threshold, v_reset=zeros, metadata=meta)
    tau = dt / (1.0 - beta)
    return nir.LIF(
        tau=tau,
        r=np.broadcast_to(_target_gain(n, convention) * tau / dt, shape).copy(),
        v_leak=zeros,
        v_threshold=threshold,
        v_reset=zeros,
        metadata=meta,
    )


# --------------------------------------------------------------------------------------------------
# reading HDF5 files that may be hostile (NIR here; the binary format can use the same check)
# --------------------------------------------------------------------------------------------------
HDF5_MAX_DEPTH = 32  # groups within groups; spikelfp's and NIR's files nest a few levels
HDF5_EXPANSION = 64  # declared bytes may exceed the file's size by this factor (plus the slack below)
HDF5_SLACK_BYTES = 64 << 20


def _check_hdf5_safe(f, path: str | os.PathLike) -> None:
    """Refuse an open ``h5py.File`` whose reading could leave the file or exhaust memory, before reading data.

    Raises :class:`ExportError` naming ``path`` and the object for: external links and soft links (they can
    pull in another file or loop), hard links that loop, datasets with external storage or virtual
    datasets (their bytes come from other files), nesting deeper than ``HDF5_MAX_DEPTH``, and declared
    sizes (datasets and attributes together) above ``HDF5_EXPANSION × file size + HDF5_SLACK_BYTES``:
    a small file that declares a huge shape would otherwise allocate it. Only metadata is read.
    """
    import h5py

    size = os.path.getsize(f.filename)
    budget = HDF5_EXPANSION * size + HDF5_SLACK_BYTES
    declared = 0
    seen = set()
    stack = [(f, "/", 0)]
    while stack:
        group, where, depth = stack.pop()
        if depth > HDF5_MAX_DEPTH:
            raise ExportError(f"{path}: groups nest deeper than {HDF5_MAX_DEPTH} levels at {where}")
        declared += _declared_attribute_bytes(group)
        for name in group:
            link = group.get(name, getlink=True)
            at = f"{where.rstrip('/')}/{name}"
            if isinstance(link, h5py.ExternalLink):
                raise ExportError(f"{path}: {at} is an external link to {link.filename}:{link.path}; refused")
            if isinstance(link, h5py.SoftLink):
                raise ExportError(f"{path}: {at} is a soft link to {link.path}; refused")
            obj = group[name]
            key = hash(obj.id)
            if key in seen:
                raise ExportError(f"{path}: {at} links to an object seen before (a loop or alias); refused")
            seen.add(key)
            if isinstance(obj, h5py.Group):
                stack.append((obj, at, depth + 1))
            elif isinstance(obj, h5py.Dataset):
                if obj.external:
                    files = ", ".join(str(e[0]) for e in obj.external)
                    raise ExportError(f"{path}: dataset {at} keeps its data in external file(s) {files}; refused")
                if obj.is_virtual:
                    raise ExportError(f"{path}: dataset {at} is a virtual dataset (data from other files); refused")
                declared += int(obj.size or 0) * obj.dtype.itemsize + _declared_attribute_bytes(obj)
            else:
                raise ExportError(f"{path}: {at} is a {type(obj).__name__}, not a group or dataset; refused")
            if declared > budget:
                raise ExportError(
                    f"{path}: declares {declared} bytes of data (at {at}) in a file of {size} bytes; refused "
                    "before allocating"
                )


def _declared_attribute_bytes(obj) -> int:
    import h5py

    total = 0
    for name in obj.attrs:
        attr = h5py.h5a.open(obj.id, name.encode() if isinstance(name, str) else name)
        total += int(np.prod(attr.shape, dtype=np.int64)) * attr.dtype.itemsize if attr.shape else 16
    return total


def _read_nir_file(nir, path: Path):
    """``nir.read`` after :func:`_check_hdf5_safe`; every failure is an :class:`ExportError`."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            _check_hdf5_safe(f, path)
    except OSError as exc:
        raise ExportError(f"{path} is not a readable NIR file: not HDF5 ({exc})") from exc
    try:
        return nir.read(str(path))
    except Exception as exc:  # h5py/nir raise many types (RecursionError included) for foreign or corrupt files
        raise ExportError(f"{path} is not a readable NIR file: {type(exc).__name__}: {exc}") from exc


def from_nir(source, dt: float | None = None) -> SpikingSequential:
    """Rebuild a spikelfp model from a NIR graph or a ``.nir`` file.

    The graph must be a chain ``input → … → output`` of Affine/Linear, Conv1d/Conv2d, AvgPool2d,
    SumPool2d-free, Flatten and neuron nodes: LIF/IF (→ ``LIF``), CubaLIF (→ ``CubaLIF``), LI/I (→ ``LI``),
    and a LIF/CubaLIF with a recurrent Affine/Linear (a 2-cycle, as snnTorch writes RLeaky/RSynaptic, or a
    4-node subgraph; → ``RLIF``/``RCubaLIF``). Neuron nodes need ``v_leak = v_reset = 0``, one threshold per
    node and unit input gains (``r·dt/τ = 1``, CubaLIF also ``w_in·dt/τ_syn = 1``); decays ``1 − dt/τ``
    may differ between neurons. The reset mode comes from the metadata (spikelfp's export writes it);
    without it, NIR's own semantics apply: reset to zero. ``dt`` defaults to the metadata's, else 1e-4.

    Hostile or malformed input is refused with :class:`ExportError`: files with external links, external
    storage or virtual datasets, or that declare more data than they can hold (:func:`_check_hdf5_safe`);
    non-finite weights, biases or neuron parameters, ``τ <= 0``, biases whose shape is not ``(out,)``.
    """
    nir = _nir()
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise ExportError(f"no NIR file at {path}")
        graph = _read_nir_file(nir, path)
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


def _model_from_graph(graph, dt: float | None) -> SpikingSequential:
    graph, recurrent = _recurrent_pairs(graph)
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
            input_shape = _ints(key, "input shape", node.input_type["input"], 1)
            continue
        if kind == "Output":
            continue
        if kind in ("Conv1d", "Conv2d", "AvgPool2d"):
            pending_spatial.append(_from_nir_spatial(key, node))
            continue
        flush()
        if kind in ("Affine", "Linear"):
            weight = torch.as_tensor(_finite_array(key, "weight", node.weight, 2))
            bias = getattr(node, "bias", None)
            if bias is not None:
                bias = torch.as_tensor(_bias(key, bias, weight.shape[0]))
            layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
            with torch.no_grad():
                layer.weight.copy_(weight)
                if bias is not None:
                    layer.bias.copy_(bias)
            layers.append(layer)
        elif kind == "Flatten":
            start, end = int(node.start_dim), int(node.end_dim)
            layers.append(nn.Flatten(start + 2 if start >= 0 else start, end + 2 if end >= 0 else end))
        elif kind in ("LIF", "IF") and key not in recurrent and not _per_neuron_tau(node):
            layers.append(_from_nir_neuron(key, node, dt if dt is not None else graph_dt))
        elif kind in _FAMILY_NODES:
            layers.append(_from_nir_family(key, node, recurrent.get(key), dt if dt is not None else graph_dt))
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


def _uniform(key: str, name: str, value) -> float:
    try:
        arr = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise ExportError(f"NIR node '{key}': {name} is not numeric ({exc})") from None
    if arr.size == 0:
        raise ExportError(f"NIR node '{key}': {name} is empty")
    if not np.all(np.isfinite(arr)):
        raise ExportError(f"NIR node '{key}': {name} holds NaN or Inf")
    if not np.all(arr == arr[0]):
        raise ExportError(f"NIR node '{key}': {name} differs between neurons; spikelfp's LIF has one per layer")
    return float(arr[0])


def _from_nir_neuron(key: str, node, dt: float | None) -> LIF:
    meta = dict(getattr(node, "metadata", None) or {})
    dt = _uniform(key, "dt", meta.get("dt", dt if dt is not None else 1e-4))
    if dt <= 0:
        raise ExportError(f"NIR node '{key}': dt must be > 0, got {dt}")
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
        if tau <= 0:
            raise ExportError(f"NIR node '{key}': tau must be > 0, got {tau}")
        gain = _uniform(key, "r", node.r) * dt / tau
        if not np.isclose(gain, 1.0, rtol=1e-6):
            raise ExportError(f"NIR node '{key}': input gain r·dt/τ = {gain:.6g}; spikelfp needs 1")
        beta = 1.0 - dt / tau
        if "beta" in meta and np.isclose(_uniform(key, "beta", meta["beta"]), beta, rtol=0, atol=1e-9):
            beta = _uniform(key, "beta", meta["beta"])  # the exact value the exporter had
    reset = str(meta.get("reset", "zero"))
    if reset not in ("subtract", "zero"):
        raise ExportError(f"NIR node '{key}': unknown reset {reset!r} in metadata")
    try:
        return LIF(beta, threshold, reset)
    except ValueError as exc:
        raise ExportError(f"NIR node '{key}': {exc}") from exc


_FAMILY_NODES = ("LIF", "IF", "CubaLIF", "LI", "I")


def _per_neuron_tau(node) -> bool:
    tau = np.asarray(getattr(node, "tau", 0.0), dtype=np.float64).reshape(-1)
    return tau.size > 1 and not bool(np.all(tau == tau[0]))


def _recurrent_pairs(graph):
    """The graph without its recurrent weight nodes, and ``{neuron key: weight node}``.

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
    for a, b in list(edges):
        if (b, a) not in edges or a not in nodes or b not in nodes:
            continue
        if type(nodes[a]).__name__ not in ("LIF", "CubaLIF") or type(nodes[b]).__name__ not in ("Affine", "Linear"):
            continue
        if [e for e in edges if b in e] != [e for e in edges if e in ((a, b), (b, a))] or a in recurrent:
            continue
        recurrent[a] = nodes.pop(b)
        edges = [e for e in edges if b not in e]
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


def _from_nir_family(key: str, node, weight_node, dt: float | None) -> nn.Module:
    """A spikelfp neuron from a NIR neuron node (see :func:`_neuron_node` for the mapping), per-neuron decays
    allowed; with ``weight_node``, the recurrent ``RLIF``/``RCubaLIF``."""
    kind = type(node).__name__
    meta = dict(getattr(node, "metadata", None) or {})
    dt = _uniform(key, "dt", meta.get("dt", dt if dt is not None else 1e-4))
    if not (dt > 0 and np.isfinite(dt)):
        raise ExportError(f"NIR node '{key}': dt must be a positive number, got {dt}")

    def arr(name: str) -> np.ndarray:
        a = np.asarray(getattr(node, name), dtype=np.float64)
        if a.size == 0 or not np.all(np.isfinite(a)):
            raise ExportError(f"NIR node '{key}': {name} is empty or not finite")
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
        tau = arr("tau_mem" if kind == "CubaLIF" else "tau")
        unit("r·dt/τ", arr("r") * dt / tau)
        beta = 1.0 - dt / tau
    beta_v = _decay_from(key, "β", beta, meta.get("beta"))
    try:
        if kind in ("LI", "I"):
            return LI(beta_v)
        threshold = _uniform(key, "v_threshold", node.v_threshold)
        reset = str(meta.get("reset", "zero"))
        if reset not in ("subtract", "zero"):
            raise ExportError(f"NIR node '{key}': unknown reset {reset!r} in metadata")
        alpha_v = None
        if kind == "CubaLIF":
            tau_syn = arr("tau_syn")
            unit("w_in·dt/τ_syn", arr("w_in") * dt / tau_syn)
            alpha_v = _decay_from(key, "α", 1.0 - dt / tau_syn, meta.get("alpha"))
        if weight_node is None:
            if kind == "CubaLIF":
                return CubaLIF(alpha_v, beta_v, threshold, reset)
            return LIF(beta_v, threshold, reset)
        weight = _finite_array(key, "recurrent weight", weight_node.weight, 2)
        size = int(beta.size)
        if weight.shape != (size, size) or beta.ndim != 1:
            raise ExportError(
                f"NIR node '{key}': recurrent weight of shape {weight.shape} for {tuple(beta.shape)} neurons"
            )
        bias = getattr(weight_node, "bias", None)
        if bias is not None:
            bias = _bias(key, bias, size)
        if kind == "CubaLIF":
            layer = RCubaLIF(size, alpha_v, beta_v, threshold, reset, bias=bias is not None)
        else:
            layer = RLIF(size, beta_v, threshold, reset, bias=bias is not None)
        with torch.no_grad():
            layer.recurrent.weight.copy_(torch.as_tensor(weight))
            if bias is not None:
                layer.recurrent.bias.copy_(torch.as_tensor(bias))
        return layer
    except ExportError:
        raise
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
