"""The study's four questions answered from its summary (sparsenet.summary), each by a rule fixed in advance.

Every answer names the measure it rests on. Each number is a mean over seeds with its 95% t-interval and n, and
each difference is paired by seed. A change in test accuracy is judged against a margin of MARGIN (one point):
- "no loss" when its whole interval lies above -MARGIN (a non-inferiority reading);
- "loss" when its whole interval lies below -MARGIN;
- "undecided" otherwise: the seeds cannot tell, as always with n = 1.

1. Does the structure alone carry the accuracy? E1: the mask kept, the weights reset from another seed (`reinit`)
   and retrained with the run's recipe, against the trained run. Its control is the mask shuffled within each
   layer (`shuffle`): what the layer densities alone carry.
2. How robust is the structure to further pruning? E2: the accuracy lost when a further half of the kept weights
   is removed by global magnitude, without retraining. Its control is removal at random.
3. How early does the structure emerge? Two readings, kept apart:
   - positional (E3): the first snapshot whose chance-corrected agreement with the final mask (Cohen's kappa) is
     at least KAPPA over its whole interval, more than half-way from chance to the final mask;
   - functional (E4): the first k whose mask, frozen after k epochs, trains to "no loss" against the run never
     frozen.
4. Can a dynamic algorithm freeze its mask after k epochs, and then need no dense gradients? E4 at that first k:
   its gap, its weight-gradient work (modelled: 1/E + d(1 - 1/E) of the run never frozen) and its training time
   (measured), both relative to the run never frozen.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd
from tabulate import tabulate

from sparsenet import summary
from sparsenet.summary import EPOCHS, LOST, cell

MARGIN = 0.01
KAPPA = 0.5


def judge(n: int, low: float, high: float) -> str:
    """The reading of a change in accuracy (a paired gap) with its interval, against MARGIN."""
    if n < 2 or math.isnan(low):
        return "undecided"
    return "no loss" if low >= -MARGIN else "loss" if high < -MARGIN else "undecided"


@dataclass(frozen=True)
class Answer:
    question: str
    measure: str
    finding: str
    table: pd.DataFrame  # formatted cells, one row per algorithm and density


def _value(row, column: str, percent: bool = False) -> str:
    return cell(*(row[f"{column}_{part}"] for part in ("mean", "low", "high", "n")), percent=percent)


def _counts(verdicts: list[str]) -> str:
    return ", ".join(f"{verdicts.count(v)} {v}" for v in ("no loss", "loss", "undecided") if v in verdicts)


def _verdict(row, column: str, lost: bool = False) -> str:
    """judge() of a column's interval; a loss of points (`lost`) is judged as the negative change it is."""
    n, low, high = row[f"{column}_n"], row[f"{column}_low"], row[f"{column}_high"]
    return judge(n, -high, -low) if lost else judge(n, low, high)


def _against_control(cells: list, column: str, lost: bool, headers: tuple[str, str], what: str,
                     control_what: str) -> tuple[pd.DataFrame, str]:
    """cells: (algorithm, density, measured row, control row or None) -> (table, finding): each cell's verdict on
    `column`, beside its control's value, and how many cells got each verdict."""
    rows, verdicts, control = [], [], []
    for algorithm, density, measured, ctrl in cells:
        verdicts.append(_verdict(measured, column, lost))
        if ctrl is not None:
            control.append(_verdict(ctrl, column, lost))
        rows.append({"algorithm": algorithm, "density": density, headers[0]: _value(measured, column, True),
                     "verdict": verdicts[-1], headers[1]: "" if ctrl is None else _value(ctrl, column, True)})
    finding = f"{what}: {_counts(verdicts)} of {len(verdicts)} algorithm and density pairs."
    return pd.DataFrame(rows), finding + (f" {control_what} (control): {_counts(control)}." if control else "")


def _row(frame: pd.DataFrame, key: tuple):
    return frame.loc[key] if key in frame.index else None


def structure_alone(e1: pd.DataFrame) -> Answer:
    variants = e1.set_index(["algorithm", "density", "variant"])
    cells = [(a, d, _row(variants, (a, d, "reinit")), _row(variants, (a, d, "shuffle")))
             for a, d in sorted(set(zip(e1["algorithm"], e1["density"]))) if (a, d, "reinit") in variants.index]
    table, finding = _against_control(cells, "gap", False, ("reinit − trained (pp)", "shuffle − trained (pp)"),
                                      "Retrained from new weights, the mask alone",
                                      "The mask shuffled within each layer")
    return Answer("Does the structure alone carry the accuracy?",
                  "E1, test accuracy: the mask kept, the weights reset from another seed (`reinit`) and retrained, "
                  "minus the trained run of the same seed. Control: the mask shuffled within each layer.",
                  finding if cells else "Not measured: the study has no `reinit` variant.", table)


def robustness(e2: pd.DataFrame) -> Answer:
    whole = e2[e2["layer"] == "all"].set_index(["algorithm", "density", "method"])
    cells = [(a, d, whole.loc[(a, d, m)], _row(whole, (a, d, "random"))) for a, d, m in whole.index
             if m == "magnitude_global" and whole.loc[(a, d, m), f"{LOST}_n"] > 0]
    table, finding = _against_control(cells, LOST, True, ("lost, by magnitude (pp)", "lost, at random (pp)"),
                                      "A further half removed by global magnitude", "Removed at random")
    return Answer("How robust is the structure to further pruning?",
                  "E2, test accuracy lost when a further half (q = 0.5) of the kept weights is removed by global "
                  "magnitude, without retraining, against the same run unpruned. Control: removal at random.",
                  finding if cells else "Not measured: the study's sweep has no global magnitude pruning from "
                  "q = 0 to 0.5.", table)


