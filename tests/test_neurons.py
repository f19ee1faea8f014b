"""LIF dynamics, its surrogate, and the temporal LFP rule (LFP-SPEC §5)."""

from __future__ import annotations

import logging

import pytest
import torch
from reference import lif_feedback, lif_forward, linear_reference
from torch import nn

import spikelfp as sl
from spikelfp.neurons import LIFState

snntorch = pytest.importorskip("snntorch", reason="snntorch (extra 'snn') is needed to compare against it")


@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("beta,threshold", [(0.9, 1.0), (0.5, 0.7), (1.0, 1.5)])
def test_lif_matches_snntorch_leaky(reset, beta, threshold):
    gen = torch.Generator().manual_seed(0)
    current = torch.randn(40, 8, 30, generator=gen) * 0.8 + 0.3
    leaky = snntorch.Leaky(beta=beta, threshold=threshold, reset_mechanism=reset, reset_delay=True)
    mem = leaky.init_leaky()
    spk_ref, mem_ref = [], []
    for t in range(current.shape[0]):
        spk, mem = leaky(current[t], mem)
        spk_ref.append(spk)
        mem_ref.append(mem)
    spk_ref, mem_ref = torch.stack(spk_ref), torch.stack(mem_ref)
    lif = sl.LIF(beta, threshold, reset)
    spikes = lif(current)
    _, membranes, _ = sl.neurons.lif_feed_forward(current, None, lif.spec)
    assert spk_ref.sum() > 100  # the comparison is not vacuous
    assert torch.equal(spikes, spk_ref)
    torch.testing.assert_close(membranes, mem_ref, rtol=0, atol=1e-6)


@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_step_mode_equals_multi_step(reset):
    gen = torch.Generator().manual_seed(1)
    current = torch.randn(20, 4, 3, 5, 5, generator=gen) + 0.5
    lif = sl.LIF(0.8, 1.0, reset)
    spikes = lif(current)
    state = None
    stepped = []
    for t in range(current.shape[0]):
        s, state = lif.step(current[t], state)
        stepped.append(s)
    assert torch.equal(torch.stack(stepped), spikes)
    _, membranes, final = sl.neurons.lif_feed_forward(current, None, lif.spec)
    assert torch.equal(state.v, final.v) and torch.equal(membranes[-1], state.v)


def test_pure_step_function_equals_module():
    current = torch.rand(6, 3, 4) * 2
    p = sl.NeuronSpec("LIF", 0.8, threshold=1.0, reset="zero")
    state, mine = None, []
    for t in range(6):
        s, state = sl.neurons.lif_step(current[t], state, p)
        mine.append(s)
    assert torch.equal(torch.stack(mine), sl.LIF(0.8, 1.0, "zero")(current))


def test_multi_step_continues_from_state():
    current = torch.rand(10, 2, 6) * 2
    lif = sl.LIF(0.9)
    whole = lif(current)
    _, _, mid = sl.neurons.lif_feed_forward(current[:4], None, lif.spec)
    rest = lif(current[4:], mid)
    assert torch.equal(torch.cat([whole[:4], rest]), whole)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"beta": -0.1}, r"beta must lie in \[0, 1\]"),
        ({"beta": 1.5}, r"beta must lie in \[0, 1\]"),
        ({"beta": 0.9, "reset": "hold"}, "reset must be 'subtract', 'zero' or 'none'"),
        ({"beta": 0.9, "threshold": float("nan")}, "threshold must be finite"),
    ],
)
def test_bad_lif_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sl.LIF(**kwargs)


def test_input_without_time_axis():
    with pytest.raises(ValueError, match="time-first"):
        sl.LIF(0.9)(torch.rand(8, 10))
    net = sl.models.spiking_mlp(hidden=(20,))
    with pytest.raises(ValueError, match=r"time-first input \(T, B, 1, 28, 28\)"):
        net(torch.rand(8, 1, 28, 28))
    with pytest.raises(ValueError, match="time-first"):
        sl.LFP(nn.Sequential(nn.Linear(4, 4), sl.LIF(0.9)), "epsilon")(torch.rand(8, 4))


