"""Strictness (LFP-SPEC §9) and the engine's safety checks: nothing is written unless LFP owns the graph."""

from __future__ import annotations

import copy
import logging
import pickle
import warnings

import pytest
import torch
from torch import nn

import spikelfp as sl
from spikelfp.surrogate import FastSigmoid

T, B = 4, 3


def no_grads(*modules: nn.Module) -> bool:
    return all(p.grad is None for m in modules for p in m.parameters())


# --------------------------------------------------------------------------------------------------
# models with an operation that has no rule
# --------------------------------------------------------------------------------------------------
class Squash(nn.Module):
    """``3·sigmoid(fc(x))`` inside one module: autograd would differentiate the sigmoid and the product."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return torch.sigmoid(self.fc(x)) * 3


class BareResidual(nn.Module):
    """``x + relu(fc(x))`` with a bare ``+``."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.relu = nn.ReLU()

    def forward(self, x):
        return x + self.relu(self.fc(x))


class HiddenSurrogateLIF(nn.Module):
    """A surrogate LIF kept outside the module tree (a plain list), so LFP never patches it."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self._neurons = [sl.LIF(0.9, surrogate=FastSigmoid())]

    def forward(self, x):
        return self._neurons[0](self.fc(x))


def squash_case():
    torch.manual_seed(0)
    return nn.Sequential(Squash(), nn.Linear(4, 2)), torch.randn(B, 4, requires_grad=True)


def residual_case():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 4), BareResidual(), nn.Linear(4, 2)), torch.randn(B, 4, requires_grad=True)


def surrogate_case():
    torch.manual_seed(0)
    net = nn.Sequential(HiddenSurrogateLIF(), nn.Linear(4, 2))
    return net, (torch.rand(T, B, 4) * 3).requires_grad_(True)


@pytest.mark.parametrize(
    ("case", "match"),
    [
        (
            squash_case,
            r"operation MulBackward0 \(autograd would differentiate it\) between layer '0\.fc' and layer '1'",
        ),
        (residual_case, r"operation AddBackward0 .* between layer '0' and layer '2'.*sl\.nn\.Add"),
        (surrogate_case, r"autograd Function spikelfp\.neurons.*MultiStepBPTT.* between layer '0\.fc' and layer '1'"),
    ],
)
def test_operation_without_rule_raises_and_writes_nothing(case, match):
    net, x = case()
    lfp = sl.LFP(net, "epsilon")
    out = lfp(x)
    with pytest.raises(sl.StrictError, match=match):
        lfp.backward(out, torch.ones_like(out))
    assert no_grads(net) and x.grad is None
    assert isinstance(sl.StrictError("x"), TypeError)


@pytest.mark.parametrize("case", [squash_case, residual_case, surrogate_case])
def test_strict_false_warns_once_and_writes(case):
    net, x = case()
    lfp = sl.LFP(net, "epsilon", strict=False)
    with pytest.warns(UserWarning, match="has no LFP rule") as record:
        for _ in range(2):
            out = lfp(x)
            lfp.backward(out, torch.ones_like(out))
    assert len([w for w in record if "has no LFP rule" in str(w.message)]) == 1
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


def step_loop(net, cells, x, init):
    """A user's step loop: ``fc → cell → fc → cell`` for each step, outputs stacked."""
    fc1, c1, fc2, c2 = net
    s1, s2 = init()
    outs = []
    for t in range(x.shape[0]):
        z1, s1 = c1(fc1(x[t]), s1)
        z2, s2 = c2(fc2(z1), s2)
        outs.append(z2)
    return torch.stack(outs)


def test_surrogate_neuron_without_a_rule_raises_and_writes_nothing():
    # a container neuron (it has a child, so attach lets it through) run by snnTorch's surrogate: the backward
    # meets its surrogate node (snnTorch's RLeaky, once this example, now trains by LFP: tests/test_interop_family.py)
    snn = pytest.importorskip("snntorch", reason="snntorch (extra 'snn') is not installed")

    class SurrogateRecurrent(nn.Module):
        def __init__(self):
            super().__init__()
            self.recurrent = nn.Linear(6, 6)
            self.spike = snn.surrogate.atan()

        def forward(self, x, spk, mem):
            mem = 0.8 * mem + x + self.recurrent(spk)
            return self.spike(mem - 1.0), mem

    torch.manual_seed(0)
    fc, rleaky = nn.Linear(5, 6), SurrogateRecurrent()
    net = nn.ModuleList([fc, rleaky])
    x = torch.rand(T, B, 5) * 3
    with sl.LFP(net, "epsilon") as lfp:
        spk, mem = torch.zeros(B, 6), torch.zeros(B, 6)
        outs = []
        for t in range(T):
            spk, mem = rleaky(fc(x[t]), spk, mem)
            outs.append(spk)
        out = torch.stack(outs)
    with pytest.raises(sl.StrictError, match=r"has no LFP rule") as info:
        lfp.backward(out, torch.ones_like(out))
    assert "Backward" in str(info.value)
    assert no_grads(net)


