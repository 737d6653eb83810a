"""The mutation score of each module that decides results: how many of mutmut's mutants the tests kill.

    make mutation                  # mutmut run (the modules and tests: pyproject's [tool.mutmut]), then this
    make mutation MUTANTS='sparsenet.prune.* sparsenet.wiring.*'   # some modules only
    python benchmarks/mutation.py --out docs/tables/mutation.csv   # count mutmut's results in mutants/ (the rows
                                                                   # of modules not measured there are kept)
    python benchmarks/mutation.py --markdown docs/tables/mutation.csv   # README's table

A mutant counts as detected when a test fails (killed) or runs past mutmut's time limit (timeout); "no tests"
means no selected test reaches the mutated function, and counts as undetected. Score = detected / mutants. A run
stopped before it checked every mutant of a module leaves those "not run": they count as undetected too, so the
score is a lower bound; a module none of whose mutants ran (outside MUTANTS) gets no row. Each row names the
commit its module was measured at: modules measured in separate runs keep their own.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

from sparsenet.files import atomic_path

MUTANTS = Path("mutants")
COUNTS = ["mutants", "killed", "timeout", "survived", "no_tests", "not_run"]
COLUMNS = ["module", *COUNTS, "score", "commit"]


def count(mutants: Path = MUTANTS) -> pd.DataFrame:
    """One row per mutated module from mutmut's records (`mutants/**/*.py.meta`)."""
    from mutmut.stats import status_by_exit_code  # the one place that reads mutmut's exit codes

    rows = []
    for meta in sorted(mutants.rglob("*.py.meta")):
        codes = json.loads(meta.read_text())["exit_code_by_key"].values()
        statuses = [status_by_exit_code[c] for c in codes]
        module = ".".join(meta.relative_to(mutants).with_suffix("").with_suffix("").parts)
        if not statuses:
            continue
        tally = {s: statuses.count(s) for s in ("killed", "timeout", "no tests", "not checked")}
        if tally["not checked"] == len(statuses):  # a module outside MUTANTS: not measured in this run
            continue
        if tally["not checked"]:  # a run stopped early
            print(f"{module}: {tally['not checked']} of {len(statuses)} mutants not run, counted as undetected",
                  file=sys.stderr)
        rows.append({"module": module, "mutants": len(statuses), "killed": tally["killed"],
                     "timeout": tally["timeout"], "no_tests": tally["no tests"], "not_run": tally["not checked"],
                     # survived, and the rare suspicious or crashed mutant: none is counted as detected
                     "survived": len(statuses) - sum(tally.values())})
    if not rows:
        sys.exit(f"no mutmut results under {mutants}/; run `make mutation` first")
    frame = pd.DataFrame(rows)
    frame["score"] = score(frame)
    return frame[COLUMNS[:-1]]


def merge(published: pd.DataFrame, measured: pd.DataFrame, commit: str) -> pd.DataFrame:
    """The published rows with those of the modules just `measured` (at `commit`) in their place, by module."""
    kept = published[~published["module"].isin(measured["module"])]
    return pd.concat([kept, measured.assign(commit=commit)]).sort_values("module")[COLUMNS].reset_index(drop=True)


def score(counts):
    """The share of mutants detected (a row's counts, or a frame's columns)."""
    return (counts["killed"] + counts["timeout"]) / counts["mutants"]


def markdown(rows: pd.DataFrame) -> str:
    """README's table: every module's score, then all modules together."""
    total = rows[COUNTS].sum()
    lines = ["| module | mutants | killed | timeout | survived | no test reaches it | not run | score | commit |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for _, r in rows.iterrows():  # the score from the counts: the CSV's is rounded
        lines.append(f"| `{r.module}` | {r.mutants} | {r.killed} | {r.timeout} | {r.survived} | {r.no_tests} "
                     f"| {r.not_run} | {100 * score(r):.1f}% | {r.get('commit', '-')} |")
    lines.append(f"| all | {total['mutants']} | {total['killed']} | {total['timeout']} | {total['survived']} "
                 f"| {total['no_tests']} | {total['not_run']} | {100 * score(total):.1f}% | |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, help="write the counts of mutants/ to this CSV")
    p.add_argument("--markdown", type=Path, help="print README's table from this CSV")
    args = p.parse_args()
    if args.out:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True)
        published = pd.read_csv(args.out) if args.out.exists() else pd.DataFrame(columns=COLUMNS)
        frame = merge(published, count(), head.stdout.strip())
        with atomic_path(args.out) as tmp:
            frame.to_csv(tmp, index=False, float_format="%.4f")
        print(markdown(frame))
    elif args.markdown:
        print(markdown(pd.read_csv(args.markdown)))
    else:
        p.error("give --out or --markdown")


if __name__ == "__main__":
    main()
