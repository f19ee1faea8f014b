"""snnTorch and norse models trained by LFP as they are: updates equal the sl.LIF network's."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import spikelfp as sl

snn = pytest.importorskip("snntorch", reason="snntorch (extra 'snn') is not installed")
import snntorch.utils  # noqa: E402

T, B = 8, 4
BETA = 0.75  # exactly representable: snnTorch keeps β as a float32 buffer


def layers(seed=0):
    torch.manual_seed(seed)
    fc1, fc2 = nn.Linear(5, 8).double(), nn.Linear(8, 3).double()
    with torch.no_grad():
        fc1.weight.mul_(4)
        fc2.weight.mul_(3)
    return fc1, fc2


def reference_updates(fc1, fc2, x, y, reset, composite="epsilon"):
    ref = nn.Sequential(fc1, sl.LIF(BETA, 1.0, reset), fc2, sl.LIF(BETA, 1.0, reset))
    ref.zero_grad(set_to_none=True)
    lfp = sl.LFP(ref, composite)
    out = lfp(x)
    lfp.backward(out, sl.feedback.SpikeSequence()(out, y))
    return out, [p.grad.clone() for p in ref.parameters()]


@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("init_hidden", [False, True])
@pytest.mark.parametrize("composite", ["epsilon", "zplus-zminus"])
def test_snntorch_leaky_updates_equal_sl_lif(reset, init_hidden, composite):
    fc1, fc2 = layers()
    l1 = snn.Leaky(beta=BETA, threshold=1.0, reset_mechanism=reset, init_hidden=init_hidden)
    l2 = snn.Leaky(beta=BETA, threshold=1.0, reset_mechanism=reset, init_hidden=init_hidden, output=init_hidden)
    net = nn.ModuleList([fc1, l1, fc2, l2])
    x = torch.rand(T, B, 5, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0])
    with sl.LFP(net, composite) as lfp:  # the user's own snnTorch-style step loop
        if init_hidden:
            snntorch.utils.reset(net)
        else:
            m1, m2 = l1.init_leaky(), l2.init_leaky()
        outs = []
        for t in range(T):
            if init_hidden:
                s2, _ = l2(fc2(l1(fc1(x[t]))))
            else:
                s1, m1 = l1(fc1(x[t]), m1)
                s2, m2 = l2(fc2(s1), m2)
            outs.append(s2)
        out = torch.stack(outs)
    lfp.backward(out, sl.feedback.SpikeSequence()(out, y))
    got = [p.grad.clone() for p in net.parameters()]
    want_out, want = reference_updates(fc1, fc2, x, y, reset, composite)
    assert torch.equal(out, want_out) and out.sum() > 0
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-12, atol=1e-12)
    assert all("forward" not in m.__dict__ for m in net.modules())


def test_snntorch_unsupported_options_are_named():
    fc = nn.Linear(3, 3)
    for kwargs, match in [
        ({"state_quant": lambda t: t}, "state quantisation"),
        ({"learn_threshold": True}, "learnable threshold"),
    ]:
        net = nn.Sequential(fc, snn.Leaky(beta=0.9, **kwargs))
        with pytest.raises(TypeError, match=match), sl.LFP(net, "epsilon"):
            pass


def test_norse_lif_box_cell_updates_equal_sl_lif():
    pytest.importorskip("norse", reason="norse (extra 'snn') is not installed")
    from norse.torch import LIFBoxCell
    from norse.torch.functional.lif_box import LIFBoxParameters

    fc1, fc2 = layers(1)
    with torch.no_grad():
        fc1.weight.mul_(5)
        fc2.weight.mul_(7)
        fc1.bias.add_(5)
    p = LIFBoxParameters(
        tau_mem_inv=torch.tensor(250.0, dtype=torch.float64), v_th=torch.tensor(1.0, dtype=torch.float64)
    )
    c1, c2 = LIFBoxCell(p, dt=0.001), LIFBoxCell(p, dt=0.001)
    net = nn.ModuleList([fc1, c1, fc2, c2])
    x = torch.rand(T, B, 5, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0])

    def run():
        s1 = s2 = None
        outs = []
        for t in range(T):
            z1, s1 = c1(fc1(x[t]), s1)
            z2, s2 = c2(fc2(z1), s2)
            outs.append(z2)
        return torch.stack(outs)

    with torch.no_grad():
        plain = run()
    with sl.LFP(net, "epsilon") as lfp:
        out = run()
    assert torch.equal(out, plain) and out.sum() > 0  # the patched cell is norse's own dynamics
    lfp.backward(out, sl.feedback.SpikeSequence()(out, y))
    gain = 0.25

    class Scale(nn.Module):
        def forward(self, t):
            return t * gain

    composite = sl.composites.Mixed(
        [sl.composites.LayerMap([(Scale, sl.rules.PassThrough())]), sl.composites.get("epsilon")]
    )
    ref = nn.Sequential(fc1, Scale(), sl.LIF(1 - gain, 1.0, "zero"), fc2, Scale(), sl.LIF(1 - gain, 1.0, "zero"))
    got = [q.grad.clone() for q in net.parameters()]
    ref.zero_grad(set_to_none=True)
    lfp = sl.LFP(ref, composite)
    o = lfp(x)
    lfp.backward(o, sl.feedback.SpikeSequence()(o, y))
    assert torch.equal(o, out)
    for g, q in zip(got, ref.parameters()):
        torch.testing.assert_close(g, q.grad, rtol=1e-12, atol=1e-12)
