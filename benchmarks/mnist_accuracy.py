"""The accuracy table of README.md: LeNet-300-100 on MNIST at density 5%, every algorithm, mean of 2 seeds.

    python benchmarks/mnist_accuracy.py --out results/accuracy [--seeds 0 1] [--algorithms dnw dnw_freeze]

Recipe: 30 epochs, SGD with Nesterov momentum 0.9, lr 0.1 with a cosine schedule, batch 64, weight decay 5e-4;
ERK layer densities; imp prunes 20% per round (global) and rewinds to the initial weights.

Runs are ordinary run folders (resumable); the table is printed as Markdown and written as table.parquet.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from sparsenet import rounds, train
from sparsenet.config import RunConfig

ALGORITHMS = {"dense": {"density": 1.0}, "imp": {}, "snfs": {}, "dnw": {}, "dnw_freeze": {"freeze_epoch": 1}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("results/accuracy"))
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--density", type=float, default=0.05)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--algorithms", nargs="+", default=list(ALGORITHMS))
    args = p.parse_args()
    rows = []
    for algorithm in args.algorithms:
        for seed in args.seeds:
            settings = {"dataset": "mnist", "model": "lenet300_100", "algorithm": algorithm, "seed": seed,
                        "epochs": args.epochs, "density": args.density, "batch_size": 64, "weight_decay": 5e-4,
                        **ALGORITHMS[algorithm]}
            cfg = RunConfig.from_flat(settings)
            out = args.out / algorithm / f"s{seed}"
            run = rounds.run_chain if algorithm == "imp" else train.train
            record = run(cfg, out)
            wall = sum(float(pd.read_json(f, typ="series")["wall_s"]) for f in out.glob("rounds/*/run.json")) \
                if algorithm == "imp" else record["wall_s"]
            rows.append({"algorithm": algorithm, "seed": seed, "density": record["density"],
                         "test_acc": record["test_acc"], "wall_s": wall, "device": record["device"],
                         "git_commit": record["git_commit"]})
    table = pd.DataFrame(rows)
    table.to_parquet(args.out / "table.parquet", index=False)
    summary = table.groupby("algorithm", sort=False).agg(
        density=("density", "mean"), test_acc=("test_acc", "mean"), acc_min=("test_acc", "min"),
        acc_max=("test_acc", "max"), wall_s=("wall_s", "mean"))
    commits = ", ".join(sorted({c[:10] for c in table["git_commit"]}))
    print(f"LeNet-300-100, MNIST, {args.epochs} epochs, seeds {args.seeds}, {table['device'].iloc[0]}, "
          f"trained at commit {commits}")
    print("| algorithm | density | test acc (mean) | min | max | wall s / run |\n|---|---|---|---|---|---|")
    for algorithm, r in summary.iterrows():
        print(f"| {algorithm} | {r.density:.4f} | {100 * r.test_acc:.2f}% | {100 * r.acc_min:.2f}% | "
              f"{100 * r.acc_max:.2f}% | {r.wall_s:.0f} |")


if __name__ == "__main__":
    main()
