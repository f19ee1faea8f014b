"""The neuron family (LFP-SPEC §9): CubaLIF, RLIF, RCubaLIF, LI, per-neuron and learnable decays.

Every LFP number is checked against a float64 loop written here from §9 (no library code in the
reference; the synaptic layers' rules come from tests/reference.py, which restates each rule per
connection). Forward dynamics are checked spike for spike against snnTorch, and the surrogate baselines
against torch autograd on an explicitly written forward.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from reference import linear_reference
from torch import nn

import spikelfp as sl

snntorch = pytest.importorskip("snntorch", reason="snntorch (extra 'snn') is needed to compare against it")

EPS = 1e-6


def _sign0(z):
    return torch.where(z >= 0, torch.ones_like(z), -torch.ones_like(z))


# --------------------------------------------------------------------------------------------------
# the float64 reference, written from LFP-SPEC §9
# --------------------------------------------------------------------------------------------------
def reference(I, r_out, *, alpha, beta, theta, reset, synaptic, spiking, V=None, b=None, rule="epsilon"):
    """Forward and LFP backward of one family neuron, written out element by element over time.

    Returns (output, r_I, Δα, Δβ, ΔV, Δb) with the decay updates unsummed (shape (B, n)) so that the
    caller sums them to the decay's shape.
    """
    T, B, n = I.shape
    zeros = torch.zeros(B, n, dtype=torch.float64)
    a = torch.as_tensor(alpha, dtype=torch.float64).clamp(0, 1) if synaptic else None
    be = torch.as_tensor(beta, dtype=torch.float64).clamp(0, 1)
    j, u, s = zeros, zeros, zeros
    J, U, S, R, KJ, KU, SP = [], [], [], [], [], [], []
    for t in range(T):
        r_t = (s @ V.T + (0 if b is None else b)) if V is not None else zeros
        SP.append(s)
        if synaptic:
            k_j = a * j
            j = (k_j + I[t]) + r_t  # snnTorch's order of the sums
        else:
            k_j = None
        if spiking and reset == "zero":
            k_u = be * (1 - s) * u
        else:
            k_u = be * u
        u = (k_u + j) if synaptic else ((k_u + I[t]) + r_t)
        u = u - (theta * s if (spiking and reset == "subtract") else 0)
        s = (u > theta).double() if spiking else zeros
        J.append(j)
        U.append(u)
        S.append(s)
        R.append(r_t)
        KJ.append(k_j)
        KU.append(k_u)
    out = torch.stack(S) if spiking else torch.stack(U)
    r_I = torch.zeros_like(I)
    d_alpha = torch.zeros(B, n, dtype=torch.float64)
    d_beta = torch.zeros(B, n, dtype=torch.float64)
    dV = None if V is None else torch.zeros_like(V)
    db = None if b is None else torch.zeros_like(b)
    carry_u = carry_j = rec_s = zeros
    for t in range(T - 1, -1, -1):
        r_u = r_out[t] + carry_u + rec_s
        sig_u = torch.ones_like(U[t]) if spiking else _sign0(U[t])
        if synaptic:
            D = J[t].abs() + KU[t].abs() + EPS
            r_j = J[t] / D * sig_u * r_u + carry_j
            carry_u = KU[t] / D * sig_u * r_u
            sig_j = _sign0(J[t])
            DJ = I[t].abs() + R[t].abs() + KJ[t].abs() + EPS
            r_I[t] = I[t] / DJ * sig_j * r_j
            r_r = R[t] / DJ * sig_j * r_j
            carry_j = KJ[t] / DJ * sig_j * r_j
            d_alpha += carry_j
        else:
            D = I[t].abs() + R[t].abs() + KU[t].abs() + EPS
            r_I[t] = I[t] / D * sig_u * r_u
            r_r = R[t] / D * sig_u * r_u
            carry_u = KU[t] / D * sig_u * r_u
        d_beta += carry_u
        if V is not None:
            r_prev, dV_t, db_t = linear_reference(rule, SP[t], V, b, r_r)
            dV += dV_t
            if b is not None:
                db += db_t
            rec_s = r_prev
    return out, r_I, d_alpha, d_beta, dV, db


KINDS = {
    # name: (factory(size), synaptic, spiking, recurrent)
    "LIF-learn": (lambda n, reset: sl.LIF(0.85, 0.6, reset, learn_beta=True), False, True, False),
    "LIF-per-neuron": (lambda n, reset: sl.LIF(torch.linspace(0.3, 1.0, n), 0.6, reset), False, True, False),
    "LIF-per-neuron-learn": (
        lambda n, reset: sl.LIF(torch.linspace(0.3, 1.0, n), 0.6, reset, learn_beta=True),
        False,
        True,
        False,
    ),
    "CubaLIF": (lambda n, reset: sl.CubaLIF(0.7, 0.85, 0.6, reset), True, True, False),
    "CubaLIF-learn": (
        lambda n, reset: sl.CubaLIF(torch.linspace(0.1, 0.9, n), 0.85, 0.6, reset, learn_alpha=True, learn_beta=True),
        True,
        True,
        False,
    ),
    "RLIF": (lambda n, reset: sl.RLIF(n, 0.85, 0.6, reset), False, True, True),
    "RLIF-learn-nobias": (
        lambda n, reset: sl.RLIF(n, 0.85, 0.6, reset, bias=False, learn_beta=True),
        False,
        True,
        True,
    ),
    "RCubaLIF": (
        lambda n, reset: sl.RCubaLIF(n, 0.7, 0.85, 0.6, reset, learn_alpha=True, learn_beta=True),
        True,
        True,
        True,
    ),
    "LI": (lambda n, reset: sl.LI(0.8), False, False, False),
    "LI-learn": (lambda n, reset: sl.LI(torch.linspace(0.2, 0.95, n), learn_beta=True), False, False, False),
}


def _net(kind, reset, n_in=5, n=7, seed=0):
    torch.manual_seed(seed)
    factory, synaptic, spiking, recurrent = KINDS[kind]
    neuron = factory(n, reset)
    net = nn.Sequential(nn.Linear(n_in, n), neuron).double()
    with torch.no_grad():
        net[0].weight.mul_(2.0)
        if recurrent:
            neuron.recurrent.weight.mul_(2.0)
    return net, synaptic, spiking, recurrent


def _decay_value(v):
    return v.detach() if isinstance(v, torch.Tensor) else v


def _sum_to(update, like):
    if not isinstance(like, torch.Tensor) or like.dim() == 0:
        return update.sum()
    return update.sum_to_size(like.shape)


CASES = [(k, r) for k in KINDS for r in (("none",) if KINDS[k][2] is False else ("subtract", "zero", "none"))]


@pytest.mark.parametrize("rule", ["epsilon", "zplus-zminus"])
@pytest.mark.parametrize("kind,reset", CASES)
def test_lfp_matches_float64_reference(kind, reset, rule):
    net, synaptic, spiking, recurrent = _net(kind, reset)
    neuron = net[1]
    gen = torch.Generator().manual_seed(1)
    x = (torch.randn(9, 4, 5, generator=gen, dtype=torch.float64) + 0.4).requires_grad_(True)
    lfp = sl.LFP(net, rule)
    out = lfp(x)
    r_out = torch.randn(out.shape, generator=gen, dtype=torch.float64)
    lfp.backward(out, r_out)

    W, b_in = net[0].weight.detach(), net[0].bias.detach()
    I = x.detach() @ W.T + b_in
    V = neuron.recurrent.weight.detach() if recurrent else None
    b = neuron.recurrent.bias.detach() if (recurrent and neuron.recurrent.bias is not None) else None
    ref_out, r_I, d_alpha, d_beta, dV, db = reference(
        I,
        r_out,
        alpha=_decay_value(neuron.alpha) if synaptic else None,
        beta=_decay_value(neuron.beta),
        theta=neuron.threshold,
        reset=reset,
        synaptic=synaptic,
        spiking=spiking,
        V=V,
        b=b,
        rule=rule,
    )
    if spiking:
        assert 0 < ref_out.sum() < ref_out.numel()  # not vacuous
    assert torch.equal(out.detach(), ref_out)
    r_x, dW, db_in = linear_reference(rule, x.detach().flatten(0, 1), W, b_in, r_I.flatten(0, 1))
    tol = {"rtol": 1e-9, "atol": 1e-9}
    torch.testing.assert_close(x.grad, r_x.reshape(x.shape), **tol)
    torch.testing.assert_close(net[0].weight.grad, -dW, **tol)
    torch.testing.assert_close(net[0].bias.grad, -db_in, **tol)
    if recurrent:
        torch.testing.assert_close(neuron.recurrent.weight.grad, -dV, **tol)
        if b is not None:
            torch.testing.assert_close(neuron.recurrent.bias.grad, -db, **tol)
    if isinstance(neuron.beta, nn.Parameter):
        torch.testing.assert_close(neuron.beta.grad, -_sum_to(d_beta, neuron.beta), **tol)
        assert neuron.beta.grad.abs().sum() > 0
    if synaptic and isinstance(neuron.alpha, nn.Parameter):
        torch.testing.assert_close(neuron.alpha.grad, -_sum_to(d_alpha, neuron.alpha), **tol)
        assert neuron.alpha.grad.abs().sum() > 0


@pytest.mark.parametrize("kind", ["CubaLIF-learn", "RCubaLIF", "RLIF", "LI-learn", "LIF-per-neuron-learn"])
def test_step_loop_equals_multi_step(kind):
    """Forward bit for bit, and the LFP updates of a step loop equal the multi-step ones."""
    net = _net(kind, "subtract")[0]
    neuron = net[1]
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(8, 3, 5, generator=gen, dtype=torch.float64) + 0.4
    r_out = torch.randn(8, 3, 7, generator=gen, dtype=torch.float64)
    whole = net(x)
    currents = net[0](x)  # one GEMM, so that the step loop and the multi-step call see the same inputs
    state, stepped = None, []
    for t in range(x.shape[0]):
        o, state = neuron.step(currents[t], state)
        stepped.append(o)
    assert torch.equal(torch.stack(stepped), whole)  # the same element-wise kernels on the same numbers

    lfp = sl.LFP(net, "epsilon")
    out = lfp(x)
    lfp.backward(out, r_out)
    multi = {k: p.grad.clone() for k, p in net.named_parameters()}
    net.zero_grad()
    with lfp:
        state, outs = None, []
        for t in range(x.shape[0]):
            o, state = neuron.step(net[0](x[t][None])[0], state)
            outs.append(o)
        out = torch.stack(outs)
    # a (1, 3, 5) GEMM per step rounds differently from one (24, 5) GEMM on some CPUs (MKL on AVX-512):
    # a float64 tolerance, far below any formula's error (an LI readout's output is its membrane)
    torch.testing.assert_close(out.detach(), whole, rtol=1e-12, atol=1e-12)
    lfp.backward(out, r_out)
    for k, p in net.named_parameters():
        torch.testing.assert_close(p.grad, multi[k], rtol=1e-9, atol=1e-12, msg=k)


@pytest.mark.parametrize("rule", ["epsilon", "zplus-zminus"])
@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
def test_cubalif_with_alpha_zero_is_lif(reset, rule):
    torch.manual_seed(3)
    lin = nn.Linear(6, 8).double()
    a = nn.Sequential(lin, sl.CubaLIF(0.0, 0.8, 0.7, reset, learn_beta=True)).double()
    b = nn.Sequential(nn.Linear(6, 8).double(), sl.LIF(0.8, 0.7, reset, learn_beta=True)).double()
    b.load_state_dict(a.state_dict())
    x = torch.randn(10, 4, 6, dtype=torch.float64) * 1.5
    r = torch.randn(10, 4, 8, dtype=torch.float64)
    # with ε = 0 in the temporal split, J's single contribution passes its feedback exactly (with ε > 0 it
    # passes |I|/(|I| + ε) of it, which the ε-rule of the Linear before amplifies where I ≈ 0)
    exact = sl.composites.LayerMap([((sl.LIF, sl.CubaLIF), sl.rules.MembraneSplit(epsilon=0.0))])
    composite = sl.composites.Mixed([exact, sl.composites.get(rule)])
    outs = []
    for net in (a, b):
        lfp = sl.LFP(net, composite)
        out = lfp(x)
        lfp.backward(out, r)
        outs.append(out)
    assert torch.equal(outs[0], outs[1]) and outs[0].sum() > 0
    for (k, p), q in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-10, atol=1e-12, msg=k)
    # and the fixed-β LIF (its own Functions) gives the same as the family core
    c = nn.Sequential(nn.Linear(6, 8).double(), sl.LIF(float(b[1].beta.detach()), 0.7, reset)).double()
    c[0].load_state_dict(b[0].state_dict())
    b.zero_grad()
    for net in (b, c):
        lfp = sl.LFP(net, rule)
        out = lfp(x)
        lfp.backward(out, r)
    torch.testing.assert_close(b[0].weight.grad, c[0].weight.grad, rtol=1e-10, atol=1e-12)


def test_lif_with_beta_zero_learnable_gets_an_update():
    """At β = 0 the carried membrane is zero, so Δβ = 0; with β > 0 it is not (sanity of the wiring)."""
    torch.manual_seed(4)
    net = nn.Sequential(nn.Linear(3, 4), sl.LIF(0.0, 0.5, learn_beta=True)).double()
    lfp = sl.LFP(net, "epsilon")
    out = lfp(torch.randn(5, 2, 3, dtype=torch.float64))
    lfp.backward(out, torch.ones_like(out))
    assert net[1].beta.grad.item() == 0.0


# --------------------------------------------------------------------------------------------------
# forward equality against snnTorch
# --------------------------------------------------------------------------------------------------
def _current(seed, *shape):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=gen, dtype=torch.float64) * 0.8 + 0.3


@pytest.mark.parametrize("reset", ["subtract", "none"])
def test_cubalif_matches_snntorch_synaptic(reset):
    current = _current(5, 30, 6, 20)
    syn = snntorch.Synaptic(alpha=0.8, beta=0.9, threshold=1.0, reset_mechanism=reset).double()
    s_syn, s_mem = syn.init_synaptic()
    spk_ref, mem_ref, syn_ref = [], [], []
    for t in range(current.shape[0]):
        spk, s_syn, s_mem = syn(current[t], s_syn, s_mem)
        spk_ref.append(spk)
        mem_ref.append(s_mem)
        syn_ref.append(s_syn)
    spk_ref = torch.stack(spk_ref)
    cuba = sl.CubaLIF(0.8, 0.9, 1.0, reset)
    assert spk_ref.sum() > 50
    assert torch.equal(cuba(current), spk_ref)
    state = None
    for t in range(current.shape[0]):
        _, state = cuba.step(current[t], state)
        torch.testing.assert_close(state.v, mem_ref[t], rtol=0, atol=1e-5)  # snnTorch keeps α, β as float32
        torch.testing.assert_close(state.j, syn_ref[t], rtol=0, atol=1e-5)


def test_cubalif_zero_reset_differs_from_snntorch_as_documented():
    """snnTorch's zero reset discards this step's current too: U = (1 − S[t−1])(βU + J)."""
    current = _current(6, 25, 4, 10) + 0.3
    syn = snntorch.Synaptic(alpha=0.5, beta=0.9, reset_mechanism="zero").double()
    s_syn, s_mem = syn.init_synaptic()
    j = u = s = torch.zeros(4, 10, dtype=torch.float64)
    for t in range(current.shape[0]):
        _, s_syn, s_mem = syn(current[t], s_syn, s_mem)
        j = 0.5 * j + current[t]
        u = (1 - s) * (0.9 * u + j)
        s = (u > 1.0).double()
        torch.testing.assert_close(s_mem, u, rtol=0, atol=1e-5)  # snnTorch keeps β as float32


def test_rlif_matches_snntorch_rleaky():
    torch.manual_seed(7)
    n = 12
    current = _current(7, 30, 5, n).float()  # snnTorch's spikes are float32 whatever the input
    ref = snntorch.RLeaky(beta=0.9, linear_features=n, reset_mechanism="subtract")
    rlif = sl.RLIF(n, 0.9)
    rlif.recurrent.load_state_dict(ref.recurrent.state_dict())
    spk = mem = torch.zeros(5, n)
    spk_ref = []
    for t in range(current.shape[0]):
        spk, mem = ref(current[t], spk, mem)
        spk_ref.append(spk)
    spk_ref = torch.stack(spk_ref)
    assert 50 < spk_ref.sum() < spk_ref.numel() - 50
    with torch.no_grad():
        assert torch.equal(rlif(current), spk_ref)


def test_rcubalif_matches_snntorch_rsynaptic():
    torch.manual_seed(8)
    n = 10
    current = _current(8, 30, 5, n).float() * 0.5
    ref = snntorch.RSynaptic(alpha=0.7, beta=0.9, linear_features=n, reset_mechanism="subtract")
    cell = sl.RCubaLIF(n, 0.7, 0.9)
    cell.recurrent.load_state_dict(ref.recurrent.state_dict())
    spk = syn = mem = torch.zeros(5, n)
    spk_ref = []
    for t in range(current.shape[0]):
        spk, syn, mem = ref(current[t], spk, syn, mem)
        spk_ref.append(spk)
    spk_ref = torch.stack(spk_ref)
    assert 50 < spk_ref.sum() < spk_ref.numel() - 50
    with torch.no_grad():
        assert torch.equal(cell(current), spk_ref)


def test_lif_per_neuron_beta_matches_snntorch_leaky():
    n = 16
    beta = torch.linspace(0.2, 1.0, n, dtype=torch.float64)
    current = _current(9, 30, 4, n)
    leaky = snntorch.Leaky(beta=beta, reset_mechanism="subtract")
    mem = leaky.init_leaky()
    spk_ref = []
    for t in range(current.shape[0]):
        spk, mem = leaky(current[t], mem)
        spk_ref.append(spk)
    spk_ref = torch.stack(spk_ref)
    assert spk_ref.sum() > 50
    assert torch.equal(sl.LIF(beta)(current), spk_ref)


def test_conv_features_with_per_channel_decay():
    current = _current(10, 12, 2, 3, 4, 4)
    beta = torch.tensor([0.5, 0.8, 1.0], dtype=torch.float64).view(3, 1, 1)
    cuba = sl.CubaLIF(0.6, beta)
    out = cuba(current)
    j = u = s = torch.zeros_like(current[0])
    for t in range(current.shape[0]):
        j = 0.6 * j + current[t]
        u = beta * u + j - s
        s = (u > 1.0).double()
        assert torch.equal(out[t], s)
    with pytest.raises(ValueError, match="does not broadcast"):
        sl.CubaLIF(0.6, torch.rand(5))(current)


# --------------------------------------------------------------------------------------------------
# surrogate BPTT against autograd on an explicitly written forward
# --------------------------------------------------------------------------------------------------
def _fast_sigmoid_spike(x, k=25.0):
    """Heaviside forward, fast-sigmoid derivative 1/(1+k|x|)² (straight-through with x/(1+k|x|))."""
    f = x / (1 + k * x.abs())
    return (x > 0).double() + f - f.detach()


@pytest.mark.parametrize("kind", ["CubaLIF", "RLIF", "RCubaLIF", "LIF-per-neuron-learn", "LI-learn"])
def test_surrogate_bptt_matches_autograd_reference(kind):
    net, synaptic, spiking, recurrent = _net(kind, "subtract")
    neuron = net[1]
    x = _current(11, 8, 3, 5)
    target = torch.randn(8, 3, 7, dtype=torch.float64)
    with sl.surrogate.use(net, sl.surrogate.FastSigmoid(25.0)):
        loss = (net(x) * target).sum()
    loss.backward()
    got = {k: p.grad.clone() for k, p in net.named_parameters()}

    params = {k: p.detach().clone().requires_grad_(True) for k, p in net.named_parameters()}
    I = x @ params["0.weight"].T + params["0.bias"]
    a = params.get("1.alpha", torch.as_tensor(_decay_value(getattr(neuron, "alpha", 0.0)), dtype=torch.float64))
    be = params.get("1.beta", torch.as_tensor(_decay_value(neuron.beta), dtype=torch.float64))
    a, be = a.clamp(0, 1), be.clamp(0, 1)
    j = u = s = torch.zeros(3, 7, dtype=torch.float64)
    outs = []
    for t in range(8):
        r_t = 0
        if recurrent:
            r_t = s @ params["1.recurrent.weight"].T
            if "1.recurrent.bias" in params:
                r_t = r_t + params["1.recurrent.bias"]
        if synaptic:
            j = a * j + I[t] + r_t
            drive = j
        else:
            drive = I[t] + r_t
        u = be * u + drive - (neuron.threshold * s.detach() if spiking else 0)
        s = _fast_sigmoid_spike(u - neuron.threshold) if spiking else s
        outs.append(s if spiking else u)
    (torch.stack(outs) * target).sum().backward()
    for k, p in params.items():
        torch.testing.assert_close(got[k], p.grad, rtol=1e-10, atol=1e-12, msg=k)


def test_surrogate_use_reaches_every_spiking_neuron():
    net = nn.Sequential(sl.LIF(0.9), sl.CubaLIF(0.5, 0.9), sl.RLIF(3, 0.9), sl.RCubaLIF(3, 0.5, 0.9), sl.LI(0.9))
    fs = sl.surrogate.FastSigmoid()
    with sl.surrogate.use(net, fs):
        assert all(m.surrogate is fs for m in list(net)[:4])
    assert all(m.surrogate is None for m in list(net)[:4])
    sl.surrogate.set_surrogate(net, fs)
    assert all(m.surrogate is fs for m in list(net)[:4])


# --------------------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------------------
def test_bad_input_is_refused_by_name():
    with pytest.raises(TypeError, match="learnable threshold"):
        sl.CubaLIF(0.5, 0.9, threshold=nn.Parameter(torch.tensor(1.0)))
    with pytest.raises(ValueError, match=r"alpha must lie in \[0, 1\]"):
        sl.CubaLIF(1.5, 0.9)
    with pytest.raises(ValueError, match=r"beta must lie in \[0, 1\]"):
        sl.LIF(torch.tensor([0.5, -0.1]))
    with pytest.raises(ValueError, match="reset must be"):
        sl.RLIF(4, 0.9, reset="hold")
    with pytest.raises(ValueError, match="size must be a positive int"):
        sl.RLIF(0, 0.9)
    with pytest.raises(ValueError, match="expects features of size 4"):
        sl.RLIF(4, 0.9)(torch.zeros(3, 2, 5))
    with pytest.raises(ValueError, match="time-first"):
        sl.LI(0.9)(torch.zeros(2, 5))
    spec = sl.LIF(0.9, learn_beta=True).spec  # the one description: the learnable β as its current value
    assert spec.kind == "LIF" and spec.learn_beta and isinstance(spec.beta, torch.Tensor)


def test_export_writes_per_neuron_beta():
    """NIR parameters are per-neuron arrays: a per-neuron β is a per-neuron τ (round trips are in
    tests/test_nir_family.py)."""
    pytest.importorskip("nir")
    beta = torch.rand(4) * 0.9 + 0.05
    net = nn.Sequential(nn.Linear(3, 4), sl.LIF(beta))
    tau = sl.export.to_nir(net, input_shape=(3,), dt=1e-3).nodes["1"].tau
    np.testing.assert_allclose(tau, 1e-3 / (1 - beta.double().numpy()), rtol=1e-12)


def test_composites_map_the_family_to_the_temporal_rule():
    net = nn.Sequential(nn.Linear(3, 4), sl.RCubaLIF(4, 0.5, 0.9), nn.Linear(4, 2), sl.LI(0.9))
    rules = sl.LFP(net, "zplus-zminus").rules()
    assert isinstance(rules["1"], sl.rules.MembraneSplit) and isinstance(rules["3"], sl.rules.MembraneSplit)
    assert isinstance(rules["1.recurrent"], sl.rules.ZPlusZMinus)


@pytest.mark.parametrize("kind", ["CubaLIF-learn", "RCubaLIF", "RLIF-learn-nobias", "LI-learn", "LIF-per-neuron-learn"])
@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_multi_step_from_a_state_continues_exactly(kind, reset):
    """Steps 0–3 by ``step``, the rest by the multi-step forward from that state: the same spikes and,
    under LFP, the same updates as one multi-step pass (the feedback crosses the state)."""
    net = _net(kind, reset)[0]
    neuron = net[1]
    gen = torch.Generator().manual_seed(12)
    x = torch.randn(9, 3, 5, generator=gen, dtype=torch.float64) + 0.4
    r_out = torch.randn(9, 3, 7, generator=gen, dtype=torch.float64)
    whole = net(x)
    lfp = sl.LFP(net, "zplus-zminus")
    out = lfp(x)
    lfp.backward(out, r_out)
    reference_grads = {k: p.grad.clone() for k, p in net.named_parameters()}
    net.zero_grad()
    with lfp:
        state, first = None, []
        for t in range(4):
            o, state = neuron.step(net[0](x[t][None])[0], state)
            first.append(o)
        rest = neuron(net[0](x[4:]), state)
    out = torch.cat([torch.stack(first), rest])
    torch.testing.assert_close(out.detach(), whole, rtol=1e-12, atol=1e-12)  # per-step GEMMs round differently
    lfp.backward(out, r_out)
    for k, p in net.named_parameters():
        torch.testing.assert_close(p.grad, reference_grads[k], rtol=1e-9, atol=1e-12, msg=k)


@pytest.mark.parametrize("cls", ["CubaLIF", "LIF", "LI"])
def test_conv_features_lfp_matches_reference(cls):
    """The dynamics are element-wise: conv features (C, H, W) with a per-channel decay give the reference's
    numbers on the flattened features; Δβ sums over batch, steps and each channel's positions."""
    gen = torch.Generator().manual_seed(13)
    current = (torch.randn(7, 2, 3, 4, 4, generator=gen, dtype=torch.float64) + 0.5).requires_grad_(True)
    beta = torch.tensor([0.3, 0.7, 1.0], dtype=torch.float64).view(3, 1, 1)
    neuron = {
        "CubaLIF": lambda: sl.CubaLIF(0.6, beta, 0.8, learn_beta=True),
        "LIF": lambda: sl.LIF(beta, 0.8, learn_beta=True),
        "LI": lambda: sl.LI(beta, learn_beta=True),
    }[cls]().double()
    lfp = sl.LFP(neuron, "epsilon")
    out = lfp(current)
    r_out = torch.randn(out.shape, generator=gen, dtype=torch.float64)
    lfp.backward(out, r_out)
    flat = current.detach().flatten(2)
    _, r_I, _, d_beta, _, _ = reference(
        flat,
        r_out.flatten(2),
        alpha=0.6,
        beta=beta.expand(3, 4, 4).reshape(-1),
        theta=0.8,
        reset="subtract",
        synaptic=cls == "CubaLIF",
        spiking=cls != "LI",
    )
    torch.testing.assert_close(current.grad, r_I.view_as(current), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(neuron.beta.grad, -d_beta.view(2, 3, 4, 4).sum_to_size(3, 1, 1), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("carry", ["signed", "abs"])
@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
def test_family_core_equals_the_lif_functions(carry, reset):
    """A per-neuron β that is the same everywhere runs the shared core; it must give the dedicated LIF
    Functions' feedback, for both carry variants of MembraneSplit."""
    torch.manual_seed(14)
    a = nn.Sequential(nn.Linear(5, 6), sl.LIF(0.75, 0.6, reset)).double()
    b = nn.Sequential(nn.Linear(5, 6), sl.LIF(torch.full((6,), 0.75, dtype=torch.float64), 0.6, reset)).double()
    b[0].load_state_dict(a[0].state_dict())
    composite = sl.composites.Mixed(
        [sl.composites.LayerMap([(sl.LIF, sl.rules.MembraneSplit(carry=carry))]), sl.composites.get("epsilon")]
    )
    x = torch.randn(12, 3, 5, dtype=torch.float64) + 0.3
    r = torch.randn(12, 3, 6, dtype=torch.float64)
    outs = []
    for net in (a, b):
        lfp = sl.LFP(net, composite)
        out = lfp(x)
        lfp.backward(out, r)
        outs.append(out)
    assert torch.equal(outs[0], outs[1]) and outs[0].sum() > 0
    torch.testing.assert_close(a[0].weight.grad, b[0].weight.grad, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(a[0].bias.grad, b[0].bias.grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("over", ["mean", "max"])
def test_readout_feedback_spreads_over_steps_by_the_reductions_rule(over):
    gen = torch.Generator().manual_seed(15)
    u = torch.randn(6, 3, 4, generator=gen, dtype=torch.float64)
    u[2, 0, 1] = u[4, 0, 1] = 10.0  # a tie for the max: the first step wins
    y = torch.tensor([1, 0, 3])
    r = sl.feedback.Readout(sl.feedback.Sigmoid(), over=over)(u, y)
    expected = torch.zeros_like(u)
    for b in range(3):
        for c in range(4):
            col = u[:, b, c]
            m = col.mean() if over == "mean" else col.max()
            y_c = 1.0 if y[b] == c else 0.0
            r_m = m * (y_c - 1 / (1 + torch.exp(-m)))  # Eq. 7 on the reduction
            if over == "mean":
                stab = m + 1e-6 * (1.0 if m >= 0 else -1.0)
                expected[:, b, c] = col / 6 / stab * r_m
            else:
                first = int(torch.nonzero(col == m)[0])
                expected[first, b, c] = r_m
    torch.testing.assert_close(r, expected, rtol=1e-12, atol=1e-14)
    if over == "mean":  # the ε-rule of a sum conserves the feedback (up to ε)
        torch.testing.assert_close(r.sum(0), sl.feedback.Sigmoid()(u.mean(0), y), rtol=1e-4, atol=1e-8)


def test_li_readout_trains_by_lfp():
    torch.manual_seed(16)
    net = nn.Sequential(nn.Linear(4, 8), sl.LIF(0.9, 0.5), nn.Linear(8, 3), sl.LI(0.8, learn_beta=True))
    lfp = sl.LFP(net, "epsilon")
    out = lfp(torch.rand(10, 5, 4) * 2)
    lfp.backward(out, sl.feedback.Readout()(out, torch.tensor([0, 1, 2, 0, 1])))
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
    with pytest.raises(TypeError, match="per-sample feedback"):
        sl.feedback.Readout(sl.feedback.SpikeSequence())
