"""snnTorch's neurons of the family trained by LFP in their own step loops: updates equal the spikelfp neuron's.

Each test runs the same two-layer net twice: once with snnTorch neurons in a user's step loop (LFP attached,
snnTorch's call signatures and states), once with the spikelfp neuron of the same dynamics (multi-step), with the
same weights, and compares every parameter's update (``p.grad = −Δp``) and the spikes. The spikes are also
compared with snnTorch's own forward without LFP attached.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import spikelfp as sl

snn = pytest.importorskip("snntorch", reason="snntorch (extra 'snn') is not installed")

T, B, H = 8, 4, 6
ALPHA, BETA = 0.5, 0.75  # exactly representable: snnTorch keeps its decays as float32 tensors
Y = torch.tensor([0, 1, 2, 0])


def heaviside(x):
    """snnTorch's Heaviside in the input's dtype (snnTorch's default returns float32 spikes, which its own
    recurrent layer cannot take in a float64 net); LFP ignores a neuron's ``spike_grad``."""
    return (x > 0).to(x.dtype)


SG = {"spike_grad": heaviside}


def layers(seed=0):
    torch.manual_seed(seed)
    fc1, fc2 = nn.Linear(5, H).double(), nn.Linear(H, 3).double()
    with torch.no_grad():
        fc1.weight.mul_(4)
        fc2.weight.mul_(3)
    return fc1, fc2


def call(layer, kind, x, state):
    """One step of a snnTorch neuron with explicit states: ``(spikes, state)``; ``state`` None at the first step.

    ``kind``: ``"leaky"`` (``mem``), ``"synaptic"`` (``syn, mem``) or ``"recurrent"`` (``spk, [syn,] mem``).
    """
    out = layer(x, *state) if state is not None else layer(x)
    if kind == "recurrent":
        return out[0], out
    return out[0], out[1:]


def run_snntorch(fc1, l1, fc2, l2, x, kinds, init_hidden):
    """The user's own step loop over snnTorch neurons (``kinds``: the two neurons' state conventions)."""
    if init_hidden:
        for layer in (l1, l2):  # (snntorch.utils.reset leaves RSynaptic's spk of the previous run in place)
            layer.reset_mem()
        outs = []
        for t in range(T):
            out = l2(fc2(l1(fc1(x[t]))))
            outs.append(out[0] if isinstance(out, tuple) else out)
        return torch.stack(outs)
    s1 = s2 = None
    outs = []
    for t in range(T):
        a, s1 = call(l1, kinds[0], fc1(x[t]), s1)
        o, s2 = call(l2, kinds[1], fc2(a), s2)
        outs.append(o)
    return torch.stack(outs)


def train_step(net, forward, composite):
    net.zero_grad(set_to_none=True)
    with sl.LFP(net, composite) as lfp:
        out = forward()
    lfp.backward(out, sl.feedback.SpikeSequence()(out, Y))
    return out, {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}


def reference(fc1, n1, fc2, n2, x, composite):
    """The spikelfp net (multi-step neurons): its output and updates by parameter name (the same names as the
    snnTorch net's: ``alpha``, ``beta``, ``recurrent.weight``, ``recurrent.bias``)."""
    ref = nn.ModuleList([fc1, n1, fc2, n2])
    ref.zero_grad(set_to_none=True)
    seq = nn.Sequential(*ref)
    lfp = sl.LFP(seq, composite)
    out = lfp(x)
    lfp.backward(out, sl.feedback.SpikeSequence()(out, Y))
    return out, {n: p.grad.clone() for n, p in ref.named_parameters()}


def compare(got_out, got, want_out, want, plain_out):
    assert torch.equal(got_out, want_out) and got_out.sum() > 0
    assert torch.equal(got_out, plain_out)  # spikes unchanged with and without LFP attached
    assert sorted(got) == sorted(want)
    for name, w in want.items():
        assert (w != 0).any(), name
        torch.testing.assert_close(got[name], w, rtol=1e-6, atol=1e-12, msg=lambda m, n=name: f"{n}: {m}")


def check(fc1, l1, fc2, l2, n1, n2, kinds, init_hidden, composite="epsilon"):
    x = torch.rand(T, B, 5, dtype=torch.float64)
    net = nn.ModuleList([fc1, l1, fc2, l2])
    with torch.no_grad():
        plain = run_snntorch(fc1, l1, fc2, l2, x, kinds, init_hidden)
    out, got = train_step(net, lambda: run_snntorch(fc1, l1, fc2, l2, x, kinds, init_hidden), composite)
    want_out, want = reference(fc1, n1, fc2, n2, x, composite)
    compare(out, got, want_out, want, plain)
    assert all("forward" not in m.__dict__ for m in net.modules())  # detached again


