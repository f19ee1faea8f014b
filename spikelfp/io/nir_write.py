"""The NIR writer: a sequential model as a NIR graph, each neuron written from its :class:`NeuronSpec`.

NIR (the Neuromorphic Intermediate Representation, PyPI ``nir``) conventions, LFP-SPEC §8:

- a discrete LIF with decay ``β`` and threshold ``θ`` is NIR's continuous LIF
  ``τ dv/dt = (v_leak − v) + R·I`` with ``τ = dt/(1 − β)``, ``R = τ/dt`` (unit input gain under
  forward Euler: ``v ← β v + I``), ``v_leak = 0``, ``v_threshold = θ``, ``v_reset = 0``; ``β = 1`` is
  NIR's ``IF``;
- every parameter is a full per-neuron array;
- NIR has no subtractive reset, so the reset mode, ``dt`` and ``β`` go into each neuron node's
  metadata, and :func:`spikelfp.export.from_nir` restores them. Importers that ignore metadata (snnTorch,
  norse) run such a node with a reset to zero.

Shapes in NIR are per sample: no time or batch axis. A spikelfp ``nn.Flatten(2)`` on ``(T, B, C, H, W)``
is written as NIR's ``Flatten(start_dim=-3, end_dim=-1)``: negative dimensions name the same axes per
sample (NIR's shape rule) and on the batched tensors that snnTorch's and norse's importers run, where
``start_dim=0`` would flatten the batch.

Every neuron is what :func:`spikelfp.interop.recognize` says it is: its spec (kind, decays, threshold,
reset, input gain, recurrence), whether it is called per step, and the weights it holds (a recurrent
layer, the input weights of norse's ``LIFRecurrentCell`` and ``LILinearCell``).
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from ..binary import is_binary
from ..interop import Neuron
from ..lfp.ops import computes_as
from ..neurons import NeuronSpec
from . import chain as chains
from .atomic import atomic_write
from .errors import ExportError, optional

__all__ = ["CONVENTIONS", "SNNTORCH_DT", "to_nir"]

CONVENTIONS = ("nir", "snntorch", "norse")
SNNTORCH_DT = 1e-4  # snnTorch's import_from_nir assumes this dt
_PLAIN = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.AvgPool2d, nn.Flatten)


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
    ``CubaLIF`` (``CubaLIF``), ``LI`` (``LI``, ``I`` for ``β = 1``), ``CubaLI`` (``CubaLI``), ``RLIF``/``RCubaLIF``
    (a subgraph ``input → lif ⇄ w_rec → output``, as snnTorch writes ``RLeaky``); snnTorch ``Leaky``,
    ``Synaptic``, ``RLeaky``, ``RSynaptic``; norse ``LIFBoxCell``, ``LIFCell``/``LIF``, ``IAFCell``/``IAF``,
    ``LIBoxCell``, ``LICell``/``LI`` (``CubaLI``), ``LILinearCell`` (a bias-free ``Linear`` node for its input
    weights, then ``CubaLI``) and ``LIFRecurrentCell``/``LIFRecurrent`` (a ``Linear`` node for its input weights,
    then the recurrent ``CubaLIF`` subgraph); inside nn.Sequential / SpikingSequential / TimeDistributed / norse
    SequentialState. Dropout and Identity are skipped (identities at inference). Anything else is an
    :class:`ExportError` that names the layer.

    A discrete neuron ``U[t] = β·U[t−1] + g·I[t]`` (``g = 1`` for spikelfp and snnTorch, ``g = dt·τ_mem⁻¹`` for
    norse's cells) is NIR's ``τ·dv/dt = (v_leak − v) + r·I`` under forward Euler with

    .. math:: τ = dt/(1 − β), \\qquad r·dt/τ = γ,

    where ``γ`` is the input gain written into the node (``convention``):

    - ``"nir"`` (default) and ``"snntorch"``: ``γ = 1``, i.e. ``r = τ/dt`` (LFP-SPEC §8);
    - ``"norse"``: ``γ = 1 − β``, i.e. ``r = 1``: norse's ``from_nir`` ignores ``r`` on LIF nodes and
      integrates ``v ← βv + (1 − β)·I``; the graph is still correct NIR.

    Where ``g ≠ γ``, the factor ``g/γ`` is multiplied into the weights and bias of the nearest preceding
    Linear/Conv layer (through Flatten/AvgPool, which commute with it), and into a recurrent layer's weights
    (norse integrates ``g·(W_in·x + W_rec·z[t−1])``); without a layer before it the export is refused.
    ``Flatten`` is written with negative per-sample dimensions (``start_dim = −ndim``), which NIR's own
    shape rule and both snnTorch's and norse's importers (which apply ``torch.nn.Flatten(start_dim,
    end_dim)`` to a batched tensor) read the same way.

    Parameters
    ----------
    model
        The sequential model.
    path
        Where to write the ``.nir`` file (optional). It is written atomically
        (:func:`spikelfp.io.atomic.atomic_write`): a failed write leaves the previous file in place.
    dt
        The time step; default ``1e-4`` (a model of norse's cells: the first cell's ``dt``, so that the nodes
        hold the cells' own time constants). ``convention="snntorch"`` needs
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
    nir = optional("nir")
    if convention not in CONVENTIONS:
        raise ExportError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
    layers = [(n, m) for n, m in chains.chain(model) if not isinstance(m, (nn.Dropout, nn.Identity))]
    neurons: dict[str, Neuron | None] = {}
    for name, layer in layers:  # every layer is known before any runs (shapes come from running them)
        neurons[name] = _neuron(name, layer)
        if neurons[name] is None and not isinstance(layer, _PLAIN):
            raise _unsupported(name, layer)
    found = [(name, n) for name, n in neurons.items() if n is not None]
    lead = chains.lead([n for _, n in found])
    if dt is None:
        norse_dts = [float(m.dt) for name, m in layers if _is_norse(neurons[name], m)]
        dt = norse_dts[0] if norse_dts else 1e-4
    dt = float(dt)
    if not dt > 0:
        raise ExportError(f"dt must be > 0, got {dt}")
    if convention == "snntorch" and dt != SNNTORCH_DT:
        raise ExportError(f"convention='snntorch' needs dt = {SNNTORCH_DT} (snnTorch's importer assumes it), got {dt}")
    _warn_importer(convention, found)
    sample = chains.input_shape(model, input_shape, layers, lead)
    shapes = chains.shapes(layers, neurons, sample, lead)
    nodes: dict[str, Any] = {"input": nir.Input(input_type=np.array(sample))}
    edges: list[tuple[str, str]] = []
    previous = "input"
    for (name, layer), in_shape in zip(layers, shapes):
        key = name.replace(".", "_") or "layer"
        neuron = neurons[name]
        if neuron is not None and neuron.input_weight is not None:  # norse's cells that hold W_in: a Linear first
            w_key = f"{key}_input_weights"
            weight = _numpy(neuron.input_weight)
            nodes[w_key] = nir.Linear(weight=weight, metadata={"input_weights_of": neuron.qualname})
            edges.append((previous, w_key))
            previous = w_key
            in_shape = (*tuple(in_shape)[:-1], weight.shape[0])
        if neuron is not None and neuron.recurrent is not None:
            nodes[key] = _recurrent_node(nir, name, neuron, in_shape, dt, convention, nodes, edges)
        elif neuron is not None:
            nodes[key] = _neuron_node(nir, name, neuron, tuple(in_shape), dt, convention)
            _fold_gain(nodes, edges, name, neuron, convention)
        else:
            nodes[key] = _layer_node(nir, name, layer, in_shape, lead)
        edges.append((previous, key))
        previous = key
    nodes["output"] = nir.Output(output_type=np.array(shapes[-1]))
    edges.append((previous, "output"))
    metadata: dict[str, Any] = {"exporter": "spikelfp", "dt": dt, "convention": convention}
    binary = [name for name, layer in layers if is_binary(layer)]
    if binary:  # LFP-SPEC §10: the weights of these nodes are ±α_row (and 0 for ternary)
        metadata["binary_layers"] = [n.replace(".", "_") or "layer" for n in binary]
    graph = nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata)
    if path is not None:
        atomic_write(path, lambda tmp: nir.write(str(tmp), graph))
    return graph


# --------------------------------------------------------------------------------------------------
# neurons: what the recogniser says, and what NIR can hold
# --------------------------------------------------------------------------------------------------
def _neuron(name: str, layer: nn.Module) -> Neuron | None:
    """The neuron ``layer`` is (:func:`spikelfp.interop.recognize`), checked to have a NIR node; else None.

    NIR's neurons always reset, so ``reset="none"`` is refused; snnTorch's same-step subtractive reset
    (``reset_delay=False``) is refused (its carried membrane differs); snnTorch's ``Lapicque`` is refused
    (its input scaling is not written).
    """
    neuron = chains.neuron_of(name, layer)
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
    if neuron.library == "snntorch" and isinstance(spec.beta, float) and spec.beta == 0.0:
        raise ExportError(f"{what}: β = 0 (no memory) does not round-trip: spikelfp's neurons need β in (0, 1]")
    if spec.recurrent and neuron.recurrent is None:
        raise ExportError(f"{what}: a scalar one-to-one V does not fix the layer size; give V per neuron")
    return neuron


def _is_norse(neuron: Neuron | None, module: nn.Module) -> bool:
    return neuron is not None and neuron.library == "norse" and isinstance(getattr(module, "dt", None), (int, float))


def _decay(value: float | torch.Tensor | None) -> float | np.ndarray | None:
    """A spec's decay as a float (one per layer) or a float64 array (per neuron), clamped to ``[0, 1]``."""
    if value is None or not isinstance(value, torch.Tensor):
        return None if value is None else min(max(float(value), 0.0), 1.0)
    t = value.detach().cpu().to(torch.float64).clamp(0.0, 1.0)
    if t.numel() == 1:
        return float(t.reshape(-1)[0])
    return t.numpy().copy()


