"""Every rule against its float64 restatement (tests/reference.py), for input feedback and updates."""

from __future__ import annotations

import zlib

import pytest
import torch
from reference import connection_rule, conv2d_reference, linear_reference
from torch import nn

import spikelfp as sl
from spikelfp import rules

RULES = {
    "zero": lambda: rules.Zero(),
    "epsilon": lambda: rules.Epsilon(1e-6),
    "zplus-zminus": lambda: rules.ZPlusZMinus(1e-6),
    "zplus-zminus-full": lambda: rules.ZPlusZMinus(0.0),
    "alpha-beta": lambda: rules.AlphaBeta(2.0, 1.0),
}
ATOL = 1e-10


def rtol_for(name: str) -> float:
    # Where z_j is small the values grow like 1/z_j (up to ~1e3 for ε, unbounded for LFP-0), and two
    # float64 summation orders differ by a few ulps *relative* to them; atol alone cannot express that.
    # Measured over 300 random seeds: ≤ 6e-13 (LFP-0), ≤ 5e-12 (ε), 0 beyond atol for the bounded rules.
    return 1e-10 if name in ("zero", "epsilon") else 1e-12


def seed_of(*key) -> torch.Generator:
    """A generator seeded stably from the test's parameters (str hashes are salted per process)."""
    return torch.Generator().manual_seed(zlib.crc32(repr(key).encode()))


def run_engine(layer: nn.Module, rule: rules.Rule, x: torch.Tensor, r: torch.Tensor):
    composite = sl.composites.LayerMap([((nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d), rule)])
    x = x.clone().requires_grad_(True)
    lfp = sl.LFP(layer, composite)
    out = lfp(x)
    lfp.backward(out, r)
    db = None if layer.bias is None else -layer.bias.grad
    return x.grad, -layer.weight.grad, db


def make_input(shape, sign, gen):
    x = torch.randn(*shape, generator=gen, dtype=torch.float64)
    if sign == "positive":
        x = x.abs()
    x[..., 0] = 0.0  # exact zeros are part of the input domain
    return x


@pytest.mark.parametrize("name", list(RULES))
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("sign", ["mixed", "positive"])
def test_linear_matches_reference(name, bias, sign):
    gen = seed_of(name, bias, sign)
    layer = nn.Linear(7, 5, bias=bias).double()
    x = make_input((6, 7), sign, gen)
    r = torch.randn(6, 5, generator=gen, dtype=torch.float64)
    got = run_engine(layer, RULES[name](), x, r)
    ref_name = "zplus-zminus" if name == "zplus-zminus" else name
    kw = {"eps": 0.0} if name == "zplus-zminus-full" else {}
    want = linear_reference(ref_name, x, layer.weight.detach(), None if not bias else layer.bias.detach(), r, **kw)
    for g, w in zip(got, want):
        if w is None:
            assert g is None
        else:
            torch.testing.assert_close(g, w, rtol=rtol_for(name), atol=ATOL)


@pytest.mark.parametrize("name", list(RULES))
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("sign", ["mixed", "positive"])
@pytest.mark.parametrize("stride,padding", [(1, 0), (2, 1)])
def test_conv2d_matches_reference(name, bias, sign, stride, padding):
    gen = seed_of(name, bias, sign, stride)
    layer = nn.Conv2d(3, 4, 3, stride=stride, padding=padding, bias=bias).double()
    x = make_input((2, 3, 6, 6), sign, gen)
    out_shape = layer(x).shape
    r = torch.randn(*out_shape, generator=gen, dtype=torch.float64)
    got = run_engine(layer, RULES[name](), x, r)
    kw = {"eps": 0.0} if name == "zplus-zminus-full" else {}
    want = conv2d_reference(
        name,
        x,
        layer.weight.detach(),
        layer.bias.detach() if bias else None,
        r,
        stride=stride,
        padding=padding,
        **kw,
    )
    for g, w in zip(got, want):
        if w is None:
            assert g is None
        else:
            torch.testing.assert_close(g, w, rtol=rtol_for(name), atol=ATOL)


@pytest.mark.parametrize("name", ["epsilon", "zplus-zminus", "alpha-beta"])
def test_conv1d_equals_conv2d_of_height_one(name):
    gen = torch.Generator().manual_seed(3)
    c1 = nn.Conv1d(2, 3, 3, padding=1).double()
    x = make_input((2, 2, 9), "mixed", gen)
    r = torch.randn(2, 3, 9, generator=gen, dtype=torch.float64)
    got = run_engine(c1, RULES[name](), x, r)
    want = conv2d_reference(
        name, x[:, :, None], c1.weight.detach()[:, :, None], c1.bias.detach(), r[:, :, None], padding=(0, 1)
    )
    torch.testing.assert_close(got[0], want[0][:, :, 0], rtol=1e-12, atol=ATOL)
    torch.testing.assert_close(got[1], want[1][:, :, 0], rtol=1e-12, atol=ATOL)
    torch.testing.assert_close(got[2], want[2], rtol=1e-12, atol=ATOL)