@pytest.mark.parametrize("reset", ["subtract", "none"])
@pytest.mark.parametrize("init_hidden", [False, True])
@pytest.mark.parametrize("composite", ["epsilon", "zplus-zminus"])
def test_synaptic_updates_equal_cubalif(reset, init_hidden, composite):
    fc1, fc2 = layers()
    kw = {"alpha": ALPHA, "beta": BETA, "reset_mechanism": reset, "init_hidden": init_hidden}
    l1, l2 = snn.Synaptic(**kw, **SG), snn.Synaptic(**kw, output=init_hidden, **SG)
    n1, n2 = sl.CubaLIF(ALPHA, BETA, 1.0, reset), sl.CubaLIF(ALPHA, BETA, 1.0, reset)
    check(fc1, l1, fc2, l2, n1, n2, ("synaptic", "synaptic"), init_hidden, composite)


@pytest.mark.parametrize("init_hidden", [False, True])
def test_synaptic_learnable_per_neuron_decays_receive_their_updates(init_hidden):
    fc1, fc2 = layers(1)
    alpha = torch.tensor([0.5, 0.25, 0.75, 0.5, 0.125, 1.0], dtype=torch.float64)
    beta = torch.tensor([0.75, 0.5, 0.875, 0.25, 0.75, 0.5], dtype=torch.float64)
    kw = {"learn_alpha": True, "learn_beta": True, "init_hidden": init_hidden, **SG}
    l1 = snn.Synaptic(alpha=alpha.clone(), beta=beta.clone(), **kw)
    l2 = snn.Synaptic(alpha=ALPHA, beta=BETA, **kw, output=init_hidden)
    n1 = sl.CubaLIF(alpha.clone(), beta.clone(), learn_alpha=True, learn_beta=True).double()
    n2 = sl.CubaLIF(ALPHA, BETA, learn_alpha=True, learn_beta=True).double()
    l1.double(), l2.double()
    check(fc1, l1, fc2, l2, n1, n2, ("synaptic", "synaptic"), init_hidden)


@pytest.mark.parametrize(
    "options",
    [
        {"learn_beta": True},
        {"per_neuron": True},
        {"per_neuron": True, "learn_beta": True, "reset": "zero"},
        {"reset": "none"},
    ],
    ids=["learn_beta", "per-neuron", "per-neuron-learn-zero", "reset-none"],
)
@pytest.mark.parametrize("init_hidden", [False, True])
def test_leaky_extensions_equal_lif(options, init_hidden):
    fc1, fc2 = layers(2)
    learn = options.get("learn_beta", False)
    reset = options.get("reset", "subtract")
    b1 = torch.tensor([0.75, 0.5, 0.875, 0.25, 0.75, 1.0], dtype=torch.float64) if "per_neuron" in options else BETA
    one = (lambda b: b.clone()) if isinstance(b1, torch.Tensor) else (lambda b: b)
    kw = {"learn_beta": learn, "reset_mechanism": reset, "init_hidden": init_hidden, **SG}
    l1 = snn.Leaky(beta=one(b1), **kw)
    l2 = snn.Leaky(beta=BETA, **kw, output=init_hidden)
    l1.double(), l2.double()
    n1 = sl.LIF(one(b1), 1.0, reset, learn_beta=learn).double()
    n2 = sl.LIF(BETA, 1.0, reset, learn_beta=learn).double()
    check(fc1, l1, fc2, l2, n1, n2, ("leaky", "leaky"), init_hidden)


@pytest.mark.parametrize("synaptic", [False, True], ids=["RLeaky", "RSynaptic"])
@pytest.mark.parametrize("init_hidden", [False, True])
@pytest.mark.parametrize("composite", ["epsilon", "zplus-zminus"])
def test_recurrent_updates_equal_rlif(synaptic, init_hidden, composite):
    fc1, fc2 = layers(3)
    kw = {"beta": BETA, "init_hidden": init_hidden, "linear_features": H, **SG}
    if synaptic:
        l1 = snn.RSynaptic(alpha=ALPHA, **kw).double()
        n1 = sl.RCubaLIF(H, ALPHA, BETA).double()
    else:
        l1 = snn.RLeaky(**kw).double()
        n1 = sl.RLIF(H, BETA).double()
    with torch.no_grad():
        l1.recurrent.weight.mul_(3)
        n1.recurrent.weight.copy_(l1.recurrent.weight)
        n1.recurrent.bias.copy_(l1.recurrent.bias)
    l2 = snn.Leaky(beta=BETA, init_hidden=init_hidden, output=init_hidden, **SG)
    n2 = sl.LIF(BETA)
    # snnTorch's RLeaky registers its recurrent Linear after its own buffers: the same parameter order as RLIF
    check(fc1, l1, fc2, l2, n1, n2, ("recurrent", "leaky"), init_hidden, composite)


