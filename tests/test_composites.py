"""Composites put the right rule on each layer and leave nothing attached."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import spikelfp as sl
from spikelfp import rules


def vgg_like():
    return nn.Sequential(
        nn.Conv2d(3, 4, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * 3 * 3, 5),
        nn.ReLU(),
        nn.Dropout(),
        nn.Linear(5, 2),
    )


@pytest.mark.parametrize(
    "name,conv_rule,dense_rule",
    [
        ("epsilon", rules.Epsilon(), rules.Epsilon()),
        ("zero", rules.Zero(), rules.Zero()),
        ("zplus-zminus", rules.ZPlusZMinus(), rules.ZPlusZMinus()),
        ("alpha2-beta1", rules.AlphaBeta(2, 1), rules.AlphaBeta(2, 1)),
        ("epsilon-zplus-zminus", rules.ZPlusZMinus(), rules.Epsilon()),
        ("epsilon-alpha2-beta1", rules.AlphaBeta(2, 1), rules.Epsilon()),
    ],
)
def test_presets_map_rules_by_layer_type(name, conv_rule, dense_rule):
    got = sl.LFP(vgg_like(), name).rules()
    assert got["0"] == conv_rule
    assert got["4"] == dense_rule and got["7"] == dense_rule
    assert got["1"] == rules.PassThrough() and got["6"] == rules.PassThrough()
    assert got["2"] == rules.WinnerTakesAll() and got["3"] == rules.Reshape()


def test_first_match_wins_and_each_module_gets_a_copy():
    template = rules.Epsilon(0.5)
    comp = sl.composites.LayerMap([(nn.Linear, template), ((nn.Linear, nn.Conv2d), rules.Zero())])
    a = comp.rule_for("a", nn.Linear(1, 1))
    b = comp.rule_for("b", nn.Linear(1, 1))
    assert a == template and a is not template and a is not b
    assert comp.rule_for("c", nn.Conv2d(1, 1, 1)) == rules.Zero()


def test_name_map_and_mixed():
    net = vgg_like()
    comp = sl.composites.Mixed([sl.composites.NameMap([("7", rules.ZPlusZMinus())]), sl.composites.get("epsilon")])
    got = sl.LFP(net, comp).rules()
    assert got["7"] == rules.ZPlusZMinus() and got["4"] == rules.Epsilon()


def test_name_map_changes_the_update():
    torch.manual_seed(0)
    net = vgg_like().double()
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    results = []
    for comp in [
        sl.composites.get("epsilon"),
        sl.composites.Mixed([sl.composites.NameMap([("7", rules.ZPlusZMinus())]), sl.composites.get("epsilon")]),
    ]:
        net.zero_grad(set_to_none=True)
        lfp = sl.LFP(net, comp)
        out = lfp(x)
        lfp.backward(out, torch.ones_like(out))
        results.append(net[7].weight.grad.clone())
    assert not torch.allclose(results[0], results[1])


def test_nothing_attached_after_use():
    net = vgg_like()
    for name in sl.composites.PRESETS:
        lfp = sl.LFP(net, name)
        out = lfp(torch.randn(2, 3, 8, 8))
        lfp.backward(out, torch.ones_like(out))
        assert all("forward" not in m.__dict__ for m in net.modules())
        assert all(not m._forward_hooks and not m._forward_pre_hooks for m in net.modules())


def test_bad_composites():
    with pytest.raises(ValueError, match="known composites: epsilon"):
        sl.composites.get("nope")
    with pytest.raises(TypeError):
        sl.composites.LayerMap([("Linear", rules.Epsilon())])
    with pytest.raises(TypeError):
        sl.composites.LayerMap([(nn.Linear, "epsilon")])
    with pytest.raises(TypeError):
        sl.LFP(nn.Linear(1, 1), 3)
