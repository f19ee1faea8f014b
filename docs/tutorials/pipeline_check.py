"""
The smallest LFP run: 20 steps on 512 images
============================================

This page proves the tutorial pipeline: it trains the paper's spiking MLP
(:func:`spikelfp.models.spiking_mlp`) by LFP-ε for 20 optimizer steps on 512 of the bundled MNIST
images, prints the test accuracy on 1 000 test images, and draws the output spikes of one test image.
The tutorials that follow explain each line.
"""

import torch

import spikelfp as sl

torch.manual_seed(0)
train = sl.data.mnist(train=True).subset(512)
test = sl.data.mnist(train=False).subset(1000)

steps = 10  # time steps T of the constant encoding
net = sl.models.spiking_mlp(beta=0.9)  # 784-1000-1000-10, a LIF neuron after every Linear
optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
lfp = sl.LFP(net, "epsilon", normalize="max-batch")
feedback = sl.feedback.SpikeSequence()

# %%
# Train: encode, forward with the rules attached, feedback, clip, step.
done = 0
while done < 20:
    for images, labels in train.batches(32, shuffle=True, standardize=False):
        out = lfp(sl.encode.constant(images, steps=steps))
        lfp.backward(out, feedback(out, labels))
        sl.clip.adaptive_(net.parameters(), 0.06)
        optimizer.step()
        optimizer.zero_grad()
        done += 1
        if done == 20:
            break

# %%
# Evaluate without the rules (plain inference) and print the accuracy.
with torch.no_grad():
    images, labels = next(test.batches(len(test), standardize=False))
    out = net(sl.encode.constant(images, steps=steps))
accuracy = (sl.feedback.spike_count_prediction(out) == labels).float().mean().item()
print(f"test accuracy after {done} steps on {len(train)} images: {accuracy:.3f}")

# %%
# The output spikes of the first test image: one row per class, one column per step.
ax = sl.plot.raster(out[:, 0])
ax.set_title(f"output spikes of a test image of label {int(labels[0])}")
