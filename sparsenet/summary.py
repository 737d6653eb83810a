"""The study's numbers at a glance, from the Parquet tables alone: one table per experiment, each number the mean
over seeds with its 95% t-interval and n (sparsenet.stats; no interval for n = 1). Differences are paired: per
seed, then averaged, so their interval is the paired one.

E0 accuracy per algorithm and density;
E1 accuracy per variant and its gap to the trained run of the same seed;
E2 accuracy after pruning a further q = 0.25 / 0.5 / 0.75 (linear in q between the measured fractions; random
draws averaged first), the accuracy lost at q = 0.5 against the unpruned run, and the area under accuracy-vs-q;
E3 recall of the final mask, IoU, Cohen's kappa and Hamming distance with its chance value after 0.1, 0.5, 1, 2
and 5 epochs (where snapshotted);
E4 accuracy, its gap to the unfrozen algorithm's run of the same seed, and weight-gradient work and measured
training time per k relative to that run;
E5 chance-corrected overlap and IoU of final masks per pair of algorithms (the same algorithm: across seeds);
E6 effective density, dead units and fan-in spread of the final masks.
Diverged runs are left out, as in the figures.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from sparsenet import algorithms
from sparsenet.figures import without_diverged
from sparsenet.files import read_parquet
from sparsenet.stats import mean_ci

Q = (0.25, 0.5, 0.75)
LOST = "lost_q0.5"
E3_MEASURES = ("overlap_final", "iou_final", "kappa_final", "hamming_final", "hamming_chance")
EPOCHS = (0.1, 0.5, 1.0, 2.0, 5.0)
TABLES = ("runs", "reinit", "prune", "emergence", "freeze", "similarity", "layers")


def _stats(frame: pd.DataFrame, by: list[str], columns: list[str]) -> pd.DataFrame:
    """Per group: n, mean and the 95% t-interval (low, high) over seeds of each column."""
    rows = []
    for key, group in frame.groupby(by, dropna=False, sort=True):
        row = dict(zip(by, key))
        for column in columns:
            n, mean, low, high = mean_ci(group[column].dropna())
            row.update({f"{column}_mean": mean, f"{column}_low": low, f"{column}_high": high, f"{column}_n": n})
        rows.append(row)
    names = [f"{c}_{part}" for c in columns for part in ("mean", "low", "high", "n")]
    return pd.DataFrame(rows, columns=[*by, *names])


def accuracy(t: dict[str, pd.DataFrame]) -> pd.DataFrame:
    runs = t["runs"][~t["runs"]["algorithm"].str.endswith(algorithms.FREEZE)]
    return _stats(runs, ["algorithm", "density"], ["test_acc"])


def reinit(t: dict[str, pd.DataFrame]) -> pd.DataFrame:
    keys = ["dataset", "model", "algorithm", "density", "seed"]
    trained = t["runs"].set_index(keys)["test_acc"].rename("trained_acc")
    frame = t["reinit"].join(trained, on=keys)
    frame["gap"] = frame["test_acc"] - frame["trained_acc"]
    return _stats(frame, ["algorithm", "density", "variant"], ["test_acc", "gap"])


def prune(t: dict[str, pd.DataFrame]) -> pd.DataFrame:
    curve_keys = ["algorithm", "density", "seed", "method", "layer"]
    per_seed = t["prune"].groupby(curve_keys + ["q"], as_index=False)["test_acc"].mean()
    rows = []
    for (algorithm, density, seed, method, layer), curve in per_seed.groupby(curve_keys):
        curve = curve.sort_values("q")
        q, acc = curve["q"].to_numpy(), curve["test_acc"].to_numpy()
        row = {"algorithm": algorithm, "density": density, "seed": seed, "method": method, "layer": layer,
               "auc": float(np.trapezoid(acc, q) / (q[-1] - q[0])) if len(q) > 1 else float("nan")}
        for target in Q:
            row[f"acc_q{target:g}"] = float(np.interp(target, q, acc)) if q[0] <= target <= q[-1] else float("nan")
        # the points lost to removing half, against the same run unpruned: paired, per seed
        row[LOST] = acc[0] - row["acc_q0.5"] if q[0] == 0 else float("nan")
        rows.append(row)
    frame = pd.DataFrame(rows)
    return _stats(frame, ["algorithm", "density", "method", "layer"], [f"acc_q{q:g}" for q in Q] + [LOST, "auc"])


def emergence(t: dict[str, pd.DataFrame]) -> pd.DataFrame:
    frame = t["emergence"]
    frame = frame[(frame["layer"] == "all") & frame["epoch"].round(6).isin(EPOCHS)]
    return _stats(frame, ["algorithm", "density", "epoch"], list(E3_MEASURES))


def freeze(t: dict[str, pd.DataFrame]) -> pd.DataFrame:
    frame = t["freeze"].copy()
    frame["frozen"] = frame["algorithm"].str.removesuffix(algorithms.FREEZE)
    frame["k"] = frame["freeze_epoch"].astype("Float64").fillna(-1).astype(int)  # the unfrozen run as -1
    unfrozen = frame[frame["k"] == -1].set_index(["frozen", "density", "seed"])["test_acc"]
    frame["gap"] = frame["test_acc"] - unfrozen.reindex(pd.MultiIndex.from_frame(
        frame[["frozen", "density", "seed"]])).to_numpy()
    out = _stats(frame, ["frozen", "density", "k"],
                 ["test_acc", "gap", "grad_macs_vs_unfrozen", "train_s_vs_unfrozen"])
    out["k"] = [name if k == -1 else str(k) for name, k in zip(out["frozen"], out["k"])]
    return out.rename(columns={"frozen": "algorithm"})


def similarity(t: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Pairs from the same seed share their initial weights (and, for <alg>_freeze, <alg>'s first epochs): apart."""
    frame = t["similarity"]
    frame = frame[frame["layer"] == "all"].assign(same_seed=lambda f: f["seed_a"] == f["seed_b"])
    return _stats(frame, ["density", "algorithm_a", "algorithm_b", "same_seed"],
                  ["overlap", "chance_overlap", "iou_corrected"])


