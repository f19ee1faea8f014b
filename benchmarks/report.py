"""Markdown tables from accuracy summaries: mean ± sample sd over seeds, range, time and firing rates.

Each LFP group is set against the suite's ``surrogate`` group: the difference of the means and its
standard error, sqrt(sd_a²/n_a + sd_b²/n_b), from the seeds' sample standard deviations.

python benchmarks/report.py snn-mlp-best [nmnist-best ...]
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def table(suite: str) -> str:
    summary = json.loads((HERE / "results" / f"accuracy_{suite}.json").read_text())
    lines = [
        f"`accuracy_{suite}.json`",
        "",
        "| run | β | T | lr | seeds | final accuracy (mean ± sd) | range | s / epoch | firing rate per spiking layer |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    if "aggregate" not in summary:
        raise SystemExit(f"accuracy_{suite}.json has no per-seed aggregate (written before --seeds existed)")
    for group, agg in summary["aggregate"].items():
        settings = next(r["settings"] for key, r in summary["runs"].items() if r.get("group", key) == group)
        sd = "" if agg["std"] is None else f" ± {100 * agg['std']:.2f}"
        rates = " / ".join(f"{v:.3f}" for v in (agg["firing_rates"] or {}).values()) or "—"
        lines.append(
            f"| {group} | {settings.get('beta', 0.9):g} | {settings.get('steps', 25)} | {settings.get('lr', 1e-3):g} "
            f"| {len(agg['seeds'])} | {100 * agg['mean']:.2f}{sd} % | {100 * agg['min']:.2f}–{100 * agg['max']:.2f} "
            f"| {agg['seconds_per_epoch']:.0f} | {rates} |"
        )
    base = summary["aggregate"].get("surrogate")
    if base and base["std"] is not None:
        lines.append("")
        for group, agg in summary["aggregate"].items():
            if group == "surrogate" or agg["std"] is None:
                continue
            diff = 100 * (agg["mean"] - base["mean"])
            se = 100 * math.sqrt(agg["std"] ** 2 / len(agg["seeds"]) + base["std"] ** 2 / len(base["seeds"]))
            ratio = f"{abs(diff) / se:.1f} SE" if se > 0 else "no spread over seeds"
            lines.append(
                f"- {group} − surrogate: {diff:+.2f} points; standard error of the difference {se:.2f} "
                f"({ratio}); sd over seeds {100 * agg['std']:.2f} and {100 * base['std']:.2f}"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    for suite in sys.argv[1:]:
        print(table(suite), end="\n\n")
