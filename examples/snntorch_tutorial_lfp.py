"""snnTorch's tutorial MLP, exactly as snnTorch users write it, trained by LFP instead of BPTT.

The network and the time loop are snnTorch's (tutorial 5 style: ``snn.Leaky`` neurons, membrane
state passed through the loop, spike recording). Only the training step changes: no surrogate
gradient, no loss; spikelfp distributes the Eq. A.16 feedback through the Heaviside spikes.

    python examples/snntorch_tutorial_lfp.py [--limit 10000] [--epochs 1]
"""

import argparse

import snntorch as snn
import torch
from torch import nn

import spikelfp as sl

p = argparse.ArgumentParser()
p.add_argument("--limit", type=int, default=10000)
p.add_argument("--epochs", type=int, default=1)
args = p.parse_args()

num_inputs, num_hidden, num_outputs, num_steps, beta = 784, 1000, 10, 25, 0.95


class Net(nn.Module):  # snnTorch tutorial 5, unchanged
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(num_inputs, num_hidden)
        self.lif1 = snn.Leaky(beta=beta)
        self.fc2 = nn.Linear(num_hidden, num_outputs)
        self.lif2 = snn.Leaky(beta=beta)

    def forward(self, x):
        mem1 = self.lif1.init_leaky()
        mem2 = self.lif2.init_leaky()
        spk2_rec = []
        for _ in range(num_steps):
            cur1 = self.fc1(x)
            spk1, mem1 = self.lif1(cur1, mem1)
            cur2 = self.fc2(spk1)
            spk2, mem2 = self.lif2(cur2, mem2)
            spk2_rec.append(spk2)
        return torch.stack(spk2_rec, dim=0)


torch.manual_seed(0)
net = Net()
optimizer = torch.optim.Adam(net.parameters(), lr=5e-4, betas=(0.9, 0.999))
lfp = sl.LFP(net, "epsilon")
feedback = sl.feedback.SpikeSequence()
train = sl.data.mnist(train=True).subset(args.limit)
test = sl.data.mnist(train=False).subset(2000)

for epoch in range(args.epochs):
    for x, y in train.batches(128, shuffle=True, generator=torch.Generator().manual_seed(epoch), standardize=False):
        spikes = lfp(x.flatten(1))  # the snnTorch loop runs with the LFP rules attached
        lfp.backward(spikes, feedback(spikes, y))
        sl.clip.adaptive_(net.parameters(), 0.06)
        optimizer.step()
        optimizer.zero_grad()
    with torch.no_grad():
        correct = sum(
            (net(x.flatten(1)).sum(0).argmax(1) == y).sum().item() for x, y in test.batches(500, standardize=False)
        )
    print(f"epoch {epoch + 1}: test accuracy {correct / len(test):.4f}")
