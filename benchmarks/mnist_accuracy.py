"""The accuracy table of README.md: LeNet-300-100 on MNIST at density 5%, every algorithm, with the reference recipes.

    python benchmarks/mnist_accuracy.py --out results/accuracy [--seeds 0 1 2] [--algorithms snfs dnw] [--jobs 2]
    python benchmarks/mnist_accuracy.py --markdown docs/tables/mnist_accuracy.csv    # README's tables, from the rows

Recipes (sparsenet/recipes/): dense and imp use open_lth's `open_lth_mnist_lenet_300_100` (40 epochs of plain SGD
per round; imp prunes 20% per round globally, output layer kept dense, 15 rounds to 5%); snfs uses sparse
momentum's `sparse_learning_mnist` (100 epochs, Nesterov SGD, uniform layer densities). DNW has no MNIST recipe
of its own, so dnw and dnw_freeze (freeze_epoch 1) use snfs's (the dynamic algorithms compare on one footing),
with DNW's own initialisation, Kaiming normal (allenai/dnw, imagenet_sparsity_experiments/.../resnet.py).
The algorithms beyond the paper (set, rigl, gmp, static, snip, grasp, synflow, magnitude_init) use snfs's recipe
as it stands, PyTorch's initialisation included: sparse momentum's repository is where SET's and SNIP's published
MNIST numbers for LeNet-300-100 come from. rigl, set, gmp and static keep the layers of rigl's MNIST script
(`rigl_layers: reference`: output layer dense, fc2 at 0.9 of fc1's sparsity).
`--epochs` overrides every recipe's length (step milestones scaled with it). Runs are ordinary run folders
(resumable: rerun the same command to go on, or to print the table of finished runs); the rows of every finished
run under --out are written as table.csv, and the table is printed as Markdown: mean over seeds with its 95%
t-interval (sparsenet.stats).
"""
from __future__ import annotations

import argparse
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd

RECIPES = {"dense": ("open_lth_mnist_lenet_300_100", {"density": 1.0}),
           "imp": ("open_lth_mnist_lenet_300_100", {}),
           "snfs": ("sparse_learning_mnist", {}),
           "dnw": ("sparse_learning_mnist", {"init": "kaiming_normal"}),
           "dnw_freeze": ("sparse_learning_mnist", {"init": "kaiming_normal", "freeze_epoch": 1}),
           **{a: ("sparse_learning_mnist", {}) for a in ("set", "rigl", "gmp", "static", "snip", "grasp", "synflow",
                                                          "magnitude_init")}}
# The published accuracies README compares with, in percent: TimDettmers/sparse_learning,
# results/MNIST_compression_comparison_lenet300-100.csv (sparse momentum error 1.53%, SET 98.14%, SNIP error 1.6%)
PUBLISHED = {"snfs": 98.47, "set": 98.14, "snip": 98.4}
COST = {"imp": 4, "set": 3, "dnw": 3, "rigl": 2, "snfs": 2, "dnw_freeze": 2, "gmp": 1, "dense": 0}  # longest first


def one(algorithm: str, seed: int, density: float, epochs: int | None, out: Path) -> None:
    import torch

    from sparsenet import algorithms, rounds, train
    from sparsenet.config import RunConfig, expand_preset

    torch.set_num_threads(1)
    preset, extra = RECIPES[algorithm]
    settings = {"preset": preset, **algorithms.from_label(algorithm), "seed": seed, "density": density, **extra}
    if epochs:  # a shorter run: the schedule's milestones move with it
        recipe = expand_preset({"preset": preset})
        scaled = {round(m * epochs / recipe["epochs"]) for m in recipe.get("milestones", ())}
        settings.update(epochs=epochs, milestones=sorted(m for m in scaled if 0 < m < epochs))
    folder = out / algorithm / f"s{seed}"
    (rounds.run_chain if algorithm == "imp" else train.train)(RunConfig.from_flat(settings), folder)


