"""Binary and ternary weights (LFP-SPEC §10): quantisation, the LFP rule, the STE, export and conversion.

Every expected value is computed here independently: quantisation row by row in float64, the rules
connection by connection on explicit contribution tensors ``Z[n, i, j] = w_q,ij a_i`` (conv layers
through explicit patches), the STE against autograd of the same formula with ``w_q`` as a leaf.
"""

from __future__ import annotations

import json
import math
import zlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import spikelfp as sl
from spikelfp import rules
from spikelfp.binary import BinaryConv2d, BinaryLinear, convert, quantize

EPS = 1e-6


def gen_of(*key) -> torch.Generator:
    return torch.Generator().manual_seed(zlib.crc32(repr(key).encode()))


# --------------------------------------------------------------------------------------------------
# the quantiser, restated row by row
# --------------------------------------------------------------------------------------------------
def quantize_reference(w: torch.Tensor, mode: str) -> torch.Tensor:
    """LFP-SPEC §10 written per row with Python floats (float64)."""
    rows = w.detach().double().reshape(w.shape[0], -1).tolist()
    out = []
    for row in rows:
        mags = [abs(v) for v in row]
        signs = [1.0 if v >= 0 else -1.0 for v in row]
        if mode == "binary":
            alpha = sum(mags) / len(mags)
            out.append([alpha * s for s in signs])
        else:
            delta = 0.7 * sum(mags) / len(mags)
            kept = [m for m in mags if m > delta]
            alpha = sum(kept) / len(kept) if kept else 0.0
            out.append([alpha * s if m > delta else 0.0 for s, m in zip(signs, mags)])
    return torch.tensor(out, dtype=torch.float64).reshape(w.shape)


@pytest.mark.parametrize("mode", ["binary", "ternary"])
@pytest.mark.parametrize("shape", [(5, 7), (4, 3, 3, 3)])
def test_quantize_matches_reference(mode, shape):
    w = torch.randn(*shape, generator=gen_of(mode, shape), dtype=torch.float64)
    w.view(-1)[0] = 0.0  # sign(0) = +1
    w.view(-1)[1] = -0.0
    wq, alpha, mask = quantize(w, mode)
    ref = quantize_reference(w, mode)
    torch.testing.assert_close(wq, ref, rtol=1e-12, atol=0)
    assert wq.view(-1)[0] >= 0 and wq.view(-1)[1] >= 0
    # every entry is exactly ±α_row or 0
    rows = wq.reshape(shape[0], -1)
    assert torch.all((rows.abs() == alpha[:, None]) | (rows == 0))
    assert (mask is None) == (mode == "binary")
    if mode == "binary":
        assert torch.all(rows.abs() == alpha[:, None])


def test_ternary_zero_fraction_of_a_gaussian():
    # P(|w| ≤ 0.7·E|w|) for w ~ N(0, 1): E|w| = √(2/π), so P = erf(0.7·√(2/π)/√2) = erf(0.7/√π)
    layer = BinaryLinear(4000, 50, mode="ternary")
    with torch.no_grad():
        layer.weight.copy_(torch.randn(50, 4000, generator=gen_of("gauss")))
    expected = math.erf(0.7 / math.sqrt(math.pi))
    assert abs(layer.zero_fraction() - expected) < 0.01
    assert expected == pytest.approx(0.4237, abs=1e-3)


def test_all_zero_row_gives_zero_weights_not_nan():
    for mode in ("binary", "ternary"):
        w = torch.zeros(2, 3)
        w[1] = torch.tensor([1.0, -2.0, 3.0])
        wq, alpha, _ = quantize(w, mode)
        assert torch.isfinite(wq).all() and torch.all(wq[0] == 0) and alpha[0] == 0


# --------------------------------------------------------------------------------------------------
# the LFP rule through a binary layer, against a float64 restatement
# --------------------------------------------------------------------------------------------------
def sign(z):
    return torch.where(z >= 0, 1.0, -1.0).to(z.dtype)


