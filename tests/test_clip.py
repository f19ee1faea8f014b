"""Adaptive clipping and max-normalisation against explicit formulas."""

from __future__ import annotations

import pytest
import torch

import spikelfp as sl


def test_adaptive_clipping_per_row():
    w = torch.nn.Parameter(torch.tensor([[3.0, 4.0], [0.0, 0.0], [1.0, 0.0]], dtype=torch.float64))
    w.grad = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.01, 0.0]], dtype=torch.float64)
    sl.clip.adaptive_([w], clipping=0.1)
    # row 0: ‖w‖=5 → max 0.5 → scaled from 1 to 0.5; row 1: ‖w‖=0 → floor 1e-3 → max 1e-4;
    # row 2: within the bound, untouched
    want = torch.tensor([[0.5, 0.0], [1e-4 / 2**0.5, 1e-4 / 2**0.5], [0.01, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(w.grad, want)


def test_adaptive_clipping_conv_and_bias():
    conv = torch.nn.Conv2d(2, 3, 2).double()
    conv.weight.grad = torch.randn_like(conv.weight) * 10
    conv.bias.grad = torch.randn_like(conv.bias) * 10
    before_w = conv.weight.grad.clone()
    sl.clip.adaptive_(conv.parameters(), 0.06)
    for o in range(3):
        wn = conv.weight[o].detach().norm().clamp(min=1e-3)
        gn = before_w[o].norm()
        expected = before_w[o] * min(1.0, float(0.06 * wn / gn))
        torch.testing.assert_close(conv.weight.grad[o], expected)
        assert conv.bias.grad[o].abs() <= 0.06 * conv.bias[o].abs().clamp(min=1e-3) + 1e-12


def test_adaptive_clipping_validates():
    with pytest.raises(ValueError):
        sl.clip.adaptive_([], 0.0)


def test_max_normalize_per_sample_and_time_first():
    r = torch.tensor([[1.0, -4.0], [0.0, 0.0], [0.5, 0.25]])
    torch.testing.assert_close(sl.clip.max_normalize(r), torch.tensor([[0.25, -1.0], [0.0, 0.0], [1.0, 0.5]]))
    # time-first: (T=2, B=2, F=2); sample 0's max is over both steps
    s = torch.tensor([[[1.0, 2.0], [3.0, 0.0]], [[-8.0, 0.0], [1.0, 1.0]]])
    out = sl.clip.max_normalize(s, (2, 2))
    torch.testing.assert_close(out[:, 0], s[:, 0] / 8)
    torch.testing.assert_close(out[:, 1], s[:, 1] / 3)
    torch.testing.assert_close(sl.clip.max_normalize(s.reshape(4, 2), (2, 2)), out.reshape(4, 2))
