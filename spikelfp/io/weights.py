"""The binary-weight file: bit-packed signs, per-row scales, biases and the architecture, in HDF5.

:func:`binarize` replaces every weight by ``sign(w)·α_row`` (``sign(0) := +1``); :func:`save_binary` writes
bit-packed signs, the per-row scales, the biases and the architecture (:mod:`spikelfp.io.architecture`: every
neuron of the family by its spec) to HDF5, and :func:`load_binary` restores the model exactly. For a model
trained with binary or ternary weights (:mod:`spikelfp.binary`) it writes exactly the ``w_q`` the forward used
(plus a bit-packed mask for ternary layers), so the loaded model of plain Linear/Conv layers computes the same
spikes.

Format version 3 (``format = "spikelfp-binary"``, ``version = 3``, ``scale``: fixed-length attributes)::

    /architecture            uint8, the JSON of describe(model)
    /layers/<name>/shape     int64, the weight's shape
    /layers/<name>/signs     uint8, the bit-packed [w >= 0] (mode binary, ternary)
    /layers/<name>/scale     float32 α_row (mode binary, ternary)
    /layers/<name>/mask      uint8, the bit-packed [|w| > δ_row] (mode ternary)
    /layers/<name>/weight    float32 (mode float)
    /layers/<name>/bias      float32, if the layer has one
    /layers/<name>.attrs     mode: "binary", "ternary" or "float"

with every dataset contiguous and unfiltered and no variable-length data (which libhdf5 keeps in a global heap
whose damage it does not survive, see :mod:`spikelfp.io.isolated`). Versions 1 and 2 (the architecture as a
variable-length string attribute, LIF neurons only) are still read. The loader executes nothing from the file,
reads it in a child process and checks every dataset against the architecture (:mod:`spikelfp.io.hdf5`).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..binary import is_binary, quantize
from ..neurons import FamilyNeuron
from .architecture import declared_layers, describe, from_description
from .atomic import atomic_write
from .errors import ExportError, optional
from .hdf5 import child, open_file, read_dataset
from .isolated import run_isolated
from .shapes import propagate

__all__ = ["BINARY_FORMAT", "BINARY_VERSION", "binarize", "load_binary", "save_binary"]

BINARY_FORMAT = "spikelfp-binary"
BINARY_VERSION = 3
#: versions :func:`load_binary` reads (1: binary layers only, no mode attribute; 1 and 2: LIF neurons only, the
#: architecture in a variable-length string attribute; 3: every neuron by its spec, no variable-length data)
_READABLE_VERSIONS = (1, 2, 3)


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

    Biases stay real (float32). Neurons are written by their spec (per-neuron and learnable decays
    included), a recurrent neuron's recurrent layer like any Linear. For a float32 model,
    :func:`load_binary` reproduces the forward bit for bit. The file is written atomically
    (:func:`spikelfp.io.atomic.atomic_write`): a failed or killed write leaves the previous file in place.

    Parameters
    ----------
    model
        A sequential model of the layers :func:`spikelfp.io.architecture.describe` supports.
    path
        The file to write.
    scale
        ``α_row`` of post-hoc binarised plain layers.
    float_layers
        ``"binarize"``, ``"keep"`` or None (the default above).
    """
    h5py = optional("h5py")
    _row_scale(torch.ones(1, 1), scale)  # validates the name
    if float_layers is None:
        float_layers = "keep" if any(is_binary(m) for m in model.modules()) else "binarize"
    if float_layers not in ("binarize", "keep"):
        raise ValueError(f"float_layers must be 'binarize' or 'keep', got {float_layers!r}")
    arch = json.dumps(describe(model)).encode()
    path = Path(path)

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = np.bytes_(BINARY_FORMAT)
            f.attrs["version"] = np.int64(BINARY_VERSION)
            f.attrs["scale"] = np.bytes_(scale)
            f.attrs["architecture_sha256"] = np.bytes_(hashlib.sha256(arch).hexdigest())
            f.create_dataset("architecture", data=np.frombuffer(arch, dtype=np.uint8))
            layers = f.create_group("layers")
            for name, layer in _weighted(model):
                _write_layer(layers.create_group(name or "model"), layer, scale, float_layers)

    atomic_write(path, write)
    return path