@pytest.mark.parametrize("name", ["epsilon", "zplus-zminus", "alpha-beta"])
def test_conv3d_matches_patch_reference(name):
    gen = torch.Generator().manual_seed(4)
    layer = nn.Conv3d(2, 3, 2).double()
    x = make_input((2, 2, 3, 4, 4), "mixed", gen)
    r = torch.randn(*layer(x).shape, generator=gen, dtype=torch.float64)
    got = run_engine(layer, RULES[name](), x, r)
    # explicit patches: (B, C, D', H', W', k, k, k) -> rows (B·L, C·k³)
    xr = x.detach()
    p = xr.unfold(2, 2, 1).unfold(3, 2, 1).unfold(4, 2, 1)  # (B, C, D', H', W', k, k, k)
    B, C, Dp, Hp, Wp = p.shape[:5]
    a = p.permute(0, 2, 3, 4, 1, 5, 6, 7).reshape(B * Dp * Hp * Wp, -1)
    Wm = layer.weight.detach().reshape(3, -1)
    Z = a[:, :, None] * Wm.t()[None]
    U = a[:, :, None] * Wm.abs().t()[None]
    rr = r.permute(0, 2, 3, 4, 1).reshape(-1, 3)
    R, D, Db = connection_rule(name, Z, U, layer.bias.detach(), rr)
    dW = D.sum(0).t().reshape(layer.weight.shape)
    torch.testing.assert_close(got[1], dW, rtol=1e-12, atol=ATOL)
    torch.testing.assert_close(got[2], Db.sum(0), rtol=1e-12, atol=ATOL)
    # input feedback: scatter the patch feedback back to the input positions
    r_patch = R.sum(2).reshape(B, Dp, Hp, Wp, C, 2, 2, 2)
    r_in = torch.zeros_like(xr)
    for d in range(Dp):
        for h in range(Hp):
            for w in range(Wp):
                r_in[:, :, d : d + 2, h : h + 2, w : w + 2] += r_patch[:, d, h, w]
    torch.testing.assert_close(got[0], r_in, rtol=1e-12, atol=ATOL)


def test_linear_time_first_input_equals_flattened():
    gen = torch.Generator().manual_seed(5)
    layer = nn.Linear(4, 3).double()
    x = make_input((5, 2, 4), "mixed", gen)
    r = torch.randn(5, 2, 3, generator=gen, dtype=torch.float64)
    got = run_engine(layer, rules.Epsilon(), x, r)
    want = linear_reference("epsilon", x.reshape(10, 4), layer.weight.detach(), layer.bias.detach(), r.reshape(10, 3))
    torch.testing.assert_close(got[0], want[0].reshape(5, 2, 4), rtol=1e-12, atol=ATOL)
    torch.testing.assert_close(got[1], want[1], rtol=1e-12, atol=ATOL)


def test_epsilon_conserves_feedback_without_bias():
    gen = torch.Generator().manual_seed(6)
    layer = nn.Linear(20, 8, bias=False).double()
    x = make_input((4, 20), "positive", gen) + 0.1
    r = torch.randn(4, 8, generator=gen, dtype=torch.float64)
    r_in, _, _ = run_engine(layer, rules.Epsilon(1e-12), x, r)
    torch.testing.assert_close(r_in.sum(1), r.sum(1), rtol=1e-9, atol=1e-9)