def _warn_importer(convention: str, neurons: list[tuple[str, Neuron]]) -> None:
    """Warn where the target importer runs a layer differently from the model (by layer name)."""
    if convention == "nir":
        return
    importer = {"snntorch": "snnTorch's import_from_nir", "norse": "norse's from_nir"}[convention]
    for name, neuron in neurons:
        spec = neuron.spec
        if spec.reset == "subtract":
            warnings.warn(
                f"layer '{name}' resets by subtraction (U ← U − θ after a spike); {importer} knows only a reset to "
                "zero (U ← 0), so its spikes will differ. The reset mode is kept in the node metadata for "
                "spikelfp.export.from_nir; export a reset='zero' model for identical spikes there",
                UserWarning,
                stacklevel=3,
            )
        if spec.kind == "LIF" and np.all(np.asarray(_decay(spec.beta)) == 1.0) and convention == "snntorch":
            warnings.warn(
                f"layer '{name}' is an IF neuron (β = 1); snnTorch's import_from_nir builds every NIR IF node as "
                "a Leaky with β = 0.9, so its spikes will differ",
                UserWarning,
                stacklevel=3,
            )
        if not spec.spiking:
            node = "LI" if spec.kind == "LI" else "CubaLI"
            what = f"raises on NIR {node} nodes" if convention == "snntorch" else f"silently skips NIR {node} nodes"
            kind = "leaky integrator" if spec.kind == "LI" else "current-based leaky integrator"
            warnings.warn(f"layer '{name}' is a {kind} (NIR {node}); {importer} {what}", UserWarning, stacklevel=3)


