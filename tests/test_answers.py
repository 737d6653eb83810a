"""The four answers: each verdict follows its rule (non-inferiority against one point) from per-seed tables."""
import pandas as pd
import pytest

from sparsenet import answers, summary

SEEDS = (0, 1, 2)


def runs(acc: dict[str, list[float]]) -> pd.DataFrame:
    return pd.DataFrame([{"dataset": "mnist", "model": "m", "algorithm": a, "density": 0.05, "seed": s, "test_acc": v}
                         for a, values in acc.items() for s, v in zip(SEEDS, values)])


@pytest.mark.parametrize("n, low, high, verdict", [
    (3, -0.005, 0.004, "no loss"), (3, -0.01, 0.0, "no loss"),  # the margin itself is no loss
    (3, -0.03, -0.011, "loss"), (3, -0.02, 0.01, "undecided"), (1, 0.0, 0.0, "undecided"),
    (3, float("nan"), float("nan"), "undecided")])
def test_a_gap_is_judged_by_its_whole_interval_against_one_point(n, low, high, verdict):
    assert answers.judge(n, low, high) == verdict


def test_structure_alone_is_judged_on_the_reinit_gap_paired_by_seed_with_shuffle_as_control():
    trained = runs({"kept": [0.97, 0.96, 0.98], "lost": [0.97, 0.96, 0.98]})
    retrained = runs({"kept": [0.969, 0.962, 0.979], "lost": [0.90, 0.91, 0.92]}).assign(variant="reinit")
    # per seed the "kept" gaps are -0.001, +0.002, -0.001: tiny; the seeds' spread of 0.01 would hide them unpaired
    shuffled = runs({"kept": [0.80, 0.81, 0.79], "lost": [0.80, 0.81, 0.79]}).assign(variant="shuffle")
    e1 = summary.reinit({"runs": trained, "reinit": pd.concat([retrained, shuffled])})
    found = answers.structure_alone(e1)
    table = found.table.set_index("algorithm")
    assert table.loc["kept", "verdict"] == "no loss" and table.loc["lost", "verdict"] == "loss"
    assert table.loc["kept", "reinit − trained (pp)"].startswith("0.00 [") and "(n=3)" in table.loc["kept"].iloc[1]
    assert "1 no loss, 1 loss of 2" in found.finding and "(control): 2 loss" in found.finding


def test_structure_alone_says_so_when_the_study_has_no_reinit_variant():
    trained = runs({"kept": [0.97, 0.96, 0.98]})
    e1 = summary.reinit({"runs": trained, "reinit": runs({"kept": [0.9] * 3}).assign(variant="shuffle")})
    found = answers.structure_alone(e1)
    assert found.finding.startswith("Not measured") and found.table.empty


def prune_rows(algorithm: str, method: str, acc_by_q: dict[float, list[float]]) -> list[dict]:
    return [{"algorithm": algorithm, "density": 0.05, "seed": s, "method": method, "layer": "all", "q": q,
             "test_acc": v} for q, values in acc_by_q.items() for s, v in zip(SEEDS, values)]


def test_robustness_is_the_paired_loss_at_half_by_magnitude_with_random_removal_as_control():
    rows = (prune_rows("robust", "magnitude_global", {0.0: [0.97, 0.95, 0.99], 0.5: [0.968, 0.951, 0.987]})
            + prune_rows("robust", "random", {0.0: [0.97, 0.95, 0.99], 0.5: [0.5, 0.4, 0.6]})
            + prune_rows("fragile", "magnitude_global", {0.0: [0.97, 0.95, 0.99], 0.5: [0.90, 0.88, 0.93]}))
    found = answers.robustness(summary.prune({"prune": pd.DataFrame(rows)}))
    table = found.table.set_index("algorithm")
    assert table.loc["robust", "verdict"] == "no loss" and table.loc["fragile", "verdict"] == "loss"
    assert table.loc["robust", "lost, by magnitude (pp)"].startswith("0.13 [")  # (0.2 - 0.1 + 0.3) / 3 points
    assert table.loc["robust", "lost, at random (pp)"].startswith("47.00 [") and table.loc["fragile"].iloc[-1] == ""
    assert "(control): 1 loss" in found.finding


def freeze_rows(gaps_by_k: dict[int, list[float]]) -> pd.DataFrame:
    never = [0.97, 0.95, 0.99]
    rows = [{"algorithm": "dnw", "density": 0.05, "seed": s, "freeze_epoch": None, "test_acc": v,
             "grad_macs_vs_unfrozen": 1.0, "train_s_vs_unfrozen": 1.0} for s, v in zip(SEEDS, never)]
    rows += [{"algorithm": "dnw_freeze", "density": 0.05, "seed": s, "freeze_epoch": k, "test_acc": v + gap,
              "grad_macs_vs_unfrozen": 0.1 * k, "train_s_vs_unfrozen": 0.2 * k}
             for k, gaps in gaps_by_k.items() for s, v, gap in zip(SEEDS, never, gaps)]
    return pd.DataFrame(rows)


