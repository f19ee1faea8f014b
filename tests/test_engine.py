"""The engine: attach/detach, autograd semantics, layer handling and bad input."""

from __future__ import annotations

import pytest
import torch
from reference import linear_reference
from torch import nn

import spikelfp as sl
from spikelfp import rules


def mlp(seed=0, act=nn.ReLU):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 8), act(), nn.Linear(8, 5), act(), nn.Linear(5, 3)).double()


def state_of(model: nn.Module):
    return [
        (
            dict(m._forward_hooks),
            dict(m._forward_pre_hooks),
            dict(m._backward_hooks),
            "forward" in m.__dict__,
            "step" in m.__dict__,
            getattr(m, "inplace", None),
        )
        for m in model.modules()
    ]


def test_model_untouched_after_call_and_context():
    net = mlp()
    net[1].inplace = True
    before = state_of(net)
    x = torch.randn(4, 6, dtype=torch.float64)
    plain = net(x)
    lfp = sl.LFP(net, "epsilon")
    out = lfp(x)
    assert state_of(net) == before
    lfp.backward(out, torch.ones_like(out))
    with lfp:
        assert "forward" in net[0].__dict__
        assert net[1].inplace is False
    assert state_of(net) == before
    torch.testing.assert_close(net(x), plain)
    torch.testing.assert_close(out.detach(), plain.detach())


def test_detach_after_exception_inside_context():
    net = mlp()
    before = state_of(net)
    with pytest.raises(RuntimeError, match="boom"), sl.LFP(net, "epsilon"):
        raise RuntimeError("boom")
    assert state_of(net) == before


def test_attach_failure_restores_partial_patches():
    net = nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.BatchNorm1d(3))
    before = state_of(net)
    with pytest.raises(TypeError, match=r"'2' of type BatchNorm1d"):
        sl.LFP(net, "epsilon")(torch.randn(2, 3))
    assert state_of(net) == before


def test_grad_holds_minus_update_and_accumulates():
    net = mlp()
    x = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    lfp = sl.LFP(net, "epsilon")
    r = torch.randn(4, 3, dtype=torch.float64)
    out = lfp(x)
    lfp.backward(out, r)
    first = [p.grad.clone() for p in net.parameters()]
    first_x = x.grad.clone()
    out = lfp(x)
    lfp.backward(out, r)
    for p, g in zip(net.parameters(), first):
        torch.testing.assert_close(p.grad, 2 * g)
    torch.testing.assert_close(x.grad, 2 * first_x)
    # the last layer's update is the ε formula on the recorded activations
    a = torch.relu(net[2](torch.relu(net[0](x)))).detach()
    _, dw, _ = linear_reference("epsilon", a, net[4].weight.detach(), net[4].bias.detach(), r)
    torch.testing.assert_close(-first[4], dw, rtol=0, atol=1e-10)


def test_optimizer_ascends_the_feedback():
    net = mlp()
    x = torch.randn(4, 6, dtype=torch.float64)
    lfp = sl.LFP(net, "epsilon")
    out = lfp(x)
    lfp.backward(out, torch.ones_like(out))
    w = net[4].weight.detach().clone()
    delta = -net[4].weight.grad.clone()
    torch.optim.SGD(net.parameters(), lr=0.1).step()
    torch.testing.assert_close(net[4].weight.detach(), w + 0.1 * delta)


def test_max_normalisation_matches_reference():
    net = mlp()
    x = torch.randn(4, 6, dtype=torch.float64)
    r = torch.randn(4, 3, dtype=torch.float64)
    lfp = sl.LFP(net, "epsilon", normalize="max")
    out = lfp(x)
    lfp.backward(out, r)
    W = [net[i].weight.detach() for i in (0, 2, 4)]
    b = [net[i].bias.detach() for i in (0, 2, 4)]
    a0 = x
    a1 = torch.relu(a0 @ W[0].t() + b[0])
    a2 = torch.relu(a1 @ W[1].t() + b[1])

    def norm(t):
        m = t.abs().amax(1, keepdim=True)
        return t / torch.where(m == 0, torch.ones_like(m), m)

    r2, dw3, _ = linear_reference("epsilon", a2, W[2], b[2], r)
    r1, dw2, _ = linear_reference("epsilon", a1, W[1], b[1], norm(r2))
    _, dw1, _ = linear_reference("epsilon", a0, W[0], b[0], norm(r1))
    for got, want in [(net[4], dw3), (net[2], dw2), (net[0], dw1)]:
        torch.testing.assert_close(-got.weight.grad, want, rtol=0, atol=1e-10)