def _target_gain(spec: NeuronSpec, convention: str) -> float | np.ndarray:
    """The input gain ``γ = r·dt/τ`` written into the node: 1, except ``1 − β`` for a LIF under
    ``convention="norse"`` (norse drops ``r``); IF nodes keep ``r = 1`` (see :func:`_neuron_node`)."""
    beta = np.asarray(_decay(spec.beta), dtype=np.float64)
    if spec.kind != "LIF" or convention != "norse" or np.all(beta == 1.0):
        return 1.0
    return 1.0 - beta


def _fold_gain(nodes: dict, edges: list, name: str, neuron: Neuron, convention: str, also=None) -> None:
    """Multiply ``g/γ`` into the nearest preceding Affine/Linear/Conv node (the chain so far is ``edges``),
    and into the recurrent node ``also``: both feed the neuron's input."""
    factor = np.asarray(neuron.spec.gain / _target_gain(neuron.spec, convention), dtype=np.float64)
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


def _recurrent_node(nir, name: str, neuron: Neuron, in_shape, dt: float, convention: str, nodes, edges):
    """A recurrent neuron as snnTorch's exporter writes RLeaky/RSynaptic: a subgraph node holding
    ``input → lif ⇄ w_rec``, ``lif → output``, with ``R[t] = w_rec(S[t−1])`` added to the neuron's input.

    Both snnTorch's ``import_from_nir`` and norse's ``from_nir`` run this nested form (snnTorch's importer
    rewires the flat 2-cycle form so that the feed-forward input also passes through ``w_rec``). Their
    executor (nirtorch) feeds zero on the recurrent edge at the first step, where spikelfp and snnTorch
    have ``R[0] = b``: for ``convention="snntorch"``/``"norse"`` the recurrent bias ``b`` is therefore moved
    into the bias of the Linear right before the neuron (``I[t] + b + V·S[t−1]``, the same sum), with a
    warning where there is none. The neuron's input gain multiplies ``w_rec`` too (:func:`_fold_gain`).
    """
    weight, bias = (None if t is None else _numpy(t) for t in neuron.recurrent)
    weight = weight.astype(np.float32)
    lif = _neuron_node(nir, name, neuron, tuple(in_shape), dt, convention)
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
    w_rec = nir.Linear(weight=weight.copy()) if bias is None else nir.Affine(weight=weight.copy(), bias=bias.copy())
    shape = np.array(tuple(in_shape))
    sub = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=shape),
            "lif": lif,
            "w_rec": w_rec,
            "output": nir.Output(output_type=shape),
        },
        edges=[("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")],
        metadata={"node": neuron.qualname},
    )
    _fold_gain(nodes, edges, name, neuron, convention, also=w_rec)
    return sub


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().copy()


