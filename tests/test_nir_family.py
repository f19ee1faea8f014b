"""NIR both ways for the neuron family and for snnTorch/norse-built models (issue 10, items 2–3).

Every spike comparison is against an independent run: the model itself (spikelfp, snnTorch or norse,
stepped by its own library), or the graph imported by snnTorch's ``import_from_nir`` / norse's
``from_nir``. Weights are multiples of 1/16 and inputs are 0/1 spikes, and decays/gains are powers of
two apart (β ∈ {0.5, 0.75}, ``dt = 2⁻¹⁰`` where norse's ``dt·τ⁻¹`` enters), so that the different but
equivalent update formulas (``βv + I`` against ``v + g·(I − v)``) are exact in float32 and "identical
spikes" is a strict test rather than a tolerance.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

import spikelfp as sl

nir = pytest.importorskip("nir", reason="nir (extra 'export') is not installed")
pytest.importorskip("h5py", reason="h5py (extra 'export') is not installed")
from spikelfp import export  # noqa: E402

T, B = 10, 6
DYADIC_DT = 2.0**-10  # dt·τ⁻¹ = 1 − β is exact in float32 for β = 0.5, 0.75


def _dyadic(model: nn.Module, scale: float = 1.0) -> nn.Module:
    """Round every Linear/Conv weight and bias to a multiple of 1/16 (× scale): float32 sums are exact."""
    with torch.no_grad():
        for layer in model.modules():
            if isinstance(layer, (nn.Linear, nn.Conv2d)):  # not the decays of a learn_beta neuron
                for p in layer.parameters(recurse=False):
                    p.copy_(torch.round(p * 16 * scale) / 16)
    return model


def _spikes_in(*shape, p=0.5, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(*shape, generator=g) < p).float()


def _active(s: torch.Tensor) -> None:
    """The comparison means something only if the output neither never nor always spikes."""
    assert 0.02 < s.float().mean() < 0.98, f"spike rate {s.float().mean():.3f}"


def spikelfp_dense(reset="zero", betas=(0.5, 0.75), flatten=False):
    torch.manual_seed(0)
    head = [nn.Flatten(2)] if flatten else []
    return _dyadic(
        nn.Sequential(
            *head,
            nn.Linear(30, 20),
            sl.LIF(betas[0], 1.0, reset),
            nn.Linear(20, 8),
            sl.LIF(betas[1], 0.5, reset),
        ),
        scale=3.0,
    )


def spikelfp_conv(reset="zero", pool=True):
    torch.manual_seed(1)
    spatial = [nn.Conv2d(2, 4, 3, padding=1)] + ([nn.AvgPool2d(2)] if pool else [])
    side = 4 if pool else 8
    return _dyadic(
        sl.nn.SpikingSequential(
            sl.nn.TimeDistributed(*spatial),
            sl.LIF(0.5, 0.5, reset),
            nn.Flatten(2),
            nn.Linear(4 * side * side, 6),
            sl.LIF(0.75, 0.5, reset),
            input_shape=(2, 8, 8),
        ),
        scale=3.0,
    )


def _run_snntorch_import(net, x: torch.Tensor) -> torch.Tensor:
    """Step an snnTorch-imported graph over (T, B, …); it returns spikes or (spikes, membrane) per step."""
    import snntorch.utils

    snntorch.utils.reset(net)
    with torch.no_grad():
        steps = [net(x[t]) for t in range(x.shape[0])]
    return torch.stack([s[0] if isinstance(s, tuple) else s for s in steps])


def _run_norse_import(net, x: torch.Tensor) -> torch.Tensor:
    state, out = None, []
    with torch.no_grad():
        for t in range(x.shape[0]):
            y, state = net(x[t], state)
            out.append(y)
    return torch.stack(out)


# --------------------------------------------------------------------------------------------------
# item 1: input_shape inferred where the first layer determines it
# --------------------------------------------------------------------------------------------------
def test_input_shape_inferred_from_first_linear():
    model = spikelfp_dense()
    graph = export.to_nir(model)  # a plain nn.Sequential has no input_shape attribute
    assert tuple(graph.nodes["input"].input_type["input"]) == (30,)
    x = _spikes_in(T, B, 30)
    assert torch.equal(export.from_nir(graph)(x), model(x))


def test_input_shape_inferred_through_whole_sample_flatten():
    """Flatten(2) then Linear(30, …): any sample shape with 30 elements works; the flat (30,) is chosen."""
    model = spikelfp_dense(flatten=True)
    graph = export.to_nir(model)
    assert tuple(graph.nodes["input"].input_type["input"]) == (30,)
    assert tuple(graph.nodes["0"].output_type["output"]) == (30,)
    x = _spikes_in(T, B, 5, 6)
    back = export.from_nir(graph)
    assert torch.equal(back(x.flatten(2)), model(x))


def test_input_shape_still_needed_for_conv_first_and_says_why():
    model = nn.Sequential(sl.nn.TimeDistributed(nn.Conv2d(2, 4, 3)), sl.LIF(0.5))
    with pytest.raises(export.ExportError, match=r"Conv2d fixes the channels \(2\) but not the spatial size"):
        export.to_nir(model)
    with pytest.raises(export.ExportError, match="cannot infer the input shape from LIF"):
        export.to_nir(nn.Sequential(sl.LIF(0.5), nn.Linear(3, 2)))
    assert tuple(export.to_nir(model, input_shape=(2, 5, 5)).nodes["output"].output_type["output"]) == (4, 3, 3)


# --------------------------------------------------------------------------------------------------
# item 3: Flatten that both importers execute correctly
# --------------------------------------------------------------------------------------------------
def test_flatten_is_correct_nir_with_negative_per_sample_dims(tmp_path):
    graph = export.to_nir(spikelfp_conv())
    flat = graph.nodes["2"]
    assert isinstance(flat, nir.Flatten)
    assert (flat.start_dim, flat.end_dim) == (-3, -1)
    # NIR's own shape rule (calc_flatten_output) reads it as flattening the whole (4, 4, 4) sample
    assert tuple(flat.input_type["input"]) == (4, 4, 4)
    assert tuple(flat.output_type["output"]) == (64,)
    nir.write(str(tmp_path / "g.nir"), graph)
    again = nir.read(str(tmp_path / "g.nir")).nodes["2"]
    assert (int(again.start_dim), int(again.end_dim)) == (-3, -1)
    # a partial flatten keeps its meaning too: Flatten(3) on (T, B, C, H, W) is per-sample (C, H·W)
    part = export.to_nir(
        nn.Sequential(nn.Flatten(3), nn.Flatten(2), nn.Linear(12, 2), sl.LIF(0.5)), input_shape=(3, 2, 2)
    )
    assert (part.nodes["0"].start_dim, part.nodes["0"].end_dim) == (-2, -1)
    assert tuple(part.nodes["0"].output_type["output"]) == (3, 4)


@pytest.mark.parametrize("pool", [True, False])
def test_snntorch_importer_runs_flatten_models_with_identical_spikes(pool):
    pytest.importorskip("snntorch", reason="snntorch is not installed")
    from snntorch.import_nir import import_from_nir

    model = spikelfp_conv("zero", pool=pool)
    x = _spikes_in(T, B, 2, 8, 8, p=0.3)
    want = model(x)
    _active(want)
    net = import_from_nir(export.to_nir(model, convention="snntorch"))
    flatten = next(m for m in net.modules() if isinstance(m, nn.Flatten))
    assert (flatten.start_dim, flatten.end_dim) == (-3, -1)
    assert torch.equal(_run_snntorch_import(net, x), want)


def test_norse_importer_runs_flatten_models_with_identical_spikes():
    """norse has no AvgPool2d import (only SumPool2d), so its model is Conv → LIF → Flatten → Linear → LIF."""
    pytest.importorskip("norse", reason="norse is not installed")
    from norse.torch.utils.import_nir import from_nir

    model = spikelfp_conv("zero", pool=False)
    x = _spikes_in(T, B, 2, 8, 8, p=0.3)
    want = model(x)
    _active(want)
    net = from_nir(export.to_nir(model, dt=DYADIC_DT, convention="norse"), dt=DYADIC_DT)
    assert torch.equal(_run_norse_import(net, x), want)


# --------------------------------------------------------------------------------------------------
# conventions: norse reads r differently; zero-reset importers get a warning for subtract resets
# --------------------------------------------------------------------------------------------------
def test_norse_convention_writes_r_one_and_folds_the_gain_into_the_weights():
    model = spikelfp_dense()
    graph = export.to_nir(model, dt=DYADIC_DT, convention="norse")
    lif = graph.nodes["1"]
    tau = DYADIC_DT / (1 - 0.5)
    np.testing.assert_array_equal(lif.tau, np.full(20, tau))
    np.testing.assert_array_equal(lif.r, np.ones(20))  # r·dt/τ = 1 − β: norse's box integration
    # NIR semantics stay exact: (dt/τ)·r·(W/(1 − β)) = W
    w = model[0].weight.detach().numpy()
    np.testing.assert_array_equal(graph.nodes["0"].weight, w / (1 - 0.5))
    np.testing.assert_array_equal(graph.nodes["2"].weight, model[2].weight.detach().numpy() / (1 - 0.75))
    assert graph.metadata["convention"] == "norse" and lif.metadata["convention"] == "norse"
    # the default graph is untouched by the norse one (no aliasing of the model's weights)
    np.testing.assert_array_equal(export.to_nir(model).nodes["0"].weight, w)


def test_norse_importer_gives_identical_spikes_under_norse_convention():
    pytest.importorskip("norse", reason="norse is not installed")
    from norse.torch.utils.import_nir import from_nir

    model = spikelfp_dense()
    x = _spikes_in(T, B, 30)
    want = model(x)
    _active(want)
    net = from_nir(export.to_nir(model, dt=DYADIC_DT, convention="norse"), dt=DYADIC_DT)
    assert torch.equal(_run_norse_import(net, x), want)
    # the default (unit-gain, r = τ/dt) graph is read by norse with its inputs scaled by 1 − β
    plain = from_nir(export.to_nir(model, dt=DYADIC_DT), dt=DYADIC_DT, ignore_warnings=True)
    assert not torch.equal(_run_norse_import(plain, x), want)


def test_norse_convention_needs_a_weight_layer_before_each_neuron():
    with pytest.raises(export.ExportError, match=r"layer '0': its input gain 2 .* there is none directly before it"):
        export.to_nir(nn.Sequential(sl.LIF(0.5, 1.0, "zero")), input_shape=(3,), convention="norse")


@pytest.mark.parametrize("convention", ["snntorch", "norse"])
def test_subtract_reset_for_a_zero_reset_importer_warns_by_name(convention):
    model = spikelfp_dense("subtract")
    with pytest.warns(UserWarning, match=r"layer '1' resets by subtraction .* knows only a reset to zero"):
        export.to_nir(model, convention=convention)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        export.to_nir(model)  # the default keeps the reset in metadata for from_nir: no warning
        export.to_nir(spikelfp_dense("zero"), convention=convention)


def test_snntorch_convention_checks_dt_and_warns_for_if():
    with pytest.raises(export.ExportError, match="convention='snntorch' needs dt = 0.0001"):
        export.to_nir(spikelfp_dense(), dt=1e-3, convention="snntorch")
    model = nn.Sequential(nn.Linear(3, 2), sl.LIF(1.0, 1.0, "zero"))
    with pytest.warns(UserWarning, match=r"IF neuron .* Leaky with β = 0.9"):
        export.to_nir(model, convention="snntorch")
    with pytest.raises(export.ExportError, match="convention must be one of"):
        export.to_nir(model, convention="lava")


def test_snntorch_importer_builds_if_as_leaky_beta_0_9():
    """The reason for the warning above: snnTorch's importer hard-codes β = 0.9 for NIR IF nodes."""
    snn = pytest.importorskip("snntorch", reason="snntorch is not installed")
    from snntorch.import_nir import import_from_nir

    net = import_from_nir(export.to_nir(nn.Sequential(nn.Linear(3, 2), sl.LIF(1.0, 1.0, "zero"))))
    leaky = next(m for m in net.modules() if isinstance(m, snn.Leaky))
    assert float(leaky.beta) == pytest.approx(0.9)


