"""The neuron family in the model zoo, the rows encoder and the CLI (``--neuron``, ``--encoding rows``)."""

from __future__ import annotations

import pytest
import torch

import spikelfp as sl
from spikelfp.cli import main
from spikelfp.train import Config


def test_rows_reads_one_image_row_per_step():
    x = torch.rand(3, 2, 5, 7)
    r = sl.encode.rows(x)
    assert r.shape == (5, 3, 14)
    for t in range(5):
        for b in range(3):  # step t of sample b: row t of every channel, channel after channel
            assert torch.equal(r[t, b], torch.cat([x[b, 0, t], x[b, 1, t]]))
    with pytest.raises(ValueError, match=r"rows encoding needs images \(B, C, H, W\)"):
        sl.encode.rows(torch.rand(3, 28, 28))


@pytest.mark.parametrize(
    ("name", "neuron", "kinds"),
    [
        ("snn-mlp", "lif", [sl.LIF, sl.LIF, sl.LIF]),
        ("snn-mlp", "cuba", [sl.CubaLIF, sl.CubaLIF, sl.CubaLIF]),
        ("snn-rmlp", "lif", [sl.RLIF, sl.LIF]),
        ("snn-rmlp", "cuba", [sl.RCubaLIF, sl.CubaLIF]),
        ("snn-lenet", "cuba", [sl.CubaLIF] * 4),
    ],
)
def test_models_are_built_from_the_chosen_neuron(name, neuron, kinds):
    model = sl.models.build(name, 1, 28, 10, neuron=neuron, alpha=0.7, beta=0.8, threshold=0.5, reset="zero")
    neurons = [m for m in model.modules() if isinstance(m, sl.neurons.FamilyNeuron)]
    assert [type(m) for m in neurons] == kinds
    for m in neurons:
        assert (m.beta, m.threshold, m.reset) == (0.8, 0.5, "zero")
        if isinstance(m, (sl.CubaLIF, sl.RCubaLIF)):
            assert m.alpha == 0.7
    out = model(sl.encode.constant(torch.rand(2, 1, 28, 28), 3))
    assert out.shape == (3, 2, 10)


def test_recurrent_model_reads_rows():
    model = sl.models.build("snn-rmlp", 1, 28, 10, encoding="rows")
    assert model.input_shape == (28,) and model[1].in_features == 28 and model[2].recurrent.in_features == 256
    x = torch.rand(4, 1, 28, 28)
    out = model(sl.encode.rows(x))
    assert out.shape == (28, 4, 10)
    with pytest.raises(ValueError, match="needs time-first input"):  # a whole image per step does not fit
        model(sl.encode.constant(x, 5))


def test_config_refuses_what_does_not_fit():
    with pytest.raises(ValueError, match="encoding 'rows'.*needs snn-mlp or snn-rmlp"):
        Config(model="snn-lenet", encoding="rows").resolved()
    with pytest.raises(ValueError, match="neuron must be one of lif, cuba"):
        Config(model="snn-mlp", neuron="alif").resolved()
    with pytest.raises(ValueError, match=r"alpha must lie in \[0, 1\]"):
        Config(model="snn-mlp", alpha=1.5).resolved()


@pytest.mark.parametrize("neuron", ["lif", "cuba"])
def test_cli_trains_a_recurrent_model_on_rows(tmp_path, capsys, neuron):
    args = ["train", "--model", "snn-rmlp", "--encoding", "rows", "--neuron", neuron, "--reset", "none"]
    args += ["--limit-train", "128", "--limit-test", "64", "--out", str(tmp_path / neuron), "--no-progress"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert f"{neuron} neurons, T=rows" in text and "test accuracy:" in text
    model = sl.train.load_model(tmp_path / neuron)
    recurrent = model[2]
    assert isinstance(recurrent, sl.RLIF if neuron == "lif" else sl.RCubaLIF) and recurrent.reset == "none"
