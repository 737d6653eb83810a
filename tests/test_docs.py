"""Numbers published in README come from code over committed tables: a number typed by hand fails here."""
import importlib.util
import re

import pandas as pd
import pytest

from .conftest import REPO

README = REPO / "README.md"
ACCURACY_ROWS = REPO / "docs" / "tables" / "mnist_accuracy.csv"
FUSED_ROWS = REPO / "docs" / "tables" / "fused_speed.csv"
MUTATION_ROWS = REPO / "docs" / "tables" / "mutation.csv"
DNW_TOPK_ROWS = REPO / "docs" / "tables" / "dnw_topk.csv"


def benchmark(name: str):
    """The module of benchmarks/<name>.py."""
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def accuracy_module():
    return benchmark("mnist_accuracy")


def section(text: str, heading: str) -> str:
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return text[start:end if end > 0 else None]


NUMBER = re.compile(r"(?<![\w.])(\d+\.\d+)(?:%| pp)")  # a result: percent or points, with decimals


def hand_typed(text: str, generated: str, cited: set[str]) -> set[str]:
    """The percentages of `text` that are neither in the generated text nor cited from a source."""
    return set(NUMBER.findall(text)) - set(NUMBER.findall(generated)) - cited


def generated() -> str:
    """README's accuracy tables as the benchmark renders them from the committed rows."""
    module, rows = accuracy_module(), pd.read_csv(ACCURACY_ROWS)
    return module.markdown(rows) + "\n" + module.differences(rows)


def test_readme_accuracy_tables_are_rendered_from_their_committed_rows():
    module, rows, readme = accuracy_module(), pd.read_csv(ACCURACY_ROWS), README.read_text()
    # regenerate: python benchmarks/mnist_accuracy.py --markdown docs/tables/mnist_accuracy.csv
    assert module.markdown(rows) in readme and module.differences(rows) in readme


def test_every_number_of_the_accuracy_section_is_generated_or_cited():
    cited = {f"{v:g}" for v in accuracy_module().PUBLISHED.values()}
    assert hand_typed(section(README.read_text(), "## Accuracy at full length"), generated(), cited) == set()


def test_the_number_check_fails_on_a_number_edited_by_hand():
    table = generated()
    first = NUMBER.findall(table.split("\n")[2])[0]  # the first row's mean accuracy
    typed = next(v for k in range(1, 100) if (v := f"{float(first) + k / 100:.2f}") not in NUMBER.findall(table))
    assert hand_typed(table.replace(first, typed, 1), table, set()) == {typed}


def test_fidelity_row_on_rigls_layers_quotes_the_counts_the_code_gives():
    from sparsenet.masks import layer_counts

    shapes = {"fc1.weight": (300, 784), "fc2.weight": (100, 300), "fc3.weight": (10, 100)}
    counts = layer_counts(shapes, 0.05, "uniform", ["fc3.weight"], [("fc2.weight", 0.9)])
    sizes = {n: a * b for n, (a, b) in shapes.items()}
    ours = [100 * counts[n] / sizes[n] for n in ("fc1.weight", "fc2.weight")] + [100 * sum(counts.values()) / 266200]
    script = sizes["fc1.weight"] * (1 - 0.95) + sizes["fc2.weight"] * (1 - 0.9 * 0.95)  # the flag's s = 0.95
    row = next(line for line in README.read_text().splitlines() if line.startswith("| layers of rigl, set, gmp"))
    for value in [*ours, 100 * script / (sizes["fc1.weight"] + sizes["fc2.weight"])]:
        assert f"{value:.2f}%" in row, value


RATIO = re.compile(r"(?<![\w.])(\d+\.\d+)x")


def test_readme_fused_speed_table_is_rendered_from_its_committed_rows():
    # regenerate: python benchmarks/fused_speed.py --markdown docs/tables/fused_speed.csv
    table = benchmark("fused_speed").markdown(pd.read_csv(FUSED_ROWS))
    fused = section(README.read_text(), "### Fused runs").split("\n### ")[0]
    assert table in fused
    assert set(RATIO.findall(fused)) - set(RATIO.findall(table)) == set()  # no speed-up typed by hand


def test_readme_dnw_topk_table_is_rendered_from_its_committed_rows():
    # regenerate: python benchmarks/dnw_topk.py --markdown docs/tables/dnw_topk.csv
    table = benchmark("dnw_topk").markdown(pd.read_csv(DNW_TOPK_ROWS))
    part = section(README.read_text(), "### DNW's top-k on the CPU")
    assert table in part
    assert set(RATIO.findall(part)) - set(RATIO.findall(table)) == set()  # no speed-up typed by hand


def test_readme_mutation_table_is_rendered_from_its_committed_rows():
    # regenerate: python benchmarks/mutation.py --markdown docs/tables/mutation.csv
    table = benchmark("mutation").markdown(pd.read_csv(MUTATION_ROWS))
    testing = section(README.read_text(), "## Testing")
    assert table in testing
    assert hand_typed(testing, table, set()) == set()  # no score typed by hand


