"""Run the code that the narrative pages show, so that a page never shows code that fails.

Every ``docs/snippets/*.py`` runs once per build (``builder-inited``), in a fresh Python process with this
checkout first on ``sys.path`` and a temporary working directory. Its standard output is written to
``docs/snippets/_output/<name>.txt``, which the pages include next to the code (``literalinclude``).
A snippet that exits non-zero stops the build with its output. Snippets are short (seconds); tutorials
with figures belong in ``docs/tutorials/`` (sphinx-gallery).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.util import logging

logger = logging.getLogger(__name__)

TIMEOUT_S = 300


def _run_snippets(app: Sphinx) -> None:
    src = Path(app.srcdir)
    snippets = sorted((src / "snippets").glob("*.py"))
    out_dir = src / "snippets" / "_output"
    out_dir.mkdir(parents=True, exist_ok=True)
    root = src.parent
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.setdefault("MPLBACKEND", "Agg")
    for path in snippets:
        start = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="spikelfp-snippet-") as cwd:
            try:
                done = subprocess.run(
                    [sys.executable, str(path)],
                    cwd=cwd,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=TIMEOUT_S,
                    check=False,
                )
            except subprocess.TimeoutExpired as exc:
                raise ExtensionError(f"snippet {path.name} ran longer than {TIMEOUT_S} s") from exc
        if done.returncode != 0:
            raise ExtensionError(
                f"snippet {path.name} failed (exit status {done.returncode}):\n{done.stdout}\n{done.stderr}"
            )
        (out_dir / f"{path.stem}.txt").write_text(done.stdout, encoding="utf-8")
        logger.info(f"[spikelfp_snippets] {path.name}: ok in {time.perf_counter() - start:.1f} s")


def setup(app: Sphinx) -> dict:
    app.connect("builder-inited", _run_snippets)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
