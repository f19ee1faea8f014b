"""The spike-rule variants of the neuron spec (the hardware toolchains' neurons), against a float64 restatement.

A reset within the step (``reset_delay=False``: ``U[t] = β·max(U[t−1] − θn[t−1], v_min) + I[t]``), a spike
count (``spikes="multi"``: ``n = [U > 0]·trunc(U/θ)``, capped), ``fire=">="``: the forward, the temporal
rule's split (the carried contribution is the post-reset membrane), step against multi-step, and BPTT
against autograd on an explicitly written forward.
"""

from __future__ import annotations

import pytest
import torch
from reference import linear_reference
from torch import nn

import spikelfp as sl
from spikelfp.neurons import NeuronSpec, from_spec

T, B, N_IN, N = 9, 4, 5, 6
EPS = 1e-6

VARIANTS = {
    # name: spec options (a LIF with β = 0.8, θ = 0.7 unless given)
    "in-step subtract": dict(reset_delay=False),
    "in-step subtract, floor": dict(reset_delay=False, v_min=-0.7),
    "multi, in-step, floor (sinabs IAF)": dict(beta=1.0, reset_delay=False, spikes="multi", v_min=-0.7),
    "multi, capped": dict(reset_delay=False, spikes="multi", max_spikes=2),
    "fire >=": dict(fire=">="),
    "zero, multi": dict(reset="zero", spikes="multi"),
    "CubaLIF, in-step, multi": dict(kind="CubaLIF", alpha=0.5, reset_delay=False, spikes="multi"),
}


def _spec(options: dict) -> NeuronSpec:
    o = {"kind": "LIF", "beta": 0.8, "threshold": 0.7, **options}
    return NeuronSpec(o.pop("kind"), o.pop("beta"), o.pop("alpha", None), **o)


def _reference(I: torch.Tensor, r_out: torch.Tensor, spec: NeuronSpec):
    """Spikes, the feedback reaching ``I`` and the membranes, written out step by step in float64."""
    theta, beta = spec.threshold, spec.beta
    alpha = spec.alpha if spec.synaptic else 0.0
    U = torch.zeros_like(I)
    J = torch.zeros_like(I)
    S = torch.zeros_like(I)
    K = torch.zeros_like(I)  # the carried contribution β·post(U[t−1])
    KJ = torch.zeros_like(I)  # α·J[t−1]
    for t in range(I.shape[0]):
        j = I[t] if t == 0 or not spec.synaptic else alpha * J[t - 1] + I[t]
        if spec.synaptic and t > 0:
            KJ[t] = alpha * J[t - 1]
        J[t] = j
        drive = j if spec.synaptic else I[t]
        if t == 0:
            u = drive.clone()
        else:
            v = U[t - 1].clone()
            if spec.reset == "zero":
                v = torch.where(S[t - 1] > 0, torch.zeros_like(v), v)
            elif spec.reset == "subtract" and not spec.reset_delay:
                v = v - theta * S[t - 1]
            if not spec.reset_delay and spec.v_min is not None:
                v = torch.maximum(v, torch.full_like(v, spec.v_min))
            K[t] = beta * v
            u = beta * v + drive
            if spec.reset == "subtract" and spec.reset_delay:
                u = u - theta * S[t - 1]
        U[t] = u
        if spec.spikes == "multi":
            n = torch.where(u > 0, torch.trunc(u / theta), torch.zeros_like(u))
            S[t] = n if spec.max_spikes is None else n.clamp(max=spec.max_spikes)
        else:
            S[t] = (u > theta if spec.fire == ">" else u >= theta).double()
    # the temporal rule: U over {C, K} (σ = +1), J over {I, KJ} (σ = sign J)
    r_I = torch.zeros_like(I)
    carry_u = torch.zeros_like(I[0])
    carry_j = torch.zeros_like(I[0])
    for t in reversed(range(I.shape[0])):
        r_u = r_out[t] + carry_u
        drive = J[t] if spec.synaptic else I[t]
        d = drive.abs() + K[t].abs() + EPS
        r_drive = drive / d * r_u
        carry_u = K[t] / d * r_u
        if spec.synaptic:
            r_j = r_drive + carry_j
            dj = I[t].abs() + KJ[t].abs() + EPS
            sign = torch.where(J[t] >= 0, 1.0, -1.0)
            r_I[t] = I[t] / dj * sign * r_j
            carry_j = KJ[t] / dj * sign * r_j
        else:
            r_I[t] = r_drive
    return S, r_I


def _net(spec: NeuronSpec, seed: int = 0):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(N_IN, N), from_spec(spec)).double()
    with torch.no_grad():
        net[0].weight.mul_(3.0)
        net[0].bias.add_(0.3)
    return net


