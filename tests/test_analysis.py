"""Analysis functions on hand-made cases with known answers."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import spikelfp as sl
from spikelfp import analysis


def test_sign_changes_counts_flips():
    a = {"w": torch.tensor([[1.0, -2.0, 3.0], [0.0, 1.0, -1.0]]), "b": torch.tensor([1.0, -1.0])}
    b = {"w": torch.tensor([[2.0, 2.0, -3.0], [0.0, -1.0, -5.0]]), "b": torch.tensor([-1.0, -1.0])}
    out = analysis.sign_changes(a, b)
    assert out["per_tensor"] == {"w": 3, "b": 1} and out["total"] == 4
    assert out["fraction"] == pytest.approx(4 / 8)
    assert analysis.sign_changes(a, a)["total"] == 0
    with pytest.raises(ValueError, match="different parameters"):
        analysis.sign_changes(a, {"w": a["w"]})


def test_parameter_mse():
    a = {"w": torch.zeros(2, 2)}
    b = {"w": torch.tensor([[1.0, 1.0], [3.0, 1.0]])}
    assert analysis.parameter_mse(a, b) == pytest.approx((1 + 1 + 9 + 1) / 4)


def test_median_over_p75():
    w = torch.arange(1.0, 101.0).reshape(10, 10)  # |w| = 1..100: median 50.5, p75 75.25
    assert analysis.median_over_p75({"w": w, "bias": torch.ones(10) * 1e6}) == pytest.approx(50.5 / 75.25)


def test_pruning_known_fractions():
    lin = nn.Linear(4, 2)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[0.1, -0.4, 0.3, -0.2], [0.5, -0.6, 0.05, 0.7]]))
    half = analysis.prune_magnitude(lin, 0.5)
    kept = torch.tensor([[False, True, False, False], [True, True, False, True]])
    assert torch.equal(half.weight != 0, kept) and torch.equal(half.weight[kept], lin.weight[kept])
    assert torch.equal(half.bias, lin.bias) and lin.weight[0, 0] == 0.1  # original untouched
    per_layer = analysis.prune_magnitude(nn.Sequential(lin, nn.Linear(2, 2)), 0.25, scope="layer")
    assert (per_layer[0].weight == 0).sum() == 2 and (per_layer[1].weight == 0).sum() == 1
    assert (analysis.prune_magnitude(lin, 1.0).weight == 0).all()


def test_pruning_everything_gives_chance_accuracy():
    torch.manual_seed(0)
    data = sl.data.mnist(train=False, download=False).subset(2000)
    model = sl.models.mlp(dropout=0.0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Linear):
                m.bias.zero_()

    def accuracy(m):
        m.eval()
        with torch.no_grad():
            x, y = next(data.batches(2000))
            return float((m(x).argmax(1) == y).double().mean())

    curve = analysis.pruning_curve(model, accuracy, fractions=[0.0, 1.0])
    # with every weight pruned the logits are equal: argmax picks class 0, whose frequency is chance
    assert curve[1][1] == pytest.approx(float((data.labels == 0).double().mean()))
    assert curve[1][1] < 0.15


def test_shattering_of_smooth_and_noise_signals():
    x = torch.linspace(0, 2 * math.pi, 400)
    assert analysis.shattering(torch.sin(x)) > 0.99
    noise = torch.randn(4000, generator=torch.Generator().manual_seed(0))
    assert abs(analysis.shattering(noise)) < 0.05
    assert analysis.shattering(torch.full((10,), 3.0)) == 1.0


def test_roughness_of_known_signals():
    x = torch.linspace(-1, 1, 101)
    assert analysis.roughness(x) == pytest.approx(1.0)
    assert analysis.roughness(1 - x.abs()) == pytest.approx(2.0)
    assert analysis.roughness(torch.tensor([0.0, 1.0] * 50)) == pytest.approx(99.0)
    assert analysis.roughness(torch.ones(5)) == 0.0


def test_input_signal_of_a_linear_model_equals_its_weights():
    lin = nn.Linear(3, 2, bias=False).double()
    x = torch.rand(5, 3, dtype=torch.float64) + 0.5
    g = analysis.input_signal(lin, x, "gradient", normalize=None)
    torch.testing.assert_close(g, lin.weight[0].detach().expand(5, 3))
    # LFP-0 on one linear layer: r_i = x_i w_0i / z_0
    r = analysis.input_signal(lin, x, "lfp-zero", normalize=None)
    z = x @ lin.weight[0].detach()
    torch.testing.assert_close(r, x * lin.weight[0].detach() / z[:, None])
