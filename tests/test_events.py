"""N-MNIST events through tonic: documented shapes from the real subset, clear errors for bad events."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import spikelfp as sl
from spikelfp.data import DataError

pytest.importorskip("tonic", reason="tonic (extra 'events') is not installed")
SUBSET = Path(__file__).resolve().parents[2] / "shared" / "data" / "nmnist-small" / "nmnist_small_1000train_100test.npz"
needs_subset = pytest.mark.skipif(not SUBSET.is_file(), reason=f"the N-MNIST subset is not at {SUBSET}")


@needs_subset
def test_subset_gives_time_first_frames():
    train = sl.data.nmnist(train=True, root=SUBSET.parent, steps=8)
    test = sl.data.nmnist(train=False, root=SUBSET, steps=8)
    assert (len(train), len(test)) == (1000, 100)
    # ids 1..1000 are MNIST training samples 1..1000: same labels
    assert train.labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    x, y = next(train.batches(16))
    assert x.shape == (8, 16, 2, 34, 34) and x.dtype == torch.float32 and y.shape == (16,)
    with np.load(SUBSET) as d:
        n_events = int(d["train_offsets"][1] - d["train_offsets"][0])
        on = int(d["train_p"][: d["train_offsets"][1]].sum())
    frames = train.frames(0)
    # every event lands in one bin (tonic drops at most the one on the last bin's edge)
    assert n_events - 1 <= frames.sum() <= n_events
    assert abs(frames[:, 1].sum().item() - on) <= 1  # channel 1 counts the ON events


@needs_subset
def test_spiking_conv_net_trains_a_step_on_events():
    data = sl.data.nmnist(train=True, root=SUBSET.parent, steps=4).subset(8)
    torch.manual_seed(0)
    net = sl.models.spiking_lenet(in_channels=2, input_size=34)
    x, y = next(data.batches(8))
    lfp = sl.LFP(net, "epsilon", normalize="max-batch")
    out = lfp(x)
    lfp.backward(out, sl.feedback.SpikeSequence()(out, y))
    assert all(torch.isfinite(p.grad).all() for p in net.parameters())


def test_events_with_wrong_fields_are_refused():
    bad = np.zeros(3, dtype=[("x", int), ("y", int), ("ts", int), ("pol", int)])
    with pytest.raises(DataError, match=r"lack the field\(s\) t, p"):
        sl.data.events_to_frames(bad, 4)
    with pytest.raises(DataError, match="structured array"):
        sl.data.events_to_frames(np.zeros((3, 4)), 4)


def test_foreign_npz_is_refused(tmp_path):
    path = tmp_path / "events.npz"
    np.savez(path, train_x=np.zeros(3, np.uint8))
    with pytest.raises(DataError, match="lacks the array"):
        sl.data.nmnist(root=path)
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(DataError, match="not a readable .npz"):
        sl.data.nmnist(root=tmp_path / "junk.npz")
    with pytest.raises(DataError, match="no N-MNIST data"):
        sl.data.nmnist(root=tmp_path / "missing.npz")
