"""The accuracy table of README.md: LeNet-300-100 on MNIST at density 5%, every algorithm, with the reference recipes.

    python benchmarks/mnist_accuracy.py --out results/accuracy [--seeds 0 1] [--algorithms snfs dnw] [--jobs 2]

Recipes (sparsenet/recipes/): dense and imp use open_lth's `open_lth_mnist_lenet_300_100` (40 epochs of plain SGD
per round; imp prunes 20% per round globally, output layer kept dense, 15 rounds to 5%); snfs uses sparse
momentum's `sparse_learning_mnist` (100 epochs, Nesterov SGD, uniform layer densities). DNW has no MNIST recipe
of its own, so dnw and dnw_freeze (freeze_epoch 1) use snfs's (the dynamic algorithms compare on one footing),
with DNW's own initialisation, Kaiming normal (allenai/dnw, imagenet_sparsity_experiments/.../resnet.py).
The algorithms beyond the paper (set, rigl, gmp, static, snip, grasp, synflow, magnitude_init) use snfs's recipe
as it stands, PyTorch's initialisation included: sparse momentum's repository is where SET's and SNIP's published
MNIST numbers for LeNet-300-100 come from.
`--epochs` overrides every recipe's length (step milestones scaled with it). Runs are ordinary run folders
(resumable: rerun the same command to go on, or to print the table of finished runs); the table is printed as
Markdown and written as table.parquet.
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
COST = {"imp": 4, "dnw": 3, "dnw_freeze": 2, "snfs": 1, "rigl": 1, "dense": 0}  # longest first balances the workers


def one(algorithm: str, seed: int, density: float, epochs: int | None, out: Path) -> dict:
    import torch

    from sparsenet import rounds, train
    from sparsenet.config import RunConfig, expand_preset
    from sparsenet.masks import Mask

    torch.set_num_threads(1)
    preset, extra = RECIPES[algorithm]
    settings = {"preset": preset, "algorithm": algorithm, "seed": seed, "density": density, **extra}
    if epochs:  # a shorter run: the schedule's milestones move with it
        recipe = expand_preset({"preset": preset})
        scaled = {round(m * epochs / recipe["epochs"]) for m in recipe.get("milestones", ())}
        settings.update(epochs=epochs, milestones=sorted(m for m in scaled if 0 < m < epochs))
    cfg = RunConfig.from_flat(settings)
    folder = out / algorithm / f"s{seed}"
    record = (rounds.run_chain if algorithm == "imp" else train.train)(cfg, folder)
    wall = sum(float(pd.read_json(f, typ="series")["wall_s"]) for f in folder.glob("rounds/*/run.json")) \
        if algorithm == "imp" else record["wall_s"]
    return {"algorithm": algorithm, "seed": seed, "recipe": preset, "epochs": cfg.train.epochs,
            "density": record["density"], "all_weights_density": Mask.load(folder / "mask.safetensors").density(),
            "test_acc": record["test_acc"], "wall_s": wall, "device": record["device"],
            "git_commit": record["git_commit"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("results/accuracy"))
    p.add_argument("--epochs", type=int, help="override every recipe's epochs (default: the recipe's)")
    p.add_argument("--density", type=float, default=0.05)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--algorithms", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    p.add_argument("--jobs", type=int, default=2, help="runs side by side, one thread each")
    args = p.parse_args()
    tasks = sorted(((a, s) for a in args.algorithms for s in args.seeds), key=lambda t: -COST.get(t[0], 1))
    with ProcessPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(one, a, s, args.density, args.epochs, args.out) for a, s in tasks]
        rows = [f.result() for f in futures]
    table = pd.DataFrame(rows)
    table.to_parquet(args.out / "table.parquet", index=False)
    order = [a for a in RECIPES if a in set(table["algorithm"])]
    summary = table.groupby("algorithm").agg(
        recipe=("recipe", "first"), epochs=("epochs", "first"), density=("density", "mean"),
        all_density=("all_weights_density", "mean"), test_acc=("test_acc", "mean"), acc_min=("test_acc", "min"),
        acc_max=("test_acc", "max"), wall_s=("wall_s", "mean")).loc[order]
    commits = ", ".join(sorted({c[:10] for c in table["git_commit"]}))
    print(f"LeNet-300-100, MNIST, seeds {args.seeds}, {table['device'].iloc[0]}, trained at commit {commits}")
    print("| algorithm | recipe | epochs | density (all weights) | test acc (mean) | min | max | wall s / run |\n"
          "|---|---|---|---|---|---|---|---|")
    for algorithm, r in summary.iterrows():
        print(f"| {algorithm} | `{r.recipe}` | {r.epochs} | {r.density:.4f} ({r.all_density:.4f}) | "
              f"{100 * r.test_acc:.2f}% | {100 * r.acc_min:.2f}% | {100 * r.acc_max:.2f}% | {r.wall_s:.0f} |")


if __name__ == "__main__":
    main()
