"""Golden values of the neuron family, recorded before the one-kernel redesign (issue 18).

Every case builds a small net ``Linear → neuron → Linear → LIF`` (or a whole model), runs it without LFP,
under LFP (multi-step and in a step loop, ε and z⁺z⁻, with and without max-normalisation) and under the
surrogate's BPTT, and records the output and every parameter's ``.grad``. ``tests/test_golden.py``
recomputes the same cases and requires the same numbers: bit for bit on the machine kind that recorded
them (the same kernels on the same shapes), and within a float64-scale tolerance elsewhere.

Regenerate only on purpose (a deliberate change of the numbers), from the repository root::

    python tests/golden/make_golden.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from cases import CASES, fingerprint  # noqa: E402


def main() -> None:
    values: dict[str, torch.Tensor] = {}
    for name, case in CASES.items():
        for key, tensor in case().items():
            values[f"{name}/{key}"] = tensor.detach().clone()
    # one flat buffer per dtype and a JSON index: a file of a few hundred kB instead of 2 000 tensor records
    index, buffers = {}, {"float32": [], "float64": []}
    offsets = {"float32": 0, "float64": 0}
    for key, t in values.items():
        kind = "float64" if t.dtype == torch.float64 else "float32"
        flat = t.to(getattr(torch, kind)).reshape(-1)
        index[key] = [kind, offsets[kind], list(t.shape), str(t.dtype)[6:]]
        offsets[kind] += flat.numel()
        buffers[kind].append(flat)
    meta = {"fingerprint": fingerprint(), "torch": torch.__version__, "cases": sorted(CASES), "index": index}
    data = {k: torch.cat(v) for k, v in buffers.items()}
    torch.save({"meta": json.dumps(meta), **data}, HERE / "neurons.pt")
    print(f"wrote {len(values)} tensors from {len(CASES)} cases to {HERE / 'neurons.pt'}")


if __name__ == "__main__":
    main()