def _neuron_node(nir, name: str, neuron: Neuron, shape: tuple[int, ...], dt: float, convention: str):
    """The NIR node of a neuron layer, every parameter a full per-neuron array (LFP-SPEC §8), with the reset
    mode, ``dt``, the decays (when one per layer), ``θ`` and the source type in the metadata.

    Forward Euler with step ``dt`` on NIR's equations gives the discrete neurons of the spec with

    - ``LIF`` (``τ·dv/dt = (v_leak − v) + r·I``): ``τ = dt/(1 − β)``, ``r = γ·τ/dt`` (``γ``: see
      :func:`to_nir`), ``v_leak = 0``; ``β = 1`` is ``IF`` (``dv/dt = r·I``) with ``r = 1``, the unit gain
      per step both snnTorch's and norse's importers read;
    - ``CubaLIF`` and ``CubaLI`` (``τ_syn·dI/dt = −I + w_in·S``, ``τ_mem·dv/dt = (v_leak − v) + r·I``):
      ``τ_syn = dt/(1 − α)``, ``w_in = τ_syn/dt``, ``τ_mem = dt/(1 − β)``, ``r = τ_mem/dt`` (the mapping
      snnTorch's exporter uses; norse's importer reads ``w_in`` and ``r`` as NIR does): ``I ← αI + S``,
      ``v ← βv + I``. ``α = 1`` or ``β = 1`` has no NIR node (``τ`` would be infinite);
    - ``LI`` (``τ·dv/dt = (v_leak − v) + r·I``): ``τ = dt/(1 − β)``, ``r = τ/dt``; ``β = 1`` is NIR's
      integrator ``I`` with ``r = 1``.

    The spec's input gain ``g`` is not in the node: :func:`_fold_gain` multiplies it into the layer before.
    """
    spec = neuron.spec
    beta_v, alpha_v = _decay(spec.beta), _decay(spec.alpha)
    threshold_v = spec.threshold if spec.spiking else 0.0
    meta: dict[str, Any] = {"reset": spec.reset, "dt": dt, "threshold": threshold_v, "node": neuron.qualname}
    for label, value in (("beta", beta_v), ("alpha", alpha_v)):
        if isinstance(value, float):
            meta[label] = value
    if convention != "nir":
        meta["convention"] = convention
    beta = np.broadcast_to(np.asarray(beta_v, dtype=np.float64), shape).copy()
    threshold = np.full(shape, threshold_v, dtype=np.float64)
    zeros = np.zeros(shape, dtype=np.float64)
    integrate = np.all(beta == 1.0)
    if not integrate and np.any(beta == 1.0):
        raise ExportError(f"layer '{name}': β = 1 for some neurons only; NIR has no node that mixes IF and LIF")
    if np.any(beta <= 0.0) and not spec.synaptic:
        raise ExportError(f"layer '{name}': β = 0 (no memory) does not round-trip: spikelfp needs β in (0, 1]")
    if spec.kind == "LI":
        if integrate:
            return nir.I(r=np.ones(shape), metadata=meta)
        tau = dt / (1.0 - beta)
        return nir.LI(tau=tau, r=tau / dt, v_leak=zeros, metadata=meta)
    if spec.synaptic:
        alpha = np.broadcast_to(np.asarray(alpha_v, dtype=np.float64), shape).copy()
        if integrate or np.any(alpha == 1.0):
            raise ExportError(
                f"layer '{name}' ({spec.kind}): α = 1 or β = 1 has no NIR {spec.kind} (τ = dt/(1 − decay) would be "
                "infinite)"
            )
        tau_syn, tau_mem = dt / (1.0 - alpha), dt / (1.0 - beta)
        common = {"tau_syn": tau_syn, "tau_mem": tau_mem, "r": tau_mem / dt, "v_leak": zeros, "w_in": tau_syn / dt}
        if spec.kind == "CubaLI":
            return nir.CubaLI(**common, metadata=meta)
        return nir.CubaLIF(**common, v_threshold=threshold, v_reset=zeros, metadata=meta)
    if integrate:
        return nir.IF(r=np.ones(shape), v_threshold=threshold, v_reset=zeros, metadata=meta)
    tau = dt / (1.0 - beta)
    return nir.LIF(
        tau=tau,
        r=np.broadcast_to(_target_gain(spec, convention) * tau / dt, shape).copy(),
        v_leak=zeros,
        v_threshold=threshold,
        v_reset=zeros,
        metadata=meta,
    )