def test_input_built_by_an_operation_is_held_to_the_same_rule():
    # decided: every node of the output's graph is checked, also beyond the model's input; autograd
    # would write a gradient into any tensor requiring grad behind it
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    scale = torch.ones(4, requires_grad=True)  # e.g. a learnable encoder outside the model
    lfp = sl.LFP(net, "epsilon")
    out = lfp(torch.randn(B, 4) * scale)
    with pytest.raises(sl.StrictError, match=r"MulBackward0 .* before layer '0'"):
        lfp.backward(out, torch.ones_like(out))
    assert scale.grad is None and no_grads(net)
    # routing in front of the model is fine: the feedback reaches the leaf as it is
    base = torch.randn(1, 4, requires_grad=True)
    out = lfp(base.expand(B, 4))
    lfp.backward(out, torch.ones_like(out))
    assert base.grad is not None


def test_operations_on_tensors_without_grad_are_not_on_the_path():
    torch.manual_seed(0)
    frozen = nn.Sequential(Squash(), nn.Linear(4, 4))
    frozen.requires_grad_(False)
    net = nn.Sequential(frozen, nn.Linear(4, 2))
    lfp = sl.LFP(net, "epsilon")
    out = lfp(torch.randn(B, 4))  # the sigmoid and product see nothing that requires grad
    lfp.backward(out, torch.ones_like(out))
    assert net[1].weight.grad is not None


# --------------------------------------------------------------------------------------------------
# families that must train under strict=True
# --------------------------------------------------------------------------------------------------
class AddResidual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.relu = nn.ReLU()
        self.add = sl.nn.Add()

    def forward(self, x):
        return self.add(x, self.relu(self.fc(x)))


def _conv(padding_mode):
    return nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1, padding_mode=padding_mode),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(3, 4, 2, padding="same"),
        nn.AdaptiveAvgPool2d(2),
        nn.Dropout(0.5),
        nn.Flatten(),
        nn.Linear(16, 2),
    ), torch.randn(B, 2, 6, 6, requires_grad=True)


def _conv1d_3d():
    net = nn.Sequential(
        nn.Conv1d(2, 3, 3, padding=1, padding_mode="reflect"),
        nn.MaxPool1d(2),
        nn.AdaptiveMaxPool1d(2),
        nn.Flatten(),
        nn.Linear(6, 2),
    )
    return net, torch.randn(B, 2, 8, requires_grad=True)


def _conv3d():
    net = nn.Sequential(
        nn.Conv3d(2, 3, 3, padding=1, padding_mode="replicate"),
        nn.MaxPool3d(2),
        nn.AdaptiveMaxPool3d(1),
        nn.AvgPool3d(1),
        nn.Flatten(),
        nn.Linear(3, 2),
    )
    return net, torch.randn(B, 2, 4, 4, 4, requires_grad=True)


def _lif_mlp():
    net = nn.Sequential(nn.Flatten(2), nn.Linear(16, 8), sl.LIF(0.9), nn.Linear(8, 3), sl.LIF(0.9, reset="zero"))
    return net, torch.rand(T, B, 4, 4) * 3


def _spiking_sequential():
    net = sl.nn.SpikingSequential(
        sl.nn.TimeDistributed(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.MaxPool2d(2)),
        nn.Flatten(2),
        nn.Linear(3, 4),
        sl.LIF(0.9),
        nn.Linear(4, 2),
        sl.LIF(0.9),
        input_shape=(1, 4, 4),
    )
    return net, sl.encode.constant(torch.rand(B, 1, 4, 4) * 3, T)  # stride-0 time: the hoisted expand


def _residual():
    return nn.Sequential(nn.Linear(4, 4), AddResidual(), nn.Linear(4, 2)), torch.randn(B, 4, requires_grad=True)


@pytest.mark.parametrize(
    "build",
    [
        *(lambda mode=mode: _conv(mode) for mode in ("zeros", "reflect", "replicate", "circular")),
        _conv1d_3d,
        _conv3d,
        _lif_mlp,
        _spiking_sequential,
        _residual,
    ],
)
@pytest.mark.parametrize("composite", ["epsilon", "zplus-zminus"])
def test_models_that_train_today_pass_the_check(build, composite):
    torch.manual_seed(0)
    net, x = build()
    net = net.double()
    x = x.detach().double().requires_grad_(x.requires_grad)
    lfp = sl.LFP(net, composite)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = lfp(x)
        lfp.backward(out, torch.randn_like(out))
    assert all(p.grad is not None for p in net.parameters())


def test_lif_step_loop_passes_the_check():
    torch.manual_seed(0)
    fc1, lif1, fc2, lif2 = nn.Linear(5, 6), sl.LIF(0.8), nn.Linear(6, 2), sl.LIF(0.8)
    net = nn.ModuleList([fc1, lif1, fc2, lif2])
    x = torch.rand(T, B, 5) * 3
    with sl.LFP(net, "epsilon") as lfp:
        out = step_loop([fc1, lif1.step, fc2, lif2.step], None, x, lambda: (None, None))
    lfp.backward(out, torch.ones_like(out))
    assert all(p.grad is not None for p in net.parameters())


