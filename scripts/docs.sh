#!/usr/bin/env bash
# Build the documentation site into docs/_build/html/, with every warning an error.
#
# Needs the project's environment with the 'docs' extra (pip install -e ".[docs]" after scripts/install.sh).
# From a clean clone the build generates the API pages from spikelfp's __all__, runs docs/snippets/*.py,
# executes every tutorial in docs/tutorials/ (sphinx-gallery) and fails on the first broken one.
#
#   bash scripts/docs.sh                  # the site, numpydoc validation scoped by docs/validation-baseline.txt
#   bash scripts/docs.sh --validate-all   # validate every docstring (ignores the baseline)
#   bash scripts/docs.sh --write-baseline # rewrite docs/validation-baseline.txt from today's failures
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
export MPLBACKEND=Agg
export PYTHONHASHSEED=0

case "${1:-}" in
  --validate-all)
    export SPIKELFP_DOCS_VALIDATE=all
    shift
    ;;
  --write-baseline)
    exec "$PY" docs/_ext/validation_baseline.py
    ;;
esac

rm -rf docs/_build docs/api/generated docs/auto_tutorials docs/snippets/_output
start=$(date +%s)
"$PY" -m sphinx -W --keep-going -b html docs docs/_build/html "$@"
echo "docs: built docs/_build/html/index.html in $(( $(date +%s) - start )) s"