def test_heaviside_network_has_zero_gradient_but_lfp_updates():
    torch.manual_seed(0)
    net = sl.models.spiking_mlp(hidden=(50,), beta=0.9)
    x = sl.encode.constant(torch.rand(16, 1, 28, 28), 8)
    y = torch.randint(0, 10, (16,))
    out = net(x)
    assert out.sum() > 0
    sl.surrogate.ce_count_loss(out, y).backward()
    assert all((p.grad == 0).all() for p in net.parameters())
    net.zero_grad(set_to_none=True)
    lfp = sl.LFP(net, "epsilon")
    out = lfp(x)
    lfp.backward(out, sl.feedback.SpikeSequence()(out, y))
    assert all(p.grad.abs().sum() > 0 for p in net.parameters())


def test_surrogate_derivative_equals_snntorch_fast_sigmoid():
    x = torch.linspace(-2, 2, 401, requires_grad=True)
    spk = snntorch.surrogate.fast_sigmoid(slope=25)(x)
    spk.sum().backward()
    ours = sl.surrogate.FastSigmoid(25).derivative(x.detach())
    torch.testing.assert_close(ours, x.grad, rtol=0, atol=1e-7)


@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_surrogate_bptt_matches_snntorch(reset):
    """Our multi-step surrogate backward equals snnTorch's unrolled autograd (reset detached)."""
    gen = torch.Generator().manual_seed(2)
    current = (torch.randn(15, 4, 6, generator=gen) + 0.4).requires_grad_(True)
    upstream = torch.randn(15, 4, 6, generator=gen)
    leaky = snntorch.Leaky(0.8, 1.0, snntorch.surrogate.fast_sigmoid(25), reset_mechanism=reset)
    mem = leaky.init_leaky()
    spikes = []
    for t in range(15):
        spk, mem = leaky(current[t], mem)
        spikes.append(spk)
    (torch.stack(spikes) * upstream).sum().backward()
    want = current.grad.clone()
    current.grad = None
    lif = sl.LIF(0.8, 1.0, reset, surrogate=sl.surrogate.FastSigmoid(25))
    (lif(current) * upstream).sum().backward()
    torch.testing.assert_close(current.grad, want, rtol=1e-5, atol=1e-6)


def _two_layer(reset, seed=0):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(5, 8), sl.LIF(0.8, 1.0, reset), nn.Linear(8, 4), sl.LIF(0.8, 1.0, reset)).double()
    with torch.no_grad():
        net[0].weight.mul_(4)
        net[2].weight.mul_(3)
    return net


def _max_norm(t, T, B):
    v = t.reshape(T, B, -1)
    m = v.abs().amax(dim=(0, 2), keepdim=True)
    return (v / torch.where(m == 0, torch.ones_like(m), m)).reshape(t.shape)


@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("rule", ["epsilon", "zplus-zminus"])
@pytest.mark.parametrize("normalize", [None, "max"])
@pytest.mark.parametrize("carry", ["signed", "abs"])
def test_temporal_rule_matches_float64_loop(reset, rule, normalize, carry):
    T, B = 7, 3
    net = _two_layer(reset)
    x = torch.rand(T, B, 5, dtype=torch.float64)
    y = torch.tensor([0, 1, 3])
    composite = sl.composites.Mixed(
        [sl.composites.LayerMap([(sl.LIF, sl.rules.MembraneSplit(carry=carry))]), sl.composites.get(rule)]
    )
    lfp = sl.LFP(net, composite, normalize=normalize)
    out = lfp(x)
    fb = sl.feedback.SpikeSequence()(out, y)
    lfp.backward(out, fb)
    # reference: forward by the plain loop, feedback by the plain reverse loop
    W1, b1, W2, b2 = (p.detach() for p in net.parameters())
    I1 = x @ W1.t() + b1
    S1, _ = lif_forward(I1, 0.8, 1.0, reset)
    I2 = S1 @ W2.t() + b2
    S2, _ = lif_forward(I2, 0.8, 1.0, reset)
    assert torch.equal(S2, out) and 0 < S1.mean() < 1
    rI2 = lif_feedback(I2, fb, 0.8, 1.0, reset, carry=carry)
    rS1, dW2, db2 = linear_reference(rule, S1.reshape(T * B, 8), W2, b2, rI2.reshape(T * B, 4))
    rS1 = rS1.reshape(T, B, 8)
    if normalize:
        rS1 = _max_norm(rS1, T, B)
    rI1 = lif_feedback(I1, rS1, 0.8, 1.0, reset, carry=carry)
    _, dW1, db1 = linear_reference(rule, x.reshape(T * B, 5), W1, b1, rI1.reshape(T * B, 8))
    for got, want in [(net[2].weight, dW2), (net[2].bias, db2), (net[0].weight, dW1), (net[0].bias, db1)]:
        torch.testing.assert_close(-got.grad, want, rtol=1e-12, atol=1e-10)


