"""Speed and memory of an LFP-ε training step on the spiking MLP (784-1000-1000-10, T=25, B=128).

Compared in one process (median of interleaved per-round ratios) against:

- ``lfp-epsilon-plain``: LFP-ε on the same network built as a plain ``nn.Sequential`` (no
  ``SpikingSequential``): the constant input is hoisted by the Linear rule itself;
- ``surrogate``: the same ``sl.LIF`` model trained by BPTT with the fast-sigmoid surrogate;
- ``spikingjelly``: X
  (``LIFNode(tau=10, decay_input=False, v_reset=None)`` is the β = 0.9 subtract-reset LIF; its
  ``SoftSign`` surrogate is the fast sigmoid's shape), if ``spikingjelly`` imports;
- with ``--variants``: the plain-Sequential LFP step under ``torch.autocast("cpu", torch.bfloat16)``
  and under ``torch.compile``;
- ``snntorch``: snnTorch's BPTT on the identical network (``snn.Leaky``, ``fast_sigmoid(25)``, its own
  time loop over ``t``);
- ``lfprop``: the reference implementation's SNN composite on its own equivalent model
  (``LifMLP``), if ``lfprop`` imports (it needs zennit and lxt; see benchmarks/README.md).

Every step is forward, feedback/loss, backward, (clipping for LFP), Adam step, zero_grad. Memory is
measured twice: the bytes autograd holds for the backward pass (unique storages reaching
``saved_tensors_hooks``), and the peak resident memory of a fresh process running the steps.

    python benchmarks/bench_snn.py [--threads 2] [--rounds 7] [--steps 25] [--batch 128] [--variants] [--no-memory]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

import torch
from common import interleaved, machine, median_ms, ratio, save
from torch import nn

import spikelfp as sl


def spikelfp_steps(T: int, B: int):
    torch.manual_seed(0)
    net = sl.models.spiking_mlp(beta=0.9)
    x = sl.encode.constant(torch.rand(B, 1, 28, 28), T)
    y = torch.randint(0, 10, (B,))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    lfp = sl.LFP(net, "epsilon", normalize="max-batch")
    feedback = sl.feedback.SpikeSequence()
    fast_sigmoid = sl.surrogate.FastSigmoid(25)

    def lfp_step():
        out = lfp(x)
        lfp.backward(out, feedback(out, y))
        sl.clip.adaptive_(net.parameters(), 0.06)
        opt.step()
        opt.zero_grad(set_to_none=True)

    def surrogate_step():
        with sl.surrogate.use(net, fast_sigmoid):
            out = net(x)
            sl.surrogate.ce_count_loss(out, y).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    def surrogate_forward():
        with sl.surrogate.use(net, fast_sigmoid):
            return net(x)

    forwards = {"lfp-epsilon": lambda: lfp(x), "surrogate": surrogate_forward}
    return {"lfp-epsilon": lfp_step, "surrogate": surrogate_step}, forwards


def plain_steps(T: int, B: int, variants: bool = False):
    """LFP-ε on the spiking MLP as a plain ``nn.Sequential`` (and, with ``variants``, bf16 and compiled)."""
    torch.manual_seed(0)
    layers: list[nn.Module] = [nn.Flatten(2)]
    for n_in, n_out in ((784, 1000), (1000, 1000), (1000, 10)):
        layers += [nn.Linear(n_in, n_out), sl.LIF(0.9)]
    net = nn.Sequential(*layers)
    x = sl.encode.constant(torch.rand(B, 1, 28, 28), T)
    y = torch.randint(0, 10, (B,))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    lfp = sl.LFP(net, "epsilon", normalize="max-batch")
    feedback = sl.feedback.SpikeSequence()

    def step():
        out = lfp(x)
        lfp.backward(out, feedback(out, y))
        sl.clip.adaptive_(net.parameters(), 0.06)
        opt.step()
        opt.zero_grad(set_to_none=True)

    fns = {"lfp-epsilon-plain": step}
    if variants:

        def bf16_step():
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = lfp(x)
            out = out.float()
            lfp.backward(out, feedback(out, y))
            sl.clip.adaptive_(net.parameters(), 0.06)
            opt.step()
            opt.zero_grad(set_to_none=True)

        compiled_forward = torch.compile(lfp.__call__)

        def compiled_step():
            out = compiled_forward(x)
            lfp.backward(out, feedback(out, y))
            sl.clip.adaptive_(net.parameters(), 0.06)
            opt.step()
            opt.zero_grad(set_to_none=True)

        for name, fn in (("lfp-plain-bf16", bf16_step), ("lfp-plain-compile", compiled_step)):
            try:
                fn()
                fns[name] = fn
            except Exception as exc:  # report, do not hide: the table says which variant failed and why
                print(f"{name} failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
    return fns, lambda: lfp(x)


def spikingjelly_step(T: int, B: int):
    """SpikingJelly's BPTT, multi-step mode, torch backend, on the identical network."""
    from spikingjelly.activation_based import functional, neuron, surrogate

    torch.manual_seed(0)
    layers: list[nn.Module] = [nn.Flatten(2)]
    for n_in, n_out in ((784, 1000), (1000, 1000), (1000, 10)):
        layers += [
            nn.Linear(n_in, n_out),
            neuron.LIFNode(
                tau=10.0,  # decay_input=False, v_reset=None: H = (1 - 1/τ)·V + X, soft reset: β = 0.9
                decay_input=False,
                v_threshold=1.0,
                v_reset=None,
                surrogate_function=surrogate.SoftSign(),
                step_mode="m",
            ),
        ]
    net = nn.Sequential(*layers)
    x = sl.encode.constant(torch.rand(B, 1, 28, 28), T)
    y = torch.randint(0, 10, (B,))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)

    def step():
        functional.reset_net(net)
        out = net(x)
        sl.surrogate.ce_count_loss(out, y).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    def forward():
        functional.reset_net(net)
        return net(x)

    return step, forward


