"""Feedback functions against their formulas (LFP-SPEC §4)."""

from __future__ import annotations

import math

import pytest
import torch

import spikelfp as sl


def sigma(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


def test_sigmoid_feedback_eq7():
    o = torch.tensor([[2.0, -1.0, 0.5]], dtype=torch.float64)
    r = sl.feedback.Sigmoid()(o, torch.tensor([0]))
    want = [2.0 * (1 - sigma(2.0)), -1.0 * (0 - sigma(-1.0)), 0.5 * (0 - sigma(0.5))]
    torch.testing.assert_close(r, torch.tensor([want], dtype=torch.float64))


def test_softmax_feedback():
    o = torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64)
    e = [math.exp(v) for v in (1.0, 2.0, 3.0)]
    p = [v / sum(e) for v in e]
    r = sl.feedback.Softmax()(o, torch.tensor([1]))
    want = [1.0 * (0 - p[0]), 2.0 * (1 - p[1]), 3.0 * (0 - p[2])]
    torch.testing.assert_close(r, torch.tensor([want], dtype=torch.float64))


def test_reward_is_plus_minus_one_at_true_class_only():
    o = torch.tensor([[0.1, 0.9], [0.8, 0.2], [0.5, 0.5]])
    r = sl.feedback.Reward()(o, torch.tensor([1, 1, 1]))
    # sample 2 ties: the prediction is the lowest index (0), which is wrong
    assert r.tolist() == [[0.0, 1.0], [0.0, -1.0], [0.0, -1.0]]


def test_mean_reduction_divides_by_batch():
    o = torch.randn(4, 3)
    y = torch.tensor([0, 1, 2, 0])
    torch.testing.assert_close(sl.feedback.Softmax("mean")(o, y), sl.feedback.Softmax()(o, y) / 4)


def test_one_hot_and_soft_targets_equal_indices():
    o = torch.randn(3, 4)
    y = torch.tensor([3, 0, 2])
    torch.testing.assert_close(
        sl.feedback.Sigmoid()(o, torch.nn.functional.one_hot(y, 4).float()), sl.feedback.Sigmoid()(o, y)
    )


def spike_sequence_formula(o: list[list[int]], label: int) -> list[list[float]]:
    """Eq. A.16 as LFP-SPEC §4 states it, for one sample: o[t][c]."""
    T, C = len(o), len(o[0])
    n = [sum(o[t][c] for t in range(T)) for c in range(C)]
    out = []
    for t in range(T):
        row = []
        for c in range(C):
            if c == label:
                row.append(1 - sigma(n[c] - T / 2))
            else:
                row.append(-o[t][c] * (1 - sigma((T - n[c]) - T / 2)))
        out.append(row)
    return out


@pytest.mark.parametrize(
    "spikes",
    [
        [[0, 0, 0]] * 6,  # all silent
        [[1, 1, 1]] * 6,  # all firing
        [[1, 0, 1], [0, 0, 1], [1, 0, 0], [1, 1, 1], [0, 0, 1], [1, 0, 0]],
    ],
)
@pytest.mark.parametrize("label", [0, 2])
def test_spike_sequence_matches_formula(spikes, label):
    o = torch.tensor(spikes, dtype=torch.float64)[:, None, :]  # (T, 1, C)
    r = sl.feedback.SpikeSequence()(o, torch.tensor([label]))
    want = torch.tensor(spike_sequence_formula(spikes, label), dtype=torch.float64)[:, None, :]
    torch.testing.assert_close(r, want)


def test_spike_sequence_decays_toward_targets():
    T = 20
    fb = sl.feedback.SpikeSequence()
    true_many = fb(torch.ones(T, 1, 2), torch.tensor([0]))[0, 0, 0]
    true_few = fb(torch.zeros(T, 1, 2), torch.tensor([0]))[0, 0, 0]
    assert 0 < true_many < 1e-4 < 0.99 < true_few  # the true class stops being pushed once it fires
    wrong_many = fb(torch.ones(T, 1, 2), torch.tensor([0]))[0, 0, 1]
    assert wrong_many < -0.99  # a wrong class firing always is pushed down hard


def test_spike_count_prediction_ties_to_lowest_index():
    o = torch.tensor([[[1.0, 1.0, 0.0]], [[0.0, 0.0, 1.0]]])  # counts 1, 1, 1
    assert sl.feedback.spike_count_prediction(o).tolist() == [0]


@pytest.mark.parametrize(
    "fb,out,target,match",
    [
        (sl.feedback.SpikeSequence(), torch.zeros(4, 3), torch.tensor([0, 1, 2, 0]), r"\(T, B, C\)"),
        (sl.feedback.Softmax(), torch.zeros(2, 3), torch.tensor([0, 3]), r"labels must lie in \[0, 3\)"),
        (sl.feedback.Softmax(), torch.zeros(2, 3), torch.tensor([0]), "1 labels for a batch of 2"),
        (sl.feedback.Sigmoid(), torch.zeros(2, 3), torch.zeros(2, 4), "shape"),
    ],
)
def test_bad_feedback_input(fb, out, target, match):
    with pytest.raises(ValueError, match=match):
        fb(out, target)


def test_bad_reduction():
    with pytest.raises(ValueError, match="reduction"):
        sl.feedback.Softmax("median")