def test_mutation_scores_count_each_modules_verdicts_and_an_unfinished_modules_unrun_mutants_as_undetected(
        tmp_path, capsys):
    import json

    def meta(path, codes):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"exit_code_by_key": {f"m{i}": c for i, c in enumerate(codes)}}))

    # mutmut's exit codes: 1 killed, 36 timeout, 0 survived, 33 no tests, None not checked yet
    meta(tmp_path / "sparsenet" / "prune.py.meta", [1, 1, 1, 36, 0, 33, 0, 1])
    meta(tmp_path / "sparsenet" / "algorithms" / "dnw.py.meta", [1, 0])
    meta(tmp_path / "sparsenet" / "wiring.py.meta", [1, None, 0, None])  # a run stopped early
    meta(tmp_path / "sparsenet" / "summary.py.meta", [None, None])  # a module the run left out
    rows = benchmark("mutation").count(tmp_path).set_index("module")
    assert "sparsenet.summary" not in rows.index
    assert "sparsenet.wiring: 2 of 4 mutants not run, counted as undetected" in capsys.readouterr().err
    assert rows.loc["sparsenet.prune"].to_dict() == {"mutants": 8, "killed": 4, "timeout": 1, "survived": 2,
                                                     "no_tests": 1, "not_run": 0, "score": 5 / 8}
    assert rows.loc["sparsenet.wiring"].to_dict() == {"mutants": 4, "killed": 1, "timeout": 0, "survived": 1,
                                                      "no_tests": 0, "not_run": 2, "score": 1 / 4}
    assert rows.loc["sparsenet.algorithms.dnw", "score"] == 0.5
    table = benchmark("mutation").markdown(rows.reset_index())
    assert "| `sparsenet.prune` | 8 | 4 | 1 | 2 | 1 | 0 | 62.5% | - |" in table
    assert table.endswith("| all | 14 | 6 | 1 | 4 | 1 | 2 | 50.0% | |")
    published = pd.DataFrame([{"module": m, "mutants": 4, "killed": 4, "timeout": 0, "survived": 0, "no_tests": 0,
                               "not_run": 0, "score": 1.0, "commit": "aaaaaaa"}
                              for m in ("sparsenet.prune", "sparsenet.summary")])
    merged = benchmark("mutation").merge(published, rows.reset_index(), "bbbbbbb").set_index("module")
    # a module not measured again keeps its row
    assert merged["commit"].to_dict() == {"sparsenet.algorithms.dnw": "bbbbbbb", "sparsenet.prune": "bbbbbbb",
                                          "sparsenet.summary": "aaaaaaa", "sparsenet.wiring": "bbbbbbb"}
    assert merged.loc["sparsenet.prune", "mutants"] == 8


DOCS = REPO / "docs"
DECIMAL = re.compile(r"(?<![\w.])\d+\.\d+(?![.\d])")  # a measured value, its sign aside (not a version, 2.14.1)
# each published study: a folder of docs/ with its committed tables/ and the summary generated from them
STUDIES = ("default-study", "results-mnist", "results-mnist-matched", "results-fashion-mnist",
           "results-fashion-mnist-matched")
# each text that quotes studies, and the studies whose summaries may give its numbers
QUOTING = {"README, the default study": (lambda: section(README.read_text(), "## Results of the default study"),
                                         ("default-study",)),
           "README, the full-length studies": (lambda: section(README.read_text(), "## The four questions at"),
                                               ("results-mnist", "results-mnist-matched", "results-fashion-mnist",
                                                "results-fashion-mnist-matched")),
           "docs/results-mnist.md": (lambda: (DOCS / "results-mnist.md").read_text(),
                                     ("results-mnist", "results-mnist-matched")),
           # it compares with the MNIST study in a few places
           "docs/results-fashion-mnist.md": (lambda: (DOCS / "results-fashion-mnist.md").read_text(),
                                             ("results-fashion-mnist", "results-fashion-mnist-matched", "results-mnist",
                                              "results-mnist-matched"))}


def summary_numbers(studies) -> set[str]:
    return {n for study in studies for n in DECIMAL.findall((DOCS / study / "summary.md").read_text())}


@pytest.mark.parametrize("study", STUDIES)
def test_a_published_summary_is_generated_from_its_committed_tables(study):
    from sparsenet import answers, summary

    # regenerate: sparsenet summary --tables docs/<study>/tables --out docs/<study>/summary.md
    generated_text = answers.document(summary.summarise(DOCS / study / "tables"))
    assert (DOCS / study / "summary.md").read_text() == generated_text


@pytest.mark.parametrize("text", QUOTING)
def test_every_number_a_text_gives_of_a_study_is_in_its_summary(text):
    read, studies = QUOTING[text]
    typed = set(DECIMAL.findall(read())) - summary_numbers(studies)
    assert typed == set(), f"numbers in {text} that the summaries of {studies} do not give: {typed}"


def test_the_study_number_check_fails_on_a_number_edited_by_hand():
    text = section(README.read_text(), "## Results of the default study")
    numbers = summary_numbers(["default-study"])
    first = DECIMAL.findall(text.split("What they say")[1])[0]
    edited = next(v for k in range(1, 100) if (v := f"{float(first) + k / 100:.2f}") not in numbers)
    assert set(DECIMAL.findall(text.replace(first, edited, 1))) - numbers == {edited}


@pytest.mark.parametrize("folder", ["figures", *STUDIES[1:]])
def test_the_published_figures_are_the_studys_figures(folder):
    from sparsenet.figures import FIGURES

    assert sorted(p.stem for p in (DOCS / folder).glob("*.png")) == sorted(FIGURES)
