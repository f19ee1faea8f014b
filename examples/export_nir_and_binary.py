"""Export a spiking model to NIR and to binary weights, and check both reload exactly.

python examples/export_nir_and_binary.py [--out exported/]
"""

import argparse
from pathlib import Path

import torch

import spikelfp as sl
from spikelfp import export

p = argparse.ArgumentParser()
p.add_argument("--out", default="exported")
args = p.parse_args()
out = Path(args.out)
out.mkdir(exist_ok=True)

torch.manual_seed(0)
net = sl.models.spiking_mlp(hidden=(500,), reset="zero")
x = sl.encode.rate(torch.rand(8, 1, 28, 28), 25)

export.to_nir(net, out / "mlp.nir", dt=1e-4)
again = export.from_nir(out / "mlp.nir")
print("NIR round trip identical:", torch.equal(again(x), net(x)))

export.save_binary(net, out / "mlp-binary.h5")
binary = export.load_binary(out / "mlp-binary.h5")
print("binary reload identical:", torch.equal(binary(x), export.binarize(net)(x)))
print("files:", *(f"{f.name} ({f.stat().st_size // 1024} KiB)" for f in sorted(out.iterdir())))
