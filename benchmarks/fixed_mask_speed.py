"""Fixed-mask training speed at density 5%: whole epochs of `sparsenet.train.train`, one process per measurement,
the variants interleaved, medians printed (issue 11's figure: samples/s of an imp round and of an E1 retraining).

    python benchmarks/fixed_mask_speed.py [--old PATH] [--repeats 3] [--epochs 2] [--train-subset N]

Variants: this checkout with `sparse_kernels: auto` and `off` (the dense masked path of the same code), and with
`--old PATH` a checkout of older code (e.g. `git worktree add /tmp/old bf316fb`, the parent of the first
sparse-kernel commit), whose dense masked path is the one the issue measured against. Masks: each weight kept
with the probability of its layer's density in bench section 2c's STUDY_MASKS (the default study's final imp
and snfs masks at 5%; 2c draws exact counts with the same densities).
Each process trains LeNet-300-100 on MNIST (batch 128, 1 thread) and reports its history's samples/s.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# run in a child process against whichever code PYTHONPATH names; only API that older checkouts share
CHILD = r"""
import json, sys, tempfile
from pathlib import Path
import pandas as pd
import torch
torch.set_num_threads(1)
from sparsenet import models
from sparsenet.config import RunConfig
from sparsenet.masks import Mask
from sparsenet.train import train
args = json.loads(sys.argv[1])
weights = models.prunable(models.build("lenet300_100", (1, 28, 28), 10))
mask = Mask({n: torch.rand(w.shape, generator=torch.Generator().manual_seed(i)) < d
             for i, ((n, w), d) in enumerate(zip(weights.items(), args["densities"]))})
flat = {"dataset": "mnist", "model": "lenet300_100", "epochs": args["epochs"], "batch_size": 128,
        "snapshot_fractions": (), "algorithm": "fixed", "density": round(mask.density(), 4)}
if args["train_subset"]:
    flat["train_subset"] = args["train_subset"]
if args["sparse_kernels"]:
    flat["sparse_kernels"] = args["sparse_kernels"]
with tempfile.TemporaryDirectory() as tmp:
    train(RunConfig.from_flat(flat), Path(tmp) / "run", mask=mask, device="cpu")
    rates = list(pd.read_parquet(Path(tmp) / "run" / "history.parquet")["samples_per_s"])
import sparsenet
print(json.dumps({"code": sparsenet.__file__, "rates": rates}))
"""


def measure(code: Path, densities, sparse_kernels: str | None, epochs: int, train_subset: int = 0) -> list[float]:
    """samples/s of each epoch of one training with the code at `code`."""
    args = json.dumps({"densities": densities, "sparse_kernels": sparse_kernels, "epochs": epochs,
                       "train_subset": train_subset})
    # run from inside `code`: with -c, the working directory comes first on sys.path
    out = subprocess.run([sys.executable, "-c", CHILD, args], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(code)}, cwd=code)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if not Path(result["code"]).resolve().is_relative_to(code):  # an installed copy would shadow the one asked for
        raise RuntimeError(f"measured {result['code']}, not the code in {code}")
    return result["rates"]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--old", type=Path, help="a checkout of older code whose dense masked path to compare with")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--train-subset", type=int, default=0, help="train on the first N samples (0: all; tests)")
    args = p.parse_args(argv)
    from sparsenet.bench import STUDY_MASKS  # this checkout's; the child processes may run older code
    variants = {"sparse_kernels auto": (REPO, "auto"), "dense masked (same code)": (REPO, "off")}
    if args.old:
        variants["dense masked (--old code)"] = (args.old.resolve(), None)
    rates = {(m, v): [] for m in STUDY_MASKS for v in variants}
    for repeat in range(args.repeats):  # interleaved, so a noisy neighbour hits every variant alike, and the
        order = list(variants) if repeat % 2 == 0 else list(reversed(variants))  # order reversed every other round
        for mask, densities in STUDY_MASKS.items():
            for variant in order:
                code, mode = variants[variant]
                rates[mask, variant] += measure(code, densities, mode, args.epochs, args.train_subset)
    print("| mask | variant | samples/s (median) | sparse auto is faster by |\n|---|---|---|---|")
    for mask in STUDY_MASKS:
        auto = statistics.median(rates[mask, "sparse_kernels auto"])
        for variant in variants:
            rate = statistics.median(rates[mask, variant])
            print(f"| {mask} | {variant} | {rate:,.0f} | {auto / rate:.2f}x |")


if __name__ == "__main__":
    main()
