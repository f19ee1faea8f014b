"""Copy the figures and tables of finished `spikelfp reproduce` runs into docs/ (for RESULTS.md).

python docs/collect.py [runs/reproduce]
"""

import shutil
import sys
from pathlib import Path

root = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/reproduce")
docs = Path(__file__).parent
(docs / "figures").mkdir(exist_ok=True)
(docs / "tables").mkdir(exist_ok=True)
for run in sorted(root.iterdir()):
    if (run / "figure.png").exists() and (run / "table.md").exists():
        shutil.copy(run / "figure.png", docs / "figures" / f"{run.name}.png")
        shutil.copy(run / "table.md", docs / "tables" / f"{run.name}.md")
        shutil.copy(run / "results.json", docs / "tables" / f"{run.name}.json")
        print("collected", run.name)