# --------------------------------------------------------------------------------------------------
# the other layers
# --------------------------------------------------------------------------------------------------
def _weight_of(layer: nn.Module) -> tuple[np.ndarray, dict[str, Any]]:
    """The weight a layer computes with, and node metadata: ``w_q`` and its mode for binary layers."""
    if is_binary(layer):
        return _numpy(layer.quantized_weight()), {"binary": True, "mode": layer.mode, "weights": "alpha_row*sign"}
    return _numpy(layer.weight), {}


_WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d)


def refuse_own_computation(name: str, layer: nn.Module) -> None:
    """A subclass of Linear/Conv that computes something else in its own ``forward`` is not that layer."""
    if isinstance(layer, _WEIGHTED) and not (is_binary(layer) or computes_as(layer, _WEIGHTED)):
        raise ExportError(
            f"layer '{name}' ({type(layer).__name__}) subclasses {type(layer).__mro__[1].__name__} but computes in its "
            "own forward(), which no exported node describes; build the model from the layers it computes"
        )


def _layer_node(nir, name: str, layer: nn.Module, in_shape, lead: int = 2):
    refuse_own_computation(name, layer)
    if isinstance(layer, nn.Linear):
        weight, meta = _weight_of(layer)
        if layer.bias is None:
            return nir.Linear(weight=weight, metadata=meta)
        return nir.Affine(weight=weight, bias=_numpy(layer.bias), metadata=meta)
    if isinstance(layer, (nn.Conv1d, nn.Conv2d)):
        if layer.padding_mode != "zeros" or isinstance(layer.padding, str):
            raise ExportError(f"layer '{name}' ({type(layer).__name__}): only integer zero padding exports to NIR")
        bias = _numpy(layer.bias) if layer.bias is not None else np.zeros(layer.out_channels, dtype=np.float32)
        two = isinstance(layer, nn.Conv2d)
        weight, meta = _weight_of(layer)
        return (nir.Conv2d if two else nir.Conv1d)(
            input_shape=tuple(in_shape[1:]) if two else int(in_shape[1]),
            weight=weight,
            stride=tuple(layer.stride) if two else layer.stride[0],
            padding=tuple(layer.padding) if two else layer.padding[0],
            dilation=tuple(layer.dilation) if two else layer.dilation[0],
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
    raise _unsupported(name, layer)


def _unsupported(name: str, layer: nn.Module) -> ExportError:
    return ExportError(
        f"layer '{name}' of type {type(layer).__name__} has no NIR equivalent supported by spikelfp "
        "(supported: Linear, Conv1d, Conv2d, AvgPool2d, Flatten, spikelfp's LIF/CubaLIF/LI/CubaLI/RLIF/RCubaLIF, "
        "snnTorch's Leaky/Synaptic/RLeaky/RSynaptic, norse's LIFBoxCell/LIFCell/LIFRecurrentCell/IAFCell/LIBoxCell/"
        "LICell/LILinearCell and their time-first modules; NIR has no max-pooling)"
    )


def _flatten_node(nir, name: str, layer: nn.Flatten, in_shape, lead: int):
    """NIR ``Flatten`` with negative per-sample dims: ``d ↦ d − ndim``.

    NIR shapes have no batch axis, so a per-sample ``Flatten(start_dim=0)`` is the literal form; but
    snnTorch's and norse's importers build ``torch.nn.Flatten(start_dim, end_dim)`` and run it on a
    batched ``(B, …)`` tensor, where ``0`` is the batch axis. A negative dimension counts from the end,
    so it names the same axis per sample (NIR's ``calc_flatten_output``) and on a batched tensor.
    """
    ndim = len(in_shape)
    full = ndim + lead
    start = layer.start_dim if layer.start_dim >= 0 else layer.start_dim + full
    end = layer.end_dim if layer.end_dim >= 0 else layer.end_dim + full
    if start < lead or end < lead:
        raise ExportError(f"layer '{name}' (Flatten): flattening the time or batch axis does not export")
    return nir.Flatten(input_type={"input": np.array(in_shape)}, start_dim=start - full, end_dim=end - full)
