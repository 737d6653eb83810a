"""README's table of DNW's per-step top-k: ranked near the last step's k-th magnitude against torch.topk of every
weight (what dnw did before; the masks are the same), LeNet-300-100 on MNIST, on the CPU.

    python benchmarks/dnw_topk.py --out docs/tables/dnw_topk.csv [--quick]   # measure (about 3 min here)
    python benchmarks/dnw_topk.py --markdown docs/tables/dnw_topk.csv        # README's table, from the rows

The figures are `sparsenet bench`'s section 2d (sparsenet.bench.bench_dnw_topk): the trainer's samples/s, each
arm warmed up by a first pass that is not counted, the arms alternating their order, medians of 5 repeats; the
rows name the machine and the commit.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import pandas as pd
import torch

from sparsenet import bench
from sparsenet.execution import resolve_device

REPO = Path(__file__).resolve().parents[1]


def measure(quick: bool) -> pd.DataFrame:
    torch.set_num_threads(1)  # as a study's jobs train (resources: threads)
    dev = resolve_device("cpu")
    rows = bench.Rows(dev)
    bench.bench_dnw_topk(rows, dev, None, quick)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO)
    return pd.DataFrame(rows.rows).assign(commit=commit.stdout.strip())


def markdown(rows: pd.DataFrame) -> str:
    """One line per density: samples/s of both arms and their ratio."""
    lines = ["| dnw, LeNet-300-100 | torch.topk of every weight (samples/s) | ranked near the last k-th value "
             "(samples/s) | speed-up |", "|---|---:|---:|---:|"]
    for arm in dict.fromkeys(n.split(":")[0] for n in rows["name"]):
        value = {n.split(": ", 1)[1]: v for n, v in zip(rows["name"], rows["value"]) if n.split(":")[0] == arm}
        lines.append(f"| {arm} | {value['torch.topk of every weight']:,.0f} | "
                     f"{value['ranked near the last k-th value']:,.0f} | {value['speed-up']:.2f}x |")
    first = rows.iloc[0]
    return "\n".join(lines) + (f"\n\nMeasured on {first['device']}, commit {first['commit']}; each figure the "
                               f"{rows.loc[rows['unit'] == 'x', 'note'].iloc[0]} repeats.")


if __name__ == "__main__":
    bench.table_cli(__doc__, measure, markdown)
