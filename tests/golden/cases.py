"""The cases of the golden values (see make_golden.py): each a function returning named tensors.

Only public API is used, so that the cases run unchanged before and after a redesign of the internals.
"""

from __future__ import annotations

import platform
from collections.abc import Callable

import torch
from torch import nn

import spikelfp as sl

T, B, N_IN, N, N_OUT = 7, 3, 6, 5, 4


def fingerprint() -> str:
    """What decides the rounding of the kernels: torch, the CPU capability torch dispatches to, the CPU model."""
    model = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        model = names[0] if names else model
    except OSError:
        pass
    return f"torch {torch.__version__} | {torch.backends.cpu.get_cpu_capability()} | {platform.machine()} | {model}"


def _neuron(kind: str, reset: str, dtype: torch.dtype) -> nn.Module:
    per_neuron = torch.linspace(0.55, 0.95, N, dtype=dtype)
    return {
        "LIF": lambda: sl.LIF(0.8, reset=reset),
        "LIF-per-neuron": lambda: sl.LIF(per_neuron, reset=reset),
        "LIF-learn": lambda: sl.LIF(0.8, reset=reset, learn_beta=True),
        "IF": lambda: sl.LIF(1.0, reset=reset),
        "CubaLIF": lambda: sl.CubaLIF(0.7, 0.8, reset=reset),
        "CubaLIF-learn": lambda: sl.CubaLIF(0.7, per_neuron, reset=reset, learn_alpha=True, learn_beta=True),
        "RLIF": lambda: sl.RLIF(N, 0.8, reset=reset),
        "RCubaLIF": lambda: sl.RCubaLIF(N, 0.7, 0.8, reset=reset, learn_beta=True),
        "LI": lambda: sl.LI(0.8),
        "LI-learn": lambda: sl.LI(per_neuron, learn_beta=True),
    }[kind]()


def _net(kind: str, reset: str, dtype: torch.dtype, seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(N_IN, N), _neuron(kind, reset, dtype), nn.Linear(N, N_OUT), sl.LIF(0.9))
    net = net.to(dtype)
    with torch.no_grad():
        net[0].weight.mul_(2.0)
        net[2].weight.mul_(3.0)
        rec = getattr(net[1], "recurrent", None)
        if rec is not None:
            rec.weight.mul_(2.0)
    return net