def connection_reference(rule: str, Z, M, L, bias, r):
    """``(R[n,i,j], D[n,i,j], Db[n,j])`` of LFP-SPEC §2 on contributions ``Z = w_q,ij a_i``.

    ``M = m_ij a_i`` with ``m`` the magnitude factor (|latent| or |w_q|) and ``L = latent_ij a_i``,
    whose sign picks the αβ case of the update (the sign of ``w_ij a_i``; for a ternary zero the
    latent weight's sign, the weight it would be if it grew back).
    """
    N, _, J = Z.shape
    b = torch.zeros(N, J, dtype=Z.dtype) if bias is None else bias.expand(N, J)
    z = Z.sum(1) + b
    if rule == "epsilon":
        c = r / (z + EPS * sign(z))
        return Z * c[:, None], M * c[:, None], b.abs() * c
    if rule == "zplus-zminus":
        den = Z.abs().sum(1) + b.abs() + EPS
        c = sign(z) * r / den
        return Z * c[:, None], M * c[:, None], b.abs() * c
    if rule == "alpha-beta":
        zp = Z.clamp(min=0).sum(1) + b.clamp(min=0)
        zn = Z.clamp(max=0).sum(1) + b.clamp(max=0)
        sr = sign(z) * r
        cp = 2.0 * sr / (zp + EPS * sign(zp))
        cn = -1.0 * sr / (zn + EPS * sign(zn))
        R = torch.where(Z >= 0, Z * cp[:, None], Z * cn[:, None])
        D = torch.where(L > 0, M * cp[:, None], M * cn[:, None])
        Db = torch.where(b >= 0, b.abs() * cp, b.abs() * cn)
        return R, D, Db
    raise ValueError(rule)


RULES = {
    "epsilon": lambda: rules.Epsilon(EPS),
    "zplus-zminus": lambda: rules.ZPlusZMinus(EPS),
    "alpha-beta": lambda: rules.AlphaBeta(2.0, 1.0, EPS),
}


def run_engine(layer, rule, x, r):
    composite = sl.composites.LayerMap([((nn.Linear, nn.Conv2d), rule)])
    x = x.clone().requires_grad_(True)
    lfp = sl.LFP(layer, composite)
    out = lfp(x)
    lfp.backward(out, r)
    db = None if layer.bias is None else -layer.bias.grad
    return out.detach(), x.grad, -layer.weight.grad, db


def magnitude_of(layer, wq):
    return layer.weight.detach().abs() if layer.magnitude == "latent" else wq.abs()