# --------------------------------------------------------------------------------------------------
# item 2: export of snnTorch- and norse-built models, round trip through from_nir
# --------------------------------------------------------------------------------------------------
def snntorch_dense(reset="subtract", init_hidden=True, reset_delay=True, flatten=False):
    snn = pytest.importorskip("snntorch", reason="snntorch is not installed")
    torch.manual_seed(2)
    kw = {"reset_mechanism": reset, "init_hidden": init_hidden, "reset_delay": reset_delay}
    head = [nn.Flatten()] if flatten else []
    return _dyadic(
        nn.Sequential(
            *head,
            nn.Linear(30, 20),
            snn.Leaky(beta=0.5, threshold=1.0, **kw),
            nn.Linear(20, 8),
            snn.Leaky(beta=0.75, threshold=0.5, **kw),
        ),
        scale=3.0,
    )


def _run_snntorch_model(model: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """snnTorch's own step loop over (T, B, …), in either init_hidden mode."""
    import snntorch as snn
    import snntorch.utils

    layers = list(model)
    if all(getattr(m, "init_hidden", True) for m in layers if isinstance(m, snn.Leaky)):
        snntorch.utils.reset(model)
        with torch.no_grad():
            return torch.stack([model(x[t]) for t in range(x.shape[0])])
    mems = {i: m.init_leaky() for i, m in enumerate(layers) if isinstance(m, snn.Leaky)}
    out = []
    with torch.no_grad():
        for t in range(x.shape[0]):
            h = x[t]
            for i, m in enumerate(layers):
                if i in mems:
                    h, mems[i] = m(h, mems[i])
                else:
                    h = m(h)
            out.append(h)
    return torch.stack(out)


@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("init_hidden", [True, False])
def test_snntorch_model_round_trips_with_identical_spikes(tmp_path, reset, init_hidden):
    model = snntorch_dense(reset, init_hidden)
    x = _spikes_in(T, B, 30)
    want = _run_snntorch_model(model, x)
    _active(want)
    path = tmp_path / "snn.nir"
    graph = export.to_nir(model, path)  # input_shape inferred from the first Linear
    assert graph.nodes["1"].metadata["node"] == "snntorch.Leaky"
    assert graph.nodes["1"].metadata["reset"] == reset
    back = export.from_nir(path)
    assert [m.reset for m in back.modules() if isinstance(m, sl.LIF)] == [reset, reset]
    assert [m.beta for m in back.modules() if isinstance(m, sl.LIF)] == [0.5, 0.75]
    assert torch.equal(back(x), want)
    # exporting does not run the model: an init_hidden neuron keeps no state from the export
    assert all(m.mem.numel() == 0 for m in snntorch_dense(reset, init_hidden).modules() if hasattr(m, "mem"))


def test_snntorch_zero_reset_without_delay_exports_as_zero_reset():
    """reset_delay=False resets within the step; for a reset to zero (θ > 0) the spikes are the same."""
    model = snntorch_dense("zero", init_hidden=True, reset_delay=False)
    x = _spikes_in(T, B, 30)
    want = _run_snntorch_model(model, x)
    _active(want)
    assert torch.equal(export.from_nir(export.to_nir(model))(x), want)
    with pytest.raises(export.ExportError, match=r"reset_delay=False with a subtractive reset"):
        export.to_nir(snntorch_dense("subtract", reset_delay=False))


def test_snntorch_model_with_flatten_exports_per_sample():
    model = snntorch_dense("zero", flatten=True)
    x = _spikes_in(T, B, 5, 6)
    want = _run_snntorch_model(model, x)
    graph = export.to_nir(model, input_shape=(5, 6))
    assert (graph.nodes["0"].start_dim, graph.nodes["0"].end_dim) == (-2, -1)
    assert torch.equal(export.from_nir(graph)(x), want)
    # and back into snnTorch
    from snntorch.import_nir import import_from_nir

    assert torch.equal(_run_snntorch_import(import_from_nir(graph), x), want)


def test_snntorch_refusals_are_named():
    snn = pytest.importorskip("snntorch", reason="snntorch is not installed")
    with pytest.raises(export.ExportError, match="reset_mechanism='none'"):
        export.to_nir(nn.Sequential(nn.Linear(3, 2), snn.Leaky(beta=0.5, reset_mechanism="none")))
    with pytest.raises(export.ExportError, match=r"snntorch.Leaky\) does not export to NIR: a learnable threshold"):
        export.to_nir(nn.Sequential(nn.Linear(3, 2), snn.Leaky(beta=0.5, learn_threshold=True)))
    with pytest.raises(
        export.ExportError, match=r"snntorch.Synaptic\) does not export to NIR: .*delayed zero reset.* discarding"
    ):
        export.to_nir(nn.Sequential(nn.Linear(3, 2), snn.Synaptic(alpha=0.5, beta=0.5, reset_mechanism="zero")))
    with pytest.raises(export.ExportError, match="mixes time-first spikelfp neurons with step-wise"):
        export.to_nir(nn.Sequential(nn.Linear(3, 2), snn.Leaky(beta=0.5), sl.LIF(0.5)))


class _Custom(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)
        self.lif = sl.LIF(0.5)

    def forward(self, x):
        return self.lif(self.fc(x) * 2)


def test_custom_forward_is_not_sequential_and_says_so():
    with pytest.raises(export.ExportError, match=r"_Custom is not sequential: a module with its own forward\(\)"):
        export.to_nir(_Custom(), input_shape=(3,))


def norse_dense():
    norse = pytest.importorskip("norse.torch", reason="norse is not installed")
    torch.manual_seed(3)

    def cell(beta, v_th):
        p = norse.LIFBoxParameters(tau_mem_inv=torch.tensor((1 - beta) / DYADIC_DT), v_th=torch.tensor(v_th))
        return norse.LIFBoxCell(p, dt=DYADIC_DT)

    return _dyadic(
        norse.SequentialState(nn.Linear(30, 20), cell(0.5, 0.25), nn.Linear(20, 8), cell(0.75, 0.125)), scale=3.0
    )


def test_norse_model_round_trips_with_identical_spikes():
    """norse's box cell is ``v ← v + g·(i − v)``, ``g = dt·τ⁻¹``: exported as NIR LIF with the gain folded
    into the Linear before it (exact here because g is a power of two)."""
    model = norse_dense()
    x = _spikes_in(T, B, 30)
    want = _run_norse_import(model, x)  # the model's own SequentialState step loop
    _active(want)
    graph = export.to_nir(model)
    assert graph.metadata["dt"] == DYADIC_DT  # the cells' own dt
    assert graph.nodes["1"].metadata["node"] == "norse.LIFBoxCell"
    assert graph.nodes["0"].metadata["input_gain_folded"] == 0.5
    back = export.from_nir(graph)
    assert [m.beta for m in back.modules() if isinstance(m, sl.LIF)] == [0.5, 0.75]
    assert [m.reset for m in back.modules() if isinstance(m, sl.LIF)] == ["zero", "zero"]
    assert torch.equal(back(x), want)
    # and back into norse, through its own importer, with the convention it reads
    from norse.torch.utils.import_nir import from_nir

    again = from_nir(export.to_nir(model, convention="norse"), dt=DYADIC_DT)
    assert torch.equal(_run_norse_import(again, x), want)
    np.testing.assert_array_equal(
        export.to_nir(model, convention="norse").nodes["0"].weight, model[0].weight.detach().numpy()
    )


# --------------------------------------------------------------------------------------------------
# item 4: the neuron family (CubaLIF, LI, IF, RLIF, RCubaLIF, per-neuron and learnable decays)
# --------------------------------------------------------------------------------------------------
def _run_graph_executor(net, x: torch.Tensor) -> torch.Tensor:
    """Step a nirtorch-executed import (snnTorch or norse) passing its state dict back each step (the
    recurrent edge's previous output lives there)."""
    import snntorch.utils

    snntorch.utils.reset(net)
    state, out = None, []
    with torch.no_grad():
        for t in range(x.shape[0]):
            y, state = net(x[t], state)
            out.append(y[0] if isinstance(y, tuple) else y)
    return torch.stack(out)


FAMILY = {
    "CubaLIF": lambda reset: sl.CubaLIF(0.5, 0.75, 1.0, reset),
    "CubaLIF(α=0)": lambda reset: sl.CubaLIF(0.0, 0.5, 1.0, reset),
    "IF": lambda reset: sl.LIF(1.0, 2.0, reset),
    "LIF(per-neuron β)": lambda reset: sl.LIF(torch.tensor([0.5, 0.75] * 10), 1.0, reset),
    "LIF(learn_beta)": lambda reset: sl.LIF(0.5, 1.0, reset, learn_beta=True),
    "CubaLIF(per-neuron α, β)": lambda reset: sl.CubaLIF(
        torch.tensor([0.5, 0.0] * 10), torch.tensor([0.75, 0.5] * 10), 1.0, reset
    ),
    "RLIF": lambda reset: sl.RLIF(20, 0.5, 1.0, reset),
    "RLIF(no bias)": lambda reset: sl.RLIF(20, 0.5, 1.0, reset, bias=False),
    "RCubaLIF": lambda reset: sl.RCubaLIF(20, 0.5, 0.75, 1.0, reset),
}


def family_model(make, reset="zero", head=None):
    torch.manual_seed(4)
    readout = head if head is not None else sl.LIF(0.75, 0.5, reset)
    return _dyadic(nn.Sequential(nn.Linear(30, 20), make(reset), nn.Linear(20, 8), readout), scale=3.0)


@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("which", sorted(FAMILY))
def test_family_round_trips_exactly_through_a_file(tmp_path, which, reset):
    model = family_model(FAMILY[which], reset)
    x = _spikes_in(T, B, 30)
    want = model(x)
    _active(want)
    path = tmp_path / "family.nir"
    export.to_nir(model, path)
    back = export.from_nir(path)
    assert type(back[1]) is type(model[1])
    assert torch.equal(back(x), want)
    for name in ("alpha", "beta"):  # decays come back as they were: floats, or per-neuron tensors
        a, b = getattr(model[1], name, None), getattr(back[1], name, None)
        if isinstance(a, torch.Tensor) and a.numel() > 1:
            assert torch.equal(b, a)
        elif a is not None:
            assert b == float(a.detach() if isinstance(a, torch.Tensor) else a)
    assert back[1].reset == reset


def test_li_readout_round_trips_and_its_node_follows_nir():
    model = family_model(FAMILY["CubaLIF"], head=sl.LI(0.75))
    x = _spikes_in(T, B, 30)
    want = model(x)  # membranes
    assert want.abs().sum() > 0
    graph = export.to_nir(model, dt=1e-3)
    li = graph.nodes["3"]
    assert isinstance(li, nir.LI)
    np.testing.assert_allclose(li.tau, np.full(8, 1e-3 / 0.25))
    np.testing.assert_allclose(li.r * 1e-3 / li.tau, np.ones(8))  # unit input gain
    assert (li.v_leak == 0).all()
    back = export.from_nir(graph)
    assert isinstance(back[-1], sl.LI) and back[-1].beta == 0.75
    assert torch.equal(back(x), want)
    integ = export.to_nir(nn.Sequential(nn.Linear(3, 2), sl.LI(1.0))).nodes["1"]
    assert isinstance(integ, nir.I) and (integ.r == 1).all()
    assert export.from_nir(export.to_nir(nn.Sequential(nn.Linear(3, 2), sl.LI(1.0))))[1].beta == 1.0


def test_cubalif_node_is_the_euler_discretisation_of_nir_cubalif():
    """NIR CubaLIF under forward Euler with step dt, restated in float64 here:
    I ← I + dt/τ_syn·(−I + w_in·x),  v ← v + dt/τ_mem·(v_leak − v + r·I), spike v > θ, reset to 0."""
    model = family_model(FAMILY["CubaLIF(per-neuron α, β)"], "zero")
    dt = 1e-3
    node = export.to_nir(model, dt=dt).nodes["1"]
    assert isinstance(node, nir.CubaLIF)
    assert node.tau_syn.shape == node.w_in.shape == node.r.shape == (20,)
    current = model[0](_spikes_in(T, B, 30)).detach().double()
    i = v = torch.zeros(B, 20, dtype=torch.float64)
    spikes = []
    tau_syn, tau_mem = (torch.as_tensor(a, dtype=torch.float64) for a in (node.tau_syn, node.tau_mem))
    w_in, r = (torch.as_tensor(a, dtype=torch.float64) for a in (node.w_in, node.r))
    for t in range(T):
        i = i + dt / tau_syn * (-i + w_in * current[t])
        v = v + dt / tau_mem * (-v + r * i)
        s = (v > torch.as_tensor(node.v_threshold)).double()
        v = v * (1 - s)
        spikes.append(s)
    assert torch.equal(torch.stack(spikes).float(), model[1](current.float()))


def test_family_refusals_are_named():
    with pytest.raises(export.ExportError, match=r"layer '1' \(LIF\): reset='none' has no NIR equivalent"):
        export.to_nir(nn.Sequential(nn.Linear(3, 2), sl.LIF(0.5, 1.0, "none")))
    with pytest.raises(export.ExportError, match=r"layer '1' \(CubaLIF\): α = 1 or β = 1 has no NIR CubaLIF"):
        export.to_nir(nn.Sequential(nn.Linear(3, 2), sl.CubaLIF(1.0, 0.5)))
    with pytest.raises(export.ExportError, match="β = 1 for some neurons only"):
        export.to_nir(nn.Sequential(nn.Linear(3, 2), sl.LIF(torch.tensor([1.0, 0.5]))))
    g = export.to_nir(family_model(FAMILY["CubaLIF"]))
    g.nodes["1"].w_in = g.nodes["1"].w_in * 3
    with pytest.raises(export.ExportError, match=r"NIR node '1': input gain w_in·dt/τ_syn = 3; spikelfp needs 1"):
        export.from_nir(g)


@pytest.mark.parametrize(
    ("which", "node", "field", "value", "message"),
    [
        ("CubaLIF", "1", "tau_syn", 0.0, "tau_syn must be > 0"),
        ("CubaLIF", "1", "tau_mem", np.nan, "tau_mem holds NaN or Inf"),
        ("LIF(per-neuron β)", "1", "tau", -1.0, "tau must be > 0"),
        ("RLIF", "1", "recurrent weight", np.inf, "recurrent weight holds NaN or Inf"),
        ("RLIF", "1", "recurrent bias", None, r"bias has shape \(1,\), expected \(20,\)"),
    ],
)
def test_family_reader_refuses_hostile_values(which, node, field, value, message):
    """The family's NIR reader holds the same line as the LIF reader: no τ <= 0, no NaN/Inf, no broadcast bias."""
    graph = export.to_nir(family_model(FAMILY[which]))
    target = graph.nodes[node]
    if field.startswith("recurrent"):
        inner = target.nodes["w_rec"] if hasattr(target, "nodes") else None
        if inner is None:  # the flat form: the weight node beside the neuron
            inner = next(n for k, n in graph.nodes.items() if k != node and hasattr(n, "weight") and k.endswith("rec"))
        if field == "recurrent weight":
            inner.weight = np.full_like(inner.weight, value)
        else:
            inner.bias = inner.bias[:1]
    else:
        setattr(target, field, np.full_like(np.asarray(getattr(target, field), dtype=np.float64), value))
    with pytest.raises(export.ExportError, match=message):
        export.from_nir(graph)


@pytest.mark.parametrize("which", ["CubaLIF", "CubaLIF(per-neuron α, β)", "LIF(per-neuron β)", "RLIF", "RCubaLIF"])
def test_snntorch_importer_gives_identical_spikes_for_the_family(which):
    pytest.importorskip("snntorch", reason="snntorch is not installed")
    from snntorch.import_nir import import_from_nir

    model = family_model(FAMILY[which], "zero")
    x = _spikes_in(T, B, 30)
    want = model(x)
    _active(want)
    net = import_from_nir(export.to_nir(model, convention="snntorch"))
    assert torch.equal(_run_graph_executor(net, x), want)


@pytest.mark.parametrize(
    "which", ["CubaLIF", "CubaLIF(per-neuron α, β)", "LIF(per-neuron β)", "IF", "RLIF", "RCubaLIF"]
)
def test_norse_importer_gives_identical_spikes_for_the_family(which):
    pytest.importorskip("norse", reason="norse is not installed")
    from norse.torch.utils.import_nir import from_nir

    model = family_model(FAMILY[which], "zero")
    x = _spikes_in(T, B, 30)
    want = model(x)
    _active(want)
    net = from_nir(export.to_nir(model, dt=DYADIC_DT, convention="norse"), dt=DYADIC_DT)
    assert torch.equal(_run_graph_executor(net, x), want)


def test_recurrent_node_is_snntorchs_subgraph_and_its_bias_moves_for_importers():
    model = family_model(FAMILY["RLIF"], "zero")
    graph = export.to_nir(model)
    sub = graph.nodes["1"]
    assert isinstance(sub, nir.NIRGraph)
    assert set(sub.nodes) == {"input", "lif", "w_rec", "output"}  # snnTorch's _extract_snntorch_module form
    assert set(sub.edges) == {("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")}
    np.testing.assert_array_equal(sub.nodes["w_rec"].weight, model[1].recurrent.weight.detach().numpy())
    np.testing.assert_array_equal(sub.nodes["w_rec"].bias, model[1].recurrent.bias.detach().numpy())
    # for the importers, whose executor starts the recurrent edge at 0, b moves into the Linear before it
    moved = export.to_nir(model, convention="snntorch")
    assert isinstance(moved.nodes["1"].nodes["w_rec"], nir.Linear)
    np.testing.assert_array_equal(moved.nodes["0"].bias, (model[0].bias + model[1].recurrent.bias).detach().numpy())
    with pytest.warns(UserWarning, match=r"layer '0': its recurrent bias b enters at t = 0"):
        export.to_nir(nn.Sequential(sl.RLIF(3, 0.5, 1.0, "zero")), input_shape=(3,), convention="snntorch")


def test_flat_two_cycle_recurrence_also_imports():
    """snnTorch's own export_to_nir (through nirtorch) writes RLeaky flat: '1.lif' ⇄ '1.w_rec'."""
    model = family_model(FAMILY["RCubaLIF"], "zero")
    x = _spikes_in(T, B, 30)
    graph = export.to_nir(model)
    sub = graph.nodes.pop("1")
    graph.nodes["1.lif"], graph.nodes["1.w_rec"] = sub.nodes["lif"], sub.nodes["w_rec"]
    graph.edges = [("input", "0"), ("0", "1.lif"), ("1.lif", "1.w_rec"), ("1.w_rec", "1.lif"), ("1.lif", "2")]
    graph.edges += [("2", "3"), ("3", "output")]
    back = export.from_nir(graph)
    assert isinstance(back[1], sl.RCubaLIF)
    assert torch.equal(back(x), model(x))


def test_importers_and_li():
    """Neither importer runs NIR LI: snnTorch's raises, norse's drops the node without a word (so its
    output is the Linear's); to_nir warns for both conventions."""
    model = family_model(FAMILY["CubaLIF"], head=sl.LI(0.75))
    for convention in ("snntorch", "norse"):
        with pytest.warns(UserWarning, match=r"layer '3' is a leaky integrator \(NIR LI\)"):
            export.to_nir(model, convention=convention)
    pytest.importorskip("snntorch", reason="snntorch is not installed")
    pytest.importorskip("norse", reason="norse is not installed")
    from norse.torch.utils.import_nir import from_nir
    from snntorch.import_nir import import_from_nir

    graph = export.to_nir(model)
    with pytest.raises(ValueError, match="LI"):
        import_from_nir(graph)
    net = from_nir(export.to_nir(model), dt=1e-4, ignore_warnings=True)
    children = dict(net.named_children())
    assert "1" in children and "2" in children and "3" not in children  # the LI node '3' is gone


# --------------------------------------------------------------------------------------------------
# snnTorch-built family models
# --------------------------------------------------------------------------------------------------
def snntorch_family(cls, reset="subtract", reset_delay=True, **kw):
    snn = pytest.importorskip("snntorch", reason="snntorch is not installed")
    torch.manual_seed(5)
    args = {"reset_mechanism": reset, "init_hidden": True, "reset_delay": reset_delay}
    if cls in ("Synaptic", "RSynaptic"):
        args["alpha"] = 0.5
    if cls in ("RLeaky", "RSynaptic"):
        args.update(kw or {"linear_features": 20})
    neuron = getattr(snn, cls)(beta=0.75, threshold=1.0, **args)
    tail = snn.Leaky(beta=0.5, threshold=0.5, init_hidden=True, reset_mechanism=reset, reset_delay=reset_delay)
    return _dyadic(nn.Sequential(nn.Linear(30, 20), neuron, nn.Linear(20, 8), tail), scale=3.0)


def _run_snntorch_steps(model, x):
    import snntorch.utils

    snntorch.utils.reset(model)
    with torch.no_grad():
        return torch.stack([model(x[t]) for t in range(x.shape[0])])


@pytest.mark.parametrize(
    "cls, reset, delay, kw",
    [
        ("Synaptic", "subtract", True, {}),
        ("Synaptic", "zero", False, {}),
        ("RLeaky", "subtract", True, {}),
        ("RLeaky", "zero", False, {}),
        ("RLeaky", "subtract", True, {"all_to_all": False, "V": torch.tensor([0.5, -1.0] * 10)}),
        ("RSynaptic", "subtract", True, {}),
    ],
)
def test_snntorch_family_models_round_trip_with_identical_spikes(cls, reset, delay, kw):
    model = snntorch_family(cls, reset, delay, **kw)
    x = _spikes_in(T, B, 30)
    want = _run_snntorch_steps(model, x)
    _active(want)
    back = export.from_nir(export.to_nir(model))
    assert type(back[1]).__name__ == {"Synaptic": "CubaLIF", "RLeaky": "RLIF", "RSynaptic": "RCubaLIF"}[cls]
    assert torch.equal(back(x), want)


def test_snntorch_leaky_with_per_neuron_learnable_or_unit_beta_round_trips():
    snn = pytest.importorskip("snntorch", reason="snntorch is not installed")
    x = _spikes_in(T, B, 30)
    for leaky in (
        snn.Leaky(beta=torch.tensor([0.5, 0.75] * 10), init_hidden=True),
        snn.Leaky(beta=0.5, learn_beta=True, init_hidden=True),
        snn.Leaky(beta=1.0, threshold=2.0, init_hidden=True),
    ):
        torch.manual_seed(6)
        model = _dyadic(nn.Sequential(nn.Linear(30, 20), leaky), scale=3.0)
        want = _run_snntorch_steps(model, x)
        _active(want)
        back = export.from_nir(export.to_nir(model))
        assert torch.equal(back(x), want)


# --------------------------------------------------------------------------------------------------
# norse-built models beyond LIFBoxCell
# --------------------------------------------------------------------------------------------------
def test_norse_iaf_and_li_box_cells_round_trip():
    norse = pytest.importorskip("norse.torch", reason="norse is not installed")
    torch.manual_seed(7)
    iaf = norse.IAFCell(norse.IAFParameters(v_th=torch.tensor(2.0)))
    li = norse.LIBoxCell(norse.LIBoxParameters(tau_mem_inv=torch.tensor(0.5 / DYADIC_DT)), dt=DYADIC_DT)
    model = _dyadic(norse.SequentialState(nn.Linear(30, 20), iaf, nn.Linear(20, 8), li), scale=3.0)
    x = _spikes_in(T, B, 30)
    want = _run_norse_import(model, x)  # the readout's membranes
    graph = export.to_nir(model)
    assert isinstance(graph.nodes["1"], nir.IF) and isinstance(graph.nodes["3"], nir.LI)
    back = export.from_nir(graph)
    assert isinstance(back[1], sl.LIF) and back[1].beta == 1.0 and back[1].reset == "zero"
    assert isinstance(back[3], sl.LI) and back[3].beta == 0.5
    spikes = back[1](back[0](x))
    assert 0.02 < spikes.mean() < 0.98
    torch.testing.assert_close(back(x), want, rtol=1e-6, atol=1e-6)


def test_norse_lif_cell_exports_as_cubalif_with_identical_spikes():
    """norse's LIFCell (i ← i + x, v ← v + g·(i − v), i decays after the spike) is CubaLIF(1 − dt·τ_syn⁻¹, 1 − g)
    on g·x: exported as NIR CubaLIF with g folded into the Linear, it comes back with norse's own spikes."""
    norse = pytest.importorskip("norse.torch", reason="norse is not installed")
    torch.manual_seed(3)

    def cell(alpha, beta, v_th):
        p = norse.LIFParameters(
            tau_syn_inv=torch.tensor((1 - alpha) / DYADIC_DT),
            tau_mem_inv=torch.tensor((1 - beta) / DYADIC_DT),
            v_th=torch.tensor(v_th),
        )
        return norse.LIFCell(p, dt=DYADIC_DT)

    model = _dyadic(
        norse.SequentialState(nn.Linear(30, 20), cell(0.5, 0.5, 0.25), nn.Linear(20, 8), cell(0.75, 0.75, 0.125)),
        scale=3.0,
    )
    x = _spikes_in(T, B, 30)
    want = _run_norse_import(model, x)  # norse's own step loop
    _active(want)
    graph = export.to_nir(model)
    assert isinstance(graph.nodes["1"], nir.CubaLIF) and graph.nodes["1"].metadata["node"] == "norse.LIFCell"
    back = export.from_nir(graph)
    cubas = [m for m in back.modules() if isinstance(m, sl.CubaLIF)]
    assert [(m.alpha, m.beta, m.reset) for m in cubas] == [(0.5, 0.5, "zero"), (0.75, 0.75, "zero")]
    assert torch.equal(back(x), want)


# --------------------------------------------------------------------------------------------------
# current-based integrators (CubaLI) and norse's cells that hold their weights
# --------------------------------------------------------------------------------------------------
def test_cubali_node_is_the_euler_discretisation_of_nir_cubali(tmp_path):
    """NIR CubaLI under forward Euler with step dt, restated in float64 here:
    I ← I + dt/τ_syn·(−I + w_in·x),  v ← v + dt/τ_mem·(v_leak − v + r·I), output v."""
    alpha, beta = torch.tensor([0.5, 0.25] * 4), torch.tensor([0.75, 0.5, 0.875, 0.5] * 2)
    model = family_model(FAMILY["CubaLIF"], head=sl.CubaLI(alpha, beta))
    x = _spikes_in(T, B, 30)
    want = model(x)
    dt = 1e-3
    node = export.to_nir(model, dt=dt).nodes["3"]
    assert isinstance(node, nir.CubaLI)
    assert node.tau_syn.shape == node.tau_mem.shape == node.w_in.shape == node.r.shape == (8,)
    current = model[2](model[1](model[0](x))).detach().double()
    i = v = torch.zeros(B, 8, dtype=torch.float64)
    tau_syn, tau_mem, w_in, r = (
        torch.as_tensor(a, dtype=torch.float64) for a in (node.tau_syn, node.tau_mem, node.w_in, node.r)
    )
    outs = []
    for t in range(T):
        i = i + dt / tau_syn * (-i + w_in * current[t])
        v = v + dt / tau_mem * (torch.as_tensor(node.v_leak) - v + r * i)
        outs.append(v)
    torch.testing.assert_close(want.double(), torch.stack(outs), rtol=1e-5, atol=1e-5)
    assert want.abs().mean() > 0.1
    # and back, through a file: the same module, the same decays, the same kernels
    path = tmp_path / "cubali.nir"
    export.to_nir(model, path)
    back = export.from_nir(path)
    assert type(back[3]) is sl.CubaLI
    assert torch.equal(back[3].alpha, alpha) and torch.equal(back[3].beta, beta)
    assert torch.equal(back(x), want)
    scalar = family_model(FAMILY["CubaLIF"], head=sl.CubaLI(0.5, 0.75))
    again = export.from_nir(export.to_nir(scalar))
    assert (again[3].alpha, again[3].beta) == (0.5, 0.75)
    assert torch.equal(again(x), scalar(x))
    with pytest.raises(export.ExportError, match=r"layer '3' \(CubaLI\): α = 1 or β = 1 has no NIR CubaLI"):
        export.to_nir(family_model(FAMILY["CubaLIF"], head=sl.CubaLI(1.0, 0.5)))
    pytest.importorskip("snntorch", reason="snntorch is not installed")
    from snntorch.import_nir import import_from_nir

    with pytest.warns(UserWarning, match=r"NIR CubaLI\); snnTorch's import_from_nir raises on NIR CubaLI nodes"):
        snntorch_graph = export.to_nir(scalar, convention="snntorch")
    with pytest.raises(ValueError, match="CubaLI"):  # snnTorch's importer has no CubaLI
        import_from_nir(snntorch_graph)


def _li_params(norse, alpha, beta):
    return norse.LIParameters(
        tau_syn_inv=torch.tensor((1 - alpha) / DYADIC_DT), tau_mem_inv=torch.tensor((1 - beta) / DYADIC_DT)
    )


def _lif_cell(norse, alpha, beta, v_th):
    p = norse.LIFParameters(
        tau_syn_inv=torch.tensor((1 - alpha) / DYADIC_DT),
        tau_mem_inv=torch.tensor((1 - beta) / DYADIC_DT),
        v_th=torch.tensor(v_th),
    )
    return norse.LIFCell(p, dt=DYADIC_DT)


def _dyadic_cells(model: nn.Module, scale: float = 3.0) -> nn.Module:
    """:func:`_dyadic`, and the weights norse's cells hold (input and recurrent weights) too."""
    _dyadic(model, scale)
    with torch.no_grad():
        for m in model.modules():
            for name in ("input_weights", "recurrent_weights"):
                if isinstance(getattr(m, name, None), torch.Tensor):
                    getattr(m, name).copy_(torch.round(getattr(m, name) * 16 * scale) / 16)
    return model


def _run_norse_model(model, x: torch.Tensor, time_first: bool) -> torch.Tensor:
    if time_first:
        with torch.no_grad():
            return model(x)[0]
    return _run_norse_import(model, x)


@pytest.mark.parametrize("kind", ["LICell", "LI", "LILinearCell"])
def test_norse_current_based_integrators_export_as_cubali(tmp_path, kind):
    """norse's LICell (i ← i_d + x, v ← v + g·(i − v), i_d ← (1 − h)·i) is CubaLI(1 − h, 1 − g) on g·x: written as
    NIR CubaLI with g folded into the Linear before it (LILinearCell: its input weights become that bias-free Linear
    node), it comes back as sl.CubaLI with norse's own outputs. norse's importer has no CubaLI and leaves it out."""
    norse = pytest.importorskip("norse.torch", reason="norse is not installed")
    torch.manual_seed(3)
    head = [nn.Linear(20, 8)] if kind != "LILinearCell" else []
    if kind == "LILinearCell":
        readout = norse.LILinearCell(20, 8, _li_params(norse, 0.5, 0.75), dt=DYADIC_DT)
    else:
        readout = (norse.LI if kind == "LI" else norse.LICell)(_li_params(norse, 0.5, 0.75), dt=DYADIC_DT)
    first = (
        norse.LIF(_lif_cell(norse, 0.5, 0.5, 0.25).p, dt=DYADIC_DT)
        if kind == "LI"
        else _lif_cell(norse, 0.5, 0.5, 0.25)
    )
    model = _dyadic_cells(norse.SequentialState(nn.Linear(30, 20), first, *head, readout))
    x = _spikes_in(T, B, 30)
    want = _run_norse_model(model, x, time_first=kind == "LI")  # norse's own membranes
    assert want.abs().mean() > 0.1
    path = tmp_path / "li.nir"
    graph = export.to_nir(model, path)
    node = graph.nodes["2" if kind == "LILinearCell" else "3"]
    assert isinstance(node, nir.CubaLI) and node.metadata["node"] == f"norse.{kind}"
    g = 1 - 0.75  # dt·τ_mem⁻¹ of the readout, multiplied into the weights before it
    if kind == "LILinearCell":
        np.testing.assert_array_equal(graph.nodes["2_input_weights"].weight, g * readout.input_weights.detach().numpy())
        assert graph.edges[-3:] == [("1", "2_input_weights"), ("2_input_weights", "2"), ("2", "output")]
    else:
        np.testing.assert_array_equal(graph.nodes["2"].weight, g * model[2].weight.detach().numpy())
    back = export.from_nir(path)
    assert isinstance(back[-1], sl.CubaLI) and (back[-1].alpha, back[-1].beta) == (0.5, 0.75)
    if kind == "LILinearCell":
        assert isinstance(back[-2], nn.Linear) and back[-2].bias is None
    torch.testing.assert_close(back(x), want, rtol=1e-6, atol=1e-6)
    # norse's own importer: no CubaLI, so its output is the layer before (a warning says so on export)
    from norse.torch.utils.import_nir import from_nir

    with pytest.warns(UserWarning, match=r"NIR CubaLI\); norse's from_nir silently skips NIR CubaLI nodes"):
        norse_graph = export.to_nir(model, convention="norse")
    imported = from_nir(norse_graph, dt=DYADIC_DT)
    assert (readout_key := "2" if kind == "LILinearCell" else "3") in graph.nodes
    assert readout_key not in dict(imported.named_children())
    before = nn.Sequential(*list(back)[:-1])(x)  # spikelfp's run up to the readout's input, gain included
    assert torch.equal(_run_graph_executor(imported, x), before)


@pytest.mark.parametrize("kind", ["LIFRecurrentCell", "LIFRecurrent"])
def test_norse_lif_recurrent_cells_export_as_linear_then_recurrent_cubalif(tmp_path, kind):
    """norse's LIFRecurrentCell integrates g·(W_in·x + W_rec·z[t−1]) into a CubaLIF current: a bias-free Linear node
    (g·W_in), then the recurrent CubaLIF subgraph with w_rec = g·W_rec, as spikelfp's RCubaLIF is written. from_nir
    gives Linear + RCubaLIF with norse's own spikes, and so does norse's importer (the graph is unit-gain NIR)."""
    norse = pytest.importorskip("norse.torch", reason="norse is not installed")
    torch.manual_seed(3)
    p = norse.LIFParameters(
        tau_syn_inv=torch.tensor(0.5 / DYADIC_DT), tau_mem_inv=torch.tensor(0.5 / DYADIC_DT), v_th=torch.tensor(0.25)
    )
    time_first = kind == "LIFRecurrent"
    cell = getattr(norse, kind)(30, 20, p, dt=DYADIC_DT)
    tail = (
        norse.LIF(_lif_cell(norse, 0.75, 0.75, 0.125).p, dt=DYADIC_DT)
        if time_first
        else _lif_cell(norse, 0.75, 0.75, 0.125)
    )
    model = _dyadic_cells(norse.SequentialState(cell, nn.Linear(20, 8), tail))
    x = _spikes_in(T, B, 30)
    want = _run_norse_model(model, x, time_first)
    _active(want)
    path = tmp_path / "rec.nir"
    graph = export.to_nir(model, path)
    assert graph.metadata["dt"] == DYADIC_DT  # norse's cells: their own dt by default
    assert graph.edges[:2] == [("input", "0_input_weights"), ("0_input_weights", "0")]
    np.testing.assert_array_equal(graph.nodes["0_input_weights"].weight, 0.5 * cell.input_weights.detach().numpy())
    sub = graph.nodes["0"]
    assert isinstance(sub, nir.NIRGraph) and isinstance(sub.nodes["lif"], nir.CubaLIF)
    np.testing.assert_array_equal(sub.nodes["w_rec"].weight, 0.5 * cell.recurrent_weights.detach().numpy())
    back = export.from_nir(path)
    assert isinstance(back[0], nn.Linear) and back[0].bias is None
    assert isinstance(back[1], sl.RCubaLIF) and back[1].recurrent.bias is None
    assert (back[1].alpha, back[1].beta, back[1].reset) == (0.5, 0.5, "zero")
    assert torch.equal(back(x), want)
    from norse.torch.utils.import_nir import from_nir

    imported = from_nir(export.to_nir(model, convention="norse"), dt=DYADIC_DT)
    assert torch.equal(_run_graph_executor(imported, x), want)


def test_norse_time_first_modules_export_as_their_cells():
    """norse's time-first LIF and IAF run their cells over (T, B, …): exported as the cells' nodes, they come back as
    spikelfp's time-first modules with norse's own spikes."""
    norse = pytest.importorskip("norse.torch", reason="norse is not installed")
    torch.manual_seed(3)
    model = _dyadic(
        norse.SequentialState(
            nn.Linear(30, 20),
            norse.LIF(_lif_cell(norse, 0.5, 0.5, 0.25).p, dt=DYADIC_DT),
            nn.Linear(20, 8),
            norse.IAF(norse.IAFParameters(v_th=torch.tensor(2.0))),
        ),
        scale=3.0,
    )
    x = _spikes_in(T, B, 30)
    with torch.no_grad():
        want = model(x)[0]
    _active(want)
    graph = export.to_nir(model)
    assert isinstance(graph.nodes["1"], nir.CubaLIF) and isinstance(graph.nodes["3"], nir.IF)
    assert graph.nodes["1"].metadata["node"] == "norse.LIF" and graph.nodes["3"].metadata["node"] == "norse.IAF"
    back = export.from_nir(graph)
    assert isinstance(back[1], sl.CubaLIF) and isinstance(back[3], sl.LIF) and back[3].beta == 1.0
    assert torch.equal(back(x), want)


def test_snntorch_neurons_without_a_nir_node_are_refused_by_name():
    snn = pytest.importorskip("snntorch", reason="snntorch is not installed")
    for neuron in (snn.Alpha(alpha=0.9, beta=0.8), snn.Lapicque(beta=0.9), snn.SLSTM(2, 2)):
        name = type(neuron).__name__
        with pytest.raises(
            export.ExportError, match=rf"\(snntorch\.{name}\) does not export to NIR: |{name} is not sequential"
        ):
            export.to_nir(nn.Sequential(nn.Linear(3, 2), neuron))


def test_from_nir_refuses_a_norse_convention_graph_by_its_gain():
    """A norse-convention LIF has r·dt/τ = 1 − β (its gain is in the weights): from_nir names it, not guesses."""
    graph = export.to_nir(spikelfp_dense(), dt=DYADIC_DT, convention="norse")
    with pytest.raises(export.ExportError, match=r"NIR node '1': input gain r·dt/τ = 0.5; spikelfp needs 1"):
        export.from_nir(graph)