def _first_frozen_without_loss(frozen: pd.DataFrame):
    """The row of the first k (in epochs) whose gap is judged "no loss", or None."""
    for _, row in frozen.sort_values("epochs").iterrows():
        if _verdict(row, "gap") == "no loss":
            return row
    return None


def _frozen(e4: pd.DataFrame) -> pd.DataFrame:
    """E4's frozen rows (the run never frozen left out), with k as a number."""
    frozen = e4[e4["k"] != e4["algorithm"]].copy()
    frozen["epochs"] = frozen["k"].astype(int)
    return frozen


def emergence(e3: pd.DataFrame, e4: pd.DataFrame) -> Answer:
    frozen, rows = _frozen(e4), []
    pairs = sorted(set(zip(e3["algorithm"], e3["density"])) | set(zip(frozen["algorithm"], frozen["density"])))
    for algorithm, density in pairs:
        snapshots = e3[(e3["algorithm"] == algorithm) & (e3["density"] == density)].sort_values("epoch")
        at_one = snapshots[snapshots["epoch"] == 1.0]
        agreed = snapshots[snapshots["kappa_final_low"] >= KAPPA]
        first = _first_frozen_without_loss(frozen[(frozen["algorithm"] == algorithm)
                                                  & (frozen["density"] == density)])
        rows.append({"algorithm": algorithm, "density": density,
                     "kappa after epoch 1": _value(at_one.iloc[0], "kappa_final") if len(at_one) else "",
                     f"positional: first epoch with kappa ≥ {KAPPA:g}":
                         f"{agreed['epoch'].iloc[0]:g}" if len(agreed) else "none" if len(snapshots) else "",
                     "functional: first k with no loss": "" if not len(frozen[frozen["algorithm"] == algorithm])
                     else "none" if first is None else str(first["epochs"])})
    return Answer("How early does the structure emerge?",
                  f"Positional (E3): Cohen's kappa of each snapshot against the final mask, 0 for chance, 1 for "
                  f"equal; the first of the snapshots after {', '.join(f'{e:g}' for e in EPOCHS)} epochs whose "
                  f"whole interval is at least {KAPPA:g}. Functional (E4): the first freeze epoch k whose frozen "
                  "mask trains to no loss against the run never frozen.",
                  "The two readings answer different questions: where the mask is (positional) and whether the "
                  "mask of that epoch is as good (functional)." if rows else "Not measured: no snapshots and no "
                  "freeze sweep.", pd.DataFrame(rows))


def freezing(e4: pd.DataFrame) -> Answer:
    frozen, rows, verdicts = _frozen(e4), [], []
    for (algorithm, density), group in frozen.groupby(["algorithm", "density"]):
        first = _first_frozen_without_loss(group)
        row = first if first is not None else group.sort_values("epochs").iloc[-1]
        verdicts.append("no loss" if first is not None else _verdict(row, "gap"))
        rows.append({"algorithm": algorithm, "density": density,
                     "k": str(row["epochs"]) if first is not None else f"none (largest k = {row['epochs']})",
                     "frozen − never frozen (pp)": _value(row, "gap", True), "verdict": verdicts[-1],
                     "weight-gradient work (modelled)": _value(row, "grad_macs_vs_unfrozen"),
                     "training time (measured)": _value(row, "train_s_vs_unfrozen")})
    found = verdicts.count("no loss")
    finding = (f"A freeze epoch with no loss exists for {found} of {len(verdicts)} algorithm and density pairs; the "
               "costs are relative to the run never frozen." if verdicts else "Not measured: no freeze sweep.")
    return Answer("Can a dynamic algorithm freeze its mask after k epochs, and then need no dense gradients?",
                  "E4, test accuracy of the mask frozen after k epochs minus the run never frozen (same seed), at "
                  "the first k with no loss; its weight-gradient work (a model) and training time (a measurement).",
                  finding, pd.DataFrame(rows))


def answer(frames: dict[str, pd.DataFrame]) -> list[Answer]:
    """The four answers from the summary's frames (sparsenet.summary.summarise)."""
    return [structure_alone(frames["E1"]), robustness(frames["E2"]),
            emergence(frames["E3"], frames["E4"]), freezing(frames["E4"])]


RULE = (f"Each number: mean over seeds [95% t-interval] (n seeds); differences paired by seed. A change in test "
        f"accuracy is \"no loss\" when its whole interval lies above -{100 * MARGIN:g} point, \"loss\" when it "
        f"lies below, else \"undecided\".")


def markdown(found: list[Answer]) -> str:
    parts = ["## The four questions", RULE]
    for i, a in enumerate(found, 1):
        parts += [f"### {i}. {a.question}", f"*Measure:* {a.measure}", f"**{a.finding}**"]
        if len(a.table):
            parts.append(a.table.to_markdown(index=False))
    return "\n\n".join(parts) + "\n"


def rst(found: list[Answer]) -> str:
    """The same for the report's first page (docutils), tables in reStructuredText's grid form."""
    def title(text: str, underline: str) -> str:
        return f"{text}\n{underline * len(text)}"

    parts = [title("The four questions", "="), RULE]
    for i, a in enumerate(found, 1):
        parts += [title(f"{i}. {a.question}", "-"), f"*Measure:* {a.measure.replace('`', '``')}",
                  f"**{a.finding.replace('`', '``')}**"]
        if len(a.table):
            parts.append(tabulate(a.table, headers="keys", tablefmt="grid", showindex=False, disable_numparse=True))
    return "\n\n".join(parts) + "\n"


def document(frames: dict[str, pd.DataFrame]) -> str:
    """`sparsenet summary`'s Markdown: the four answers, then every experiment's table."""
    return markdown(answer(frames)) + "\n## Every experiment\n\n" + summary.markdown(frames)