@pytest.mark.parametrize("init_hidden", [False, True])
def test_snntorch_leaky_step_loop_passes_the_check(init_hidden):
    snn = pytest.importorskip("snntorch", reason="snntorch (extra 'snn') is not installed")
    import snntorch.utils

    torch.manual_seed(0)
    fc1, fc2 = nn.Linear(5, 6), nn.Linear(6, 2)
    l1 = snn.Leaky(beta=0.8, init_hidden=init_hidden)
    l2 = snn.Leaky(beta=0.8, init_hidden=init_hidden, output=init_hidden)
    net = nn.ModuleList([fc1, l1, fc2, l2])
    x = torch.rand(T, B, 5) * 3
    with sl.LFP(net, "epsilon") as lfp:
        if init_hidden:
            snntorch.utils.reset(net)
            out = torch.stack([l2(fc2(l1(fc1(x[t]))))[0] for t in range(T)])
        else:
            out = step_loop([fc1, l1, fc2, l2], None, x, lambda: (l1.init_leaky(), l2.init_leaky()))
    lfp.backward(out, torch.ones_like(out))
    assert all(p.grad is not None for p in net.parameters())


def test_norse_lif_box_cell_step_loop_passes_the_check():
    pytest.importorskip("norse", reason="norse (extra 'snn') is not installed")
    from norse.torch import LIFBoxCell

    torch.manual_seed(0)
    fc1, fc2 = nn.Linear(5, 6), nn.Linear(6, 2)
    with torch.no_grad():
        fc1.weight.mul_(20)
        fc2.weight.mul_(20)
    c1, c2 = LIFBoxCell(), LIFBoxCell()
    net = nn.ModuleList([fc1, c1, fc2, c2])
    x = torch.rand(T, B, 5)
    with torch.no_grad():
        plain = step_loop([fc1, c1, fc2, c2], None, x, lambda: (None, None))
    with sl.LFP(net, "epsilon") as lfp:
        out = step_loop([fc1, c1, fc2, c2], None, x, lambda: (None, None))
    assert torch.equal(out, plain)  # the reset state routed through a rule node is norse's own
    lfp.backward(out, torch.ones_like(out))
    assert all(p.grad is not None for p in net.parameters())


# --------------------------------------------------------------------------------------------------
# issue 14: outputs of other engines, copies, overlapping engines, input shape, empty/NaN input
# --------------------------------------------------------------------------------------------------
def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 2))


def test_output_not_produced_by_this_engine_is_refused():
    net = mlp()
    x = torch.randn(B, 4)
    lfp = sl.LFP(net, "epsilon")
    plain = net(x)
    with pytest.raises(ValueError, match="no LFP engine"):
        lfp.backward(plain, torch.ones_like(plain))
    other = sl.LFP(net, "epsilon")
    out = other(x)
    with pytest.raises(ValueError, match="another LFP engine"):
        lfp.backward(out, torch.ones_like(out))
    assert no_grads(net)
    other.backward(out, torch.ones_like(out))  # its own engine takes it
    assert not no_grads(net)


def test_deepcopy_and_pickle_inside_the_block_give_clean_copies():
    net = mlp()
    net[1].inplace = True
    x = torch.randn(B, 4)
    with sl.LFP(net, "epsilon"):
        twin = copy.deepcopy(net)
        pickled = pickle.loads(pickle.dumps(net))
    for clone in (twin, pickled):
        for m in clone.modules():
            assert "forward" not in m.__dict__ and "__reduce_ex__" not in m.__dict__
        assert clone[1].inplace is True
        assert all(p is not q for p, q in zip(clone.parameters(), net.parameters()))
        torch.testing.assert_close(clone(x), net(x))
        # the copy trains its own weights
        lfp = sl.LFP(clone, "epsilon")
        out = lfp(x)
        lfp.backward(out, torch.ones_like(out))
        assert all(p.grad is not None for p in clone.parameters()) and no_grads(net)
    assert "__reduce_ex__" not in net[0].__dict__


def test_overlapping_engines_are_refused_and_restored_in_any_order():
    net = mlp()
    a, b = sl.LFP(net, "epsilon"), sl.LFP(net, "zplus-zminus")
    a.attach()
    with pytest.raises(RuntimeError, match="attached to another LFP engine"):
        b.attach()
    with pytest.raises(RuntimeError, match="attached to another LFP engine"):
        b(torch.randn(B, 4))
    a.detach()
    b.detach()  # a no-op: b never attached
    assert all("forward" not in m.__dict__ for m in net.modules())
    with b:  # free again
        assert "forward" in net[0].__dict__
    assert all("forward" not in m.__dict__ for m in net.modules())