@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_step_mode_lfp_equals_multi_step_lfp(reset):
    T, B = 9, 4
    x = torch.rand(T, B, 5, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3])
    net = _two_layer(reset)
    lfp = sl.LFP(net, "epsilon")
    out = lfp(x)
    lfp.backward(out, sl.feedback.SpikeSequence()(out, y))
    multi = [p.grad.clone() for p in net.parameters()]
    net.zero_grad(set_to_none=True)
    with sl.LFP(net, "epsilon") as lfp:
        s1 = s2 = None
        outs = []
        for t in range(T):
            o1, s1 = net[1].step(net[0](x[t]), s1)
            o2, s2 = net[3].step(net[2](o1), s2)
            outs.append(o2)
        out_steps = torch.stack(outs)
    assert torch.equal(out_steps, out)
    lfp.backward(out_steps, sl.feedback.SpikeSequence()(out_steps, y))
    for p, g in zip(net.parameters(), multi):
        torch.testing.assert_close(p.grad, g, rtol=1e-12, atol=1e-12)


def test_spiking_conv_net_runs_time_distributed():
    torch.manual_seed(0)
    net = sl.models.spiking_lenet(beta=0.9)
    x = sl.encode.constant(torch.rand(2, 1, 28, 28) * 3, 4)
    lfp = sl.LFP(net, "epsilon", normalize="max")
    out = lfp(x)
    assert out.shape == (4, 2, 10)
    lfp.backward(out, sl.feedback.SpikeSequence()(out, torch.tensor([1, 2])))
    assert all(torch.isfinite(p.grad).all() for p in net.parameters())
    assert set(lfp.firing_rates()) == {"1", "3", "6", "8"}


@pytest.mark.parametrize("make", [lambda: sl.models.spiking_mlp(hidden=(30,)), lambda: sl.models.spiking_lenet()])
@pytest.mark.parametrize("method", ["epsilon", "zplus-zminus", "surrogate"])
def test_constant_input_hoisting_is_exact(make, method):
    """SpikingSequential runs its first stateless layers once for a constant (stride-0) input; the
    updates must equal those of the same input materialised at every step (no hoisting)."""
    torch.manual_seed(0)
    net = make().double()
    with torch.no_grad():  # strong enough that every layer fires: the comparison is not vacuous
        for m in net.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                m.weight.mul_(4)
    constant = sl.encode.constant(torch.rand(3, 1, 28, 28, dtype=torch.float64) * 2, 6)
    assert constant.stride(0) == 0
    y = torch.tensor([1, 2, 3])
    updates = []
    for x in (constant, constant.contiguous()):
        net.zero_grad(set_to_none=True)
        if method == "surrogate":
            with sl.surrogate.use(net):
                out = net(x)
                sl.surrogate.ce_count_loss(out, y).backward()
        else:
            lfp = sl.LFP(net, method, normalize="max")
            out = lfp(x)
            lfp.backward(out, sl.feedback.SpikeSequence()(out, y))
        assert out.sum() > 0
        updates.append([p.grad.clone() for p in net.parameters()])
    for hoisted, full in zip(*updates):
        assert full.abs().sum() > 0
        torch.testing.assert_close(hoisted, full, rtol=1e-9, atol=1e-12)


def test_silent_network_gives_zero_updates_and_a_warning(caplog):
    net = nn.Sequential(nn.Linear(4, 6, bias=False), sl.LIF(0.9), nn.Linear(6, 3, bias=False), sl.LIF(0.9))
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(-0.1)
    x = torch.rand(5, 2, 4)
    lfp = sl.LFP(net, "epsilon", normalize="max")
    out = lfp(x)
    assert out.sum() == 0
    with caplog.at_level(logging.WARNING, logger="spikelfp"):
        lfp.backward(out, sl.feedback.SpikeSequence()(out, torch.tensor([0, 2])))
    assert "layer '1' (LIF) did not fire in this batch" in caplog.text
    assert (net[2].weight.grad == 0).all() and (net[0].weight.grad == 0).all()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters())


def test_lif_state_is_explicit_and_module_keeps_none():
    lif = sl.LIF(0.9)
    before = dict(lif.__dict__)
    lif(torch.rand(3, 2, 4))
    _, state = lif.step(torch.rand(2, 4), None)
    assert isinstance(state, LIFState) and dict(lif.__dict__).keys() == before.keys()
