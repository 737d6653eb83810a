"""E5: do seeds and algorithms find the same structure? Overlap and IoU between final masks, against chance.

For two masks of one layer of n weights keeping a and b of them, two independent random masks with those counts
share ab/n weights on average. So by chance, overlap (the fraction of A's kept weights that B keeps) is
sum(a_l b_l / n_l) / sum(a_l), and IoU is about E[shared] / (sum(a_l) + sum(b_l) - E[shared]). The
chance-corrected score (observed - chance) / (1 - chance) is 1 for identical masks and about 0 for unrelated
ones. Layers either run keeps whole (dense_layers, e.g. imp's output layer) are left out of the 'all' row, as
density leaves them out everywhere. Every mask is read once; pairs are formed in memory.
"""
from __future__ import annotations

from itertools import combinations
from pathlib import Path

import pandas as pd

from sparsenet import algorithms
from sparsenet.masks import Mask
from sparsenet.record import RunFolder


def _overlap_iou(shared: float, kept_a: int, kept_b: int) -> tuple[float, float]:
    union = kept_a + kept_b - shared
    return (shared / kept_a if kept_a else 1.0), (shared / union if union else 1.0)


def chance(counts_a: dict[str, int], counts_b: dict[str, int], sizes: dict[str, int]) -> tuple[float, float]:
    """(overlap, IoU) that two random masks with these per-layer kept counts have on average."""
    shared = sum(counts_a[n] * counts_b[n] / sizes[n] for n in sizes)
    return _overlap_iou(shared, sum(counts_a.values()), sum(counts_b.values()))


def corrected(observed: float, by_chance: float) -> float:
    return (observed - by_chance) / (1 - by_chance) if by_chance < 1 else float("nan")


def _row(layer: str, a: dict[str, int], b: dict[str, int], sizes: dict[str, int], shared: int) -> dict:
    overlap, iou = _overlap_iou(shared, sum(a.values()), sum(b.values()))
    chance_overlap, chance_iou = chance(a, b, sizes)
    return {"layer": layer, "overlap": overlap, "iou": iou, "chance_overlap": chance_overlap,
            "chance_iou": chance_iou, "overlap_corrected": corrected(overlap, chance_overlap),
            "iou_corrected": corrected(iou, chance_iou)}


def compare(a: Mask, b: Mask, dense_layers: frozenset[str] = frozenset()) -> list[dict]:
    """One row per layer, and one ('all') for the layers either run prunes (`dense_layers`: those kept whole)."""
    sizes = {n: m.numel() for n, m in a.layers.items()}
    ka = {n: int(m.sum()) for n, m in a.layers.items()}
    kb = {n: int(m.sum()) for n, m in b.layers.items()}
    shared = {n: int((a.layers[n] & b.layers[n]).sum()) for n in sizes}
    pruned = [n for n in sizes if n not in dense_layers]
    rows = [_row("all", {n: ka[n] for n in pruned}, {n: kb[n] for n in pruned}, {n: sizes[n] for n in pruned},
                 sum(shared[n] for n in pruned))]
    rows += [_row(n, {n: ka[n]}, {n: kb[n]}, {n: sizes[n]}, shared[n]) for n in sizes]
    return rows


def pairs(runs: list[str | Path]) -> pd.DataFrame:
    """Every pair of runs of the same model and density: their keys, and compare()'s rows."""
    loaded = []
    for run in map(RunFolder, runs):
        cfg = run.record().config  # the settings as recorded: reading them imports no algorithm (code identity)
        hp = cfg["algorithm"]
        key = {"dataset": cfg["data"]["dataset"], "model": cfg["model"]["model"], "algorithm": hp["algorithm"],
               "density": hp["density"], "seed": cfg["seed"]}
        if hp["freeze_epoch"]:
            key["algorithm"] = f"{algorithms.label(hp['algorithm'], 1)}_f{hp['freeze_epoch']}"
        key["run"], key["dense_layers"] = str(run.path), frozenset(hp["dense_layers"])
        loaded.append((key, Mask.load(run.mask)))
    rows = []
    for (ka, ma), (kb, mb) in combinations(loaded, 2):
        if (ka["model"], ka["density"]) != (kb["model"], kb["density"]):
            continue
        if (kb["algorithm"], kb["seed"]) < (ka["algorithm"], ka["seed"]):  # a fixed order within each pair
            (ka, ma), (kb, mb) = (kb, mb), (ka, ma)
        keys = {"dataset": ka["dataset"], "model": ka["model"], "density": ka["density"],
                "algorithm_a": ka["algorithm"], "seed_a": ka["seed"], "algorithm_b": kb["algorithm"],
                "seed_b": kb["seed"], "run_a": ka["run"], "run_b": kb["run"]}
        rows += [{**keys, **row} for row in compare(ma, mb, ka["dense_layers"] | kb["dense_layers"])]
    return pd.DataFrame(rows)
