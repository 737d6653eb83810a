"""The figures: one colour per algorithm in every figure, bands that are 95% t-intervals, scales that fit the data."""
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex, to_rgb

from sparsenet import figures
from sparsenet.stats import mean_ci

ACCURACY = {("imp", 0.05): [0.971, 0.975, 0.969], ("imp", 0.2): [0.981, 0.983, 0.982],
            ("snfs", 0.05): [0.961, 0.958, 0.965], ("snfs", 0.2): [0.978, 0.979, 0.976]}


def tables() -> dict[str, pd.DataFrame]:
    runs = pd.DataFrame([{"algorithm": a, "density": d, "seed": s, "test_acc": acc, "status": "ok", "run": f"{a}{d}{s}"}
                         for (a, d), accs in ACCURACY.items() for s, acc in enumerate(accs)]
                        + [{"algorithm": "dense", "density": 1.0, "seed": s, "test_acc": 0.985, "status": "ok",
                            "run": f"dense{s}"} for s in range(3)])
    layers = runs[runs["algorithm"] != "dense"].assign(layer="all", kept=100, units=50, effective_kept=90,
                                                      dead_units=lambda f: (f["density"] * 10).astype(int))
    similarity = pd.DataFrame([{"layer": "all", "seed_a": 0, "seed_b": 1, "algorithm_a": a, "algorithm_b": b,
                                "density": 0.05, "iou_corrected": v}
                               for a, b, v in [("imp", "imp", 0.02), ("imp", "snfs", -0.004), ("snfs", "snfs", 0.01)]])
    return {"runs": runs, "layers": layers, "similarity": similarity}


def colours(ax) -> dict[str, str]:
    return {line.get_label(): to_hex(line.get_color()) for line in ax.get_lines()}


def test_each_algorithm_has_its_colour_in_every_figure():
    t = tables()
    e0, e6 = figures.e0_accuracy(t), figures.e6_wiring(t)
    try:
        for ax in [*e0.axes, *e6.axes[:2]]:
            for algorithm in ("imp", "snfs"):
                assert colours(ax)[algorithm] == figures.STYLE[algorithm][0].lower()
    finally:
        plt.close("all")
    assert len({c for c, _ in figures.STYLE.values()}) == len(figures.STYLE)  # no two algorithms share a colour
    assert len({c for c, _ in figures.VARIANT_STYLE.values()}) == len(figures.VARIANT_STYLE)


def test_a_band_is_the_95_percent_t_interval_in_percent():
    fig = figures.e0_accuracy(tables())
    try:
        ax = fig.axes[0]
        imp = [line for line in ax.get_lines() if line.get_label() == "imp"][0]
        colour = to_rgb(figures.STYLE["imp"][0])
        band = [c for c in ax.collections if np.allclose(c.get_facecolor()[0][:3], colour)][0]  # imp's
        vertices = band.get_paths()[0].vertices
        tops = vertices[np.isclose(vertices[:, 0], 0.05), 1]  # the band's edges at density 0.05
        _, mean, low, high = mean_ci(ACCURACY["imp", 0.05])
        assert imp.get_ydata()[0] == pytest.approx(mean * 100)
        assert tops.min() == pytest.approx(low * 100) and tops.max() == pytest.approx(high * 100)
        assert ax.get_ylim()[1] <= 100.5 and ax.get_legend().get_title().get_text() == figures.BANDS
    finally:
        plt.close("all")


def test_the_similarity_scale_is_centred_on_chance_and_spans_the_values():
    fig = figures.e5_similarity(tables())
    try:
        image = fig.axes[0].get_images()[0]
        assert image.get_clim() == pytest.approx((-0.02, 0.02))
        assert np.nanmax(np.abs(image.get_array())) == pytest.approx(0.02)
    finally:
        plt.close("all")