def snntorch_step(T: int, B: int):
    import snntorch as snn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2, self.fc3 = nn.Linear(784, 1000), nn.Linear(1000, 1000), nn.Linear(1000, 10)
            grad = snn.surrogate.fast_sigmoid(slope=25)
            self.lif1, self.lif2, self.lif3 = (snn.Leaky(beta=0.9, spike_grad=grad) for _ in range(3))

        def forward(self, x):
            m1, m2, m3 = self.lif1.init_leaky(), self.lif2.init_leaky(), self.lif3.init_leaky()
            out = []
            for t in range(x.shape[0]):
                s1, m1 = self.lif1(self.fc1(x[t].flatten(1)), m1)
                s2, m2 = self.lif2(self.fc2(s1), m2)
                s3, m3 = self.lif3(self.fc3(s2), m3)
                out.append(s3)
            return torch.stack(out)

    torch.manual_seed(0)
    net = Net()
    x = sl.encode.constant(torch.rand(B, 1, 28, 28), T)
    y = torch.randint(0, 10, (B,))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)

    def step():
        out = net(x)
        sl.surrogate.ce_count_loss(out, y).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step, lambda: net(x)


def lfprop_step(T: int, B: int):
    """The reference code's SNN training step, as its README and forward_fn_spiking do it."""
    from lfprop.model.spiking_networks import LifMLP
    from lfprop.propagation.propagator_snn import LFPSNNEpsilonComposite
    from lfprop.rewards.reward_functions import SnnCorrectClassRewardSpikesRateCoded

    torch.manual_seed(0)
    model = LifMLP(784, 10, beta=0.9, spike_grad="step", apply_noise=False)
    x = torch.rand(B, 1, 28, 28)
    y = torch.randint(0, 10, (B,))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    composite = LFPSNNEpsilonComposite()
    reward_fn = SnnCorrectClassRewardSpikesRateCoded("cpu")

    def step():
        model.reset()
        with composite.context(model) as modified:
            inputs = x.detach().requires_grad_(True)
            spikes = torch.stack([modified(inputs)[0] for _ in range(T)])
            reward = reward_fn(spikes, y)
            torch.autograd.grad((spikes,), (inputs,), grad_outputs=(reward,))
        for p in model.parameters():
            p.grad = -p.feedback
        sl.clip.adaptive_(model.parameters(), 0.06)
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def saved_bytes(fn) -> int:
    """Bytes of the unique storages autograd saves for the backward pass of one step."""
    seen: dict[int, int] = {}

    def pack(t):
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values())