def test_freezing_answers_at_the_first_k_with_no_loss_and_gives_its_modelled_and_measured_cost():
    e4 = summary.freeze({"freeze": freeze_rows({1: [-0.03, -0.02, -0.04], 2: [-0.001, 0.001, 0.0],
                                                5: [0.0, 0.0, 0.001]})})
    found = answers.freezing(e4)
    row = found.table.iloc[0]
    assert (row["k"], row["verdict"]) == ("2", "no loss")
    assert row["weight-gradient work (modelled)"] == "0.200 [0.200, 0.200] (n=3)"
    assert row["training time (measured)"].startswith("0.400")


def test_freezing_with_no_k_within_the_margin_reports_the_largest_k():
    e4 = summary.freeze({"freeze": freeze_rows({1: [-0.03, -0.02, -0.04], 2: [-0.03, -0.031, -0.032]})})
    row = answers.freezing(e4).table.iloc[0]
    assert row["k"] == "none (largest k = 2)" and row["verdict"] == "loss"


def test_emergence_keeps_the_positional_and_the_functional_reading_apart():
    e3 = pd.DataFrame([{"algorithm": "dnw", "density": 0.05, "seed": s, "epoch": epoch, "layer": "all",
                        "overlap_final": k, "iou_final": k, "kappa_final": k + 0.01 * s, "hamming_final": 0.1,
                        "hamming_chance": 0.1} for s in SEEDS for epoch, k in ((0.1, 0.3), (0.5, 0.6), (1.0, 0.8))])
    frames = {"E3": summary.emergence({"emergence": e3}),
              "E4": summary.freeze({"freeze": freeze_rows({1: [-0.03, -0.02, -0.04], 2: [0.0, 0.0, 0.001]})})}
    row = answers.emergence(frames["E3"], frames["E4"]).table.iloc[0]
    assert row["positional: first epoch with kappa ≥ 0.5"] == "0.5"
    assert row["functional: first k with no loss"] == "2"
    assert row["kappa after epoch 1"].startswith("0.810 [")


def test_the_report_page_is_valid_restructured_text():
    from docutils.core import publish_parts

    e4 = summary.freeze({"freeze": freeze_rows({1: [-0.03, -0.02, -0.04]})})
    trained = runs({"kept": [0.97, 0.96, 0.98]})
    frames = {"E1": summary.reinit({"runs": trained, "reinit": trained.assign(variant="reinit")}),
              "E2": summary.prune({"prune": pd.DataFrame(prune_rows("a", "magnitude_global", {0.0: [0.9] * 3,
                                                                                            0.5: [0.8] * 3}))}),
              "E3": summary.emergence({"emergence": pd.DataFrame(columns=["algorithm", "density", "epoch", "layer",
                                                                          *summary.E3_MEASURES])}),
              "E4": e4}
    html = publish_parts(answers.rst(answers.answer(frames)), writer="html",
                         settings_overrides={"halt_level": 2, "report_level": 5})["html_body"]
    assert "<table" in html and "Does the structure alone carry the accuracy?" in html and "``" not in html


def test_readme_states_the_rules_the_code_applies():
    from .conftest import REPO

    readme = (REPO / "README.md").read_text()
    block = readme[readme.index("### The four answers"):readme.index("## Results of the default study")]
    assert f"{100 * answers.MARGIN:g} point" in block and f"at least {answers.KAPPA:g} over its whole" in block
    *first, last = [f"{e:g}" for e in answers.EPOCHS]
    assert f"after {', '.join(first)} and {last} epochs" in block  # the snapshots the positional answer reads
    assert f"-{100 * answers.MARGIN:g} point" in answers.RULE


def test_the_html_summary_holds_every_section_in_order_and_says_when_one_is_empty():
    from .conftest import REPO

    found = summary.summarise(REPO / "docs/default-study/tables")
    found["E5"] = found["E5"].iloc[0:0]  # a section with no rows
    page = summary.html(found)
    assert page.startswith("<html><head><meta charset='utf-8'><title>Summary</title></head><body>")
    assert page.endswith("</body></html>\n") and f"<p>{summary.LEGEND}</p>" in page
    heads = [page.index(f"<h3>{summary.SECTIONS[key][0]}</h3>") for key in found]
    assert heads == sorted(heads) and len(found) == len(summary.SECTIONS)
    e5 = page[heads[list(found).index("E5")]:]
    assert e5.split("</h3>", 1)[1].startswith("<p>(none)</p>")
    e1 = page[heads[list(found).index("E1")]:heads[list(found).index("E2")]]
    cells = [c for c in summary._formatted(found["E1"]).to_numpy().ravel() if "(n=" in str(c)]  # the measured
    assert "<table" in e1 and cells and all(f"<td>{c}</td>" in e1 for c in cells)
