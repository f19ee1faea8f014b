"""Property tests (hypothesis) for every rule: random shapes, signs, zeros, tiny and huge magnitudes."""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import spikelfp as sl
from spikelfp import rules

RULES = {
    "zero": rules.Zero,
    "epsilon": rules.Epsilon,
    "zplus-zminus": rules.ZPlusZMinus,
    "alpha2-beta1": lambda: rules.AlphaBeta(2.0, 1.0),
}

# magnitudes from 1e-20 to 1e20 in float64, either sign, and exact zeros
value = st.one_of(
    st.just(0.0),
    st.builds(
        lambda m, e, s: s * m * 10.0**e, st.floats(1.0, 9.99), st.integers(-20, 20), st.sampled_from([-1.0, 1.0])
    ),
)


@st.composite
def layer_case(draw, min_batch=1):
    batch = draw(st.integers(min_batch, 4))
    n_in, n_out = draw(st.integers(1, 6)), draw(st.integers(1, 5))
    bias = draw(st.booleans())

    def tensor(*shape):
        return torch.tensor(
            draw(st.lists(value, min_size=int(torch.Size(shape).numel()), max_size=int(torch.Size(shape).numel()))),
            dtype=torch.float64,
        ).reshape(shape)

    layer = nn.Linear(n_in, n_out, bias=bias).double()
    with torch.no_grad():
        layer.weight.copy_(tensor(n_out, n_in))
        if bias:
            layer.bias.copy_(tensor(n_out))
    return layer, tensor(batch, n_in), tensor(batch, n_out)


def run(layer, rule, x, r):
    layer.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_(True)
    lfp = sl.LFP(layer, sl.composites.LayerMap([(nn.Linear, rule)]), check_finite=False)
    out = lfp(x)
    lfp.backward(out, r)
    db = None if layer.bias is None else -layer.bias.grad
    return x.grad, -layer.weight.grad, db


@given(layer_case(), st.sampled_from(list(RULES)))
def test_feedback_and_updates_are_finite(case, name):
    layer, x, r = case
    r_in, dw, db = run(layer, RULES[name](), x, r)
    assert torch.isfinite(r_in).all() and torch.isfinite(dw).all()
    assert db is None or torch.isfinite(db).all()


@given(layer_case())
def test_epsilon_conservation(case):
    """Σ_i r_i + Σ_j b_j s_j = Σ_j z_j s_j with s = r/stab(z): exact up to rounding (→ Σ r as ε → 0)."""
    layer, x, r = case
    r_in, _, _ = run(layer, rules.Epsilon(), x, r)
    z = layer(x).detach()
    s = r / (z + 1e-6 * torch.where(z >= 0, 1.0, -1.0).to(z.dtype))  # float64 ε: where() with scalars is float32
    b = torch.zeros_like(z) if layer.bias is None else layer.bias.detach().expand_as(z)
    lhs = r_in.sum(1) + (b * s).sum(1)
    rhs = (z * s).sum(1)
    scale = (x.abs() @ layer.weight.detach().abs().t() * s.abs()).sum(1) + (b * s).abs().sum(1)
    assert ((lhs - rhs).abs() <= 1e-9 * scale + 1e-300).all()


@given(layer_case())
def test_zplus_zminus_bound(case):
    """Per neuron Σ_i |r_ij| ≤ |r_j|, hence per sample Σ_i |r_i| ≤ Σ_j |r_j|."""
    layer, x, r = case
    r_in, _, _ = run(layer, rules.ZPlusZMinus(), x, r)
    assert (r_in.abs().sum(1) <= r.abs().sum(1) * (1 + 1e-12)).all()
    for j in range(r.shape[1]):
        only = torch.zeros_like(r)
        only[:, j] = r[:, j]
        r_j, _, _ = run(layer, rules.ZPlusZMinus(), x, only)
        assert (r_j.abs().sum(1) <= r[:, j].abs() * (1 + 1e-12)).all()


@given(layer_case(), st.sampled_from([(2.0, 1.0), (1.0, 0.0), (3.0, 2.0)]))
def test_alpha_beta_sums(case, ab):
    """Σ_i r_ij = sign(z_j) r_j (α z⁺_j/stab(z⁺_j) − β z⁻_j/stab(z⁻_j)), inputs only (bias shares excluded)."""
    layer, x, r = case
    alpha, beta = ab
    r_in, _, _ = run(layer, rules.AlphaBeta(alpha, beta), x, r)
    w = layer.weight.detach()
    Z = x[:, :, None] * w.t()[None]
    b = torch.zeros(w.shape[0], dtype=w.dtype) if layer.bias is None else layer.bias.detach()
    zp = Z.clamp(min=0).sum(1) + b.clamp(min=0)
    zn = Z.clamp(max=0).sum(1) + b.clamp(max=0)
    z = Z.sum(1) + b
    sign = torch.where(z >= 0, 1.0, -1.0).double()

    def stab(v):
        return v + 1e-6 * torch.where(v >= 0, 1.0, -1.0).to(v.dtype)

    expected = (sign * r * (alpha * Z.clamp(min=0).sum(1) / stab(zp) - beta * Z.clamp(max=0).sum(1) / stab(zn))).sum(1)
    scale = (sign * r).abs() * (
        alpha * Z.clamp(min=0).sum(1) / stab(zp).abs() + beta * Z.clamp(max=0).abs().sum(1) / stab(zn).abs()
    )
    assert ((r_in.sum(1) - expected).abs() <= 1e-9 * scale.sum(1) + 1e-300).all()


@given(layer_case(min_batch=2), st.sampled_from(list(RULES)))
def test_batch_additivity(case, name):
    layer, x, r = case
    _, dw, db = run(layer, RULES[name](), x, r)
    parts = [run(layer, RULES[name](), x[n : n + 1], r[n : n + 1]) for n in range(x.shape[0])]
    dw_sum = sum(p[1] for p in parts)
    scale = sum(p[1].abs() for p in parts)
    assert ((dw - dw_sum).abs() <= 1e-12 * scale + 1e-300).all()
    if db is not None:
        db_sum = sum(p[2] for p in parts)
        assert ((db - db_sum).abs() <= 1e-12 * sum(p[2].abs() for p in parts) + 1e-300).all()


@given(
    st.integers(1, 12),
    st.integers(1, 3),
    st.sampled_from(["subtract", "zero"]),
    st.floats(0.05, 1.0),
    st.sampled_from(["signed", "abs"]),
    st.integers(0, 2**31 - 1),
)
def test_spiking_rule_single_step_equals_multi_step(steps, batch, reset, beta, carry, seed):
    gen = torch.Generator().manual_seed(seed)
    current = (torch.randn(steps, batch, 5, generator=gen, dtype=torch.float64) * 2).requires_grad_(True)
    feedback = torch.randn(steps, batch, 5, generator=gen, dtype=torch.float64)
    lif = sl.LIF(beta, 1.0, reset)
    composite = sl.composites.LayerMap([(sl.LIF, rules.MembraneSplit(carry=carry))])
    with sl.LFP(lif, composite) as lfp:
        multi = lif(current)
    lfp.backward(multi, feedback)
    want = current.grad.clone()
    current.grad = None
    with sl.LFP(lif, composite) as lfp:
        state, outs = None, []
        for t in range(steps):
            s, state = lif.step(current[t], state)
            outs.append(s)
        single = torch.stack(outs)
    lfp.backward(single, feedback)
    assert torch.equal(single, multi)
    torch.testing.assert_close(current.grad, want, rtol=1e-12, atol=1e-12)