def test_image_batch_given_to_a_plain_spiking_sequential_is_refused():
    net = nn.Sequential(nn.Flatten(2), nn.Linear(784, 10), sl.LIF(0.9))
    lfp = sl.LFP(net, "epsilon")
    images = torch.rand(8, 1, 28, 28)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\).*spikelfp\.encode\.constant"):
        lfp(images)
    assert lfp(sl.encode.constant(images, 3)).shape == (3, 8, 10)
    net.input_shape = (28, 28)  # a model that states its per-sample shape keeps it
    assert lfp(torch.rand(3, 1, 28, 28)).shape == (3, 1, 10)
    dense = nn.Sequential(nn.Linear(5, 3), sl.LIF(0.9))
    with pytest.raises(ValueError, match=r"\(T, B, 5\)"):
        sl.LFP(dense, "epsilon")(torch.rand(3, 2, 6))
    conv = nn.Sequential(sl.nn.TimeDistributed(nn.Conv2d(2, 3, 3)), nn.Flatten(2), nn.Linear(12, 2), sl.LIF(0.9))
    with pytest.raises(ValueError, match=r"\(T, B, 2, …, …\)"):
        sl.LFP(conv, "epsilon")(torch.rand(4, 2, 4, 4))


@pytest.mark.parametrize("normalize", ["max", "max-batch"])
@pytest.mark.parametrize("spiking", [False, True])
def test_empty_batch_gives_zero_updates(normalize, spiking):
    torch.manual_seed(0)
    if spiking:
        net = nn.Sequential(nn.Linear(4, 5), sl.LIF(0.9), nn.Linear(5, 2), sl.LIF(0.9))
        x = torch.rand(T, 0, 4)
    else:
        net, x = mlp(), torch.randn(0, 4)
    lfp = sl.LFP(net, "epsilon", normalize=normalize)
    out = lfp(x)
    lfp.backward(out, torch.ones_like(out))
    assert all(p.grad is None or (p.grad == 0).all() for p in net.parameters())


def test_nan_input_to_an_snn_is_named_as_bad_input():
    net = nn.Sequential(nn.Linear(4, 5), sl.LIF(0.9), nn.Linear(5, 2), sl.LIF(0.9))
    x = torch.rand(T, B, 4)
    x[1, 0, 2] = float("nan")
    lfp = sl.LFP(net, "epsilon")
    with pytest.raises(sl.NonFiniteError, match="input to the model") as info:
        lfp(x)
    assert "learning rate" not in str(info.value)
    constant = sl.encode.constant(torch.full((B, 4), float("inf")), T)  # a stride-0 time axis
    with pytest.raises(sl.NonFiniteError, match="input to the model"):
        lfp(constant)
    assert no_grads(net)


# --------------------------------------------------------------------------------------------------
# issue 12 item 6: normalisation in a step loop
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("normalize", ["max", "max-batch"])
def test_step_loop_with_normalisation_is_refused(normalize):
    torch.manual_seed(0)
    fc1, lif1, fc2, lif2 = nn.Linear(5, 6), sl.LIF(0.8), nn.Linear(6, 2), sl.LIF(0.8)
    net = nn.ModuleList([fc1, lif1, fc2, lif2])
    x = torch.rand(T, B, 5) * 3
    with sl.LFP(net, "epsilon", normalize=normalize) as lfp:
        out = step_loop([fc1, lif1.step, fc2, lif2.step], None, x, lambda: (None, None))
    with pytest.raises(ValueError, match=rf"normalize='{normalize}' needs the whole sequence.*ran {T} times"):
        lfp.backward(out, torch.ones_like(out))
    assert no_grads(net)
    multi = sl.LFP(nn.Sequential(fc1, lif1, fc2, lif2), "epsilon", normalize=normalize)  # the multi-step model
    out = multi(x)
    multi.backward(out, torch.ones_like(out))
    assert not no_grads(net)


# --------------------------------------------------------------------------------------------------
# silence, per layer
# --------------------------------------------------------------------------------------------------
def test_silent_layers_are_named_once_per_engine(caplog):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 6), sl.LIF(0.9), nn.Linear(6, 3, bias=False), sl.LIF(0.9))
    with torch.no_grad():
        net[0].weight.fill_(1.0)
        net[0].bias.fill_(1.0)
        net[2].weight.fill_(-1.0)  # layer '3' never fires, layer '1' does
    lfp = sl.LFP(net, "epsilon")
    with caplog.at_level(logging.WARNING, logger="spikelfp"):
        for _ in range(3):
            out = lfp(torch.rand(T, B, 4))
            lfp.backward(out, torch.ones_like(out))
    messages = [r.getMessage() for r in caplog.records if "did not fire" in r.getMessage()]
    assert messages == [messages[0]] and messages[0].startswith("layer '3' (LIF) did not fire in this batch")


