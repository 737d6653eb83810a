"""Every figure of the study (E0-E6), drawn from the Parquet tables alone: mean over seeds, band = +-1 std.

Diverged runs, and every measurement made on them, are left out of the figures; draw_all returns a note
naming them (the figures command prints it into its log).
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from sparsenet.files import atomic_path, read_parquet  # noqa: E402

FIGURES = ("e0_accuracy", "e1_reinit", "e2_prune", "e3_emergence", "e4_freeze", "e5_similarity", "e6_wiring")
# the paper's algorithms, then the dynamic ones beyond it, then fixed masks from the start
SPARSE = ["imp", "snfs", "dnw", "set", "rigl", "gmp", "static", "snip", "grasp", "synflow", "magnitude_init"]


def _line(ax, frame: pd.DataFrame, x: str, y: str, label: str, **style) -> None:
    stats = frame.groupby(x)[y].agg(["mean", "std"]).reset_index().sort_values(x)
    std = stats["std"].fillna(0)
    ax.plot(stats[x], stats["mean"], marker="o", ms=3, label=label, **style)
    ax.fill_between(stats[x], stats["mean"] - std, stats["mean"] + std, alpha=0.2, **style)


def _panels(n: int, width: float, height: float, columns: int = 4):
    """A figure with `n` panels in rows of at most `columns` (unused places hidden); the panels as a flat list."""
    n = max(n, 1)
    rows, cols = -(-n // columns), min(n, columns)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def without_diverged(tables: dict[str, pd.DataFrame]) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """Drop diverged runs and retrainings, and the analyses of diverged runs; say which were dropped."""
    bad = set(tables["runs"].loc[tables["runs"]["status"] != "ok", "run"])
    bad |= set(tables["reinit"].loc[tables["reinit"]["status"] != "ok", "run"])
    if not bad:
        return tables, []

    def keep(frame: pd.DataFrame) -> pd.Series:
        source = frame["run"].map(lambda r: str(Path(r).parent.parent))  # a retraining's source run
        return ~frame["run"].isin(bad) & ~source.isin(bad)
    def kept(frame: pd.DataFrame) -> pd.DataFrame:
        if "run" in frame:
            return frame[keep(frame)]
        return frame[~frame["run_a"].isin(bad) & ~frame["run_b"].isin(bad)]  # E5: pairs of runs
    return {name: kept(frame) for name, frame in tables.items()}, \
        [f"left out of the figures: {len(bad)} diverged run(s): {', '.join(sorted(bad))}"]


def e0_accuracy(t: dict[str, pd.DataFrame]):
    runs = t["runs"]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for algorithm in [a for a in SPARSE if a in set(runs["algorithm"])]:
        _line(ax, runs[runs["algorithm"] == algorithm], "density", "test_acc", algorithm)
    dense = runs[runs["algorithm"] == "dense"]["test_acc"]
    if len(dense):
        ax.axhspan(dense.mean() - dense.std(ddof=0), dense.mean() + dense.std(ddof=0), color="grey", alpha=0.3)
        ax.axhline(dense.mean(), color="grey", label="dense")
    ax.set(xscale="log", xlabel="density", ylabel="test accuracy", title="E0: accuracy of each algorithm")
    ax.legend()
    return fig


def e1_reinit(t):
    reinit, runs = t["reinit"], t["runs"]
    algorithms = [a for a in SPARSE if a in set(reinit["algorithm"])]
    fig, axes = _panels(len(algorithms), 4, 3.5)
    for ax, algorithm in zip(axes, algorithms):
        _line(ax, runs[runs["algorithm"] == algorithm], "density", "test_acc", "trained", color="black")
        for variant, sub in reinit[reinit["algorithm"] == algorithm].groupby("variant"):
            _line(ax, sub, "density", "test_acc", variant)
        ax.set(xscale="log", xlabel="density", ylabel="test accuracy", title=f"E1: {algorithm} mask, weights reset")
        ax.legend(fontsize=7)
    return fig


def e2_prune(t):
    prune = t["prune"]
    panels = prune[["algorithm", "density"]].drop_duplicates()
    panels = sorted(panels.values.tolist(), key=lambda p: (SPARSE.index(p[0]) if p[0] in SPARSE else len(SPARSE), p))
    fig, axes = _panels(len(panels), 3.5, 3.2)
    for ax, (algorithm, density) in zip(axes, panels):
        sub = prune[(prune["algorithm"] == algorithm) & (prune["density"] == density)]
        for (method, layer), m in sub.groupby(["method", "layer"]):
            if layer == "all":
                _line(ax, m, "q", "test_acc", method)
            else:  # magnitude_per_layer: one layer pruned, the others untouched
                _line(ax, m, "q", "test_acc", f"{layer} alone", ls="--")
        ax.set(xlabel="fraction q of remaining weights pruned", ylabel="test accuracy",
               title=f"E2: {algorithm}, density {density:g}")
        ax.legend(fontsize=7)
    return fig


def e3_emergence(t):
    em = t["emergence"]
    em = em[em["layer"] == "all"]
    algorithms = [a for a in SPARSE if a in set(em["algorithm"])]
    fig, axes = _panels(len(algorithms), 4, 3.5)
    for ax, algorithm in zip(axes, algorithms):
        for density, sub in em[em["algorithm"] == algorithm].groupby("density"):
            _line(ax, sub, "epoch", "overlap_final", f"density {density:g}")
            # a random mask of the snapshot's density keeps that share of the final mask in expectation
            chance = sub.groupby("epoch")["snapshot_density"].mean()
            ax.plot(chance.index, chance.to_numpy(), ls=":", lw=1, color=ax.lines[-1].get_color(),
                    label=f"chance (random mask), density {density:g}")
        ax.set(xlabel="epoch", ylabel="overlap with final mask (recall)", ylim=(0, 1.02),
               title=f"E3: when {algorithm}'s structure emerges")
        ax.legend(fontsize=7)
    return fig


def e4_freeze(t):
    """One row per frozen algorithm: accuracy against freeze epoch k, and cost against the unfrozen algorithm."""
    fr = t["freeze"]
    frozen_names = [a for a in SPARSE if f"{a}_freeze" in set(fr["algorithm"])] or ["dnw"]
    fig, axes = plt.subplots(len(frozen_names), 2, figsize=(8, 3.5 * len(frozen_names)), squeeze=False)
    for (acc, cost), name in zip(axes, frozen_names):
        for density, sub in fr.groupby("density"):
            frozen = sub[sub["algorithm"] == f"{name}_freeze"]
            line = acc.plot([], [])[0]
            _line(acc, frozen, "freeze_epoch", "test_acc", f"{name}_freeze, density {density:g}",
                  color=line.get_color())
            unfrozen = sub[sub["algorithm"] == name]["test_acc"]
            if len(unfrozen):
                acc.axhline(unfrozen.mean(), ls="--", color=line.get_color(), label=f"{name}, density {density:g}")
            _line(cost, frozen, "freeze_epoch", "grad_macs_vs_unfrozen", f"gradient work, density {density:g}",
                  color=line.get_color())
            _line(cost, frozen, "freeze_epoch", "train_s_vs_unfrozen", f"measured time, density {density:g}",
                  color=line.get_color(), ls=":")
        acc.set(xlabel="freeze epoch k", ylabel="test accuracy", title=f"E4: {name}'s mask frozen after k epochs")
        cost.set(xlabel="freeze epoch k", ylabel=f"fraction of {name}'s", ylim=(0, 1.05),
                 title=f"E4: cost against {name}")
        for ax in (acc, cost):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.legend(fontsize=7)
    return fig


def e5_similarity(t):
    """One matrix per density: mean chance-corrected IoU of final masks, algorithm x algorithm (diagonal: seeds).

    Pairs of different seeds only: runs of one seed share their initial weights, which says nothing about the
    structure an algorithm finds (the summary lists same-seed pairs apart)."""
    frame = t["similarity"]
    frame = frame[(frame["layer"] == "all") & (frame["seed_a"] != frame["seed_b"])]
    both = pd.concat([frame, frame.rename(columns={"algorithm_a": "algorithm_b", "algorithm_b": "algorithm_a"})])
    densities = sorted(frame["density"].unique())
    side = max(4, 0.45 * len(set(both["algorithm_a"])))  # room for a label per algorithm
    fig, axes = _panels(len(densities), side, 0.9 * side, columns=2)
    for ax, density in zip(axes, densities):
        sub = both[both["density"] == density]
        names = sorted(set(sub["algorithm_a"]))
        matrix = sub.groupby(["algorithm_a", "algorithm_b"])["iou_corrected"].mean().unstack()
        values = matrix.reindex(index=names, columns=names).to_numpy(dtype=float)
        image = ax.imshow(values, vmin=0, vmax=1, cmap="viridis")
        for i, row in enumerate(values):
            for j, value in enumerate(row):
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7, color="w" if value < 0.6 else "k")
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=7)
        ax.set_yticks(range(len(names)), names, fontsize=7)
        ax.set_title(f"E5: density {density:g}")
        fig.colorbar(image, ax=ax, label="chance-corrected IoU,\nruns of different seeds")
    if not densities:
        axes[0].set_title("E5: no pairs of runs of different seeds")
    return fig


def e6_wiring(t):
    whole = t["layers"][t["layers"]["layer"] == "all"]
    whole = whole.assign(effective_fraction=whole["effective_kept"] / whole["kept"],
                         dead_fraction=whole["dead_units"] / whole["units"])
    fig, (eff, dead) = plt.subplots(1, 2, figsize=(8, 3.5))
    for algorithm in [a for a in SPARSE if a in set(whole["algorithm"])]:
        sub = whole[whole["algorithm"] == algorithm]
        _line(eff, sub, "density", "effective_fraction", algorithm)
        _line(dead, sub, "density", "dead_fraction", algorithm)
    eff.set(xscale="log", xlabel="density", ylabel="effective / kept weights", ylim=(0, 1.02),
            title="E6: kept weights on an input-output path")
    dead.set(xscale="log", xlabel="density", ylabel="fraction of units", title="E6: units on no path")
    for ax in (eff, dead):
        ax.legend(fontsize=7)
    return fig


def draw_all(tables_dir: str | Path, out_dir: str | Path) -> list[str]:
    """Draw every figure as PNG and PDF into `out_dir`; return the notes (e.g. runs left out)."""
    tables = {name: read_parquet(Path(tables_dir) / f"{name}.parquet")
              for name in ("runs", "reinit", "prune", "emergence", "freeze", "similarity", "layers")}
    tables, notes = without_diverged(tables)
    for name in FIGURES:
        fig = globals()[name](tables)
        fig.tight_layout()
        for ext in ("png", "pdf"):
            with atomic_path(Path(out_dir) / f"{name}.{ext}") as tmp:
                fig.savefig(tmp, format=ext, dpi=150)
        plt.close(fig)
    return notes