def test_conv_epsilon_conserves_feedback_without_bias():
    gen = torch.Generator().manual_seed(7)
    layer = nn.Conv2d(2, 3, 3, bias=False).double()
    x = make_input((2, 2, 7, 7), "positive", gen) + 0.1
    r = torch.randn(2, 3, 5, 5, generator=gen, dtype=torch.float64)
    r_in, _, _ = run_engine(layer, rules.Epsilon(1e-12), x, r)
    torch.testing.assert_close(r_in.sum((1, 2, 3)), r.sum((1, 2, 3)), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("bias", [True, False])
def test_zplus_zminus_feedback_is_bounded(bias):
    gen = torch.Generator().manual_seed(8)
    layer = nn.Linear(30, 10, bias=bias).double()
    x = make_input((16, 30), "mixed", gen)
    r = torch.randn(16, 10, generator=gen, dtype=torch.float64) * 10
    # bound per output neuron: Σ_i |r_ij| ≤ |r_j|, so per sample Σ_i |r_i| ≤ Σ_j |r_j|
    r_in, _, _ = run_engine(layer, rules.ZPlusZMinus(), x, r)
    assert (r_in.abs().sum(1) <= r.abs().sum(1) + 1e-12).all()
    # and per neuron: one output at a time
    for j in range(3):
        layer.zero_grad()
        rj = torch.zeros_like(r)
        rj[:, j] = r[:, j]
        r_in_j, _, _ = run_engine(layer, rules.ZPlusZMinus(), x, rj)
        assert (r_in_j.abs().sum(1) <= r[:, j].abs() + 1e-12).all()


def test_alpha_beta_sum_is_conserved_in_estimate():
    # With α−β=1 and no bias, Σ_i r_ij = (α − β)·sign(z_j)·r_j per neuron (before stabilisation).
    gen = torch.Generator().manual_seed(9)
    layer = nn.Linear(12, 6, bias=False).double()
    x = make_input((5, 12), "mixed", gen)
    r = torch.randn(5, 6, generator=gen, dtype=torch.float64)
    r_in, _, _ = run_engine(layer, rules.AlphaBeta(2.0, 1.0, epsilon=0.0), x, r)
    z = x @ layer.weight.detach().t()
    sign = torch.where(z >= 0, 1.0, -1.0).double()
    torch.testing.assert_close(r_in.sum(1), (sign * r).sum(1), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", list(RULES))
@pytest.mark.parametrize("layer_kind", ["linear", "conv"])
def test_dead_neurons_give_zero_not_nan(name, layer_kind):
    if layer_kind == "linear":
        layer = nn.Linear(6, 4, bias=False).double()
        x = torch.rand(3, 6, dtype=torch.float64)
        x[:, :3] = 0.0
        with torch.no_grad():
            layer.weight[1].zero_()  # neuron 1 receives nothing
            layer.weight[2, 3:] = 0.0  # neuron 2 only sees zero inputs
        r = torch.ones(3, 4, dtype=torch.float64)
        dead = [1, 2]
    else:
        layer = nn.Conv2d(2, 3, 2, bias=False).double()
        x = torch.rand(2, 2, 4, 4, dtype=torch.float64)
        with torch.no_grad():
            layer.weight[1].zero_()
        r = torch.ones(2, 3, 3, 3, dtype=torch.float64)
        dead = [1]
    r_in, dw, _ = run_engine(layer, RULES[name](), x, r)
    assert torch.isfinite(r_in).all() and torch.isfinite(dw).all()
    for j in dead:
        assert (dw[j] == 0).all()
    # feedback from dead neurons only: zero everywhere
    r_dead = torch.zeros_like(r)
    r_dead[:, dead] = 1.0
    layer.zero_grad()
    r_in_dead, dw_dead, _ = run_engine(layer, RULES[name](), x, r_dead)
    assert (r_in_dead == 0).all() and (dw_dead == 0).all()


def test_all_zero_input_with_zero_epsilon_is_finite():
    layer = nn.Linear(4, 3, bias=False).double()
    x = torch.zeros(2, 4, dtype=torch.float64)
    for rule in [rules.Zero(), rules.Epsilon(0.0), rules.ZPlusZMinus(0.0), rules.AlphaBeta(epsilon=0.0)]:
        layer.zero_grad()
        r_in, dw, _ = run_engine(layer, rule, x, torch.ones(2, 3, dtype=torch.float64))
        assert (r_in == 0).all() and (dw == 0).all()


def test_zero_weight_gets_no_update():
    layer = nn.Linear(3, 2).double()
    with torch.no_grad():
        layer.weight[0, 1] = 0.0
    x = torch.rand(4, 3, dtype=torch.float64) + 0.5
    _, dw, _ = run_engine(layer, rules.Epsilon(), x, torch.ones(4, 2, dtype=torch.float64))
    assert dw[0, 1] == 0 and (dw[0, [0, 2]] != 0).all()


def test_updates_add_up_over_the_batch():
    gen = torch.Generator().manual_seed(10)
    layer = nn.Linear(5, 3).double()
    x = make_input((4, 5), "mixed", gen)
    r = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    for rule in RULES.values():
        layer.zero_grad()
        _, dw_all, db_all = run_engine(layer, rule(), x, r)
        dw_sum = torch.zeros_like(dw_all)
        db_sum = torch.zeros_like(db_all)
        for n in range(4):
            layer.zero_grad()
            _, dw, db = run_engine(layer, rule(), x[n : n + 1], r[n : n + 1])
            dw_sum += dw
            db_sum += db
        torch.testing.assert_close(dw_all, dw_sum, rtol=1e-12, atol=ATOL)
        torch.testing.assert_close(db_all, db_sum, rtol=1e-12, atol=ATOL)


def test_alpha_beta_validates_conservation():
    with pytest.raises(ValueError, match="alpha - beta = 1"):
        rules.AlphaBeta(2.0, 2.0)
    rule = rules.AlphaBeta(1.5, 1.0, conserve=False)
    assert rule.alpha == 1.5
    with pytest.raises(ValueError):
        rules.Epsilon(-1.0)