def test_silence_covers_snntorch_and_norse_neurons_in_step_loops(caplog):
    snn = pytest.importorskip("snntorch", reason="snntorch (extra 'snn') is not installed")
    pytest.importorskip("norse", reason="norse (extra 'snn') is not installed")
    from norse.torch import LIFBoxCell

    fc1, fc2 = nn.Linear(5, 6), nn.Linear(6, 2)
    with torch.no_grad():
        fc1.weight.fill_(-1.0)
        fc2.weight.fill_(-1.0)
    leaky, cell = snn.Leaky(beta=0.8), LIFBoxCell()
    net = nn.ModuleList([fc1, leaky, fc2, cell])
    x = torch.rand(T, B, 5)
    with caplog.at_level(logging.WARNING, logger="spikelfp"), sl.LFP(net, "epsilon") as lfp:
        for _ in range(2):
            out = step_loop([fc1, leaky, fc2, cell], None, x, lambda: (leaky.init_leaky(), None))
            lfp.backward(out, torch.ones_like(out))
    messages = sorted(r.getMessage() for r in caplog.records if "did not fire" in r.getMessage())
    assert len(messages) == 2
    assert messages[0].startswith("layer '1' (Leaky) did not fire in this batch")
    assert messages[1].startswith("layer '3' (LIFBoxCell) did not fire in this batch")


# --------------------------------------------------------------------------------------------------
# issue 22 item 2: in-place operations on views, subclasses of layers with rules, backward hooks
# --------------------------------------------------------------------------------------------------
class AfterReLU(nn.Module):
    """``fc → ReLU`` and then ``op(h)`` on the activation (a tensor no rule saved): its result, or ``h`` itself
    when ``op`` works in place."""

    def __init__(self, op, inplace: bool) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.relu = nn.ReLU()
        self.op, self.inplace = op, inplace

    def forward(self, x):
        h = self.relu(self.fc(x))
        out = self.op(h)
        return h if self.inplace else out


def after_relu(op, inplace=True):
    torch.manual_seed(0)
    return nn.Sequential(AfterReLU(op, inplace), nn.Linear(4, 2)).double(), torch.randn(B, 4, dtype=torch.float64)


def lfp_grads(net, x, **options):
    net.zero_grad(set_to_none=True)
    lfp = sl.LFP(net, "epsilon", **options)
    out = lfp(x)
    lfp.backward(out, torch.linspace(-1, 1, out.numel(), dtype=out.dtype).reshape(out.shape))
    return [p.grad.clone() for p in net.parameters()]


_SCALE = torch.full((B, 2), 2.0, dtype=torch.float64)


@pytest.mark.parametrize(
    ("op", "match"),
    [
        (lambda h: h[..., :].sigmoid_(), r"CopySlices \(an in-place operation on a view .* aten\.sigmoid_backward"),
        (lambda h: h[..., :2].exp_(), r"CopySlices .* computes aten\.mul\) between layer '0\.fc' and layer '1'"),
        (lambda h: h[..., 1:3].pow_(2), r"CopySlices .* computes aten\.(pow|mul)"),
        (lambda h: h[:, :2].clamp_(0.0, 0.1), r"CopySlices .* computes aten\.where"),
        (lambda h: h[:, 2:].mul_(_SCALE), r"CopySlices .* computes aten\.mul"),
        (lambda h: h[:, 2:].relu_(), r"CopySlices .* computes aten\.threshold_backward"),
        (lambda h: h[:, :2].__iadd__(1.0), r"CopySlices \(an in-place sum into a view"),
        (lambda h: h[:, :2].add_(h[:, 2:].clone()), r"CopySlices \(an in-place sum into a view"),
        (
            lambda h: h[:, 1:].index_put_((torch.tensor([0, 2]),), torch.ones(2, 3, dtype=h.dtype), accumulate=True),
            r"CopySlices \(an in-place sum into a view",
        ),
        (
            lambda h: h.index_put_((torch.tensor([0, 2]),), torch.ones(2, 4, dtype=h.dtype), accumulate=True),
            r"IndexPutBackward0 \(an in-place indexed sum",
        ),
    ],
)
def test_in_place_operation_on_a_view_is_refused(op, match):
    # each passed as CopySlices before issue 22 and mixed autograd's derivative into LFP's feedback
    net, x = after_relu(op)
    lfp = sl.LFP(net, "epsilon")
    out = lfp(x)
    with pytest.raises(sl.StrictError, match=match):
        lfp.backward(out, torch.ones_like(out))
    assert no_grads(net)


def test_in_place_operation_from_a_forward_hook_is_refused():
    net = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2))
    handle = net[1].register_forward_hook(lambda module, args, out: out[..., :].sigmoid_())
    lfp = sl.LFP(net, "epsilon")
    out = lfp(torch.randn(B, 4))
    with pytest.raises(sl.StrictError, match=r"CopySlices .* aten\.sigmoid_backward.* between layer '0' and layer '2'"):
        lfp.backward(out, torch.ones_like(out))
    assert no_grads(net)
    # strict=False keeps working: autograd differentiates the sigmoid (a mix, warned once per engine)
    loose = sl.LFP(net, "epsilon", strict=False)
    with pytest.warns(UserWarning, match=r"CopySlices .*warned once") as record:
        for _ in range(2):
            out = loose(torch.randn(B, 4))
            loose.backward(out, torch.ones_like(out))
    assert len(record) == 1 and not no_grads(net)
    handle.remove()


