"""The paper's models (A.6), built only from modules that LFP has rules for.

Non-spiking: :func:`mlp` (512-256-128-10, dropout 0.5), :func:`lenet` (2×conv16 k5, 120-84-10),
:func:`vgg16` (no BatchNorm; torchvision's module names, so its state dicts load) and
:func:`deep_mlp` (A.3/A.4). Spiking, time-first ``(T, B, …)``: :func:`spiking_mlp`
(784-1000-1000-10) and :func:`spiking_lenet` (12C5-MP2-64C5-MP2-FC1024-FC10), LIF after every layer
(or CubaLIF, ``neuron="cuba"``), and :func:`recurrent_mlp` (recurrent hidden layers, for sequences such
as row-by-row MNIST).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from torch import nn

from .interop import recognize
from .interop import spiking_modules as _neurons_of
from .interop.norse import is_sequential_state
from .neurons import FamilyNeuron, NeuronSpec, from_spec
from .nn import SpikingSequential, TimeDistributed

__all__ = [
    "NEURONS",
    "REGISTRY",
    "apply_neuron_settings",
    "build",
    "deep_mlp",
    "is_spiking",
    "lenet",
    "mlp",
    "neuron_settings",
    "neuron_spec",
    "recurrent_mlp",
    "spiking_lenet",
    "spiking_mlp",
    "spiking_modules",
    "time_loop",
    "vgg16",
]

#: the spiking neurons a model can be built with (``--neuron``), by the kind of :class:`NeuronSpec` they build
NEURONS = ("lif", "cuba")
_KINDS = {"lif": "LIF", "cuba": "CubaLIF"}


def neuron_spec(
    kind: str, beta: float, threshold: float, reset: str, alpha: float, recurrent: bool = False
) -> NeuronSpec:
    """The :class:`NeuronSpec` of a model's spiking layers: ``"lif"`` (LIF) or ``"cuba"`` (CubaLIF); its
    validation is the spec's."""
    if kind not in _KINDS:
        raise ValueError(f"neuron must be one of {', '.join(NEURONS)}, got {kind!r}")
    synaptic = kind == "cuba"
    return NeuronSpec(
        _KINDS[kind], beta, alpha if synaptic else None, threshold=threshold, reset=reset, recurrent=recurrent
    )


def _neuron(kind: str, beta: float, threshold: float, reset: str, alpha: float) -> nn.Module:
    """A feed-forward spiking neuron layer: ``"lif"`` (:class:`LIF`) or ``"cuba"`` (:class:`CubaLIF`)."""
    return from_spec(neuron_spec(kind, beta, threshold, reset, alpha))


def _recurrent_neuron(kind: str, size: int, beta: float, threshold: float, reset: str, alpha: float) -> nn.Module:
    """A recurrent spiking layer: ``"lif"`` (:class:`RLIF`) or ``"cuba"`` (:class:`RCubaLIF`)."""
    return from_spec(neuron_spec(kind, beta, threshold, reset, alpha, recurrent=True), size)


