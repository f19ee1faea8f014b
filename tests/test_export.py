"""NIR export/import (round trip, metadata, snnTorch and norse importers) and binary-weight export."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import spikelfp as sl

nir = pytest.importorskip("nir", reason="nir (extra 'export') is not installed")
pytest.importorskip("h5py", reason="h5py (extra 'export') is not installed")
from spikelfp import export  # noqa: E402

T, B = 20, 4


def dense(reset="subtract", flat=True):
    torch.manual_seed(0)
    head = [] if flat else [nn.Flatten(2)]
    model = sl.nn.SpikingSequential(
        *head,
        nn.Linear(30, 20),
        sl.LIF(0.9, 1.0, reset),
        nn.Linear(20, 5),
        sl.LIF(0.8, 0.5, reset),
        input_shape=(30,) if flat else (5, 6),
    )
    with torch.no_grad():
        model[-2].weight.mul_(3)
    return model


def conv(reset="subtract"):
    torch.manual_seed(1)
    return sl.nn.SpikingSequential(
        sl.nn.TimeDistributed(nn.Conv2d(2, 4, 3, padding=1), nn.AvgPool2d(2)),
        sl.LIF(0.9, 0.5, reset),
        nn.Flatten(2),
        nn.Linear(4 * 4 * 4, 6),
        sl.LIF(1.0, 1.0, reset),
        input_shape=(2, 8, 8),
    )


@pytest.mark.parametrize("make", [dense, lambda r: dense(r, flat=False), conv])
@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_nir_round_trip_is_exact(tmp_path, make, reset):
    model = make(reset)
    x = torch.rand(T, B, *model.input_shape) * 2
    want = model(x)
    assert 0 < want.mean() < 1
    path = tmp_path / "model.nir"
    export.to_nir(model, path)
    back = export.from_nir(path)
    assert torch.equal(back(x), want)
    assert [type(m).__name__ for m in back.modules() if isinstance(m, sl.LIF)] == ["LIF", "LIF"]
    assert [m.reset for m in back.modules() if isinstance(m, sl.LIF)] == [reset, reset]


def test_nir_nodes_follow_the_spec(tmp_path):
    model = dense("subtract")
    graph = export.to_nir(model, dt=1e-3)
    lif = graph.nodes["1"]
    assert isinstance(lif, nir.LIF)
    tau = 1e-3 / (1 - 0.9)
    np.testing.assert_allclose(lif.tau, np.full(20, tau))
    np.testing.assert_allclose(lif.r, np.full(20, tau / 1e-3))
    assert lif.tau.shape == lif.v_threshold.shape == lif.v_leak.shape == (20,)  # full per-neuron arrays
    assert (lif.v_leak == 0).all() and (lif.v_reset == 0).all()
    assert lif.metadata["reset"] == "subtract" and lif.metadata["dt"] == 1e-3
    assert isinstance(graph.nodes["0"], nir.Affine)
    assert graph.edges[0] == ("input", "0") and graph.edges[-1] == ("3", "output")
    assert isinstance(export.to_nir(conv()).nodes["4"], nir.IF)  # β = 1


def test_unsupported_layer_is_named():
    model = sl.models.spiking_lenet()
    with pytest.raises(export.ExportError, match=r"layer '0\.1' of type MaxPool2d has no NIR equivalent"):
        export.to_nir(model)
    with pytest.raises(export.ExportError, match="ReLU"):
        export.to_nir(nn.Sequential(nn.Linear(2, 2), nn.ReLU()), input_shape=(2,))


def test_foreign_and_corrupt_nir_files(tmp_path):
    bad = tmp_path / "bad.nir"
    bad.write_bytes(b"not hdf5 at all")
    with pytest.raises(export.ExportError, match="not a readable NIR file"):
        export.from_nir(bad)
    with pytest.raises(export.ExportError, match="no NIR file"):
        export.from_nir(tmp_path / "missing.nir")
    # a graph spikelfp cannot run: a LIF with per-neuron decays, and a branching graph
    g = export.to_nir(dense())
    g.nodes["1"].v_threshold[0] *= 2
    with pytest.raises(export.ExportError, match="v_threshold differs between neurons"):
        export.from_nir(g)
    g = export.to_nir(dense())
    g.edges.append(("0", "3"))
    with pytest.raises(export.ExportError, match="branches or merges"):
        export.from_nir(g)
    g = export.to_nir(dense())
    g.nodes["1"] = nir.CubaLIF(
        tau_syn=np.ones(20), tau_mem=np.ones(20), r=np.ones(20), v_leak=np.zeros(20), v_threshold=np.ones(20)
    )
    with pytest.raises(export.ExportError, match=r"node '1': input gain r·dt/τ = 0.0001; spikelfp needs 1"):
        export.from_nir(g)


def test_snntorch_imports_zero_reset_model_with_identical_spikes():
    snn = pytest.importorskip("snntorch", reason="snntorch is not installed")
    import snntorch.utils
    from snntorch.import_nir import import_from_nir

    model = dense("zero")
    x = torch.rand(T, B, 30) * 2
    want = model(x)
    net = import_from_nir(export.to_nir(model))  # snnTorch's importer assumes dt = 1e-4, our default
    snntorch.utils.reset(net)
    with torch.no_grad():
        steps = [net(x[t]) for t in range(T)]
    got = torch.stack([s[0] if isinstance(s, tuple) else s for s in steps])  # (spikes, membrane) per step
    assert torch.equal(got, want)
    assert isinstance(next(m for m in net.modules() if isinstance(m, snn.Leaky)), snn.Leaky)


def test_norse_importer_ignores_r():
    """norse's from_nir integrates v ← (1 − dt/τ)v + (dt/τ)I, dropping NIR's R: with our unit-gain
    export (R = τ/dt) its spikes match only once its input weights are multiplied by R."""
    pytest.importorskip("norse", reason="norse is not installed")
    from norse.torch.utils.import_nir import from_nir

    model = dense("zero")
    model[-1] = sl.LIF(0.9, 0.5, "zero")  # norse takes one dt per graph: give both LIFs the same β
    x = torch.rand(T, B, 30) * 2
    want = model(x)
    net = from_nir(export.to_nir(model), dt=1e-4, ignore_warnings=True)
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    with torch.no_grad():
        for lin in linears:
            lin.weight.mul_(10.0)  # R = τ/dt = 1/(1 − β) = 10
            lin.bias.mul_(10.0)
        state = None
        outs = []
        for t in range(T):
            out, state = net(x[t], state)
            outs.append(out)
    got = torch.stack(outs)
    assert torch.equal(got, want)


# --------------------------------------------------------------------------------------------------
# binary weights
# --------------------------------------------------------------------------------------------------
def test_binarize_is_sign_times_row_mean(tmp_path):
    model = conv()
    b = export.binarize(model)
    w, wb = model[0][0].weight.detach(), b[0][0].weight.detach()
    alpha = w.abs().reshape(4, -1).mean(1)
    torch.testing.assert_close(wb, torch.where(w >= 0, 1.0, -1.0) * alpha.view(-1, 1, 1, 1))
    assert torch.equal(b[0][0].bias, model[0][0].bias)
    assert not torch.equal(model[0][0].weight, wb)  # the original is untouched


@pytest.mark.parametrize("make", [conv, dense, lambda r: sl.models.spiking_lenet(), lambda r: sl.models.lenet()])
def test_binary_save_load_is_exact(tmp_path, make):
    model = make("subtract")
    path = tmp_path / "model.h5"
    export.save_binary(model, path)
    loaded = export.load_binary(path)
    expected = export.binarize(model)
    for (n1, a), (n2, b) in zip(expected.state_dict().items(), loaded.state_dict().items()):
        assert n1 == n2 and torch.equal(a, b)
    assert describe_types(loaded) == describe_types(model)
    packed = path.stat().st_size
    dense_bytes = sum(p.numel() * 4 for p in model.parameters())
    if dense_bytes > 1_000_000:  # spiking LeNet: 4.3 MB of float weights
        assert packed < dense_bytes / 16  # bit-packed signs (1/32) plus per-row scales and biases


def describe_types(model):
    return [type(m).__name__ for m in model.modules()]


def test_binary_load_refuses_foreign_files(tmp_path):
    import hashlib

    import h5py

    with pytest.raises(export.ExportError, match="no binary model"):
        export.load_binary(tmp_path / "nope.h5")
    (tmp_path / "junk.h5").write_bytes(b"junk")
    with pytest.raises(export.ExportError, match="not an HDF5 file"):
        export.load_binary(tmp_path / "junk.h5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.attrs["format"] = "something-else"
    with pytest.raises(export.ExportError, match="not a spikelfp binary model"):
        export.load_binary(tmp_path / "other.h5")
    path = tmp_path / "evil.h5"
    export.save_binary(dense(), path)
    with h5py.File(path, "a") as f:
        del f["architecture"]  # version 3: the architecture's JSON as a uint8 dataset, and its checksum
        evil = b'{"type": "os.system", "children": []}'
        f["architecture"] = np.frombuffer(evil, dtype=np.uint8)
        f.attrs["architecture_sha256"] = np.bytes_(hashlib.sha256(evil).hexdigest())
    with pytest.raises(export.ExportError, match=r"unknown layer type 'os.system'"):
        export.load_binary(path)


# --------------------------------------------------------------------------------------------------
# the binary format holds the whole neuron family, each neuron by its spec (format version 3)
# --------------------------------------------------------------------------------------------------
BINARY_FAMILY = {
    "LIF(per-neuron β, no reset)": lambda: sl.LIF(torch.tensor([0.5, 0.75, 0.875, 1.0] * 5), 1.0, "none"),
    "IF": lambda: sl.LIF(1.0, 2.0, "zero"),
    "LIF(learn_beta)": lambda: sl.LIF(0.625, 1.0, "subtract", learn_beta=True),
    "CubaLIF(per-neuron α, β)": lambda: sl.CubaLIF(torch.linspace(0.0, 0.9, 20), torch.linspace(0.5, 1.0, 20)),
    "RLIF": lambda: sl.RLIF(20, 0.5, 1.0, "zero"),
    "RCubaLIF(no bias, learnable)": lambda: sl.RCubaLIF(
        20, torch.full((20,), 0.5), 0.75, 0.5, "subtract", bias=False, learn_alpha=True, learn_beta=True
    ),
}
BINARY_HEADS = {
    "LI(per-neuron β)": lambda: sl.LI(torch.linspace(0.25, 1.0, 8)),
    "CubaLI(learn_alpha)": lambda: sl.CubaLI(0.5, 0.75, learn_alpha=True),
}


def family_net(neuron: str, head: str) -> nn.Module:
    torch.manual_seed(7)
    model = nn.Sequential(nn.Linear(30, 20), BINARY_FAMILY[neuron](), nn.Linear(20, 8), BINARY_HEADS[head]())
    with torch.no_grad():
        model[0].weight.mul_(4)
    return model


@pytest.mark.parametrize("head", sorted(BINARY_HEADS))
@pytest.mark.parametrize("neuron", sorted(BINARY_FAMILY))
def test_binary_file_holds_every_neuron_by_its_spec(tmp_path, neuron, head):
    """Saved with the float weights kept, the loaded model is the saved one: the same classes, specs (per-neuron
    and learnable decays, reset, recurrence), recurrent weights, and outputs bit for bit; saved binarised, it is
    ``binarize(model)`` (its recurrent layer binarised like any Linear)."""
    model = family_net(neuron, head)
    x = (torch.rand(T, B, 30, generator=torch.Generator().manual_seed(3)) < 0.5).float()
    want = model(x)
    spikes = model[1](model[0](x))
    assert 0.02 < spikes.mean() < 0.98  # the comparison means something
    loaded = export.load_binary(export.save_binary(model, tmp_path / "f.h5", float_layers="keep"))
    assert [type(m) for m in loaded] == [type(m) for m in model]
    for saved, back in zip(model, loaded):
        if isinstance(saved, sl.neurons.FamilyNeuron):
            assert back.spec == saved.spec
            for name in ("alpha", "beta"):
                if getattr(saved.spec, f"learn_{name}"):
                    assert isinstance(getattr(back, name), nn.Parameter)
    assert torch.equal(loaded(x), want)
    if isinstance(model[1], (sl.RLIF, sl.RCubaLIF)):
        assert torch.equal(loaded[1].recurrent.weight, model[1].recurrent.weight)
    binary = export.load_binary(export.save_binary(model, tmp_path / "b.h5"))
    assert torch.equal(binary(x), export.binarize(model)(x))


def test_binary_file_holds_conv_neurons_with_per_channel_decays(tmp_path):
    torch.manual_seed(2)
    model = sl.nn.SpikingSequential(
        sl.nn.TimeDistributed(nn.Conv2d(2, 4, 3, padding=1)),
        sl.CubaLIF(torch.tensor([0.25, 0.5, 0.75, 0.0]).view(4, 1, 1), torch.full((4, 1, 1), 0.875), 0.5, "zero"),
        nn.Flatten(2),
        nn.Linear(4 * 8 * 8, 5),
        sl.LI(0.5),
        input_shape=(2, 8, 8),
    )
    x = (torch.rand(T, B, 2, 8, 8, generator=torch.Generator().manual_seed(4)) < 0.5).float()
    loaded = export.load_binary(export.save_binary(model, tmp_path / "c.h5", float_layers="keep"))
    assert loaded[1].spec == model[1].spec and loaded[1].beta.shape == (4, 1, 1)
    assert torch.equal(loaded(x), model(x))


def test_binary_version_2_lif_files_still_load(tmp_path):
    """A version-2 file (variable-length string attributes, a LIF as beta/threshold/reset) loads as it did."""
    import json

    import h5py

    model = dense("zero")
    path = export.save_binary(model, tmp_path / "v2.h5")
    with h5py.File(path, "a") as f:
        arch = json.loads(f["architecture"][()].tobytes())
        for child in arch["children"]:
            if child["type"] == "LIF":
                spec = child.pop("spec")
                child.update(beta=spec["beta"], threshold=spec["threshold"], reset=spec["reset"])
        del f["architecture"]
        for key in list(f.attrs):
            del f.attrs[key]
        f.attrs.update({"format": "spikelfp-binary", "version": 2, "scale": "row-mean-abs"})
        f.attrs["architecture"] = json.dumps(arch)
        for g in f["layers"].values():
            g.attrs["mode"] = bytes(g.attrs["mode"]).decode()
            del g.attrs["sha256"]
    loaded = export.load_binary(path)
    x = (torch.rand(T, B, 30, generator=torch.Generator().manual_seed(5)) < 0.5).float()
    assert [m.spec for m in loaded if isinstance(m, sl.LIF)] == [m.spec for m in model if isinstance(m, sl.LIF)]
    assert torch.equal(loaded(x), export.binarize(model)(x))


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"type": "LIF", "spec": {"kind": "LIF", "beta": 0.5, "gain": -2.0}}, "gain must be a finite number > 0"),
        ({"type": "LIF", "spec": {"kind": "LIF", "beta": 0.5, "rm -rf": 1}}, "unknown neuron setting"),
        ({"type": "LIF", "spec": {"kind": "LI", "beta": 0.5, "reset": "none"}}, "its spec describes a LI"),
        ({"type": "LIF", "spec": {"kind": "LIF", "beta": 1.5}}, "beta must lie in"),
        ({"type": "LIF", "spec": {"kind": "LIF", "beta": {"shape": [2**40], "values": [0.5]}}}, "1 values for shape"),
        ({"type": "LIF", "spec": [1, 2]}, "its spec is not a mapping"),
        ({"type": "RLIF", "spec": {"kind": "LIF", "beta": 0.5, "recurrent": True}}, "RLIF size must be an integer"),
    ],
)
def test_binary_neuron_entries_are_validated(tmp_path, entry, message):
    import hashlib
    import json

    import h5py

    path = export.save_binary(
        sl.nn.SpikingSequential(nn.Linear(4, 3), sl.LIF(0.5), input_shape=(4,)), tmp_path / "m.h5"
    )
    with h5py.File(path, "a") as f:
        arch = json.loads(f["architecture"][()].tobytes())
        arch["children"][1] = entry
        text = json.dumps(arch).encode()
        del f["architecture"]
        f["architecture"] = np.frombuffer(text, dtype=np.uint8)
        f.attrs["architecture_sha256"] = np.bytes_(hashlib.sha256(text).hexdigest())
    with pytest.raises(export.ExportError, match=message):
        export.load_binary(path)