def test_in_place_write_into_a_saved_output_is_refused_before_anything_is_written():
    # fc1's rule keeps its output z; autograd would notice the change half-way through the backward,
    # after fc2's update was written
    net = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2))
    net[0].register_forward_hook(lambda module, args, out: out.__setitem__((slice(None), 0), 0.0))
    lfp = sl.LFP(net, "epsilon")
    out = lfp(torch.randn(B, 4))
    with pytest.raises(RuntimeError, match=r"layer '0' cannot run its LFP backward: .*modified by an inplace"):
        lfp.backward(out, torch.ones_like(out))
    assert no_grads(net)


def _write_slice(h):
    h = h.clone()
    h[:, :2] = h[:, 2:]  # copy_ into a view: CopySlices wrapping CopyBackwards
    return h


def _cat_slice(h):
    return torch.cat([h[:, 2:], h[:, 2:]], dim=1)


def _write_rows(h):
    h = h.clone()
    h[torch.tensor([0, 2])] = h[1:2].expand(2, 4)  # index_put_ without accumulation (IndexPutBackward0)
    return h


def _stack_rows(h):
    return torch.stack([h[1], h[1], h[1]])


def _fill_column(h):
    h = h.clone()
    h[:, 0] = 0.0  # fill_ into a view
    return h


def _zero_column(h):
    return torch.cat([torch.zeros_like(h[:, :1]), h[:, 1:]], dim=1)


def _mask_write(h):
    h = h.clone()
    h[:, 1:][torch.tensor([True, False, True])] = 0.0  # a boolean mask: no meta kernel, traced on zeros
    return h


def _mask_cat(h):
    zeros = torch.zeros_like(h[:1, 1:])
    return torch.cat([h[:, :1], torch.cat([zeros, h[1:2, 1:], zeros])], dim=1)


@pytest.mark.parametrize(
    ("write", "same"),
    [(_write_slice, _cat_slice), (_write_rows, _stack_rows), (_fill_column, _zero_column), (_mask_write, _mask_cat)],
)
def test_writes_into_views_route_like_their_out_of_place_forms(write, same):
    net, x = after_relu(write, inplace=False)
    twin = copy.deepcopy(net)
    twin[0].op = same
    with torch.no_grad():
        torch.testing.assert_close(net(x), twin(x), rtol=0, atol=0)
    for got, want in zip(lfp_grads(net, x), lfp_grads(twin, x)):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-15)


def test_step_loop_writing_into_a_buffer_equals_the_stacked_one():
    torch.manual_seed(0)
    fc1, lif1, fc2, lif2 = nn.Linear(5, 6), sl.LIF(0.8), nn.Linear(6, 2), sl.LIF(0.8)
    net = nn.ModuleList([fc1, lif1, fc2, lif2]).double()
    x = torch.rand(T, B, 5, dtype=torch.float64) * 3
    r = torch.linspace(-1, 1, T * B * 2, dtype=torch.float64).reshape(T, B, 2)
    grads = []
    for buffered in (False, True):
        net.zero_grad(set_to_none=True)
        with sl.LFP(net, "epsilon") as lfp:
            s1 = s2 = None
            outs = torch.zeros(T, B, 2, dtype=torch.float64) if buffered else []
            for t in range(T):
                z1, s1 = lif1.step(fc1(x[t]), s1)
                z2, s2 = lif2.step(fc2(z1), s2)
                if buffered:
                    outs[t] = z2  # copy_ into a slice of a buffer that needs no feedback itself
                else:
                    outs.append(z2)
            out = outs if buffered else torch.stack(outs)
        lfp.backward(out, r)
        grads.append([p.grad.clone() for p in net.parameters()])
    for got, want in zip(*grads):
        assert torch.equal(got, want)


def test_full_backward_hook_is_allowed_and_a_changed_feedback_is_used():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 2)).double()
    x = torch.randn(B, 4, dtype=torch.float64)
    plain = lfp_grads(net, x)
    seen = []
    handle = net[1].register_full_backward_hook(lambda m, grad_in, grad_out: seen.append((grad_in[0], grad_out[0])))
    for got, want in zip(lfp_grads(net, x), plain):
        assert torch.equal(got, want)
    assert len(seen) == 1 and torch.equal(seen[0][0], seen[0][1])  # the ReLU's rule passes the feedback on
    handle.remove()
    # a hook that returns a changed feedback changes LFP's feedback from there on (ε-LFP is linear in it)
    net[1].register_full_backward_hook(lambda m, grad_in, grad_out: (2 * grad_in[0],))
    doubled = lfp_grads(net, x)
    torch.testing.assert_close(doubled[0], 2 * plain[0], rtol=1e-12, atol=0)
    torch.testing.assert_close(doubled[2], plain[2], rtol=0, atol=0)


