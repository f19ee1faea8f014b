"""The neuron family gives the numbers it gave before the one-kernel redesign (issue 18).

``tests/golden/neurons.pt`` holds the outputs and every parameter update (LFP multi-step and step loop,
ε and z⁺z⁻, max-normalised, surrogate BPTT; spikelfp's neurons, the spiking MLP, binary layers, snnTorch's
and norse's neurons) recorded by ``tests/golden/make_golden.py`` with the code as it was before. On the
machine kind that recorded them (same torch, CPU capability and CPU model: the same kernels on the same
shapes) they must be equal bit for bit; elsewhere a GEMM may round differently, so they must agree to a
tolerance far below what a changed formula gives (float64: 1e-10, float32: 1e-5 relative).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

GOLDEN = Path(__file__).resolve().parent / "golden"
sys.path.insert(0, str(GOLDEN))

from cases import CASES, fingerprint  # noqa: E402

pytest.importorskip("snntorch", reason="the golden cases include snnTorch's neurons (extra 'snn')")
pytest.importorskip("norse", reason="the golden cases include norse's neurons (extra 'snn')")


def _load() -> tuple[dict, dict[str, torch.Tensor]]:
    saved = torch.load(GOLDEN / "neurons.pt", weights_only=True)
    meta = json.loads(saved["meta"])
    values = {}
    for key, (kind, offset, shape, dtype) in meta["index"].items():
        n = 1
        for d in shape:
            n *= d
        values[key] = saved[kind][offset : offset + n].reshape(shape).to(getattr(torch, dtype))
    return meta, values


META, VALUES = _load()
SAME_MACHINE = META["fingerprint"] == fingerprint()


def test_the_cases_are_the_recorded_ones():
    assert sorted(CASES) == META["cases"]


@pytest.mark.parametrize("name", sorted(CASES))
def test_same_numbers_as_before_the_redesign(name):
    got = CASES[name]()
    expected = {k.split("/")[-1]: v for k, v in VALUES.items() if k.rsplit("/", 1)[0] == name}
    assert sorted(got) == sorted(expected), "the case records other tensors than before"
    for key, want in expected.items():
        have = got[key].detach()
        assert have.shape == want.shape and have.dtype == want.dtype, key
        if SAME_MACHINE:
            assert torch.equal(have, want), f"{name}/{key} differs from the recorded value on the same machine kind"
        else:
            tol = 1e-10 if want.dtype == torch.float64 else 1e-5
            torch.testing.assert_close(have, want, rtol=tol, atol=tol, msg=f"{name}/{key}")
