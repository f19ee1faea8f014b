"""Encoders: shapes, statistics, and equality with snnTorch's spikegen where it exists."""

from __future__ import annotations

import pytest
import torch

import spikelfp as sl


def test_constant_repeats_input():
    x = torch.rand(3, 1, 4, 4)
    e = sl.encode.constant(x, 5)
    assert e.shape == (5, 3, 1, 4, 4) and all(torch.equal(e[t], x) for t in range(5))
    with pytest.raises(ValueError, match="steps"):
        sl.encode.constant(x, 0)


def test_rate_is_bernoulli_and_reproducible():
    x = torch.full((1000,), 0.3)
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    a, b = sl.encode.rate(x, 200, generator=g1), sl.encode.rate(x, 200, generator=g2)
    assert torch.equal(a, b) and set(a.unique().tolist()) <= {0.0, 1.0}
    assert abs(a.mean().item() - 0.3) < 0.01
    assert sl.encode.rate(torch.full((10,), 0.4), 100, gain=2.5).mean() == 1.0  # clamped at 1


def test_latency_equals_snntorch():
    spikegen = pytest.importorskip("snntorch.spikegen", reason="snntorch (extra 'snn') is needed")
    x = torch.rand(4, 30)
    x[0, :5] = 0.0
    for clip in (True, False):
        ours = sl.encode.latency(x, 10, clip=clip)
        theirs = spikegen.latency(x, num_steps=10, normalize=True, linear=True, clip=clip)
        assert torch.equal(ours, theirs)
    assert (sl.encode.latency(x, 10).sum(0) <= 1).all()