def _write_layer(g, layer: nn.Module, scale: str, float_layers: str) -> None:
    w = layer.weight.detach().cpu()
    data = {"shape": np.array(w.shape, dtype=np.int64)}
    if is_binary(layer):
        _, alpha, mask = quantize(w, layer.mode)
        mode = layer.mode
        data["signs"] = np.packbits((w >= 0).numpy().reshape(-1))
        data["scale"] = alpha.numpy().astype(np.float32)
        if mask is not None:
            data["mask"] = np.packbits(mask.numpy().reshape(-1))
    elif float_layers == "keep":
        mode = "float"
        data["weight"] = w.numpy().astype(np.float32)
    else:
        mode = "binary"
        data["signs"] = np.packbits((w >= 0).numpy().reshape(-1))
        data["scale"] = _row_scale(w, scale).numpy().astype(np.float32)
    if layer.bias is not None:
        data["bias"] = layer.bias.detach().cpu().numpy().astype(np.float32)
    g.attrs["mode"] = np.bytes_(mode)
    g.attrs["sha256"] = np.bytes_(_digest(data))
    for key, value in data.items():
        g.create_dataset(key, data=value)


def _digest(data: dict[str, np.ndarray]) -> str:
    """SHA-256 over a layer's datasets (names, dtypes, shapes and bytes, in the order of :data:`_KEYS`)."""
    h = hashlib.sha256()
    for key in _KEYS:
        if key in data:
            value = np.ascontiguousarray(data[key])
            h.update(f"{key}:{value.dtype.str}:{value.shape};".encode())
            h.update(value.tobytes())
    return h.hexdigest()


_KEYS = ("shape", "signs", "scale", "mask", "weight", "bias")


# ---- reading: every check runs on the file's metadata before anything of a declared size is allocated ----
def load_binary(path: str | os.PathLike) -> nn.Module:
    """Restore a model written by :func:`save_binary` as plain ``nn.Linear``/``nn.Conv*`` layers.

    The weights are the binary values ``sign · mask · α_row`` (or the float32 weights of layers saved
    real). Nothing in the file is executed: the architecture is JSON over a fixed list of layer types.
    A foreign, corrupt or hostile file raises :class:`ExportError`: HDF5 soft or external links,
    datasets with external storage, virtual datasets, chunked or filtered datasets (never written), datasets
    that declare more data than they store, shapes or dtypes that disagree with the architecture, a bias of
    another length than the layer's outputs (no broadcasting), NaN/Inf scales, biases or weights, and an
    architecture whose layers do not fit together. Shapes and sizes are checked against the architecture
    before anything of the declared size is allocated or read. The file is read in a child process
    (:func:`spikelfp.io.isolated.run_isolated`): a file that crashes or hangs libhdf5 is refused too.
    """
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"no binary model at {path}")
    read = run_isolated(_read_file, path)
    desc, weights = read["architecture"], read["weights"]
    declared = declared_layers(desc)
    if sorted(weights) != sorted(n for n, _, _ in declared):
        raise ExportError(f"{path}: the architecture's layers do not match their weights")
    model = from_description(desc)
    _check_shapes(model, desc, path)
    built = [(n, tuple(m.weight.shape)) for n, m in _weighted(model)]
    if built != [(n, s) for n, s, _ in declared]:  # pragma: no cover - declared_layers mirrors from_description
        raise ExportError(f"{path}: the architecture's layers do not match their weights")
    with torch.no_grad():
        for name, layer in _weighted(model):
            w, b = weights[name]
            if w.shape != tuple(layer.weight.shape) or (b is None) != (layer.bias is None):
                raise ExportError(f"{path}: the weights of layer '{name}' do not match the architecture")
            layer.weight.copy_(torch.from_numpy(np.asarray(w, dtype=np.float32)))
            if b is not None:
                layer.bias.copy_(torch.from_numpy(np.asarray(b, dtype=np.float32)))
    return model


def _check_shapes(model: nn.Module, desc: dict, path: Path) -> None:
    """The layers fit together: from the recorded input shape, or the first Linear's width."""
    sample = desc.get("input_shape")
    spiking = desc.get("type") == "SpikingSequential" or any(isinstance(m, FamilyNeuron) for m in model.modules())
    lead = 2 if spiking else 1
    if sample is None:
        first = next((m for m in model.modules() if not isinstance(m, nn.Sequential)), None)
        if isinstance(first, nn.Linear):
            sample = [first.in_features]
        elif isinstance(first, (nn.Conv1d, nn.Conv2d)):
            sample = [first.in_channels] + [None] * (1 if isinstance(first, nn.Conv1d) else 2)
        else:
            return
    try:
        propagate([("", model)], tuple(sample), lead)
    except ExportError as exc:
        raise ExportError(f"{path}: {exc}") from None