@pytest.mark.parametrize("rule", list(RULES))
@pytest.mark.parametrize("mode", ["binary", "ternary"])
@pytest.mark.parametrize("magnitude", ["latent", "quantized"])
@pytest.mark.parametrize("bias", [True, False])
def test_binary_linear_rule_matches_reference(rule, mode, magnitude, bias):
    g = gen_of(rule, mode, magnitude, bias)
    layer = BinaryLinear(9, 6, bias=bias, mode=mode, magnitude=magnitude).double()
    with torch.no_grad():
        layer.weight.copy_(torch.randn(6, 9, generator=g, dtype=torch.float64))
        if bias:
            layer.bias.copy_(torch.randn(6, generator=g, dtype=torch.float64))
    x = torch.randn(11, 9, generator=g, dtype=torch.float64)
    x[:, 0] = 0.0
    r = torch.randn(11, 6, generator=g, dtype=torch.float64)
    out, r_in, dw, db = run_engine(layer, RULES[rule](), x, r)

    wq = quantize_reference(layer.weight, mode)
    latent = layer.weight.detach()
    Z = x[:, :, None] * wq.t()[None]
    M = x[:, :, None] * magnitude_of(layer, wq).t()[None]
    L = x[:, :, None] * latent.t()[None]
    R, D, Db = connection_reference(rule, Z, M, L, layer.bias.detach() if bias else None, r)
    torch.testing.assert_close(out, x @ wq.t() + (layer.bias.detach() if bias else 0), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(r_in, R.sum(2), rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(dw, D.sum(0).t(), rtol=1e-9, atol=1e-10)
    if bias:
        torch.testing.assert_close(db, Db.sum(0), rtol=1e-9, atol=1e-10)
    if mode == "ternary" and magnitude == "latent":
        zeros = wq == 0
        assert zeros.any() and (dw[zeros] != 0).any()  # a ternary zero can grow back
    if magnitude == "quantized" and mode == "ternary":
        assert torch.all(dw[wq == 0] == 0)


def conv_reference(rule, layer, x, r):
    """The same restatement for a Conv2d through explicit patches (unfold/fold)."""
    k, pad = layer.kernel_size, layer.padding
    B, _, H, W = x.shape
    P = F.unfold(x, k, padding=pad)  # (B, C·k·k, L)
    Lpos = P.shape[-1]
    xs = P.transpose(1, 2).reshape(B * Lpos, -1)  # patches as samples
    wq = quantize_reference(layer.weight, layer.mode).reshape(layer.out_channels, -1)
    latent = layer.weight.detach().reshape(layer.out_channels, -1)
    mag = latent.abs() if layer.magnitude == "latent" else wq.abs()
    rs = r.reshape(B, layer.out_channels, Lpos).transpose(1, 2).reshape(B * Lpos, -1)
    Z = xs[:, :, None] * wq.t()[None]
    M = xs[:, :, None] * mag.t()[None]
    Lz = xs[:, :, None] * latent.t()[None]
    bias = layer.bias.detach() if layer.bias is not None else None
    R, D, Db = connection_reference(rule, Z, M, Lz, bias, rs)
    r_patches = R.sum(2).reshape(B, Lpos, -1).transpose(1, 2)
    r_in = F.fold(r_patches, (H, W), k, padding=pad)
    return r_in, D.sum(0).t().reshape(layer.weight.shape), (None if bias is None else Db.sum(0))


@pytest.mark.parametrize("rule", list(RULES))
@pytest.mark.parametrize("mode", ["binary", "ternary"])
@pytest.mark.parametrize("magnitude", ["latent", "quantized"])
def test_binary_conv_rule_matches_reference(rule, mode, magnitude):
    g = gen_of("conv", rule, mode, magnitude)
    layer = BinaryConv2d(2, 3, 3, padding=1, mode=mode, magnitude=magnitude).double()
    with torch.no_grad():
        layer.weight.copy_(torch.randn(layer.weight.shape, generator=g, dtype=torch.float64))
        layer.bias.copy_(torch.randn(3, generator=g, dtype=torch.float64))
    x = torch.randn(2, 2, 5, 5, generator=g, dtype=torch.float64)
    r = torch.randn(2, 3, 5, 5, generator=g, dtype=torch.float64)
    _, r_in, dw, db = run_engine(layer, RULES[rule](), x, r)
    ref_in, ref_dw, ref_db = conv_reference(rule, layer, x, r)
    torch.testing.assert_close(r_in, ref_in, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(dw, ref_dw, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(db, ref_db, rtol=1e-9, atol=1e-10)


def spiking_binary_model(mode="binary", **kw):
    torch.manual_seed(0)
    net = sl.nn.SpikingSequential(
        sl.nn.TimeDistributed(nn.Conv2d(1, 4, 3), nn.AvgPool2d(2)),
        sl.LIF(0.9),
        nn.Flatten(2),
        nn.Linear(4 * 3 * 3, 16),
        sl.LIF(0.9),
        nn.Linear(16, 5),
        sl.LIF(0.9),
        input_shape=(1, 8, 8),
    )
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                m.weight.mul_(3.0)  # enough current for spikes in a few steps
    return convert(net, mode, **kw)


@pytest.mark.parametrize("composite", ["epsilon", "zplus-zminus", "alpha2-beta1", "epsilon-zplus-zminus"])
def test_every_composite_trains_binary_layers(composite):
    net = spiking_binary_model()
    x = sl.encode.rate(torch.rand(6, 1, 8, 8, generator=gen_of(composite)), 6, generator=gen_of(composite, 1))
    y = torch.arange(6) % 5
    before = [m.quantized_weight() for m in net.modules() if sl.binary.is_binary(m)]
    opt = torch.optim.Adam(net.parameters(), 0.05)
    lfp = sl.LFP(net, composite, normalize="max-batch")
    for _ in range(3):
        out = lfp(x)
        lfp.backward(out, sl.feedback.SpikeSequence()(out, y))
        for m in net.modules():
            if sl.binary.is_binary(m):
                assert m.weight.grad is not None and torch.isfinite(m.weight.grad).all()
        opt.step()
        opt.zero_grad()
    after = [m.quantized_weight() for m in net.modules() if sl.binary.is_binary(m)]
    assert any(not torch.equal(a, b) for a, b in zip(before, after))
    assert all(isinstance(m, (BinaryLinear, BinaryConv2d)) for m in net.modules() if type(m) in (nn.Linear, nn.Conv2d))


def test_rule_without_latent_argument_is_refused_by_name():
    class Old(rules.Rule):
        def linear(self, op, x, w, b, z, r, need):  # an older user rule
            return None, None, None

    layer = nn.Sequential(BinaryLinear(3, 2))
    lfp = sl.LFP(layer, sl.composites.LayerMap([(nn.Linear, Old())]))
    with pytest.raises(TypeError, match="'0'.*latent"):
        lfp(torch.rand(1, 3))


# --------------------------------------------------------------------------------------------------
# the straight-through estimator
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["binary", "ternary"])
def test_ste_gradient_is_the_gradient_with_respect_to_wq(mode):
    g = gen_of("ste", mode)
    layer = BinaryLinear(7, 4, mode=mode).double()
    with torch.no_grad():
        layer.weight.copy_(torch.randn(4, 7, generator=g, dtype=torch.float64))
    x = torch.randn(5, 7, generator=g, dtype=torch.float64)
    c = torch.randn(5, 4, generator=g, dtype=torch.float64)
    (layer(x).tanh() * c).sum().backward()
    # autograd of the same formula with w_q as a leaf: the STE passes this gradient to the latent weight
    wq = quantize_reference(layer.weight, mode).requires_grad_(True)
    (F.linear(x, wq, layer.bias.detach()).tanh() * c).sum().backward()
    torch.testing.assert_close(layer.weight.grad, wq.grad, rtol=1e-12, atol=1e-12)
    # and in closed form: ∂/∂w_q of Σ c·tanh(x w_qᵀ + b) = ((1 − tanh²)·c)ᵀ x
    t = F.linear(x, wq.detach(), layer.bias.detach()).tanh()
    torch.testing.assert_close(layer.weight.grad, ((1 - t**2) * c).t() @ x, rtol=1e-12, atol=1e-12)


def test_ste_conv_and_surrogate_baseline_train():
    net = spiking_binary_model()
    x = sl.encode.constant(torch.rand(4, 1, 8, 8, generator=gen_of("sur")), 5)
    with sl.surrogate.use(net, sl.surrogate.FastSigmoid(25.0)):
        loss = sl.surrogate.ce_count_loss(net(x), torch.arange(4))
        loss.backward()
    conv = net[0][0]
    assert isinstance(conv, BinaryConv2d) and conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0


# --------------------------------------------------------------------------------------------------
# export: exactly w_q, and the same spikes
# --------------------------------------------------------------------------------------------------
h5py = pytest.importorskip("h5py")
from spikelfp import export  # noqa: E402


def trained(mode, steps=3, **kw):
    net = spiking_binary_model(mode, **kw)
    x = sl.encode.constant(torch.rand(8, 1, 8, 8, generator=gen_of("train", mode)), 6)
    y = torch.arange(8) % 5
    opt = torch.optim.Adam(net.parameters(), 0.02)
    lfp = sl.LFP(net, "epsilon", normalize="max-batch")
    for _ in range(steps):
        out = lfp(x)
        lfp.backward(out, sl.feedback.SpikeSequence()(out, y))
        opt.step()
        opt.zero_grad()
    return net


@pytest.mark.parametrize("mode", ["binary", "ternary"])
@pytest.mark.parametrize("keep_first", [False, True])
def test_export_is_bit_exact_and_spikes_are_equal(tmp_path, mode, keep_first):
    net = trained(mode, keep_first=keep_first)
    path = export.save_binary(net, tmp_path / "m.h5")
    loaded = export.load_binary(path)
    ours = [m for m in net.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    theirs = [m for m in loaded.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    assert [type(m) for m in theirs] == [nn.Conv2d, nn.Linear, nn.Linear]  # plain layers
    for a, b in zip(ours, theirs):
        expected = a.quantized_weight() if sl.binary.is_binary(a) else a.weight.detach()
        assert torch.equal(b.weight, expected)
        assert torch.equal(b.bias, a.bias.detach())
    if keep_first:
        assert not sl.binary.is_binary(ours[0])
    x = sl.encode.rate(torch.rand(16, 1, 8, 8, generator=gen_of("x")), 12, generator=gen_of("x", 2))
    with torch.no_grad():
        want, got = net(x), loaded(x)
    assert want.sum() > 0 and torch.equal(want, got)
    if mode == "ternary":
        with h5py.File(path) as f:
            assert "mask" in f["layers/3"] and f["layers/3"].attrs["mode"] == b"ternary"  # fixed-length (version 3)


def test_export_file_is_about_a_32nd_of_float32(tmp_path):
    net = convert(sl.models.spiking_mlp(), "binary")
    path = export.save_binary(net, tmp_path / "mlp.h5")
    dense = sum(m.weight.numel() * 4 for m in net.modules() if isinstance(m, nn.Linear))
    assert path.stat().st_size < dense / 25  # 1 bit per weight plus scales, biases and HDF5 overhead
    loaded = export.load_binary(path)
    assert torch.equal(loaded[1].weight, net[1].quantized_weight())


def test_float_model_still_exports_post_hoc(tmp_path):
    net = sl.models.spiking_mlp()
    loaded = export.load_binary(export.save_binary(net, tmp_path / "f.h5"))
    assert torch.equal(loaded[1].weight, export.binarize(net)[1].weight)


def test_nir_export_carries_binary_weights(tmp_path):
    pytest.importorskip("nir")
    net = trained("ternary")
    graph = export.to_nir(net, tmp_path / "m.nir")
    lin = net[3]
    node = graph.nodes["3"]
    assert np.array_equal(node.weight, lin.quantized_weight().numpy())
    assert node.metadata["binary"] is True and node.metadata["mode"] == "ternary"
    assert set(graph.metadata["binary_layers"]) == {"0_0", "3", "5"}
    import nir

    back = nir.read(str(tmp_path / "m.nir"))
    assert np.array_equal(back.nodes["3"].weight, lin.quantized_weight().numpy())
    assert bool(back.nodes["3"].metadata["binary"]) and back.nodes["3"].metadata["mode"] == "ternary"


# --------------------------------------------------------------------------------------------------
# hostile and malformed files
# --------------------------------------------------------------------------------------------------
def saved(tmp_path, mode="binary"):
    net = convert(nn.Sequential(nn.Linear(20, 6), nn.ReLU(), nn.Linear(6, 3)), mode)
    return export.save_binary(net, tmp_path / "m.h5")


def architecture(f) -> dict:
    """The architecture JSON of a version-3 file (a uint8 dataset)."""
    return json.loads(f["architecture"][()].tobytes())


def set_architecture(f, text: str) -> None:
    """Replace the architecture, checksum included (a crafted file, not a damaged one)."""
    import hashlib

    del f["architecture"]
    f["architecture"] = np.frombuffer(text.encode(), dtype=np.uint8)
    f.attrs["architecture_sha256"] = np.bytes_(hashlib.sha256(text.encode()).hexdigest())


def refuses(path, match):
    with pytest.raises(export.ExportError, match=match):
        export.load_binary(path)


def test_refuses_external_link(tmp_path):
    path = saved(tmp_path)
    secret = tmp_path / "secret.h5"
    with h5py.File(secret, "w") as f:
        f["data"] = np.full(6, 7.0, dtype=np.float32)
    with h5py.File(path, "a") as f:
        del f["layers/0/bias"]
        f["layers/0/bias"] = h5py.ExternalLink(str(secret), "data")
    refuses(path, "ExternalLink")


def test_refuses_soft_link(tmp_path):
    path = saved(tmp_path)
    with h5py.File(path, "a") as f:
        del f["layers/2/bias"]
        f["layers/2/bias"] = h5py.SoftLink("/layers/0/scale")
    refuses(path, "SoftLink")


def test_refuses_external_storage(tmp_path):
    path = saved(tmp_path)
    raw = tmp_path / "raw.bin"
    raw.write_bytes(np.full(6, 1.0, dtype=np.float32).tobytes())
    with h5py.File(path, "a") as f:
        del f["layers/0/scale"]
        f.create_dataset("layers/0/scale", shape=(6,), dtype=np.float32, external=[(str(raw), 0, 24)])
    refuses(path, "external storage")


def test_refuses_virtual_dataset(tmp_path):
    path = saved(tmp_path)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = np.ones(6, dtype=np.float32)
    with h5py.File(path, "a") as f:
        del f["layers/0/scale"]
        layout = h5py.VirtualLayout(shape=(6,), dtype=np.float32)
        layout[:] = h5py.VirtualSource(str(other), "x", shape=(6,))
        f["layers/0"].create_virtual_dataset("scale", layout)
    refuses(path, "virtual")


@pytest.mark.parametrize("key", ["scale", "bias"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_refuses_non_finite(tmp_path, key, bad):
    path = saved(tmp_path)
    with h5py.File(path, "a") as f:
        f[f"layers/0/{key}"][2] = bad
    refuses(path, "NaN or Inf")


def test_refuses_length_one_bias(tmp_path):
    path = saved(tmp_path)
    with h5py.File(path, "a") as f:
        del f["layers/0/bias"]
        f["layers/0/bias"] = np.ones(1, dtype=np.float32)
    refuses(path, r"bias' of layer '0' has shape \(1,\), expected \(6,\)")


def test_refuses_huge_declared_shape_before_allocating(tmp_path):
    import json

    path = saved(tmp_path)
    with h5py.File(path, "a") as f:
        arch = architecture(f)
        arch["children"][0].update({"in": 200000, "out": 200000})
        set_architecture(f, json.dumps(arch))
        del f["layers/0/shape"]
        f["layers/0/shape"] = np.array([200000, 200000])
    refuses(path, r"'signs' of layer '0' has shape")
    # a file that declares the matching huge datasets but stores nothing in them
    with h5py.File(path, "a") as f:
        g = f["layers/0"]
        for key, shape, dt in (("signs", (200000 * 200000 // 8,), np.uint8), ("scale", (200000,), np.float32)):
            del g[key]
            g.create_dataset(key, shape=shape, dtype=dt, chunks=True)
    refuses(path, "declares more data than the file stores")
    with h5py.File(path, "a") as f:
        arch["children"][0].update({"in": 2**40})
        set_architecture(f, json.dumps(arch))
    refuses(path, "Linear in must be an integer")


@pytest.mark.parametrize(
    "damage, match",
    [
        (lambda f: f["layers/0"].__delitem__("signs"), "'signs' of layer '0' is missing"),
        (lambda f: f["layers"].__delitem__("2"), "holds weights for layers"),
        (lambda f: f.__delitem__("layers"), "layers group is missing"),
        (lambda f: set_architecture(f, "[" * 100000), "architecture is not valid JSON"),
        (lambda f: set_architecture(f, '{"type": "Linear", "in": "x", "out": 3}'), "integer"),
        (lambda f: f.attrs.__setitem__("version", 99), "version"),
        (lambda f: f["layers/0"].attrs.__setitem__("mode", "quaternary"), "unknown mode"),
        (
            lambda f: (f["layers/0"].__delitem__("scale"), f["layers/0"].create_dataset("scale", data=["a"] * 6)),
            "dtype",
        ),
        (
            lambda f: (f["layers/0"].__delitem__("scale"), f["layers/0"].create_dataset("scale", data=-np.ones(6))),
            "negative",
        ),
        (lambda f: f["layers/0"].create_dataset("mask", data=np.zeros(15, np.uint8)), "holds a mask"),
        (lambda f: f["layers/0"].__delitem__("bias"), "'bias' of layer '0' is missing"),
    ],
)
def test_refuses_malformed_files(tmp_path, damage, match):
    path = saved(tmp_path)
    with h5py.File(path, "a") as f:
        damage(f)
    refuses(path, match)


def test_ternary_file_without_mask_is_refused(tmp_path):
    path = saved(tmp_path, "ternary")
    with h5py.File(path, "a") as f:
        del f["layers/2/mask"]
    refuses(path, "'mask' of layer '2' is missing")


def test_deeply_nested_architecture_is_refused(tmp_path):
    import json

    path = saved(tmp_path)
    desc: dict = {"type": "ReLU"}
    for _ in range(200):
        desc = {"type": "Sequential", "children": [desc]}
    with h5py.File(path, "a") as f:
        set_architecture(f, json.dumps(desc))
    refuses(path, "nested deeper")


# --------------------------------------------------------------------------------------------------
# convert
# --------------------------------------------------------------------------------------------------
def test_convert_copies_latent_weights_and_leaves_the_model():
    model = sl.models.spiking_lenet()
    out = convert(model, "ternary")
    kinds = [type(m) for m in out.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    assert kinds == [BinaryConv2d, BinaryConv2d, BinaryLinear, BinaryLinear]
    for a, b in zip(
        [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))],
        [m for m in out.modules() if isinstance(m, (nn.Linear, nn.Conv2d))],
    ):
        assert type(a) in (nn.Linear, nn.Conv2d)  # the input model is untouched
        assert torch.equal(a.weight, b.weight) and a.weight is not b.weight
        assert b.mode == "ternary"


def test_convert_keep_first_last_and_layer_selection():
    model = sl.models.spiking_lenet()
    out = convert(model, keep_first=True, keep_last=True)
    kinds = [type(m) for m in out.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    assert kinds == [nn.Conv2d, BinaryConv2d, BinaryLinear, nn.Linear]
    out = convert(model, layers=[nn.Linear])
    kinds = [type(m) for m in out.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    assert kinds == [nn.Conv2d, nn.Conv2d, BinaryLinear, BinaryLinear]


@pytest.mark.parametrize("bad", [nn.Conv1d, nn.LSTM, nn.ConvTranspose2d])
def test_convert_refuses_layers_without_binary_form(bad):
    with pytest.raises(TypeError, match=f"{bad.__qualname__} has no binary form"):
        convert(sl.models.spiking_mlp(), layers=[nn.Linear, bad])


def test_convert_refuses_bad_mode():
    with pytest.raises(ValueError, match="mode must be"):
        convert(sl.models.spiking_mlp(), "quaternary")
    with pytest.raises(ValueError, match="magnitude must be"):
        BinaryLinear(2, 2, magnitude="both")


# --------------------------------------------------------------------------------------------------
# the command line: train --weights, export
# --------------------------------------------------------------------------------------------------
def test_cli_trains_binary_and_exports(tmp_path, capsys):
    from spikelfp.cli import main

    out = tmp_path / "run"
    args = ["train", "--model", "snn-mlp", "--steps", "4", "--limit-train", "256", "--limit-test", "64"]
    assert (
        main([*args, "--weights", "ternary", "--weight-magnitude", "quantized", "--out", str(out), "--no-progress"])
        == 0
    )
    assert "ternary weights" in capsys.readouterr().out
    saved = json.loads((out / "config.json").read_text())
    assert (saved["weights"], saved["weight_magnitude"]) == ("ternary", "quantized")
    assert main(["export", str(out)]) == 0
    text = capsys.readouterr().out
    assert "exactly the trained weights" in text and "marked in metadata" in text
    state = torch.load(out / "model.pt", weights_only=True)["model"]
    loaded = export.load_binary(out / "model-binary.h5")
    for key in ("1", "3", "5"):
        expected, _, _ = quantize(state[f"{key}.weight"], "ternary")
        assert torch.equal(getattr(loaded, key).weight, expected)
    assert (out / "model.nir").is_file()
    # the resumed run keeps its weights; a contradicting option is refused
    assert main(["train", "--resume", str(out), "--weights", "binary", "--no-progress"]) == 2
    assert "--weights binary (the run has 'ternary')" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "nothing")]) == 2


@pytest.mark.parametrize(
    "entry",
    [
        {"type": "Dropout", "p": float("nan")},
        {"type": "Dropout", "p": 3},
        {"type": "Heaviside", "threshold": float("inf")},
    ],
)
def test_non_finite_architecture_values_are_refused(tmp_path, entry):
    import json

    path = saved(tmp_path)
    with h5py.File(path, "a") as f:
        arch = architecture(f)
        arch["children"][1] = entry
        set_architecture(f, json.dumps(arch))
    refuses(path, f"malformed {entry['type']} entry")


def test_version_1_files_still_load(tmp_path):
    net = sl.models.spiking_mlp(hidden=(20,))
    path = export.save_binary(net, tmp_path / "v1.h5")
    with h5py.File(path, "a") as f:  # what the version-1 writer wrote: no mode, binary layers only
        f.attrs["version"] = 1
        f.attrs["format"] = "spikelfp-binary"  # a variable-length string, as h5py writes str
        f.attrs["architecture"] = json.dumps(architecture(f))
        del f["architecture"]
        for g in f["layers"].values():
            del g.attrs["mode"]
    assert torch.equal(export.load_binary(path)[1].weight, export.binarize(net)[1].weight)