def _inputs(dtype: torch.dtype, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(T, B, N_IN, generator=gen, dtype=dtype) + 0.4
    r = torch.randn(T, B, N_OUT, generator=gen, dtype=dtype)
    return x, r


def _grads(net: nn.Module) -> dict[str, torch.Tensor]:
    return {f"grad.{k}": p.grad.clone() for k, p in net.named_parameters() if p.grad is not None}


def family_case(kind: str, reset: str, dtype: torch.dtype, composite: str, normalize, seed: int) -> Callable:
    def run() -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        net = _net(kind, reset, dtype, seed)
        x, r = _inputs(dtype, seed)
        with torch.no_grad():
            out["plain"] = net(x)
        lfp = sl.LFP(net, composite, normalize=normalize)
        y = lfp(x)
        lfp.backward(y, r)
        out["lfp.out"] = y.detach()
        out.update({f"lfp.{k}": v for k, v in _grads(net).items()})
        if normalize is None:  # a step loop cannot be max-normalised
            net.zero_grad(set_to_none=True)
            with lfp:
                state, outs = None, []
                for t in range(T):
                    o, state = net[1].step(net[0](x[t]), state)
                    outs.append(o)
                h = torch.stack(outs)
                y = net[3](net[2](h))
            lfp.backward(y, r)
            out["step.out"] = y.detach()
            out.update({f"step.{k}": v for k, v in _grads(net).items()})
        net.zero_grad(set_to_none=True)
        with sl.surrogate.use(net, sl.surrogate.FastSigmoid(25.0)):
            y = net(x)
            loss = sl.surrogate.ce_count_loss(y, torch.arange(B) % N_OUT)
            loss.backward()
        out["bptt.out"] = y.detach()
        out.update({f"bptt.{k}": v for k, v in _grads(net).items()})
        return out

    return run


def mlp_case(dtype: torch.dtype, normalize, composite: str) -> Callable:
    """The spiking MLP (SpikingSequential, constant input hoisted), small."""

    def run() -> dict[str, torch.Tensor]:
        torch.manual_seed(3)
        net = sl.models.spiking_mlp(64, 10, hidden=(40, 30), input_shape=(1, 8, 8)).to(dtype)
        with torch.no_grad():
            for m in net:
                if isinstance(m, nn.Linear):
                    m.weight.mul_(4.0)
        gen = torch.Generator().manual_seed(4)
        images = torch.rand(16, 1, 8, 8, generator=gen, dtype=dtype)
        y = torch.randint(0, 10, (16,), generator=gen)
        x = sl.encode.constant(images, 9)
        lfp = sl.LFP(net, composite, normalize=normalize)
        out = lfp(x)
        lfp.backward(out, sl.feedback.SpikeSequence()(out, y))
        sl.clip.adaptive_(net.parameters(), 0.06)
        return {"out": out.detach(), **_grads(net)}

    return run


def binary_case(mode: str, magnitude: str) -> Callable:
    def run() -> dict[str, torch.Tensor]:
        torch.manual_seed(5)
        net = sl.binary.convert(_net("LIF", "subtract", torch.float32, 5), mode, magnitude=magnitude)
        x, r = _inputs(torch.float32, 5)
        lfp = sl.LFP(net, "epsilon", normalize="max-batch")
        y = lfp(x)
        lfp.backward(y, r)
        return {"out": y.detach(), **_grads(net)}

    return run


def snntorch_case(cls: str, init_hidden: bool) -> Callable:
    def run() -> dict[str, torch.Tensor]:
        import snntorch as snn

        torch.manual_seed(6)
        fc1, fc2 = nn.Linear(N_IN, N), nn.Linear(N, N_OUT)
        with torch.no_grad():
            fc1.weight.mul_(3.0)
            fc2.weight.mul_(3.0)
        kw = {"init_hidden": init_hidden}
        l1 = {
            "Leaky": lambda: snn.Leaky(beta=0.8, **kw),
            "Synaptic": lambda: snn.Synaptic(alpha=0.75, beta=0.8, **kw),
            "RLeaky": lambda: snn.RLeaky(beta=0.8, linear_features=N, **kw),
            "RSynaptic": lambda: snn.RSynaptic(alpha=0.75, beta=0.8, linear_features=N, **kw),
        }[cls]()
        l2 = snn.Leaky(beta=0.9, **kw)
        net = nn.ModuleList([fc1, l1, fc2, l2])
        x, _ = _inputs(torch.float32, 6)
        y = torch.arange(B) % N_OUT
        with sl.LFP(net, "epsilon") as lfp:
            if init_hidden:
                l1.reset_mem()
                l2.reset_mem()
            s1 = s2 = None
            outs = []
            for t in range(T):
                if init_hidden:
                    o = l2(fc2(l1(fc1(x[t]))))
                else:
                    a1 = l1(fc1(x[t]), *s1) if s1 is not None else l1(fc1(x[t]))
                    h = a1[0]
                    s1 = a1 if cls.startswith("R") else a1[1:]
                    a2 = l2(fc2(h), *s2) if s2 is not None else l2(fc2(h))
                    o, s2 = a2[0], a2[1:]
                outs.append(o)
            out = torch.stack(outs)
        lfp.backward(out, sl.feedback.SpikeSequence()(out, y))
        return {"out": out.detach(), **_grads(net)}

    return run


def norse_case(cell: str) -> Callable:
    def run() -> dict[str, torch.Tensor]:
        import norse.torch as norse

        torch.manual_seed(7)
        fc1, fc2 = nn.Linear(N_IN, N), nn.Linear(N, N_OUT)
        with torch.no_grad():
            fc1.weight.mul_(30.0)
            fc2.weight.mul_(30.0)
        c1 = {
            "LIFBoxCell": lambda: norse.LIFBoxCell(dt=0.001),
            "LIFCell": lambda: norse.LIFCell(dt=0.001),
            "IAFCell": lambda: norse.IAFCell(),
            "LIBoxCell": lambda: norse.LIBoxCell(dt=0.001),
        }[cell]()
        c2 = norse.LIFBoxCell(dt=0.001)
        net = nn.ModuleList([fc1, c1, fc2, c2])
        x, _ = _inputs(torch.float32, 7)
        y = torch.arange(B) % N_OUT
        with sl.LFP(net, "epsilon") as lfp:
            s1 = s2 = None
            outs = []
            for t in range(T):
                h, s1 = c1(fc1(x[t]), s1)
                o, s2 = c2(fc2(h), s2)
                outs.append(o)
            out = torch.stack(outs)
        lfp.backward(out, sl.feedback.SpikeSequence()(out, y))
        return {"out": out.detach(), **_grads(net)}

    return run


KINDS = ("LIF", "LIF-per-neuron", "LIF-learn", "IF", "CubaLIF", "CubaLIF-learn", "RLIF", "RCubaLIF", "LI", "LI-learn")

CASES: dict[str, Callable[[], dict[str, torch.Tensor]]] = {}
for _kind in KINDS:
    for _reset in ("none",) if _kind.startswith("LI") else ("subtract", "zero", "none"):
        for _dtype in (torch.float32, torch.float64):
            for _composite, _normalize in (("epsilon", None), ("zplus-zminus", None), ("epsilon", "max-batch")):
                _name = f"{_kind}/{_reset}/{str(_dtype)[6:]}/{_composite}/{_normalize}"
                CASES[_name] = family_case(_kind, _reset, _dtype, _composite, _normalize, seed=len(CASES))
for _dtype in (torch.float32, torch.float64):
    for _normalize in (None, "max-batch"):
        CASES[f"mlp/{str(_dtype)[6:]}/{_normalize}"] = mlp_case(_dtype, _normalize, "epsilon")
CASES["mlp/float32/zplus-zminus"] = mlp_case(torch.float32, "max-batch", "zplus-zminus")
for _mode in ("binary", "ternary"):
    for _magnitude in ("latent", "quantized"):
        CASES[f"binary/{_mode}/{_magnitude}"] = binary_case(_mode, _magnitude)
for _cls in ("Leaky", "Synaptic", "RLeaky", "RSynaptic"):
    for _hidden in (False, True):
        CASES[f"snntorch/{_cls}/{_hidden}"] = snntorch_case(_cls, _hidden)
for _cell in ("LIFBoxCell", "LIFCell", "IAFCell", "LIBoxCell"):
    CASES[f"norse/{_cell}"] = norse_case(_cell)