# other in-place paths
def test_in_place_function_on_a_whole_tensor_is_refused_by_its_own_node():
    net, x = after_relu(lambda h: h.sigmoid_())
    lfp = sl.LFP(net, "epsilon")
    out = lfp(x)
    with pytest.raises(sl.StrictError, match=r"operation SigmoidBackward0 \(autograd would differentiate it\)"):
        lfp.backward(out, torch.ones_like(out))


def test_set_is_refused():
    net, x = after_relu(lambda h: h.set_(h.detach().clone()))
    lfp = sl.LFP(net, "epsilon")
    out = lfp(x)
    with pytest.raises(sl.StrictError, match=r"operation NotImplemented"):
        lfp.backward(out, torch.ones_like(out))
    assert no_grads(net)


def test_data_and_detach_tricks_are_what_autograd_sees():
    # `.data` changes values without autograd: the feedback passes as through a PassThrough (what LFP's rule
    # for an element-wise function does), so the updates equal those of an nn.Sigmoid module
    net, x = after_relu(lambda h: h.data.sigmoid_())
    twin = copy.deepcopy(net)
    twin[0].relu = nn.Sequential(nn.ReLU(), nn.Sigmoid())
    twin[0].op = lambda h: h
    for got, want in zip(lfp_grads(net, x), lfp_grads(twin, x)):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-15)
    # detach_() cuts the graph: the layers before it get no feedback, as with `h = h.detach()`
    net, x = after_relu(lambda h: h.detach_())
    lfp = sl.LFP(net, "epsilon")
    out = lfp(x)
    lfp.backward(out, torch.ones_like(out))
    assert net[0].fc.weight.grad is None and net[1].weight.grad is not None

    # an in-place change through detach() shares the version counter: refused before anything is written
    def double_in_place(module, args, out):  # returns None: the output stays, changed
        out.detach().mul_(2)

    net = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2))
    net[0].register_forward_hook(double_in_place)
    lfp = sl.LFP(net, "epsilon")
    out = lfp(torch.randn(B, 4))
    with pytest.raises(RuntimeError, match=r"layer '0' cannot run its LFP backward"):
        lfp.backward(out, torch.ones_like(out))
    assert no_grads(net)


# subclasses of layers that have a rule
class SigmoidLinear(nn.Linear):
    """``gain · sigmoid(x Wᵀ + b)``: not a Linear."""

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.gain = nn.Parameter(torch.tensor(2.0))

    def forward(self, x):
        return torch.sigmoid(super().forward(x)) * self.gain


class LearnableSlopeReLU(nn.ReLU):
    def __init__(self) -> None:
        super().__init__()
        self.slope = nn.Parameter(torch.tensor(0.1))

    def forward(self, x):
        return torch.where(x > 0, x, self.slope * x)


class ShiftedConv(nn.Conv2d):
    def _conv_forward(self, x, weight, bias):
        return super()._conv_forward(x, weight, bias) + 1.0


class NoisyLIF(sl.LIF):
    def forward(self, x, state=None):
        return super().forward(x + 0.1, state)


class InitLinear(nn.Linear):
    """A subclass that only changes its initialisation and repr: still a Linear."""

    def reset_parameters(self) -> None:
        nn.init.constant_(self.weight, 0.1)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def extra_repr(self) -> str:
        return "init=0.1, " + super().extra_repr()


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (
            lambda: (nn.Sequential(SigmoidLinear(4, 3), nn.Linear(3, 2)), torch.randn(B, 4)),
            r"'0' .*SigmoidLinear\) "
            r"subclasses torch\.nn\.modules\.linear\.Linear but overrides forward.*LayerMap\(\[\(SigmoidLinear, rule\)",
        ),
        (
            lambda: (nn.Sequential(nn.Linear(4, 3), LearnableSlopeReLU(), nn.Linear(3, 2)), torch.randn(B, 4)),
            r"'1' .*LearnableSlopeReLU\) subclasses torch\.nn\.modules\.activation\.ReLU but overrides forward",
        ),
        (
            lambda: (nn.Sequential(ShiftedConv(1, 2, 3), nn.Flatten(), nn.Linear(8, 2)), torch.randn(B, 1, 4, 3)),
            r"'0' .*ShiftedConv\) subclasses .*Conv2d but overrides a method that defines what it computes",
        ),
        (
            lambda: (nn.Sequential(nn.Linear(4, 3), NoisyLIF(0.9)), torch.rand(T, B, 4)),
            r"'1' .*NoisyLIF\) subclasses spikelfp\.neurons\.modules\.FamilyNeuron but overrides forward",
        ),
    ],
)
def test_subclass_that_changes_the_computation_is_refused_by_name(build, match):
    net, x = build()
    for strict in (True, False):
        with pytest.raises(sl.StrictError, match=match):
            sl.LFP(net, "epsilon", strict=strict)(x)
    assert all("forward" not in m.__dict__ for m in net.modules())