def test_activations_pass_feedback_unchanged():
    # Tanh's derivative would scale the signal; LFP must not. Compare to the rule on raw activations.
    net = mlp(act=nn.Tanh)
    x = torch.randn(3, 6, dtype=torch.float64)
    r = torch.randn(3, 3, dtype=torch.float64)
    lfp = sl.LFP(net, "epsilon")
    out = lfp(x)
    lfp.backward(out, r)
    a1 = torch.tanh(net[0](x)).detach()
    a2 = torch.tanh(net[2](a1)).detach()
    r2, _, _ = linear_reference("epsilon", a2, net[4].weight.detach(), net[4].bias.detach(), r)
    _, dw2, _ = linear_reference("epsilon", a1, net[2].weight.detach(), net[2].bias.detach(), r2)
    torch.testing.assert_close(-net[2].weight.grad, dw2, rtol=0, atol=1e-10)


def test_heaviside_network_zero_gradient_but_lfp_updates():
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(5, 6), sl.nn.Heaviside(), nn.Linear(6, 2))
    x = torch.rand(8, 5) + 0.1
    y = torch.randint(0, 2, (8,))
    torch.nn.functional.cross_entropy(net(x), y).backward()
    assert net[0].weight.grad.abs().sum() == 0
    net.zero_grad()
    lfp = sl.LFP(net, "epsilon")
    out = lfp(x)
    lfp.backward(out, sl.feedback.Softmax()(out, y))
    assert net[0].weight.grad.abs().sum() > 0


def test_maxpool_routes_to_winner_and_avgpool_is_epsilon_sum():
    x = torch.tensor([[[[1.0, 3.0], [2.0, -1.0]]]], dtype=torch.float64, requires_grad=True)
    conv = nn.Conv2d(1, 1, 1, bias=False).double()
    with torch.no_grad():
        conv.weight.fill_(1.0)
    for pool, expected in [
        (nn.MaxPool2d(2), torch.tensor([[[[0.0, 1.0], [0.0, 0.0]]]], dtype=torch.float64)),
        (nn.AvgPool2d(2), x.detach() / 4 / (1.25 + 1e-6)),
    ]:
        x.grad = None
        net = nn.Sequential(conv, pool)
        lfp = sl.LFP(net, "epsilon")
        out = lfp(x)
        lfp.backward(out, torch.ones_like(out))
        # conv is 1x1 with weight 1: z = x, so the conv passes r_in = x/stab(x)·r ≈ r
        want = expected * (x.detach() / (x.detach() + 1e-6 * torch.sign(x.detach())))
        torch.testing.assert_close(x.grad, want, rtol=1e-12, atol=1e-12)


def test_residual_add_splits_in_proportion():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 3, bias=False).double()
            self.add = sl.nn.Add()

        def forward(self, x):
            return self.add(self.fc(x), x)

    block = Block()
    x = torch.tensor([[1.0, 2.0, -0.5]], dtype=torch.float64, requires_grad=True)
    lfp = sl.LFP(block, "epsilon")
    out = lfp(x)
    r = torch.ones_like(out)
    lfp.backward(out, r)
    h = block.fc(x).detach()
    z = h + x.detach()
    share_x = x.detach() / (z + 1e-6 * torch.where(z >= 0, 1.0, -1.0).to(z.dtype))
    share_h = h / (z + 1e-6 * torch.where(z >= 0, 1.0, -1.0).to(z.dtype))
    r_from_fc, _, _ = linear_reference("epsilon", x.detach(), block.fc.weight.detach(), None, share_h)
    torch.testing.assert_close(x.grad, share_x + r_from_fc, rtol=0, atol=1e-10)