def wiring(t: dict[str, pd.DataFrame]) -> pd.DataFrame:
    layers = t["layers"]
    whole = layers[layers["layer"] == "all"].set_index("run")
    whole["effective_fraction"] = whole["effective_kept"] / whole["kept"]
    whole["dead_unit_fraction"] = whole["dead_units"] / whole["units"]
    whole["fanin_cv"] = layers[layers["layer"] != "all"].groupby("run")["fanin_cv"].mean()  # mean over layers
    whole = whole[~whole["algorithm"].str.endswith(algorithms.FREEZE)]
    return _stats(whole.reset_index(), ["algorithm", "density"],
                  ["effective_density", "effective_fraction", "dead_unit_fraction", "fanin_cv"])


SECTIONS = {"E0": ("E0 accuracy", accuracy), "E1": ("E1 structure alone (retrained from a reset)", reinit),
            "E2": ("E2 robustness to further pruning", prune),
            "E3": ("E3 emergence (against the final mask; kappa corrects the agreement for chance)", emergence),
            "E4": ("E4 freezing the mask after k epochs", freeze),
            "E5": ("E5 similarity of final masks (pairs of runs; corrected for chance)", similarity),
            "E6": ("E6 wiring of final masks (effective = on an input-output path)", wiring)}


def summarise(tables_dir: str | Path) -> dict[str, pd.DataFrame]:
    """Each experiment's frame, by its id (E0-E6)."""
    tables = {name: read_parquet(Path(tables_dir) / f"{name}.parquet") for name in TABLES}
    tables, _ = without_diverged(tables)
    return {key: fn(tables) for key, (_, fn) in SECTIONS.items()}


def cell(mean: float, low: float, high: float, n: int, percent: bool = False) -> str:
    """'mean [low, high] (n=...)', or 'mean (n=1)': no spread for one seed; a fraction in percent if `percent`."""
    (scale, digits), n = ((100, 2) if percent else (1, 3)), int(n)  # n arrives as a float from a mixed row
    mean, low, high = mean * scale, low * scale, high * scale
    return "" if not n else f"{mean:.{digits}f} (n=1)" if n == 1 else \
        f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}] (n={n})"


def _formatted(frame: pd.DataFrame) -> pd.DataFrame:
    """Each measured column as a cell; accuracies, their gaps and losses in percent."""
    out = frame[[c for c in frame.columns if not c.endswith(("_mean", "_low", "_high", "_n"))]].copy()
    for column in [c[:-5] for c in frame.columns if c.endswith("_mean")]:
        percent = column.startswith(("test_acc", "acc_q", "auc", "gap", "lost"))
        out[column + (" (%)" if percent else "")] = [
            cell(*values, percent=percent)
            for values in zip(*(frame[f"{column}_{p}"] for p in ("mean", "low", "high", "n")))]
    return out


LEGEND = "Each cell: mean over seeds [95% t-interval] (n seeds); gaps are paired differences, per seed."


def markdown(summary: dict[str, pd.DataFrame]) -> str:
    parts = [LEGEND]
    for key, frame in summary.items():
        table = _formatted(frame).to_markdown(index=False) if len(frame) else "(none)"
        parts.append(f"### {SECTIONS[key][0]}\n\n{table}")
    return "\n\n".join(parts) + "\n"


def html(summary: dict[str, pd.DataFrame]) -> str:
    body = f"<p>{LEGEND}</p>" + "".join(
        f"<h3>{SECTIONS[key][0]}</h3>" + (_formatted(frame).to_html(index=False) if len(frame) else "<p>(none)</p>")
        for key, frame in summary.items())
    return f"<html><head><meta charset='utf-8'><title>Summary</title></head><body>{body}</body></html>\n"