def test_snntorch_subclass_that_changes_the_computation_is_refused():
    snn = pytest.importorskip("snntorch", reason="snntorch (extra 'snn') is not installed")

    class LoudLeaky(snn.Leaky):
        def forward(self, x, mem=None):
            return super().forward(2 * x, mem)

    net = nn.ModuleList([nn.Linear(4, 3), LoudLeaky(beta=0.9)])
    with pytest.raises(sl.StrictError, match=r"'1' .*LoudLeaky\) subclasses snntorch.*Leaky but overrides forward"):
        sl.LFP(net, "epsilon").attach()


def test_subclass_that_only_changes_how_it_is_built_trains_as_its_layer():
    torch.manual_seed(0)
    net = nn.Sequential(InitLinear(4, 3), nn.ReLU(), nn.Linear(3, 2)).double()
    twin = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)).double()
    twin.load_state_dict(net.state_dict())
    x = torch.randn(B, 4, dtype=torch.float64)
    for got, want in zip(lfp_grads(net, x), lfp_grads(twin, x)):
        assert torch.equal(got, want)
    assert sl.lfp.ops.computes_as(net[0], nn.Linear) and not sl.lfp.ops.computes_as(SigmoidLinear(2, 2), nn.Linear)
    assert sl.lfp.ops.computes_as(net[0], (nn.Conv2d, nn.Linear)) and not sl.lfp.ops.computes_as(net[1], nn.Linear)


def test_explicit_mapping_of_a_subclass_is_the_users_choice():
    from spikelfp.composites import LayerMap, Mixed, NameMap, get
    from spikelfp.rules import Epsilon, PassThrough

    x = torch.randn(B, 4)
    explicit = LayerMap([(SigmoidLinear, Epsilon()), (nn.Linear, Epsilon())])
    net = nn.Sequential(SigmoidLinear(4, 3), nn.Linear(3, 2))
    with pytest.raises(sl.StrictError, match=r"'0' \(SigmoidLinear\) holds the trainable parameter\(s\) gain"):
        sl.LFP(net, explicit)(x)  # mapped, but its gain would never train
    net[0].gain.requires_grad_(False)
    lfp = sl.LFP(net, explicit)
    out = lfp(x)  # the rule computes x Wᵀ + b in place of the subclass's forward: what the user asked for
    with torch.no_grad():
        assert torch.equal(out, net[1](nn.functional.linear(x, net[0].weight, net[0].bias)))
    lfp.backward(out, torch.ones_like(out))
    assert net[0].weight.grad is not None
    slope = nn.Sequential(nn.Linear(4, 3), LearnableSlopeReLU(), nn.Linear(3, 2))
    by_name = Mixed([NameMap([("1", PassThrough())]), get("epsilon")])
    with pytest.raises(sl.StrictError, match=r"'1' \(LearnableSlopeReLU\) holds the trainable parameter\(s\) slope"):
        sl.LFP(slope, by_name)(x)
    slope[1].slope.requires_grad_(False)
    lfp = sl.LFP(slope, by_name)
    out = lfp(x)
    lfp.backward(out, torch.ones_like(out))
    # an explicitly mapped layer with a parameter its rule does not train is refused too (nn.PReLU)
    prelu = nn.Sequential(nn.Linear(4, 3), nn.PReLU(), nn.Linear(3, 2))
    with pytest.raises(sl.StrictError, match=r"'1' \(PReLU\) holds the trainable parameter\(s\) weight"):
        sl.LFP(prelu, Mixed([LayerMap([(nn.PReLU, PassThrough())]), get("epsilon")]))(x)


def test_binary_layers_keep_their_rule():
    torch.manual_seed(0)
    net = sl.binary.convert(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4, 2)))
    assert sum(sl.binary.is_binary(m) for m in net.modules()) == 2
    lfp = sl.LFP(net, "epsilon")
    out = lfp(torch.randn(B, 1, 4, 3))
    lfp.backward(out, torch.ones_like(out))
    assert all(p.grad is not None for p in net.parameters())


class PlusOneLinear(nn.Linear):
    def forward(self, x):
        return super().forward(x) + 1.0


@pytest.mark.parametrize("writer", ["to_nir", "save_binary"])
def test_export_refuses_a_subclass_it_cannot_represent(tmp_path, writer):
    pytest.importorskip("nir", reason="nir (extra 'export') is not installed")
    pytest.importorskip("h5py", reason="h5py (extra 'export') is not installed")
    from spikelfp import export

    model = sl.nn.SpikingSequential(PlusOneLinear(3, 2), sl.LIF(0.9), input_shape=(3,))
    with pytest.raises(export.ExportError, match="PlusOneLinear"):
        getattr(export, writer)(model, tmp_path / "model.out")
