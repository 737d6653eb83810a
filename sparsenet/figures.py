"""Every figure of the study (E0-E6), drawn from the Parquet tables alone.

Lines are means over seeds, bands their 95% Student-t interval (sparsenet.stats.mean_ci; no band for one seed),
as each legend's title says. Each algorithm and each E1 variant keeps one colour and marker in every figure,
colour-blind-safe (Okabe & Ito's palette, then Paul Tol's muted one; markers tell them apart too). Accuracy,
recall and fractions are in percent. Diverged runs, and every measurement made on them, are left out of the
figures; draw_all returns a note naming them (the figures command prints it into its log).
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator, ScalarFormatter  # noqa: E402

from sparsenet import algorithms  # noqa: E402
from sparsenet.files import atomic_path, read_parquet  # noqa: E402
from sparsenet.stats import mean_ci  # noqa: E402
from sparsenet.variants import VARIANTS  # noqa: E402

FIGURES = ("e0_accuracy", "e1_reinit", "e2_prune", "e2_prune_layers", "e3_emergence", "e4_freeze", "e5_similarity",
           "e6_wiring")
# (colour, marker) of each algorithm, the same in every figure: the registry's algorithms in its order take these in
# turn, dense black; one named by import path is grey
PALETTE = [("#009E73", "v"), ("#44AA99", "P"), ("#CC79A7", "X"), ("#117733", "^"), ("#E69F00", "o"), ("#999933", "D"),
           ("#D55E00", "P"), ("#0072B2", "D"), ("#56B4E9", "^"), ("#882255", "s"), ("#777777", "o"), ("#332288", "v"),
           ("#AA4499", "s"), ("#DDCC77", "X")]
STYLE = {"dense": ("#000000", "s"), **dict(zip([n for n in algorithms.NAMES if n != "dense"], PALETTE))}
OTHER = ("#BBBBBB", "o")
VARIANT_STYLE = {"trained": ("#000000", "s"), **dict(zip(VARIANTS, [
    ("#E69F00", "o"), ("#56B4E9", "^"), ("#009E73", "v"), ("#0072B2", "D"), ("#D55E00", "P"), ("#CC79A7", "X")]))}
DENSITY_COLOURS = ["#4477AA", "#EE6677", "#228833", "#CCBB44", "#66CCEE", "#AA3377", "#BBBBBB"]  # Tol's bright
METHOD_LINES = {"magnitude_global": "-", "magnitude_layerwise": "-.", "random": "--"}  # E2's removal methods
BANDS = "mean over seeds; band: 95% CI"


def _line(ax, frame: pd.DataFrame, x: str, y: str, label: str, style: tuple[str, str] | None = None,
          scale: float = 100, **kw) -> None:
    """Mean of `y` over seeds against `x` (times `scale`: percent by default), with its 95% t-interval as a band."""
    rows = [(value, *mean_ci(group[y])) for value, group in frame.groupby(x)]
    if not rows:
        return
    xs, _, mean, low, high = (np.array(column, dtype=float) for column in zip(*sorted(rows)))
    colour, marker = style or (kw.pop("color", None), "o")
    line = ax.plot(xs, mean * scale, marker=marker, ms=3, label=label, color=colour, **kw)[0]
    ax.fill_between(xs, low * scale, high * scale, alpha=0.2, color=line.get_color(), lw=0)


def _log_density(ax, densities) -> None:
    """A log axis of densities, ticked at the study's densities with plain numbers (0.05, not 5x10^-2)."""
    ax.set_xscale("log")
    ax.set_xticks(sorted(set(densities)))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(plt.NullFormatter())
    ax.xaxis.set_minor_locator(plt.NullLocator())


def _percent_axis(ax) -> None:
    """Keep a percent axis within [0, 100]: with few seeds a t-interval can reach past both ends."""
    low, high = ax.get_ylim()
    ax.set_ylim(max(low, 0), min(high, 100.5))


def _accuracy_axes(ax, xlabel: str, title: str) -> None:
    """Label a panel of test accuracy (%), keep it within 0-100 and give it its legend."""
    ax.set(xlabel=xlabel, ylabel="test accuracy (%)", title=title)
    _percent_axis(ax)
    _legend(ax)


def _legend(ax, **kw) -> None:
    """The legend, titled with what the bands mean; beside the panel when it would hide the lines."""
    if len(ax.get_legend_handles_labels()[1]) > 6:
        kw = {"loc": "upper left", "bbox_to_anchor": (1.01, 1.0), **kw}
    ax.legend(fontsize=7, title=BANDS, title_fontsize=6, **kw)


