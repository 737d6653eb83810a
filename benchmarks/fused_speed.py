"""README's table of fused runs against single runs: 8 LeNet-300-100 runs on MNIST, side by side in one process.

    python benchmarks/fused_speed.py --out docs/tables/fused_speed.csv [--quick]   # measure (about 1 min)
    python benchmarks/fused_speed.py --markdown docs/tables/fused_speed.csv        # README's table, from the rows

The figures are `sparsenet bench`'s section 2b (sparsenet.bench.bench_fused): each arm warmed up by a first pass
that is not counted, the two arms alternating their order, medians of 5 repeats; the rows name the machine.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import pandas as pd

from sparsenet import bench
from sparsenet.execution import resolve_device

REPO = Path(__file__).resolve().parents[1]


def measure(device: str | None, quick: bool) -> pd.DataFrame:
    dev = resolve_device(device)
    rows = bench.Rows(dev)
    bench.bench_fused(rows, dev, None, quick)
    frame = pd.DataFrame(rows.rows)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO)
    frame["commit"] = commit.stdout.strip()
    return frame


def markdown(rows: pd.DataFrame) -> str:
    """One line per arm: per-run samples/s single and fused, the ratios of the training loops and of the calls."""
    lines = ["| 8 runs of LeNet-300-100 | single, per run (samples/s) | fused, per run (samples/s) | "
             "fused / single, training loops | fused / single, wall |", "|---|---:|---:|---:|---:|"]
    for arm in dict.fromkeys(n.split(":")[0].removeprefix("lenet300_100 ") for n in rows["name"]):
        value = {n.split(": ", 1)[1]: v for n, v in zip(rows["name"], rows["value"]) if n.split(":")[0].endswith(arm)}
        lines.append(f"| {arm} | {value['8 single runs, per run']:,.0f} | {value['8 fused runs, per run']:,.0f} | "
                     f"{value['fused / single (training loops)']:.2f}x | "
                     f"{value['fused / single (wall of the calls)']:.2f}x |")
    first, repeats = rows.iloc[0], rows.loc[rows["name"].str.contains("training loops"), "note"].iloc[0]
    return "\n".join(lines) + (f"\n\nMeasured on {first['device']}, commit {first['commit']}; each figure the "
                               f"{repeats} repeats.")


if __name__ == "__main__":
    bench.table_cli(__doc__, measure, markdown, device=True)
