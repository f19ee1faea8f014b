"""Write docs/validation-baseline.txt: the objects whose docstrings fail numpydoc's validation today.

Runs the documentation build with every object validated (``SPIKELFP_DOCS_VALIDATE=all``, warnings not
fatal, into a temporary folder), collects numpydoc's "Validation warnings" and writes one line per failing
object: its name, then the failed checks as a comment. docs/conf.py skips the objects listed there; every
other object is validated and fails the build. Fix a docstring, then rerun this (``bash scripts/docs.sh
--write-baseline``) so that the list only shrinks. An empty or absent list validates everything.

    python docs/_ext/validation_baseline.py [--print]   # --print: show the list, write nothing
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1]
BASELINE = DOCS / "validation-baseline.txt"
HEADER = """\
# Objects whose docstrings fail numpydoc's validation (PR01, PR02, PR03, GL08) and are skipped for now.
# Written by `bash scripts/docs.sh --write-baseline`; remove a line by fixing the docstring.
# Validate everything: `bash scripts/docs.sh --validate-all`, or delete this file.
"""
_WARNING = re.compile(r"Validation warnings while processing docstring for '([^']+)':\n((?:  [A-Z]{2}\d\d: .*\n)+)")


def failures() -> dict[str, list[str]]:
    """``{object: ["PR01: ...", ...]}`` from a full build with every object validated."""
    env = dict(os.environ, SPIKELFP_DOCS_VALIDATE="all", MPLBACKEND="Agg")
    with tempfile.TemporaryDirectory() as out:
        log = Path(out) / "warnings.txt"
        subprocess.run(
            [sys.executable, "-m", "sphinx", "-q", "-b", "html", "-w", str(log), str(DOCS), str(Path(out) / "html")],
            env=env,
            check=False,
        )
        text = log.read_text(encoding="utf-8") if log.exists() else ""
    found: dict[str, list[str]] = {}
    for name, body in _WARNING.findall(text + "\n"):
        found.setdefault(name, []).extend(line.strip() for line in body.splitlines() if line.strip())
    return dict(sorted(found.items()))


def main() -> None:
    found = failures()
    lines = [f"{name}  # {'; '.join(errs)}" for name, errs in found.items()]
    if "--print" in sys.argv:
        print("\n".join(lines))
        return
    BASELINE.write_text(HEADER + "\n".join(lines) + ("\n" if lines else ""), encoding="utf-8")
    print(f"{len(found)} objects fail validation; written to {BASELINE}")


if __name__ == "__main__":
    main()
