"""Train the paper's spiking MLP on MNIST with LFP-ε, written out as a plain loop (no Trainer).

python examples/spiking_mlp_lfp.py [--limit 10000] [--epochs 1] [--steps 25]
"""

import argparse

import torch

import spikelfp as sl

p = argparse.ArgumentParser()
p.add_argument("--limit", type=int, default=10000)
p.add_argument("--epochs", type=int, default=1)
p.add_argument("--steps", type=int, default=25)
args = p.parse_args()

torch.manual_seed(0)
train = sl.data.mnist(train=True).subset(args.limit)
test = sl.data.mnist(train=False).subset(2000)
net = sl.models.spiking_mlp(beta=0.9)  # 784-1000-1000-10, LIF after every layer
optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
lfp = sl.LFP(net, "epsilon", normalize="max-batch")
feedback = sl.feedback.SpikeSequence()  # Eq. A.16

for epoch in range(args.epochs):
    order = torch.Generator().manual_seed(epoch)
    for x, y in train.batches(128, shuffle=True, generator=order, standardize=False):
        out = lfp(sl.encode.constant(x, args.steps))  # (T, B, 10) output spikes
        lfp.backward(out, feedback(out, y))  # p.grad = −Δp
        sl.clip.adaptive_(net.parameters(), 0.06)
        optimizer.step()
        optimizer.zero_grad()
    correct = 0
    with torch.no_grad():
        for x, y in test.batches(500, standardize=False):
            correct += (sl.feedback.spike_count_prediction(net(sl.encode.constant(x, args.steps))) == y).sum().item()
    print(f"epoch {epoch + 1}: test accuracy {correct / len(test):.4f}")
