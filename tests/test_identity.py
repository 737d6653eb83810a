"""Code identity from the import graph: every job's identity holds every module its process imports, and an edit
of any module reruns exactly the jobs whose identity holds it."""
import json
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path

from sparsenet import provenance
from sparsenet.config import RunConfig

from .conftest import snakemake
from .test_workflow import GROUP_RULE

COMMAND_OF_RULE = {"tables": "tables", "similarity": "similarity", "figures": "figures", "summary": "summary"}
GROUP_COMMAND = {"train": "train", "retrain": "retrain", "analyse": "analyse", "imp_round": "imp-round",
                 "imp_last_round": "imp-round"}


def command_of(rule: str) -> str | None:
    """The command a rule's jobs run; the groups' rules are train_<label>_<i>, retrain_<label>_<i>,
    analyse_<label>_<i>, imp_round_<i> and imp_last_round_<i> (sparsenet.plan)."""
    group = GROUP_RULE.fullmatch(rule)
    return GROUP_COMMAND[group[1] or group[2]] if group else COMMAND_OF_RULE.get(rule)


def arg(argv, flag):
    return argv[argv.index(flag) + 1] if flag in argv else None


def jobs(study) -> list[dict]:
    """The tiny study's jobs as their processes ran: command, --out, the run it reads, the modules imported."""
    repo, work = study
    out = []
    for path in sorted((repo.parent / "trace").glob("*.json")):
        t = json.loads(path.read_text())
        argv = t["argv"]
        run = arg(argv, "--run") or {"train": arg(argv, "--out"), "imp-round": arg(argv, "--out"),
                                     "analyse": arg(argv, "--runs")}.get(argv[0])  # their settings' run
        cfg = RunConfig.from_nested(json.loads((work / run / "run.json").read_text())["config"]) if run else None
        # a group's --out names its folders by a placeholder ('r{round}/s{seed}'): the folder above them; a
        # retraining writes under its run's reinit/ ('{run}/reinit/{variant}'), an analysis into its runs' folders
        folder = f"{run}/reinit" if argv[0] == "retrain" else (arg(argv, "--out") or run).split("/{")[0].rstrip("/")
        out.append({"command": argv[0], "out": folder, "cfg": cfg,
                    "modules": set(t["modules"])})
    return out


def identity_modules(job, package_dir) -> set[str]:
    cfg = job["cfg"]
    return provenance.command_modules(job["command"], package_dir) | (
        provenance.settings_modules(cfg, package_dir) if cfg else set())


def missing_modules(study) -> dict[tuple[str, str], set[str]]:
    """(command, out) -> the package's modules the job imported that its identity leaves out."""
    package_dir = study[0] / "sparsenet"
    return {(j["command"], j["out"]): gap for j in jobs(study)
            if (gap := j["modules"] - identity_modules(j, package_dir))}


def test_every_job_kind_was_traced(study):
    assert {j["command"] for j in jobs(study)} == {*GROUP_COMMAND.values(), *COMMAND_OF_RULE.values()}


def test_every_module_a_job_imports_is_in_its_identity(study):
    assert missing_modules(study) == {}


def test_a_module_left_out_of_the_import_graph_is_found_missing(study, monkeypatch):
    """Remove one import edge from what the code sees (not from a list): the check names the module."""
    package_dir = study[0] / "sparsenet"
    graph = provenance.import_graph(package_dir)
    cut = {m: {f: (mods - {"sparsenet.sparse"}) for f, mods in fs.items()} for m, fs in graph.items()}
    monkeypatch.setattr(provenance, "import_graph", lambda package_dir=None: cut)
    missing = missing_modules(study)
    assert missing and all(gap == {"sparsenet.sparse"} for gap in missing.values())
    assert {c for c, _ in missing} >= {"train", "imp-round", "retrain"}


def rerun_by_params(repo, work, config) -> set[tuple[str, str]]:
    """(command, output) of each output file whose job's parameters changed (`--summary` judges each job by its
    own parameters; a dry run would name only the first reason, an updated input, for the jobs downstream)."""
    text = snakemake(work, "--summary", "--nolock", "--configfile", str(config), repo=repo).stdout
    rows = [line.split("\t") for line in text.splitlines()[1:] if line.count("\t") >= 5]
    return {(command_of(r[2]), r[0]) for r in rows if r[4] == "params changed" and command_of(r[2])}


