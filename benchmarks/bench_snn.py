"""Speed and memory of an LFP-ε training step on the spiking MLP (784-1000-1000-10, T=25, B=128).

Compared in one process (median of interleaved per-round ratios) against:

- ``surrogate``: the same ``sl.LIF`` model trained by BPTT with the fast-sigmoid surrogate;
- ``snntorch``: snnTorch's BPTT on the identical network (``snn.Leaky``, ``fast_sigmoid(25)``, its own
  time loop over ``t``);
- ``lfprop``: the reference implementation's SNN composite on its own equivalent model
  (``LifMLP``), if ``lfprop`` imports (it needs zennit and lxt; see benchmarks/README.md).

Every step is forward, feedback/loss, backward, (clipping for LFP), Adam step, zero_grad. Memory is
measured twice: the bytes autograd holds for the backward pass (unique storages reaching
``saved_tensors_hooks``), and the peak resident memory of a fresh process running the steps.

    python benchmarks/bench_snn.py [--threads 2] [--rounds 7] [--steps 25] [--batch 128]
"""

from __future__ import annotations

import argparse
import json
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
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    T, B = args.steps, args.batch
    fns, forwards = spikelfp_steps(T, B)
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
    for other in fns:
        if other != "lfp-epsilon":
            result[f"lfp-epsilon/{other}"] = round(ratio(times, "lfp-epsilon", other), 3)
    result["saved_for_backward_mb"] = {k: round(saved_bytes(f) / 2**20, 1) for k, f in forwards.items()}
    result["peak_rss"] = {m: peak_rss_child(m, T, B, args.threads) for m in forwards}
    print(json.dumps(result, indent=2))
    print("saved", save("snn_speed_memory", result))


if __name__ == "__main__":
    main()
