"""The study's numbers at a glance, from the Parquet tables alone: one table per experiment, mean +- std over seeds.

E0 accuracy per algorithm and density; E1 accuracy per variant and its gap to the trained run of the same seed;
E2 accuracy after pruning a further q = 0.25 / 0.5 / 0.75 (linear in q between the measured fractions; random
draws averaged first) and the area under accuracy-vs-q; E3 overlap with the final mask after 0.1, 0.5, 1, 2, 5
epochs (where snapshotted); E4 accuracy, weight-gradient work and measured training time per k against the
unfrozen algorithm;
E5 chance-corrected overlap and IoU of final masks per pair of algorithms (the same algorithm: across seeds);
E6 effective density, dead units and fan-in spread of the final masks.
Diverged runs are left out, as in the figures.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from sparsenet.figures import without_diverged
from sparsenet.files import read_parquet

Q = (0.25, 0.5, 0.75)
EPOCHS = (0.1, 0.5, 1.0, 2.0, 5.0)
TABLES = ("runs", "reinit", "prune", "emergence", "freeze", "similarity", "layers")


def _stats(frame: pd.DataFrame, by: list[str], columns: list[str]) -> pd.DataFrame:
    """mean, std and n over seeds of each column, per group."""
    grouped = frame.groupby(by, dropna=False)[columns]
    out = grouped.agg(["mean", "std", "count"])
    out.columns = [f"{c}_{s}" if s != "count" else f"{c}_n" for c, s in out.columns]
    return out.reset_index()


def accuracy(t: dict[str, pd.DataFrame]) -> pd.DataFrame:
    runs = t["runs"][~t["runs"]["algorithm"].str.endswith("_freeze")]
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
        rows.append(row)
    frame = pd.DataFrame(rows)
    return _stats(frame, ["algorithm", "density", "method", "layer"], [f"acc_q{q:g}" for q in Q] + ["auc"])


def emergence(t: dict[str, pd.DataFrame]) -> pd.DataFrame:
    frame = t["emergence"]
    frame = frame[(frame["layer"] == "all") & frame["epoch"].round(6).isin(EPOCHS)]
    return _stats(frame, ["algorithm", "density", "epoch"], ["overlap_final"])


def freeze(t: dict[str, pd.DataFrame]) -> pd.DataFrame:
    frame = t["freeze"].copy()
    frame["frozen"] = frame["algorithm"].str.removesuffix("_freeze")
    frame["k"] = frame["freeze_epoch"].astype("Float64").fillna(-1).astype(int)  # the unfrozen run as -1
    out = _stats(frame, ["frozen", "density", "k"], ["test_acc", "grad_macs_vs_unfrozen", "train_s_vs_unfrozen"])
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
    whole = whole[~whole["algorithm"].str.endswith("_freeze")]
    return _stats(whole.reset_index(), ["algorithm", "density"],
                  ["effective_density", "effective_fraction", "dead_unit_fraction", "fanin_cv"])


SECTIONS = {"E0 accuracy": accuracy, "E1 structure alone (retrained from a reset)": reinit,
            "E2 robustness to further pruning": prune, "E3 emergence (overlap with the final mask)": emergence,
            "E4 freezing the mask after k epochs": freeze,
            "E5 similarity of final masks (pairs of runs; corrected for chance)": similarity,
            "E6 wiring of final masks (effective = on an input-output path)": wiring}


def summarise(tables_dir: str | Path) -> dict[str, pd.DataFrame]:
    tables = {name: read_parquet(Path(tables_dir) / f"{name}.parquet") for name in TABLES}
    tables, _ = without_diverged(tables)
    return {title: fn(tables) for title, fn in SECTIONS.items()}


def _formatted(frame: pd.DataFrame) -> pd.DataFrame:
    """Each measured column as 'mean +- std (n)'; fractions as percentages where they are accuracies."""
    out = frame[[c for c in frame.columns if not c.endswith(("_mean", "_std", "_n"))]].copy()
    for column in [c[:-5] for c in frame.columns if c.endswith("_mean")]:
        scale = 100 if column.startswith(("test_acc", "acc_q", "auc", "gap")) else 1
        mean, std, n = frame[f"{column}_mean"] * scale, frame[f"{column}_std"].fillna(0) * scale, frame[f"{column}_n"]
        digits = 2 if scale == 100 else 3
        out[column + (" (%)" if scale == 100 else "")] = [
            f"{m:.{digits}f} ± {s:.{digits}f} ({k})" if k else "" for m, s, k in zip(mean, std, n)]
    return out


def markdown(summary: dict[str, pd.DataFrame]) -> str:
    parts = []
    for title, frame in summary.items():
        parts.append(f"### {title}\n\n" + (_formatted(frame).to_markdown(index=False) if len(frame) else "(none)"))
    return "\n\n".join(parts) + "\n"


def html(summary: dict[str, pd.DataFrame]) -> str:
    body = "".join(f"<h3>{title}</h3>" + (_formatted(frame).to_html(index=False) if len(frame) else "<p>(none)</p>")
                   for title, frame in summary.items())
    return f"<html><head><meta charset='utf-8'><title>Summary</title></head><body>{body}</body></html>\n"