@pytest.mark.parametrize("rule", ["epsilon", "zplus-zminus"])
@pytest.mark.parametrize("name", list(VARIANTS))
def test_variant_forward_and_lfp_match_float64_reference(name, rule):
    spec = _spec(VARIANTS[name])
    net = _net(spec)
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(T, B, N_IN, generator=gen, dtype=torch.float64) + 0.5
    r_out = torch.randn(T, B, N, generator=gen, dtype=torch.float64)
    lfp = sl.LFP(net, rule)
    out = lfp(x)
    lfp.backward(out, r_out)
    I = x @ net[0].weight.detach().T + net[0].bias.detach()
    S, r_I = _reference(I, r_out, spec)
    assert torch.equal(out.detach(), S)
    assert 0 < S.sum() and (spec.spikes != "multi" or S.max() > 1)  # not vacuous: counts above one
    standard = spec.replace(reset_delay=True, spikes="single", fire=">", max_spikes=None, v_min=None)
    if spec.beta != 1.0 and spec.fire == ">":  # the variant computes something else than the paper's neuron here
        assert not torch.equal(_reference(I, r_out, standard)[0], S)
    _, dW, db = linear_reference(rule, x.flatten(0, 1), net[0].weight.detach(), net[0].bias.detach(), r_I.flatten(0, 1))
    torch.testing.assert_close(net[0].weight.grad, -dW, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(net[0].bias.grad, -db, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_variant_step_loop_equals_multi_step(name):
    spec = _spec(VARIANTS[name])
    net = _net(spec, seed=1)
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(T, B, N_IN, generator=gen, dtype=torch.float64) + 0.5
    r_out = torch.randn(T, B, N, generator=gen, dtype=torch.float64)
    currents = net[0](x).detach()
    whole = net[1](currents)
    state, outs = None, []
    for t in range(T):
        o, state = net[1].step(currents[t], state)
        outs.append(o)
    assert torch.equal(torch.stack(outs), whole)
    lfp = sl.LFP(net, "epsilon")
    out = lfp(x)
    lfp.backward(out, r_out)
    multi = {k: p.grad.clone() for k, p in net.named_parameters()}
    net.zero_grad()
    with lfp:
        i = net[0](x)
        state, outs = None, []
        for t in range(T):
            o, state = net[1].step(i[t], state)
            outs.append(o)
        out = torch.stack(outs)
    lfp.backward(out, r_out)
    for k, p in net.named_parameters():
        torch.testing.assert_close(p.grad, multi[k], rtol=1e-9, atol=1e-12, msg=k)


@pytest.mark.parametrize("name", ["in-step subtract, floor", "multi, in-step, floor (sinabs IAF)", "fire >="])
def test_variant_bptt_matches_autograd_on_the_written_forward(name):
    """The surrogate's derivative at U − θ through the variant's dynamics (the reset detached)."""
    spec = _spec(VARIANTS[name])
    net = _net(spec, seed=2)
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(T, B, N_IN, generator=gen, dtype=torch.float64) + 0.5
    target = torch.randn(T, B, N, generator=gen, dtype=torch.float64)
    with sl.surrogate.use(net, sl.surrogate.FastSigmoid(25.0)):
        (net(x) * target).sum().backward()
    got = net[0].weight.grad.clone()

    W = net[0].weight.detach().clone().requires_grad_(True)
    I = x @ W.T + net[0].bias.detach()
    u_prev = s_prev = None
    outs = []
    for t in range(T):
        if u_prev is None:
            u = I[t]
        else:
            v = u_prev
            if not spec.reset_delay:
                v = v - spec.threshold * s_prev.detach()
                if spec.v_min is not None:
                    v = torch.clamp(v, min=spec.v_min)
            u = spec.beta * v + I[t]
            if spec.reset_delay:
                u = u - spec.threshold * s_prev.detach()
        h = u - spec.threshold
        f = h / (1 + 25.0 * h.abs())
        if spec.spikes == "multi":
            spikes = torch.where(u > 0, torch.trunc(u / spec.threshold), torch.zeros_like(u)) + f - f.detach()
        else:
            spikes = (u > spec.threshold if spec.fire == ">" else u >= spec.threshold).double() + f - f.detach()
        outs.append(spikes)
        u_prev, s_prev = u, spikes
    (torch.stack(outs) * target).sum().backward()
    torch.testing.assert_close(got, W.grad, rtol=1e-9, atol=1e-12)


def test_variant_options_are_validated_by_name():
    with pytest.raises(ValueError, match="v_min floors the post-reset membrane, which needs reset_delay=False"):
        NeuronSpec("LIF", 0.9, v_min=-1.0)
    with pytest.raises(ValueError, match="spikes must be 'single' or 'multi'"):
        NeuronSpec("LIF", 0.9, spikes="graded")
    with pytest.raises(ValueError, match="fire must be '>' or '>='"):
        NeuronSpec("LIF", 0.9, fire="=>")
    with pytest.raises(ValueError, match="threshold must be > 0"):
        NeuronSpec("LIF", 0.9, threshold=-1.0, spikes="multi")
    with pytest.raises(ValueError, match="max_spikes must be a positive int"):
        NeuronSpec("LIF", 0.9, spikes="multi", max_spikes=0)
    with pytest.raises(ValueError, match="readout does not spike"):
        NeuronSpec("LI", 0.9, reset="none", spikes="multi")


def test_fire_rules_at_the_threshold_itself():
    """``U = θ`` exactly: ``>`` is silent, ``>=`` fires once, a count starts there (sinabs's MultiSpike)."""
    u = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0, 1.5, -0.5], dtype=torch.float64)
    fire = sl.neurons.functional.fire
    assert fire(u, NeuronSpec("LIF", 1.0, threshold=0.5)).tolist() == [0, 0, 0, 1, 1, 1, 0]
    assert fire(u, NeuronSpec("LIF", 1.0, threshold=0.5, fire=">=")).tolist() == [0, 0, 1, 1, 1, 1, 0]
    assert fire(u, NeuronSpec("LIF", 1.0, threshold=0.5, spikes="multi")).tolist() == [0, 0, 1, 1, 2, 3, 0]
    capped = NeuronSpec("LIF", 1.0, threshold=0.5, spikes="multi", max_spikes=2)
    assert fire(u, capped).tolist() == [0, 0, 1, 1, 2, 2, 0]