def _read_file(path: Path) -> dict:
    """The architecture and every layer's weights, read from the file (runs in the reading process)."""
    with open_file(path, "an HDF5 file") as f:
        try:
            desc, weights = _read_binary(f, path)
        except ExportError:
            raise
        except Exception as exc:  # h5py/numpy/json raise many types on malformed files; RecursionError too
            raise ExportError(f"{path}: malformed binary model file ({type(exc).__name__}: {exc})") from exc
    return {"architecture": desc, "weights": {name: list(wb) for name, wb in weights.items()}}


def _text(value) -> str | None:
    """An attribute's text: a (variable-length) str as h5py reads it, or fixed-length bytes (version 3)."""
    if isinstance(value, (bytes, np.bytes_)):
        try:
            return bytes(value).decode("ascii")
        except UnicodeDecodeError:
            return None
    return value if isinstance(value, str) else None


def _read_binary(f, path: Path) -> tuple[dict, dict]:
    if _text(f.attrs.get("format")) != BINARY_FORMAT:
        raise ExportError(f"{path} is not a spikelfp binary model")
    version = f.attrs.get("version", -1)
    if not isinstance(version, (int, np.integer)) or int(version) not in _READABLE_VERSIONS:
        raise ExportError(f"{path} has binary format version {version!r}, expected one of {_READABLE_VERSIONS}")
    if int(version) >= 3:
        ds = child(f, "architecture", path, "the architecture")
        if ds.ndim != 1:
            raise ExportError(f"{path}: the architecture has shape {ds.shape}, expected one line of JSON")
        raw = read_dataset(f, "architecture", path, "the architecture", tuple(ds.shape), "u").tobytes()
        if _text(f.attrs.get("architecture_sha256")) != hashlib.sha256(raw).hexdigest():
            raise ExportError(f"{path}: the architecture does not match its checksum (the file is damaged)")
        arch = _text(raw)
    else:
        arch = f.attrs.get("architecture")
    if not isinstance(arch, str):
        raise ExportError(f"{path}: the architecture is missing or not text")
    try:
        desc = json.loads(arch)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ExportError(f"{path}: the architecture is not valid JSON ({type(exc).__name__})") from exc
    declared = declared_layers(desc)
    layers = child(f, "layers", path, "the layers group", group=True)
    stored = set(layers.keys())
    expected = {name or "model" for name, _, _ in declared}
    if stored != expected:
        raise ExportError(
            f"{path}: the file holds weights for layers {sorted(stored)}, the architecture has {sorted(expected)}"
        )
    weights: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
    for name, shape, has_bias in declared:
        weights[name] = _read_layer(layers, name, shape, has_bias, int(version), path)
    return desc, weights


def _read_layer(layers, name: str, shape: tuple[int, ...], has_bias: bool, version: int, path: Path):
    label = name or "model"
    g = child(layers, label, path, f"the weights of layer '{name}'", group=True)
    raw: dict[str, np.ndarray] = {}

    def dataset(key: str, want: tuple[int, ...], kinds: str) -> np.ndarray:
        raw[key] = read_dataset(g, key, path, f"'{key}' of layer '{name}'", want, kinds)
        return raw[key]

    mode = _text(g.attrs.get("mode", "binary")) if version >= 2 else "binary"
    if mode not in ("binary", "ternary", "float"):
        raise ExportError(f"{path}: layer '{name}' has unknown mode {mode!r}")
    declared = dataset("shape", (len(shape),), "iu")
    if tuple(int(d) for d in declared) != shape:
        raise ExportError(
            f"{path}: layer '{name}' has shape {tuple(int(d) for d in declared)}, the architecture says {shape}"
        )
    n = int(np.prod(shape))
    rows = shape[0]
    if mode == "float":
        w = dataset("weight", shape, "f").astype(np.float32)
    else:
        bits = (n + 7) // 8
        signs = np.unpackbits(dataset("signs", (bits,), "u"))[:n].astype(np.float32) * 2 - 1
        alpha = dataset("scale", (rows,), "f").astype(np.float32)
        if np.any(alpha < 0):
            raise ExportError(f"{path}: layer '{name}' has negative scales")
        if mode == "ternary":
            signs = signs * np.unpackbits(dataset("mask", (bits,), "u"))[:n].astype(np.float32)
        elif "mask" in g:
            raise ExportError(f"{path}: layer '{name}' is binary but holds a mask")
        w = signs.reshape(rows, -1) * alpha[:, None]
        w = w.reshape(shape)
    bias = None
    if has_bias:
        bias = dataset("bias", (rows,), "f").astype(np.float32)
    elif "bias" in g:
        raise ExportError(f"{path}: layer '{name}' holds a bias the architecture does not have")
    if version >= 3 and _text(g.attrs.get("sha256")) != _digest(raw):
        raise ExportError(f"{path}: the weights of layer '{name}' do not match their checksum (the file is damaged)")
    return w, bias