def test_dropout_passes_feedback_to_kept_units_unscaled():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 50), nn.ReLU(), nn.Dropout(0.5), nn.Linear(50, 2)).double().train()
    x = torch.rand(3, 4, dtype=torch.float64)
    r = torch.randn(3, 2, dtype=torch.float64)
    kept = {}
    hook = net[2].register_forward_hook(lambda m, i, o: kept.update(y=o.detach()))
    try:
        lfp = sl.LFP(net, "epsilon")
        out = lfp(x)
        lfp.backward(out, r)
    finally:
        hook.remove()
    y = kept["y"]  # the dropout output: zero where dropped, ×2 where kept
    r_y, _, _ = linear_reference("epsilon", y, net[3].weight.detach(), net[3].bias.detach(), r)
    # unchanged through Dropout and ReLU (autograd would multiply by 1/(1 − p) = 2 here)
    _, dw0, db0 = linear_reference("epsilon", x, net[0].weight.detach(), net[0].bias.detach(), r_y)
    torch.testing.assert_close(-net[0].weight.grad, dw0, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(-net[0].bias.grad, db0, rtol=1e-10, atol=1e-12)
    silent = (y == 0).all(dim=0)  # dropped (or dead) for every sample
    assert silent.any() and (~silent).any()
    assert (net[0].weight.grad[silent] == 0).all() and (net[0].weight.grad[~silent] != 0).any(dim=1).all()


def test_unknown_parameter_free_layer_is_an_error():
    net = nn.Sequential(nn.Linear(3, 3), nn.Softmax(dim=1))
    with pytest.raises(TypeError, match=r"'1' of type Softmax has no LFP rule"):
        sl.LFP(net, "epsilon")(torch.randn(2, 3))
    ok = sl.composites.Mixed(
        [sl.composites.LayerMap([(nn.Softmax, rules.PassThrough())]), sl.composites.get("epsilon")]
    )
    sl.LFP(net, ok)(torch.randn(2, 3))


def test_rule_that_cannot_handle_a_layer_is_an_error():
    composite = sl.composites.LayerMap([(nn.ReLU, rules.Epsilon()), (nn.Linear, rules.Epsilon())])
    with pytest.raises(TypeError, match="cannot handle module '1' of type ReLU"):
        sl.LFP(nn.Sequential(nn.Linear(2, 2), nn.ReLU()), composite)(torch.randn(1, 2))


@pytest.mark.parametrize(
    "feedback,match",
    [
        (torch.ones(4, 2), "differs from output shape"),
        (torch.full((4, 3), float("nan")), "feedback contains NaN"),
        ("not a tensor", "must be tensors"),
    ],
)
def test_bad_feedback(feedback, match):
    net = mlp().float()
    lfp = sl.LFP(net, "epsilon")
    out = lfp(torch.randn(4, 6))
    with pytest.raises((ValueError, TypeError), match=match):
        lfp.backward(out, feedback)
    assert all(p.grad is None for p in net.parameters())


def test_nan_output_rejected():
    net = mlp().float()
    lfp = sl.LFP(net, "epsilon")
    x = torch.randn(4, 6)
    with torch.no_grad():
        net[0].weight.fill_(3e38)  # a finite input, an output that overflows
    out = lfp(x)
    with pytest.raises(ValueError, match="output contains NaN or Inf"):
        lfp.backward(out, torch.ones_like(out))


def test_output_without_graph_rejected():
    net = mlp()
    lfp = sl.LFP(net, "epsilon")
    with torch.no_grad():
        out = lfp(torch.randn(2, 6, dtype=torch.float64))
    with pytest.raises(ValueError, match="no LFP graph"):
        lfp.backward(out, torch.ones_like(out))


def test_non_finite_update_is_never_written():
    # LFP-0 on a neuron whose contributions cancel: z ≈ -1e-6, so r/z overflows float32
    net = nn.Sequential(nn.Linear(2, 1, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, -1.0]]))
    lfp = sl.LFP(net, sl.composites.LayerMap([(nn.Linear, rules.Zero())]))
    x = torch.tensor([[1.0, 1.0 + 2**-20]], requires_grad=True)
    out = lfp(x)
    assert torch.isfinite(out).all()
    with pytest.raises(sl.NonFiniteError, match=r"non-finite .* at layer '0'"):
        lfp.backward(out, torch.full_like(out, 1e34))
    assert net[0].weight.grad is None and x.grad is None


def test_unknown_composite_name():
    with pytest.raises(ValueError, match="unknown composite 'epsilonn'"):
        sl.LFP(mlp(), "epsilonn")
    with pytest.raises(ValueError, match="normalize"):
        sl.LFP(mlp(), "epsilon", normalize="mean")


def test_frozen_parameters_get_no_grad_and_input_without_grad_skips_feedback():
    net = mlp()
    net[0].weight.requires_grad_(False)
    lfp = sl.LFP(net, "epsilon")
    out = lfp(torch.randn(2, 6, dtype=torch.float64))
    lfp.backward(out, torch.ones_like(out))
    assert net[0].weight.grad is None and net[0].bias.grad is not None


def test_padding_modes_and_same_padding():
    torch.manual_seed(0)
    x = torch.randn(1, 2, 6, 6, dtype=torch.float64, requires_grad=True)
    for conv in [
        nn.Conv2d(2, 3, 3, padding=1, padding_mode="circular"),
        nn.Conv2d(2, 3, 4, padding="same"),
        nn.Conv2d(2, 3, 3, padding="valid"),
        nn.Conv2d(2, 4, 3, padding=1, groups=2),
    ]:
        conv = conv.double()
        x.grad = None
        plain = conv(x)
        lfp = sl.LFP(conv, "epsilon")
        out = lfp(x)
        torch.testing.assert_close(out, plain)
        lfp.backward(out, torch.ones_like(out))
        # ε-rule bookkeeping: Σ r_in + Σ b/stab(z)·r = Σ z/stab(z)·r (exact conservation as ε → 0)
        z = plain.detach()
        stab = z + 1e-6 * torch.where(z >= 0, 1.0, -1.0).to(z.dtype)
        bias_share = (conv.bias.detach().view(1, -1, 1, 1) / stab).sum()
        torch.testing.assert_close(x.grad.sum() + bias_share, (z / stab).sum(), rtol=1e-10, atol=1e-10)


def test_spike_registry_holds_only_live_spikes_in_a_step_loop():
    net = nn.Sequential(nn.Linear(4, 6), sl.LIF(0.9), nn.Linear(6, 2), sl.LIF(0.9))
    with sl.LFP(net, "epsilon") as lfp:
        for _ in range(20):
            out = net(torch.rand(3, 2, 4) * 3)  # multi-step calls without lfp(): no end-of-forward
            del out
        assert len(lfp.run._spikes) <= 2