def _conv_out(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def mlp(
    in_features: int = 784,
    num_classes: int = 10,
    hidden: Sequence[int] = (512, 256, 128),
    dropout: float = 0.5,
) -> nn.Sequential:
    """The paper's MLP (A.6.1): dense layers 512-256-128-classes, ReLU, dropout 0.5 in between."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = in_features
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(dropout))
        width = h
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


def lenet(in_channels: int = 1, num_classes: int = 10, input_size: int = 28, dropout: float = 0.5) -> nn.Sequential:
    """The paper's LeNet (A.6.1, as in the reference code): conv16 k5 - ReLU - maxpool 2, twice,
    then dense 120-84-classes with ReLU and dropout in between."""
    size = _conv_out(_conv_out(input_size, 5) // 2, 5) // 2
    if size < 1:
        raise ValueError(f"input_size {input_size} is too small for LeNet (needs at least 16)")
    return nn.Sequential(
        OrderedDict(
            features=nn.Sequential(
                nn.Conv2d(in_channels, 16, 5),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Conv2d(16, 16, 5),
                nn.ReLU(),
                nn.MaxPool2d(2),
            ),
            flatten=nn.Flatten(),
            classifier=nn.Sequential(
                nn.Linear(16 * size * size, 120),
                nn.ReLU(),
                nn.Dropout(dropout),
                nn.Linear(120, 84),
                nn.ReLU(),
                nn.Dropout(dropout),
                nn.Linear(84, num_classes),
            ),
        )
    )


_VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


def vgg16(num_classes: int = 1000, input_size: int = 224, in_channels: int = 3, width: int = 4096) -> nn.Sequential:
    """VGG-16 without BatchNorm, with torchvision's module names (``features``, ``avgpool``,
    ``classifier``), so ``torchvision.models.vgg16`` state dicts load into it unchanged.

    For ``input_size`` other than 224 the adaptive pooling keeps the final feature map
    (``input_size // 32``) instead of upsampling it to 7×7, and ``width`` sets the hidden dense width.
    """
    layers: list[nn.Module] = []
    channels = in_channels
    for v in _VGG16:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(channels, int(v), 3, padding=1), nn.ReLU(inplace=True)]
            channels = int(v)
    side = 7 if input_size == 224 else input_size // 32
    if side < 1:
        raise ValueError(f"input_size {input_size} is too small for VGG-16 (needs at least 32)")
    return nn.Sequential(
        OrderedDict(
            features=nn.Sequential(*layers),
            avgpool=nn.AdaptiveAvgPool2d((side, side)),
            flatten=nn.Flatten(),
            classifier=nn.Sequential(
                nn.Linear(512 * side * side, width),
                nn.ReLU(inplace=True),
                nn.Dropout(0.5),
                nn.Linear(width, width),
                nn.ReLU(inplace=True),
                nn.Dropout(0.5),
                nn.Linear(width, num_classes),
            ),
        )
    )


def deep_mlp(depth: int, width: int, in_features: int = 1, num_classes: int = 2) -> nn.Sequential:
    """A ReLU MLP with ``depth`` hidden layers of ``width`` units (A.3, A.4)."""
    if depth < 0 or width < 1:
        raise ValueError(f"depth must be >= 0 and width >= 1, got depth={depth}, width={width}")
    layers: list[nn.Module] = []
    fan_in = in_features
    for _ in range(depth):
        layers += [nn.Linear(fan_in, width), nn.ReLU()]
        fan_in = width
    layers.append(nn.Linear(fan_in, num_classes))
    return nn.Sequential(*layers)


def spiking_mlp(
    in_features: int = 784,
    num_classes: int = 10,
    hidden: Sequence[int] = (1000, 1000),
    beta: float = 0.9,
    threshold: float = 1.0,
    reset: str = "subtract",
    input_shape: Sequence[int] = (1, 28, 28),
    neuron: str = "lif",
    alpha: float = 0.8,
) -> SpikingSequential:
    """The paper's spiking MLP (A.6.3): 784-1000-1000-10 with a spiking layer after every dense layer.

    Takes time-first input ``(T, B, *input_shape)`` and returns output spikes ``(T, B, classes)``.
    ``neuron="cuba"`` builds it from current-based :class:`~spikelfp.CubaLIF` neurons (synaptic
    decay ``alpha``) instead of :class:`~spikelfp.LIF`.
    """
    layers: list[nn.Module] = [nn.Flatten(2)]
    width = in_features
    for h in (*hidden, num_classes):
        layers += [nn.Linear(width, h), _neuron(neuron, beta, threshold, reset, alpha)]
        width = h
    return SpikingSequential(*layers, input_shape=tuple(input_shape))


def recurrent_mlp(
    in_features: int = 784,
    num_classes: int = 10,
    hidden: Sequence[int] = (256,),
    beta: float = 0.9,
    threshold: float = 1.0,
    reset: str = "subtract",
    input_shape: Sequence[int] = (1, 28, 28),
    neuron: str = "lif",
    alpha: float = 0.8,
) -> SpikingSequential:
    """A recurrent spiking MLP: every hidden layer is recurrent (:class:`~spikelfp.RLIF`, or
    :class:`~spikelfp.RCubaLIF` with ``neuron="cuba"``), the output layer feed-forward.

    Made for inputs whose steps differ, e.g. row-by-row sequential MNIST (``encoding="rows"``:
    28 steps of 28 pixels, ``input_shape=(28,)``), where the answer needs memory across steps.
    """
    layers: list[nn.Module] = [nn.Flatten(2)]
    width = in_features
    for h in hidden:
        layers += [nn.Linear(width, h), _recurrent_neuron(neuron, h, beta, threshold, reset, alpha)]
        width = h
    layers += [nn.Linear(width, num_classes), _neuron(neuron, beta, threshold, reset, alpha)]
    return SpikingSequential(*layers, input_shape=tuple(input_shape))


def spiking_lenet(
    in_channels: int = 1,
    num_classes: int = 10,
    input_size: int = 28,
    beta: float = 0.9,
    threshold: float = 1.0,
    reset: str = "subtract",
    neuron: str = "lif",
    alpha: float = 0.8,
) -> SpikingSequential:
    """The paper's spiking LeNet (A.6.3): 12C5-MP2-LIF-64C5-MP2-LIF-FC1024-LIF-FC10-LIF.

    ``neuron="cuba"`` puts :class:`~spikelfp.CubaLIF` neurons (synaptic decay ``alpha``) in every LIF's place.
    """
    size = _conv_out(_conv_out(input_size, 5) // 2, 5) // 2
    if size < 1:
        raise ValueError(f"input_size {input_size} is too small for LeNet (needs at least 16)")
    return SpikingSequential(
        TimeDistributed(nn.Conv2d(in_channels, 12, 5), nn.MaxPool2d(2)),
        _neuron(neuron, beta, threshold, reset, alpha),
        TimeDistributed(nn.Conv2d(12, 64, 5), nn.MaxPool2d(2)),
        _neuron(neuron, beta, threshold, reset, alpha),
        nn.Flatten(2),
        nn.Linear(64 * size * size, 1024),
        _neuron(neuron, beta, threshold, reset, alpha),
        nn.Linear(1024, num_classes),
        _neuron(neuron, beta, threshold, reset, alpha),
        input_shape=(in_channels, input_size, input_size),
    )


def _spiking_options(o: dict) -> dict:
    keys = ("beta", "threshold", "reset", "neuron", "alpha")
    return {k: o[k] for k in keys if o.get(k) is not None}


def _rows(c: int, s: int, o: dict) -> tuple[int, tuple[int, ...]]:
    """``(in_features, input_shape)`` of one step: a whole image, or one row with ``encoding="rows"``."""
    if o.get("encoding") == "rows":
        return c * s, (c * s,)
    return c * s * s, (c, s, s)


#: model name → builder taking (in_channels, input_size, num_classes, **options)
REGISTRY = {
    "mlp": lambda c, s, k, **o: mlp(c * s * s, k),
    "lenet": lambda c, s, k, **o: lenet(c, k, s),
    "vgg16": lambda c, s, k, **o: vgg16(k, s, c, width=o.get("width", 4096)),
    "snn-mlp": lambda c, s, k, **o: spiking_mlp(
        _rows(c, s, o)[0], k, input_shape=_rows(c, s, o)[1], **_spiking_options(o)
    ),
    "snn-rmlp": lambda c, s, k, **o: recurrent_mlp(
        _rows(c, s, o)[0], k, input_shape=_rows(c, s, o)[1], **_spiking_options(o)
    ),
    "snn-lenet": lambda c, s, k, **o: spiking_lenet(c, k, s, **_spiking_options(o)),
}


def build(name: str, in_channels: int = 1, input_size: int = 28, num_classes: int = 10, **options) -> nn.Module:
    """A model of :data:`REGISTRY` by name."""
    if name not in REGISTRY:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(REGISTRY)}")
    return REGISTRY[name](in_channels, input_size, num_classes, **options)


def spiking_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of every neuron (:func:`spikelfp.interop.recognize`): spikelfp's, snnTorch's, norse's."""
    return [(name, m) for name, m, _ in _neurons_of(model)]


def is_spiking(model: nn.Module) -> bool:
    """True if ``model`` holds neurons: spikelfp's, snnTorch's or norse's."""
    return any(recognize(m) is not None for m in model.modules())


def time_loop(model: nn.Module) -> str:
    """Who loops over time for ``model``: ``"model"`` or ``"trainer"`` (``"trainer-state"`` with state).

    - a model with a neuron that takes the whole sequence ``(T, B, …)`` (spikelfp's, norse's time-first
      modules): ``"model"``;
    - snnTorch neurons that all keep their own state (``init_hidden=True``) make a step model, called
      once per step by the Trainer with its state reset before each batch: ``"trainer"``;
    - a norse ``SequentialState`` is a step model whose state is passed back in: ``"trainer-state"``;
    - anything else that holds step neurons (snnTorch with ``init_hidden=False``, norse cells) must
      carry their state in its own ``forward`` and so loop over time itself: ``"model"``.
    """
    if is_sequential_state(model):
        return "trainer-state"
    neurons = [(m, n) for _, m, n in _neurons_of(model)]
    if any(not n.stepwise for _, n in neurons):
        return "model"
    snntorch = [m for m, n in neurons if n.library == "snntorch"]
    if snntorch and all(getattr(m, "init_hidden", False) for m in snntorch):
        return "trainer"
    return "model"


#: the neuron settings that travel with a saved model (tensor-valued decays travel in the state dict)
_NEURON_SETTINGS = ("alpha", "beta", "threshold", "reset")


def neuron_settings(model: nn.Module) -> dict[str, dict[str, Any]]:
    """Each spikelfp neuron's fixed settings (α, β, threshold, reset) by module name, as plain values.

    Per-neuron and learnable decays are tensors in the state dict and are not repeated here.
    """
    settings = {}
    for name, m in model.named_modules():
        if isinstance(m, FamilyNeuron):
            values = {k: getattr(m, k) for k in _NEURON_SETTINGS if hasattr(m, k)}
            settings[name] = {k: v for k, v in values.items() if isinstance(v, (int, float, str))}
    return settings


def apply_neuron_settings(model: nn.Module, settings: dict[str, dict[str, Any]]) -> None:
    """Give each named spikelfp neuron the settings :func:`neuron_settings` recorded.

    Raises
    ------
    ValueError
        If a recorded neuron is missing from ``model``, is not a spikelfp neuron, or a setting is unknown.
    """
    modules = dict(model.named_modules())
    for name, values in settings.items():
        m = modules.get(name)
        if not isinstance(m, FamilyNeuron):
            raise ValueError(f"the saved neuron '{name}' is not a spikelfp neuron of this model")
        unknown = set(values) - set(_NEURON_SETTINGS)
        if unknown:
            raise ValueError(f"the saved neuron '{name}' has unknown settings {sorted(unknown)}")
        for key, value in values.items():
            if isinstance(getattr(m, key, None), (int, float, str)):  # tensors come from the state dict
                setattr(m, key, value)