def test_e3_draws_recall_and_kappa_each_with_its_chance_value():
    em = pd.DataFrame([{"algorithm": "dnw", "density": 0.05, "seed": s, "layer": "all", "epoch": e,
                        "overlap_final": r, "kappa_final": k, "snapshot_density": 0.05}
                       for s in (0, 1) for e, r, k in ((0.0, 0.3, 0.25), (1.0, 0.8, 0.79), (2.0, 1.0, 1.0))])
    fig = figures.e3_emergence({"emergence": em})
    try:
        recall, kappa = fig.axes[:2]  # one algorithm: its column, recall above kappa
        lines = {line.get_label(): line.get_ydata() for line in recall.get_lines()}
        assert list(lines["density 0.05"]) == pytest.approx([30, 80, 100])
        assert list(lines["chance: a random mask of that density"]) == pytest.approx([5, 5, 5])
        lines = {line.get_label(): line.get_ydata() for line in kappa.get_lines()}
        assert list(lines["density 0.05"]) == pytest.approx([0.25, 0.79, 1.0])
        assert set(lines["chance (a random mask)"]) == {0}
    finally:
        plt.close("all")


def test_e3_marks_where_the_learning_rate_drops():
    rows = [{"algorithm": "dnw", "density": 0.05, "seed": 0, "layer": "all", "epoch": float(e), "overlap_final": 0.5,
             "kappa_final": 0.5, "snapshot_density": 0.05, "lr": lr}
            for e, lr in enumerate([0.1, 0.1, 0.1, 0.01, 0.01, 0.001, 0.001])]
    em = pd.DataFrame(rows)
    assert figures.lr_drops(em) == [3.0, 5.0] and figures.lr_drops(em.drop(columns="lr")) == []
    cosine = em.assign(lr=[0.1, 0.09, 0.07, 0.04, 0.015, 0.004, 0.0])  # halves too, but never holds
    assert figures.lr_drops(cosine) == []
    fig = figures.e3_emergence({"emergence": em})
    try:
        for ax in fig.axes[:2]:
            drops = [line.get_xdata()[0] for line in ax.get_lines() if line.get_linestyle() == "--"]
            assert drops == [3.0, 5.0]
    finally:
        plt.close("all")


def test_e2_has_one_key_colour_for_the_algorithm_line_style_for_the_method():
    prune = pd.DataFrame([{"algorithm": a, "density": d, "seed": s, "layer": "all", "method": m, "q": q,
                           "test_acc": 0.9 - q / 2} for a in ("snfs", "imp") for d in (0.05, 0.2) for s in (0, 1)
                          for m in ("magnitude_global", "random") for q in (0.0, 0.5)])
    fig = figures.e2_prune({"prune": prune})
    try:
        first, second = fig.axes[:2]
        assert [t.get_text() for t in first.get_legend().get_texts()] == ["imp", "snfs", "magnitude global", "random"]
        assert second.get_legend() is None
        styles = {line.get_label(): (to_hex(line.get_color()), line.get_linestyle()) for line in first.get_lines()}
        assert styles["imp, random"] == (figures.STYLE["imp"][0].lower(), "--")
        assert styles["snfs, magnitude global"] == (figures.STYLE["snfs"][0].lower(), "-")
    finally:
        plt.close("all")


def test_e4_keys_density_by_colour_and_what_is_drawn_by_line_style():
    freeze = pd.DataFrame([{"algorithm": a, "density": d, "seed": s, "freeze_epoch": k, "test_acc": 0.97,
                            "grad_macs_vs_unfrozen": 0.2, "train_s_vs_unfrozen": 0.3}
                           for d in (0.05, 0.2) for s in (0, 1)
                           for a, k in (("dnw", None), ("dnw_freeze", 1), ("dnw_freeze", 2))])
    fig = figures.e4_freeze({"freeze": freeze})
    try:
        acc, cost = fig.axes[:2]
        assert [t.get_text() for t in acc.get_legend().get_texts()] == [
            "density 0.05", "density 0.2", "dnw frozen after k epochs", "dnw never frozen"]
        assert [t.get_text() for t in cost.get_legend().get_texts()][-2:] == [
            "weight-gradient work (modelled)", "training time (measured)"]
        measured = [line for line in cost.get_lines() if line.get_linestyle() == ":"]
        assert len(measured) == 2 and all(list(line.get_ydata()) == pytest.approx([30, 30]) for line in measured)
    finally:
        plt.close("all")