def row(folder: Path) -> dict:
    """One finished run (or imp chain) as a row of the table."""
    from sparsenet.masks import Mask
    from sparsenet.record import RunFolder

    run = RunFolder(folder)
    record = run.record()
    alg = record.config["algorithm"]
    rounds = sorted(folder.glob("rounds/*/run.json"))
    wall = sum(RunFolder(f.parent).record().wall_s for f in rounds) if rounds else record.wall_s
    return {"algorithm": folder.parent.name, "seed": record.config["seed"], "recipe": RECIPES[folder.parent.name][0],
            "epochs": record.config["train"]["epochs"], "dense_layers": ",".join(alg["dense_layers"]),
            "density": record.density, "all_weights_density": Mask.load(run.mask).density(),
            "test_acc": record.test_acc, "wall_s": wall, "device": record.device, "git_commit": record.git_commit}


def markdown(table: pd.DataFrame) -> str:
    """README's table: one row per algorithm, mean test accuracy over seeds with its 95% t-interval."""
    from sparsenet.stats import mean_ci

    lines = ["| algorithm | recipe | epochs | kept dense | density (of all weights) | seeds | test acc (mean) | "
             "95% CI | wall s / run |", "|---|---|---|---|---|---|---|---|---|"]
    for algorithm in [a for a in RECIPES if a in set(table["algorithm"])]:
        rows = table[table["algorithm"] == algorithm].sort_values("seed")
        n, mean, low, high = mean_ci(rows["test_acc"])
        r = rows.iloc[0]
        dense = ", ".join(f"`{d}`" for d in ("" if pd.isna(r.dense_layers) else r.dense_layers).split(",") if d) or "-"
        ci = f"{100 * low:.2f}%–{100 * high:.2f}%" if n > 1 else "-"
        lines.append(f"| {algorithm} | `{r.recipe}` | {r.epochs}{' per round' if algorithm == 'imp' else ''} | "
                     f"{dense} | {rows['density'].mean():.4f} ({rows['all_weights_density'].mean():.4f}) | {n} | "
                     f"{100 * mean:.2f}% | {ci} | {rows['wall_s'].mean():.0f} |")
    commits = ", ".join(sorted({c[:7] for c in table["git_commit"]}))
    return "\n".join(lines) + f"\n\nTrained at commit {commits} on {table['device'].iloc[0]}, one run per thread.\n"


# The differences README reads off the table: each dynamic algorithm against a random fixed mask (static), and
# the pairs it compares; paired by seed (the same seed gives the same data order and initial weights).
PAIRS = (("rigl", "static"), ("set", "static"), ("gmp", "static"), ("snfs", "static"), ("dnw", "static"),
         ("snip", "static"), ("rigl", "set"), ("gmp", "snfs"), ("dnw", "snfs"), ("dnw_freeze", "dnw"), ("imp", "dense"))


def differences(table: pd.DataFrame) -> str:
    """Paired differences of test accuracy between algorithms, per seed, with their 95% t-interval."""
    from sparsenet.stats import mean_ci

    acc = table.pivot_table(index="seed", columns="algorithm", values="test_acc")
    lines = ["| difference | seeds | mean | 95% CI |", "|---|---|---|---|"]
    for a, b in PAIRS:
        if a in acc and b in acc:
            n, mean, low, high = mean_ci((acc[a] - acc[b]).dropna())
            lines.append(f"| {a} − {b} | {n} | {100 * mean:+.2f} pp | {100 * low:+.2f} pp to {100 * high:+.2f} pp |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("results/accuracy"))
    p.add_argument("--epochs", type=int, help="override every recipe's epochs (default: the recipe's)")
    p.add_argument("--density", type=float, default=0.05)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--algorithms", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    p.add_argument("--jobs", type=int, default=2, help="runs side by side, one thread each")
    p.add_argument("--markdown", type=Path, metavar="CSV", help="print README's table from a table.csv and stop")
    args = p.parse_args()
    if args.markdown:
        table = pd.read_csv(args.markdown)
        print(markdown(table) + "\n" + differences(table), end="")
        return
    tasks = sorted(((a, s) for a in args.algorithms for s in args.seeds), key=lambda t: -COST.get(t[0], 1))
    with ProcessPoolExecutor(args.jobs) as pool:
        for f in [pool.submit(one, a, s, args.density, args.epochs, args.out) for a, s in tasks]:
            f.result()
    table = pd.DataFrame([row(f.parent) for f in sorted(args.out.glob("*/s*/run.json"))])
    table.to_csv(args.out / "table.csv", index=False)
    print(markdown(table) + "\n" + differences(table), end="")


if __name__ == "__main__":
    main()