def test_recurrent_layer_follows_the_composites_rule():
    """The recurrent Linear's update differs between ε and z⁺z⁻ (it is the composite's rule, not a fixed one)."""
    fc1, fc2 = layers(3)
    grads = []
    l1 = snn.RLeaky(beta=BETA, linear_features=H, **SG).double()
    with torch.no_grad():
        nn.init.uniform_(l1.recurrent.weight, -2, 2)
    l2 = snn.Leaky(beta=BETA, **SG)
    x = torch.rand(T, B, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    net = nn.ModuleList([fc1, l1, fc2, l2])
    for composite in ("epsilon", "zplus-zminus"):
        _, g = train_step(net, lambda: run_snntorch(fc1, l1, fc2, l2, x, ("recurrent", "leaky"), False), composite)
        grads.append(g["1.recurrent.weight"])
    assert not torch.allclose(grads[0], grads[1])


def test_one_to_one_equals_a_diagonal_all_to_all():
    """The refused ``all_to_all=False`` has an exact replacement: ``linear_features`` with ``diag(V)`` and a zero
    bias (same spikes; zero weights get no LFP update, so the layer stays diagonal under the composite's rule)."""
    fc1, fc2 = layers(11)
    v = torch.tensor([0.5, -1.0, 2.0, 0.25, -0.5, 1.5], dtype=torch.float64)
    one = snn.RLeaky(beta=BETA, all_to_all=False, V=v.clone(), **SG).double()
    full = snn.RLeaky(beta=BETA, linear_features=H, **SG).double()
    with torch.no_grad():
        full.recurrent.weight.copy_(torch.diag(v))
        full.recurrent.bias.zero_()
    l2 = snn.Leaky(beta=BETA, **SG)
    x = torch.rand(T, B, 5, dtype=torch.float64)
    with torch.no_grad():
        want = run_snntorch(fc1, one, fc2, l2, x, ("recurrent", "leaky"), False)
    net = nn.ModuleList([fc1, full, fc2, l2])
    out, got = train_step(net, lambda: run_snntorch(fc1, full, fc2, l2, x, ("recurrent", "leaky"), False), "epsilon")
    assert torch.equal(out, want) and out.sum() > 0
    off = ~torch.eye(H, dtype=torch.bool)
    assert (got["1.recurrent.weight"][off] == 0).all() and (got["1.recurrent.weight"].diagonal() != 0).any()
    assert (got["1.recurrent.bias"] == 0).all()


@pytest.mark.parametrize("init_hidden", [False, True])
def test_lapicque_equals_lif_on_the_scaled_input(init_hidden):
    fc1, fc2 = layers(4)
    with torch.no_grad():
        fc1.weight.mul_(2)
        fc2.weight.mul_(2)
    r_, c_, dt = 1.0, 2.0, 0.5  # β = 1 − dt/(RC) = 0.75, gain dt/C = 0.25 (exact)
    kw = {"R": r_, "C": c_, "time_step": dt, "reset_mechanism": "subtract", "init_hidden": init_hidden, **SG}
    l1, l2 = snn.Lapicque(**kw), snn.Lapicque(**kw, output=init_hidden)

    class Scale(nn.Module):
        def forward(self, t):
            return t * r_ * (1 / (r_ * c_)) * dt

    composite = sl.composites.Mixed(
        [sl.composites.LayerMap([(Scale, sl.rules.PassThrough())]), sl.composites.get("epsilon")]
    )
    x = torch.rand(T, B, 5, dtype=torch.float64)
    net = nn.ModuleList([fc1, l1, fc2, l2])
    with torch.no_grad():
        plain = run_snntorch(fc1, l1, fc2, l2, x, ("leaky", "leaky"), init_hidden)
    out, grads = train_step(net, lambda: run_snntorch(fc1, l1, fc2, l2, x, ("leaky", "leaky"), init_hidden), "epsilon")
    ref = nn.Sequential(fc1, Scale(), sl.LIF(0.75), fc2, Scale(), sl.LIF(0.75))
    want_out, want = reference(
        ref[0], nn.Sequential(ref[1], ref[2]), ref[3], nn.Sequential(ref[4], ref[5]), x, composite
    )
    compare(out, grads, want_out, want, plain)


@pytest.mark.parametrize("init_hidden", [False, True])
@pytest.mark.parametrize("kind", ["Leaky", "Synaptic"])
def test_same_step_zero_reset_equals_the_familys_zero_reset(kind, init_hidden):
    """``reset_delay=False`` with the zero reset: the post-reset state ``(1 − S[t])U[t]`` is carried, which is the
    family's zero reset (its delayed reset signal is never set for θ ≥ 0)."""
    fc1, fc2 = layers(5)
    kw = {"reset_mechanism": "zero", "reset_delay": False, "init_hidden": init_hidden, **SG}
    if kind == "Synaptic":
        l1, l2 = snn.Synaptic(ALPHA, BETA, **kw), snn.Synaptic(ALPHA, BETA, **kw, output=init_hidden)
        n1, n2 = sl.CubaLIF(ALPHA, BETA, 1.0, "zero"), sl.CubaLIF(ALPHA, BETA, 1.0, "zero")
        kinds = ("synaptic", "synaptic")
    else:
        l1, l2 = snn.Leaky(BETA, **kw), snn.Leaky(BETA, **kw, output=init_hidden)
        n1, n2 = sl.LIF(BETA, 1.0, "zero"), sl.LIF(BETA, 1.0, "zero")
        kinds = ("leaky", "leaky")
    check(fc1, l1, fc2, l2, n1, n2, kinds, init_hidden)


@pytest.mark.parametrize("init_hidden", [False, True])
def test_same_step_subtract_reset_follows_the_spec_in_float64(init_hidden):
    """``Leaky(reset_delay=False)``: the post-reset membrane ``U[t] − θS[t]`` is carried into ``k[t+1]`` (LFP-SPEC §9,
    "Reset variants"); an explicit float64 restatement of the split and of the ε-rule of the Linear before it."""
    torch.manual_seed(6)
    fc = nn.Linear(5, H).double()
    with torch.no_grad():
        fc.weight.mul_(6)
    theta, eps = 1.0, 1e-6
    layer = snn.Leaky(BETA, reset_delay=False, init_hidden=init_hidden, **SG)
    net = nn.ModuleList([fc, layer])
    x = torch.rand(T, B, 5, dtype=torch.float64)
    r_out = torch.randn(T, B, H, dtype=torch.float64)

    def forward():
        if init_hidden:
            layer.reset_mem()
            return torch.stack([layer(fc(x[t])) for t in range(T)])
        mem, outs = layer.reset_mem(), []
        for t in range(T):
            spk, mem = layer(fc(x[t]), mem)
            outs.append(spk)
        return torch.stack(outs)

    with torch.no_grad():
        plain = forward()
    net.zero_grad(set_to_none=True)
    with sl.LFP(net, "epsilon") as lfp:
        out = forward()
    lfp.backward(out, r_out)
    # the restatement: z = Wx + b; pre = β·post[t−1] + z − θ·H(post[t−1] − θ); S = [pre > θ];
    # post = pre − θ(S − H(post[t−1] − θ)); k[t] = β·post[t−1]; D = |z| + |k| + ε
    w, b = fc.weight.detach(), fc.bias.detach()
    z = torch.einsum("tbi,ji->tbj", x, w) + b
    post, ks, spikes = torch.zeros(B, H, dtype=torch.float64), [], []
    for t in range(T):
        signal = (post > theta).double()
        pre = BETA * post + z[t] - theta * signal
        s = (pre > theta).double()
        ks.append(BETA * post)
        spikes.append(s)
        post = pre - theta * (s - signal)
    carry, r_i = torch.zeros(B, H, dtype=torch.float64), torch.empty_like(z)
    for t in reversed(range(T)):
        r_u = r_out[t] + carry
        d = z[t].abs() + ks[t].abs() + eps
        r_i[t] = z[t] / d * r_u
        carry = ks[t] / d * r_u
    stab = z + eps * torch.where(z >= 0, 1.0, -1.0)
    share = r_i / stab
    d_w = w.abs() * torch.einsum("tbj,tbi->ji", share, x)
    d_b = b.abs() * share.sum((0, 1))
    assert torch.equal(out, torch.stack(spikes)) and torch.equal(out, plain) and out.sum() > 0
    assert any((ks[t] < 0).any() for t in range(T))  # the post-reset carry differs from the pre-reset one
    torch.testing.assert_close(fc.weight.grad, -d_w, rtol=1e-6, atol=1e-12)
    torch.testing.assert_close(fc.bias.grad, -d_b, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("init_hidden", [False, True])
def test_same_step_subtract_reset_of_synaptic_keeps_snntorchs_spikes(init_hidden):
    fc1, fc2 = layers(7)
    kw = {"reset_delay": False, "init_hidden": init_hidden, **SG}
    l1, l2 = snn.Synaptic(ALPHA, BETA, **kw), snn.Synaptic(ALPHA, BETA, **kw, output=init_hidden)
    x = torch.rand(T, B, 5, dtype=torch.float64)
    net = nn.ModuleList([fc1, l1, fc2, l2])
    with torch.no_grad():
        plain = run_snntorch(fc1, l1, fc2, l2, x, ("synaptic", "synaptic"), init_hidden)
    out, got = train_step(
        net, lambda: run_snntorch(fc1, l1, fc2, l2, x, ("synaptic", "synaptic"), init_hidden), "epsilon"
    )
    assert torch.equal(out, plain) and out.sum() > 0
    assert all(torch.isfinite(g).all() and (g != 0).any() for g in got.values())


def _raises(module, match, net_in=3):
    net = nn.Sequential(nn.Linear(net_in, 3), module)
    with pytest.raises(TypeError, match=match) as info, sl.LFP(net, "epsilon"):
        pass
    return str(info.value)


def test_refusals_are_named():
    _raises(snn.Synaptic(alpha=0.5, beta=0.5, reset_mechanism="zero"), "discarding this step's input")
    _raises(snn.Synaptic(alpha=0.5, beta=0.5, threshold=-0.5), "negative threshold")
    _raises(snn.RLeaky(beta=0.5, linear_features=3, reset_delay=False), "reset_delay=False on a recurrent neuron")
    _raises(snn.RLeaky(beta=0.5, linear_features=3, reset_mechanism="zero"), "discarding this step's input")
    _raises(snn.Lapicque(beta=0.5, reset_mechanism="zero"), "discarding this step's input")
    _raises(snn.RLeaky(beta=0.5, all_to_all=False), "one-to-one recurrence")
    _raises(snn.RSynaptic(alpha=0.5, beta=0.5, all_to_all=False), "one-to-one recurrence")
    _raises(snn.Synaptic(alpha=0.5, beta=0.5, learn_threshold=True), "learnable threshold")
    _raises(snn.RLeaky(beta=0.5, linear_features=3, learn_threshold=True), "learnable threshold")


def test_neurons_without_an_lfp_rule_are_refused_without_suggesting_passthrough():
    messages = [
        _raises(snn.Alpha(alpha=0.6, beta=0.5), "Alpha.*has no LFP rule"),
        _raises(snn.SLSTM(3, 3), "SLSTM.*has no LFP rule"),
    ]
    for m in messages:
        assert "PassThrough" not in m and "gradients" in m


# --------------------------------------------------------------------------------------------------
# norse
# --------------------------------------------------------------------------------------------------
class Scale(nn.Module):
    """The input gain ``g·x`` of norse's Euler step, as a module with a pass-through rule in the reference."""

    def __init__(self, gain):
        super().__init__()
        self.gain = gain

    def forward(self, t):
        return t * self.gain


def _norse_reference(fc1, n1, fc2, n2, x, gain1, gain2):
    composite = sl.composites.Mixed(
        [sl.composites.LayerMap([(Scale, sl.rules.PassThrough())]), sl.composites.get("epsilon")]
    )
    first = nn.Sequential(Scale(gain1), n1) if gain1 is not None else n1
    second = nn.Sequential(Scale(gain2), n2) if gain2 is not None else n2
    ref = nn.Sequential(fc1, first, fc2, second)
    ref.zero_grad(set_to_none=True)
    lfp = sl.LFP(ref, composite)
    out = lfp(x)
    lfp.backward(out, sl.feedback.SpikeSequence()(out, Y))
    return out, {n: p.grad.clone() for n, p in nn.ModuleList([fc1, n1, fc2, n2]).named_parameters()}


def _norse_check(fc1, c1, fc2, c2, n1, n2, gains, time_first=False):
    x = torch.rand(T, B, 5, dtype=torch.float64)
    net = nn.ModuleList([fc1, c1, fc2, c2])

    def run():
        if time_first:
            a, _ = c1(fc1(x))
            o, _ = c2(fc2(a))
            return o
        s1 = s2 = None
        outs = []
        for t in range(T):
            a, s1 = c1(fc1(x[t]), s1)
            o, s2 = c2(fc2(a), s2)
            outs.append(o)
        return torch.stack(outs)

    with torch.no_grad():
        plain = run()
    out, got = train_step(net, run, "epsilon")
    want_out, want = _norse_reference(fc1, n1, fc2, n2, x, *gains)
    compare(out, got, want_out, want, plain)


def _dt_params(**taus):
    return {k: torch.tensor(v, dtype=torch.float64) for k, v in taus.items()}


@pytest.mark.parametrize("time_first", [False, True], ids=["LIFCell", "LIF"])
def test_norse_lif_cell_is_cubalif_on_the_scaled_input(time_first):
    norse = pytest.importorskip("norse.torch", reason="norse (extra 'snn') is not installed")
    fc1, fc2 = layers(8)
    with torch.no_grad():
        fc1.weight.mul_(3)
        fc1.bias.add_(2)
        fc2.weight.mul_(4)
    # g = dt·τ_mem⁻¹ = 0.25, h = dt·τ_syn⁻¹ = 0.5: CubaLIF(α = 0.5, β = 0.75, zero reset) on 0.25·x
    p = norse.LIFParameters(**_dt_params(tau_syn_inv=500.0, tau_mem_inv=250.0, v_th=0.5))
    cls = norse.LIF if time_first else norse.LIFCell
    c1, c2 = cls(p, dt=0.001), cls(p, dt=0.001)
    n1, n2 = sl.CubaLIF(ALPHA, BETA, 0.5, "zero"), sl.CubaLIF(ALPHA, BETA, 0.5, "zero")
    _norse_check(fc1, c1, fc2, c2, n1, n2, (0.25, 0.25), time_first)


@pytest.mark.parametrize("time_first", [False, True], ids=["IAFCell", "IAF"])
def test_norse_iaf_cell_is_lif_with_unit_decay(time_first):
    norse = pytest.importorskip("norse.torch", reason="norse (extra 'snn') is not installed")
    fc1, fc2 = layers(9)
    p = norse.IAFParameters(v_th=torch.tensor(2.0, dtype=torch.float64))
    cls = norse.IAF if time_first else norse.IAFCell
    c1, c2 = cls(p), cls(p)
    n1, n2 = sl.LIF(1.0, 2.0, "zero"), sl.LIF(1.0, 2.0, "zero")
    _norse_check(fc1, c1, fc2, c2, n1, n2, (None, None), time_first)


def test_norse_li_box_cell_readout_is_li_on_the_scaled_input():
    norse = pytest.importorskip("norse.torch", reason="norse (extra 'snn') is not installed")
    fc1, fc2 = layers(10)
    with torch.no_grad():
        fc1.weight.mul_(3)
        fc1.bias.add_(2)
    p_lif = norse.LIFBoxParameters(**_dt_params(tau_mem_inv=250.0, v_th=1.0))
    p_li = norse.LIBoxParameters(**_dt_params(tau_mem_inv=500.0))
    c1, c2 = norse.LIFBoxCell(p_lif, dt=0.001), norse.LIBoxCell(p_li, dt=0.001)
    n1, n2 = sl.LIF(BETA, 1.0, "zero"), sl.LI(0.5)
    x = torch.rand(T, B, 5, dtype=torch.float64)
    net = nn.ModuleList([fc1, c1, fc2, c2])

    def run():
        s1 = s2 = None
        outs = []
        for t in range(T):
            a, s1 = c1(fc1(x[t]), s1)
            o, s2 = c2(fc2(a), s2)
            outs.append(o)
        return torch.stack(outs)

    with torch.no_grad():
        plain = run()
    r = torch.randn(T, B, 3, dtype=torch.float64)
    net.zero_grad(set_to_none=True)
    with sl.LFP(net, "epsilon") as lfp:
        out = run()
    lfp.backward(out, r)
    assert torch.equal(out, plain)  # norse's own membranes
    composite = sl.composites.Mixed(
        [sl.composites.LayerMap([(Scale, sl.rules.PassThrough())]), sl.composites.get("epsilon")]
    )
    ref = nn.Sequential(fc1, Scale(0.25), n1, fc2, Scale(0.5), n2)
    got = {n: p.grad.clone() for n, p in net.named_parameters()}
    ref.zero_grad(set_to_none=True)
    lfp = sl.LFP(ref, composite)
    want_out = lfp(x)
    lfp.backward(want_out, r)
    torch.testing.assert_close(out, want_out, rtol=1e-12, atol=1e-12)
    for name, p in (("0.weight", fc1.weight), ("0.bias", fc1.bias), ("2.weight", fc2.weight), ("2.bias", fc2.bias)):
        assert (p.grad != 0).any()
        torch.testing.assert_close(got[name], p.grad, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("kind", ["Synaptic", "RLeaky", "RSynaptic", "Leaky-learn"])
def test_default_float32_snntorch_models_keep_their_spikes(kind):
    """As users build them (float32, snnTorch's own spike function, init_hidden): identical spikes with LFP."""
    torch.manual_seed(12)
    fc1, fc2 = nn.Linear(5, H), nn.Linear(H, 3)
    with torch.no_grad():
        fc1.weight.mul_(4)
        fc2.weight.mul_(3)
    if kind == "Synaptic":
        l1 = snn.Synaptic(alpha=0.8, beta=0.9, init_hidden=True)
    elif kind == "RLeaky":
        l1 = snn.RLeaky(beta=0.9, linear_features=H, init_hidden=True)
    elif kind == "RSynaptic":
        l1 = snn.RSynaptic(alpha=0.8, beta=0.9, linear_features=H, init_hidden=True)
    else:
        l1 = snn.Leaky(beta=torch.full((H,), 0.9), learn_beta=True, init_hidden=True)
    l2 = snn.Leaky(beta=0.9, init_hidden=True)
    x = torch.rand(T, B, 5)
    net = nn.ModuleList([fc1, l1, fc2, l2])
    with torch.no_grad():
        plain = run_snntorch(fc1, l1, fc2, l2, x, None, True)
    out, got = train_step(net, lambda: run_snntorch(fc1, l1, fc2, l2, x, None, True), "epsilon")
    assert out.dtype == torch.float32 and torch.equal(out, plain) and out.sum() > 0
    assert sorted(got) == sorted(n for n, p in net.named_parameters() if p.requires_grad)
    assert all(torch.isfinite(g).all() for g in got.values())


# --------------------------------------------------------------------------------------------------
# norse's cells with weights inside the neuron, and its current-based integrator
# --------------------------------------------------------------------------------------------------
def _inner_net(seed=11):
    torch.manual_seed(seed)
    fc2 = nn.Linear(H, 3).double()
    with torch.no_grad():
        fc2.weight.mul_(4)
    return fc2


def _norse_lfp(net, run, r, composite="epsilon"):
    with torch.no_grad():
        plain = run()
    net.zero_grad(set_to_none=True)
    with sl.LFP(net, composite) as lfp:
        out = run()
    lfp.backward(out, r)
    assert torch.equal(out, plain)  # norse's own numbers, with LFP attached
    return out, {n: p.grad.clone() for n, p in net.named_parameters()}


def _reference(layers, x, r, composite=None):
    composite = composite or sl.composites.Mixed(
        [sl.composites.LayerMap([(Scale, sl.rules.PassThrough())]), sl.composites.get("epsilon")]
    )
    ref = nn.Sequential(*layers)
    ref.zero_grad(set_to_none=True)  # layers shared with the norse net hold its updates
    lfp = sl.LFP(ref, composite)
    out = lfp(x)
    lfp.backward(out, r)
    return out


#: ε = 0 in the layers' rule: moving the gain between a weight and its input then leaves the update exact
EXACT = sl.composites.Mixed(
    [
        sl.composites.LayerMap([(Scale, sl.rules.PassThrough()), (nn.Linear, sl.rules.Epsilon(0.0))]),
        sl.composites.get("epsilon"),
    ]
)


@pytest.mark.parametrize("time_first", [False, True], ids=["LIFRecurrentCell", "LIFRecurrent"])
def test_norse_lif_recurrent_cell_is_a_linear_and_a_recurrent_cubalif(time_first):
    """LIFRecurrentCell: i ← i_d + W_in·x + W_rec·z[t−1]: a bias-free Linear, then RCubaLIF(α, β, zero reset) whose
    gain g = dt·τ_mem⁻¹ multiplies both currents (recurrent weight g·W_rec). Spikes are norse's own; the updates of
    W_in and W_rec are those of the spikelfp net's Linear and recurrent layer (the gain moves between weight and
    input without changing a z⁺z⁻ or ε update beyond the stabiliser)."""
    norse = pytest.importorskip("norse.torch", reason="norse (extra 'snn') is not installed")
    p = norse.LIFParameters(**_dt_params(tau_syn_inv=500.0, tau_mem_inv=250.0, v_th=0.5))
    torch.manual_seed(3)
    cls = norse.LIFRecurrent if time_first else norse.LIFRecurrentCell
    cell = cls(5, H, p, dt=0.001, autapses=True).double()
    with torch.no_grad():
        cell.input_weights.mul_(6)
    fc2 = _inner_net()
    readout = norse.LIFCell(p, dt=0.001)  # ε = 0 for its Linear too (EXACT): the reference's is the same Linear
    x = torch.rand(T, B, 5, dtype=torch.float64)
    r = torch.randn(T, B, 3, dtype=torch.float64)
    net = nn.ModuleList([cell, fc2, readout])

    def run():
        if time_first:
            h, _ = cell(x)
            s2, outs = None, []
            for t in range(T):
                o, s2 = readout(fc2(h[t]), s2)
                outs.append(o)
            return torch.stack(outs)
        s1 = s2 = None
        outs = []
        for t in range(T):
            h, s1 = cell(x[t], s1)
            o, s2 = readout(fc2(h), s2)
            outs.append(o)
        return torch.stack(outs)

    out, got = _norse_lfp(net, run, r, EXACT)
    assert out.sum() > 0
    w_in = nn.Linear(5, H, bias=False).double()
    rec = sl.RCubaLIF(H, ALPHA, BETA, 0.5, "zero", bias=False).double()
    with torch.no_grad():
        w_in.weight.copy_(cell.input_weights)
        rec.recurrent.weight.copy_(0.25 * cell.recurrent_weights)
    n2 = sl.CubaLIF(ALPHA, BETA, 0.5, "zero")
    want = _reference([w_in, Scale(0.25), rec, fc2, Scale(0.25), n2], x, r, EXACT)
    torch.testing.assert_close(out, want, rtol=0, atol=0)
    torch.testing.assert_close(got["0.input_weights"], w_in.weight.grad, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(got["0.recurrent_weights"], rec.recurrent.weight.grad, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(got["1.weight"], fc2.weight.grad, rtol=1e-6, atol=1e-12)
    assert (got["0.recurrent_weights"] != 0).any() and (got["0.input_weights"] != 0).any()


@pytest.mark.parametrize("kind", ["LICell", "LI", "LILinearCell"])
def test_norse_current_based_integrators_are_cubali(kind):
    """LICell: i ← i_d + x, v ← v + g((0 − v) + i), i_d ← (1 − h)·i: CubaLI(α = 1 − h, β = 1 − g) on g·x
    (σ = sign at both states); LILinearCell holds its input weights (a bias-free Linear) before it."""
    norse = pytest.importorskip("norse.torch", reason="norse (extra 'snn') is not installed")
    p = norse.LIParameters(**_dt_params(tau_syn_inv=500.0, tau_mem_inv=250.0))
    fc1, _ = layers(12)
    with torch.no_grad():
        fc1.weight.mul_(3)
    x = torch.rand(T, B, 5, dtype=torch.float64)
    r = torch.randn(T, B, H if kind != "LILinearCell" else 3, dtype=torch.float64)
    if kind == "LILinearCell":
        cell = norse.LILinearCell(H, 3, p, dt=0.001).double()
    else:
        cell = (norse.LI if kind == "LI" else norse.LICell)(p, dt=0.001)
    lif = norse.LIFBoxCell(norse.LIFBoxParameters(**_dt_params(tau_mem_inv=250.0, v_th=1.0)), dt=0.001)
    net = nn.ModuleList([fc1, lif, cell])

    def run():
        s1, hs = None, []
        for t in range(T):
            h, s1 = lif(fc1(x[t]), s1)
            hs.append(h)
        if kind == "LI":
            return cell(torch.stack(hs))[0]
        s2, outs = None, []
        for t in range(T):
            o, s2 = cell(hs[t], s2)
            outs.append(o)
        return torch.stack(outs)

    out, got = _norse_lfp(net, run, r)
    layers_ = [fc1, Scale(0.25), sl.LIF(BETA, 1.0, "zero")]
    if kind == "LILinearCell":
        w = nn.Linear(H, 3, bias=False).double()
        with torch.no_grad():
            w.weight.copy_(cell.input_weights)
        layers_.append(w)
    layers_ += [Scale(0.25), sl.CubaLI(ALPHA, BETA)]
    want = _reference(layers_, x, r)
    torch.testing.assert_close(out, want, rtol=1e-12, atol=1e-12)
    for name, ref in (("0.weight", fc1.weight), ("0.bias", fc1.bias)):
        assert (got[name] != 0).any()
        torch.testing.assert_close(got[name], ref.grad, rtol=1e-6, atol=1e-12)
    if kind == "LILinearCell":
        torch.testing.assert_close(got["2.input_weights"], w.weight.grad, rtol=1e-6, atol=1e-12)