def peak_rss_child(method: str, T: int, B: int, threads: int) -> dict:
    """Run one method's steps in a fresh process; report its peak RSS and the growth over set-up."""
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so a child would report its parent's peak
    code = f"""
import json, re, resource, sys, torch
sys.path.insert(0, {str(__file__.rsplit("/", 1)[0])!r})
import bench_snn as b
torch.set_num_threads({threads})
if {method!r} == 'snntorch':
    step = b.snntorch_step({T}, {B})[0]
else:
    step = b.spikelfp_steps({T}, {B})[0][{method!r}]
before = int(open('/proc/self/statm').read().split()[1]) * resource.getpagesize()
for _ in range(3):
    step()
peak = int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)) * 1024
print(json.dumps({{'before_mb': before / 2**20, 'peak_mb': peak / 2**20, 'growth_mb': (peak - before) / 2**20}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--skip-lfprop", action="store_true")
    p.add_argument("--variants", action="store_true", help="also bf16 autocast and torch.compile of the LFP step")
    p.add_argument("--no-memory", action="store_true", help="skip the memory measurements")
    p.add_argument("--out", default="snn_speed_memory", help="name of the results/*.json file")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    T, B = args.steps, args.batch
    fns, forwards = spikelfp_steps(T, B)
    plain, forwards["lfp-epsilon-plain"] = plain_steps(T, B, args.variants)
    fns.update(plain)
    try:
        fns["spikingjelly"], forwards["spikingjelly"] = spikingjelly_step(T, B)
    except ImportError as exc:
        print("spikingjelly not available:", exc)
    try:
        fns["snntorch"], forwards["snntorch"] = snntorch_step(T, B)
    except ImportError as exc:
        print("snntorch not available:", exc)
    if not args.skip_lfprop:
        try:
            fns["lfprop"] = lfprop_step(T, B)
        except Exception as exc:
            print("lfprop not available:", type(exc).__name__, exc)
    times = interleaved(fns, rounds=args.rounds, inner=1, warmup=2)
    result: dict = {"machine": machine(), "T": T, "B": B, "ms": {k: round(median_ms(times, k), 1) for k in times}}
    for mine in [k for k in ("lfp-epsilon", "lfp-epsilon-plain", "lfp-plain-bf16", "lfp-plain-compile") if k in fns]:
        for other in fns:
            if other != mine and not (mine != "lfp-epsilon" and other.startswith("lfp")):
                result[f"{mine}/{other}"] = round(ratio(times, mine, other), 3)
    bptt = [k for k in ("snntorch", "spikingjelly") if k in fns]
    if bptt:  # the target: plain-Sequential LFP-ε ≤ 0.9× the faster BPTT peer, per round
        result["lfp-epsilon-plain/faster-bptt"] = round(
            statistics.median(p / min(times[k][i] for k in bptt) for i, p in enumerate(times["lfp-epsilon-plain"])),
            3,
        )
    if not args.no_memory:
        result["saved_for_backward_mb"] = {k: round(saved_bytes(f) / 2**20, 1) for k, f in forwards.items()}
        result["peak_rss"] = {
            m: peak_rss_child(m, T, B, args.threads) for m in ("lfp-epsilon", "surrogate", "snntorch")
        }
    print(json.dumps(result, indent=2))
    print("saved", save(args.out, result))


if __name__ == "__main__":
    main()
