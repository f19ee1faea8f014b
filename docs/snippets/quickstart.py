"""Quickstart: train the README's spiking MLP by LFP for a few steps (runs in seconds on a CPU)."""

import torch

import spikelfp as sl

torch.manual_seed(0)

# MNIST ships with spikelfp. Images are uint8 (N, 1, 28, 28); LFP's spiking models take floats in [0, 1].
train = sl.data.mnist(train=True).subset(2560)
test = sl.data.mnist(train=False).subset(1000)

net = torch.nn.Sequential(
    torch.nn.Flatten(2),  # (T, B, 1, 28, 28) -> (T, B, 784): keep the time and batch axes
    torch.nn.Linear(784, 1000),
    sl.LIF(beta=0.9),
    torch.nn.Linear(1000, 10),
    sl.LIF(beta=0.9),
)
optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
lfp = sl.LFP(net, composite="epsilon", normalize="max-batch")
feedback = sl.feedback.SpikeSequence()

for step, (images, labels) in enumerate(train.batches(128, shuffle=True, standardize=False)):
    x = sl.encode.constant(images, steps=25)  # (T, B, 1, 28, 28): the image at every step
    out = lfp(x)  # forward with the rules attached: output spikes (T, B, 10)
    lfp.backward(out, feedback(out, labels))  # writes p.grad = -Δp (accumulating)
    sl.clip.adaptive_(net.parameters(), 0.06)
    optimizer.step()
    optimizer.zero_grad()
    if step % 5 == 0:
        accuracy = (sl.feedback.spike_count_prediction(out) == labels).float().mean()
        print(f"step {step:2d}: batch accuracy {accuracy:.2f}")

with torch.no_grad():  # plain inference: no rules attached
    images, labels = next(test.batches(len(test), standardize=False))
    out = net(sl.encode.constant(images, steps=25))
accuracy = (sl.feedback.spike_count_prediction(out) == labels).float().mean()
print(f"test accuracy after {step + 1} steps: {accuracy:.3f}")