@contextmanager
def edited(source: Path):
    """Append a comment to `source` for the duration of the context."""
    original = source.read_text()
    source.write_text(original + "\n# an edit\n")
    try:
        yield
    finally:
        source.write_text(original)


def test_editing_any_module_changes_exactly_the_identities_that_hold_it(study):
    repo, _ = study
    package_dir = repo / "sparsenet"
    traced = jobs(study)
    before = [provenance.identity(j["command"], j["cfg"], package_dir) for j in traced]
    for module in sorted(provenance.import_graph(package_dir)):
        with edited(provenance._module_file(module, package_dir)):
            after = [provenance.identity(j["command"], j["cfg"], package_dir) for j in traced]
        changed = {j["out"] for j, b, a in zip(traced, before, after) if a != b}
        assert changed == {j["out"] for j in traced if module in identity_modules(j, package_dir)}, module


def test_editing_a_module_reruns_exactly_the_jobs_whose_identity_holds_it(study, tmp_path):
    """Snakemake's view, for one module of each distinct set of jobs (the test above covers every module)."""
    repo, work = study
    traced = jobs(study)
    by_jobs: dict[frozenset, str] = {}
    package_dir = repo / "sparsenet"
    for module in sorted(provenance.import_graph(package_dir)):
        holders = frozenset((j["command"], j["out"]) for j in traced if module in identity_modules(j, package_dir))
        by_jobs.setdefault(holders, module)
    copy = tmp_path / "repo"  # a copy of the code, edited and planned against the same finished study
    shutil.copytree(repo, copy, ignore=shutil.ignore_patterns("__pycache__", ".snakemake"))

    def check(module: str) -> set[tuple[str, str]]:
        with edited(provenance._module_file(module, copy / "sparsenet")):
            rerun = rerun_by_params(copy, work, copy / "tests/config/tiny.yaml")
        return {(j["command"], j["out"]) for j in traced
                if any(c == j["command"] and (o == j["out"] or o.startswith(j["out"] + "/")) for c, o in rerun)}

    got = [check(module) for module in by_jobs.values()]
    wrong = {m: (sorted(e - g), sorted(g - e)) for (e, m), g in zip(by_jobs.items(), got) if e != g}
    assert not wrong, f"module -> (jobs not rerun, jobs rerun without importing it): {wrong}"
    assert frozenset() in by_jobs and len(by_jobs) > 5  # modules no job imports, and many distinct sets


def test_a_users_own_model_module_is_part_of_its_runs_identity(tmp_path, monkeypatch):
    from sparsenet import models

    pkg = tmp_path / "own_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "nets.py").write_text("from torch import nn\n\ndef mlp(input_shape, num_classes):\n"
                                 "    return nn.Sequential(nn.Flatten(), nn.Linear(784, num_classes))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for registry in ("MODELS", "OUTPUT_LAYER"):  # the model registers itself when first resolved
        monkeypatch.setattr(models, registry, dict(getattr(models, registry)))
    try:
        cfg = RunConfig.from_flat({"model": "own_pkg.nets:mlp"})
        before = provenance.identity("train", cfg)
        assert before == provenance.identity("train", cfg)
        (pkg / "nets.py").write_text((pkg / "nets.py").read_text() + "# an edit\n")
        assert provenance.identity("train", cfg) != before
    finally:
        for name in ("own_pkg", "own_pkg.nets"):
            sys.modules.pop(name, None)


def test_every_file_of_the_package_is_in_the_identity_or_left_out_by_name():
    """Identities hash the package's modules; any other file it ships must be named, with a reason, as left out."""
    package_dir = provenance.PACKAGE_DIR
    others = [f.relative_to(package_dir.parent) for f in package_dir.rglob("*")
              if f.is_file() and f.suffix not in (".py", ".pyc")]
    assert others, "the package ships its presets"
    unnamed = [f for f in others if not any(f.match(pattern) for pattern in provenance.NOT_IN_IDENTITY)]
    assert unnamed == [], f"add these to the identity or to provenance.NOT_IN_IDENTITY with a reason: {unnamed}"
    assert all(reason for reason in provenance.NOT_IN_IDENTITY.values())


def test_a_users_own_algorithm_brings_the_package_modules_it_builds_on_into_the_identity():
    from sparsenet.config import RunConfig

    cfg = RunConfig.from_flat({"algorithm": "tests.custom_algorithm:Redraw", "density": 0.5})
    own = provenance.settings_modules(cfg)
    assert {"sparsenet.algorithms._base", "sparsenet.masks"} <= own  # what tests/custom_algorithm.py imports
