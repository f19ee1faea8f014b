#!/usr/bin/env bash
# Install spikelfp with every optional extra into the active Python environment (a venv is best).
#
# Order matters on CPU-only machines:
#   1. torch==2.13.0 first (a local CPU wheel here); an unpinned torch would pull a multi-GB CUDA build.
#   2. everything else under constraints.txt, which holds torch at 2.13.0.
#   3. norse with --no-deps: it declares torchvision, whose PyPI wheel fails to import beside a CPU
#      torch; norse itself never imports it outside its example tasks. Its real dependencies
#      (numpy, nir, nirtorch) are installed explicitly.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
"$PY" -m pip install --upgrade-strategy only-if-needed "torch==2.13.0"
"$PY" -m pip install -c constraints.txt -e ".[test,export,events,plot,images]" "snntorch>=0.9" "nir>=1.0" "nirtorch>=1.0"
"$PY" -m pip install -c constraints.txt --no-deps "norse==1.1.0"
"$PY" -c "import torch, spikelfp; print('spikelfp', spikelfp.__version__, 'with torch', torch.__version__)"