def _panels(n: int, width: float, height: float, columns: int = 4):
    """A figure with `n` panels in rows of at most `columns` (unused places hidden); the panels as a flat list."""
    n = max(n, 1)
    rows, cols = -(-n // columns), min(n, columns)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def _ordered(names) -> list[str]:
    """The sparse algorithms among `names` (not dense, nor a frozen run's label), in the registry's order, then
    any by import path."""
    names = {n for n in names if n != "dense" and not algorithms.split(n)[1]}
    return [a for a in algorithms.NAMES if a in names] + sorted(n for n in names if ":" in n)


def style(algorithm: str) -> tuple[str, str]:
    return STYLE.get(algorithm, OTHER)


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
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for algorithm in _ordered(runs["algorithm"]):
        _line(ax, runs[runs["algorithm"] == algorithm], "density", "test_acc", algorithm, style(algorithm))
    n, mean, low, high = mean_ci(runs.loc[runs["algorithm"] == "dense", "test_acc"])
    if n:
        ax.axhline(mean * 100, color=STYLE["dense"][0], lw=1, label=f"dense (n={n})")
        if not np.isnan(low):
            ax.axhspan(low * 100, high * 100, color=STYLE["dense"][0], alpha=0.12, lw=0)
    _log_density(ax, runs.loc[runs["algorithm"] != "dense", "density"])
    _accuracy_axes(ax, "density (kept / prunable weights)", "E0: accuracy of each algorithm")
    return fig


def e1_reinit(t):
    reinit, runs = t["reinit"], t["runs"]
    algorithms = _ordered(reinit["algorithm"])
    fig, axes = _panels(len(algorithms), 4.2, 3.6, columns=3)
    for ax, algorithm in zip(axes, algorithms):
        _line(ax, runs[runs["algorithm"] == algorithm], "density", "test_acc", "trained", VARIANT_STYLE["trained"])
        sub = reinit[reinit["algorithm"] == algorithm]
        for variant in [v for v in VARIANT_STYLE if v in set(sub["variant"])]:
            _line(ax, sub[sub["variant"] == variant], "density", "test_acc", variant, VARIANT_STYLE[variant])
        _log_density(ax, sub["density"])
        _accuracy_axes(ax, "density", f"E1: {algorithm}'s mask, weights reset")
    return fig


def e2_prune(t):
    """One panel per density: every algorithm's structure pruned further, by each removal method (line style)."""
    prune = t["prune"]
    whole = prune[prune["layer"] == "all"]
    densities = sorted(whole["density"].unique())
    fig, axes = _panels(len(densities), 4.6, 3.8, columns=2)
    for ax, density in zip(axes, densities):
        sub = whole[whole["density"] == density]
        for algorithm in _ordered(sub["algorithm"]):
            for method, ls in METHOD_LINES.items():
                m = sub[(sub["algorithm"] == algorithm) & (sub["method"] == method)]
                if len(m):
                    _line(ax, m, "q", "test_acc", f"{algorithm}, {method.replace('_', ' ')}", style(algorithm), ls=ls)
        ax.set(xlabel="fraction q of the remaining weights removed", ylabel="test accuracy (%)",
               title=f"E2: robustness at density {density:g}")
        _percent_axis(ax)
    if not densities:
        axes[0].set_title("E2: no pruning sweep in this study")
    else:  # one key for all panels: colour and marker the algorithm, line style the removal method
        present = _ordered(whole["algorithm"])
        keys = [Line2D([], [], color=style(a)[0], marker=style(a)[1], ms=3, label=a) for a in present]
        keys += [Line2D([], [], color="black", ls=ls, label=m.replace("_", " ")) for m, ls in METHOD_LINES.items()
                 if m in set(whole["method"])]
        axes[0].legend(handles=keys, loc="lower left", fontsize=7, title=BANDS, title_fontsize=6)
    return fig


def e2_prune_layers(t):
    """Which layer is fragile: one layer pruned by magnitude, the others untouched (magnitude_per_layer)."""
    layers = t["prune"][t["prune"]["layer"] != "all"]
    order = _ordered(layers["algorithm"])
    panels = sorted(layers[["algorithm", "density"]].drop_duplicates().values.tolist(),
                    key=lambda p: (order.index(p[0]), p[1]))
    fig, axes = _panels(len(panels), 3.8, 3.3)
    for ax, (algorithm, density) in zip(axes, panels):
        sub = layers[(layers["algorithm"] == algorithm) & (layers["density"] == density)]
        for k, (layer, m) in enumerate(sub.groupby("layer")):
            _line(ax, m, "q", "test_acc", layer, (DENSITY_COLOURS[k % len(DENSITY_COLOURS)], "o"))
        _accuracy_axes(ax, "fraction q of the layer's weights removed",
                       f"E2: {algorithm}, density {density:g}, one layer")
    if not panels:
        axes[0].set_title("E2: no per-layer pruning in this study")
    return fig


def lr_drops(em: pd.DataFrame) -> list[float]:
    """The snapshot epochs at which a step schedule drops the learning rate: it falls to half or less of the
    snapshot's before and holds at the next (a cosine's decline never holds); none for tables without lr."""
    if "lr" not in em or not len(em):
        return []
    lr = em.groupby("epoch")["lr"].mean().sort_index()
    epochs, values = lr.index.to_numpy(), lr.to_numpy()
    return [float(epochs[i]) for i in range(1, len(values) - 1)
            if values[i] <= values[i - 1] / 2 and np.isclose(values[i + 1], values[i])]


def e3_emergence(t):
    """Per algorithm, two positional measures of each snapshot against the final mask, with their chance values:
    recall (top; a random mask of the snapshot's density keeps that share of the final mask) and Cohen's kappa,
    the agreement corrected for chance (bottom; 0 for a random mask); learning-rate drops marked. E4 gives the
    functional reading."""
    em = t["emergence"]
    em = em[em["layer"] == "all"]
    algorithms = _ordered(em["algorithm"])
    fig, axes = plt.subplots(2, max(len(algorithms), 1), figsize=(5.4 * max(len(algorithms), 1), 8),
                             squeeze=False)
    for (recall, kappa), algorithm in zip(axes.T, algorithms):
        for k, (density, sub) in enumerate(em[em["algorithm"] == algorithm].groupby("density")):
            colour = DENSITY_COLOURS[k % len(DENSITY_COLOURS)]
            _line(recall, sub, "epoch", "overlap_final", f"density {density:g}", (colour, "o"))
            chance = sub.groupby("epoch")["snapshot_density"].mean()
            recall.plot(chance.index, chance.to_numpy() * 100, ls=":", lw=1, color=colour,
                        label="chance: a random mask of that density" if k == 0 else None)
            _line(kappa, sub, "epoch", "kappa_final", f"density {density:g}", (colour, "o"), scale=1)
        kappa.axhline(0, ls=":", lw=1, color="black", label="chance (a random mask)")
        for k, epoch in enumerate(lr_drops(em[em["algorithm"] == algorithm])):
            for ax in (recall, kappa):
                ax.axvline(epoch, ls="--", lw=0.8, color="grey", label="learning rate drops" if k == 0 else None)
        recall.set(ylabel="final mask already kept (recall, %)", ylim=(0, 102),
                   title=f"E3: when {algorithm}'s structure emerges")
        kappa.set(ylabel="Cohen's kappa against the final mask", ylim=(-0.05, 1.02))
        last = em["epoch"].max()
        for ax in (recall, kappa):
            ax.set_xscale("symlog", linthresh=1, linscale=0.6)  # epoch 1's snapshots spread out, later epochs log
            ax.set_xlim(0, last * 1.05)
            ax.set_xticks([0, 0.5, 1, *[e for e in (2, 5, 10, 20, 50, 100, 200) if e < last / 1.5], last])
            ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
            ax.set_xlabel("epoch")
        _legend(recall, loc="upper left")
        _legend(kappa, loc="upper left")
    if not algorithms:
        axes[0, 0].set_title("E3: no snapshots in this study")
    return fig


def e4_freeze(t):
    """One row per frozen algorithm: accuracy against freeze epoch k (the unfrozen run dashed), and its cost
    against the unfrozen run: modelled weight-gradient work (solid) and measured training time (dotted)."""
    fr = t["freeze"]
    frozen_names = _ordered(algorithms.split(a)[0] for a in fr["algorithm"] if algorithms.split(a)[1])
    if not frozen_names:
        fig, ax = plt.subplots(figsize=(6, 1.5))
        ax.axis("off")
        ax.text(0.5, 0.5, "E4: this study freezes no algorithm (freeze_epochs is empty)", ha="center", va="center")
        return fig
    fig, axes = plt.subplots(len(frozen_names), 2, figsize=(10, 4.2 * len(frozen_names)), squeeze=False)
    for (acc, cost), name in zip(axes, frozen_names):
        for k, (density, sub) in enumerate(fr.groupby("density")):
            style = (DENSITY_COLOURS[k % len(DENSITY_COLOURS)], "o")
            frozen = sub[sub["algorithm"] == name + algorithms.FREEZE]
            _line(acc, frozen, "freeze_epoch", "test_acc", f"{name}{algorithms.FREEZE}, density {density:g}", style)
            n, mean, _, _ = mean_ci(sub.loc[sub["algorithm"] == name, "test_acc"])
            if n:
                acc.axhline(mean * 100, ls="--", lw=1, color=style[0],
                            label=f"{name} never frozen, density {density:g}")
            _line(cost, frozen, "freeze_epoch", "grad_macs_vs_unfrozen", f"modelled gradient work, {density:g}", style)
            _line(cost, frozen, "freeze_epoch", "train_s_vs_unfrozen", f"measured time, {density:g}",
                  (style[0], "x"), ls=":")
        acc.set(xlabel="freeze epoch k", ylabel="test accuracy (%)", title=f"E4: {name}'s mask frozen after k epochs")
        cost.set(xlabel="freeze epoch k", ylabel=f"% of {name} never frozen", ylim=(0, 105),
                 title=f"E4: cost against {name} never frozen")
        _percent_axis(acc)
        # one key a panel: colour the density, line style what is drawn
        densities = [Line2D([], [], color=DENSITY_COLOURS[k % len(DENSITY_COLOURS)], marker="o", ms=3,
                            label=f"density {d:g}") for k, d in enumerate(sorted(fr["density"].unique()))]
        acc.legend(handles=densities + [Line2D([], [], color="black", label=f"{name} frozen after k epochs"),
                                        Line2D([], [], color="black", ls="--", label=f"{name} never frozen")],
                   loc="lower left", fontsize=7, title=BANDS, title_fontsize=6)
        cost.legend(handles=densities + [Line2D([], [], color="black", label="weight-gradient work (modelled)"),
                                         Line2D([], [], color="black", ls=":", marker="x", ms=3,
                                                label="training time (measured)")],
                    loc="upper left", fontsize=7, title=BANDS, title_fontsize=6)
        for ax in (acc, cost):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return fig


def e5_similarity(t):
    """One matrix per density: mean chance-corrected IoU of final masks, algorithm x algorithm (diagonal: seeds),
    on a diverging scale centred on chance (0) and scaled to the values shown.

    Pairs of different seeds only: runs of one seed share their initial weights, which says nothing about the
    structure an algorithm finds (the summary lists same-seed pairs apart)."""
    frame = t["similarity"]
    frame = frame[(frame["layer"] == "all") & (frame["seed_a"] != frame["seed_b"])]
    both = pd.concat([frame, frame.rename(columns={"algorithm_a": "algorithm_b", "algorithm_b": "algorithm_a"})])
    densities = sorted(frame["density"].unique())
    side = max(4, 0.5 * len(set(both["algorithm_a"])))  # room for a label per algorithm
    fig, axes = _panels(len(densities), side * 1.15, 0.9 * side, columns=2)
    for ax, density in zip(axes, densities):
        sub = both[both["density"] == density]
        names = _ordered(sub["algorithm_a"])
        matrix = sub.groupby(["algorithm_a", "algorithm_b"])["iou_corrected"].mean().unstack()
        values = matrix.reindex(index=names, columns=names).to_numpy(dtype=float)
        limit = max(float(np.nanmax(np.abs(values))), 1e-3) if np.isfinite(values).any() else 1
        image = ax.imshow(values, vmin=-limit, vmax=limit, cmap="PuOr_r")
        for i, row in enumerate(values):
            for j, value in enumerate(row):
                ax.text(j, i, f"{value:.3f}", ha="center", va="center", fontsize=7,
                        color="w" if abs(value) > 0.6 * limit else "k")
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=7)
        ax.set_yticks(range(len(names)), names, fontsize=7)
        ax.set_title(f"E5: density {density:g}")
        fig.colorbar(image, ax=ax, label="chance-corrected IoU (0: chance),\nruns of different seeds")
    if not densities:
        axes[0].set_title("E5: no pairs of runs of different seeds")
    return fig


def e6_wiring(t):
    whole = t["layers"][t["layers"]["layer"] == "all"]
    whole = whole.assign(effective_fraction=whole["effective_kept"] / whole["kept"],
                         dead_fraction=whole["dead_units"] / whole["units"])
    fig, (eff, dead) = plt.subplots(1, 2, figsize=(9, 3.8))
    for algorithm in _ordered(whole["algorithm"]):
        sub = whole[whole["algorithm"] == algorithm]
        _line(eff, sub, "density", "effective_fraction", algorithm, style(algorithm))
        _line(dead, sub, "density", "dead_fraction", algorithm, style(algorithm))
    eff.set(xlabel="density", ylabel="effective / kept weights (%)", ylim=(0, 102),
            title="E6: kept weights on an input-output path")
    dead.set(xlabel="density", ylabel="units on no path (%)", title="E6: dead units")
    for ax in (eff, dead):
        _log_density(ax, whole["density"])
        _percent_axis(ax)
        _legend(ax)
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
