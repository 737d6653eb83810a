"""The Snakemake workflow: planning, an end-to-end tiny study, and what reruns after a change."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from sparsenet.algorithms.imp import schedule
from sparsenet.config import expand_preset
from sparsenet.figures import FIGURES
from sparsenet.study import job_counts, load_study
from sparsenet.tables import SCHEMAS

from .conftest import REPO, TINY, snakemake, table

GROUP_RULE = re.compile(r"(train|retrain|analyse)_\w+_\d+|(imp_round|imp_last_round)_\d+")  # a group's rule -> its kind


def planned(workdir, *args, repo=REPO, groups=False) -> dict[str, int]:
    """Jobs per rule of a dry run (empty when there is nothing to do); the rules of training, E1, analysis and imp
    chain groups (train_<label>_<i>, retrain_<label>_<i>, analyse_<label>_<i>, imp_round_<i>, imp_last_round_<i>)
    summed by kind unless `groups`."""
    out = snakemake(workdir, "-n", "--quiet", "rules", *args, repo=repo)
    text = out.stdout + out.stderr
    if "Nothing to be done" in text:
        return {}
    counts: dict[str, int] = {}
    first_table = text[text.index("Job stats:"):text.index("\ntotal")]  # a dry run prints the table twice
    for rule, n in re.findall(r"^(\w+)\s+(\d+)\s*$", first_table, flags=re.M):
        if rule != "total":
            kind = GROUP_RULE.fullmatch(rule)
            rule = rule if groups or not kind else kind[1] or kind[2]
            counts[rule] = counts.get(rule, 0) + int(n)
    return counts


CHANGING = {"snfs", "dnw", "set", "rigl", "gmp"}  # algorithms whose mask changes during a run (E3)


def expected_counts(cfg: dict) -> dict[str, int]:
    """Job counts derived from a study config, independently of the workflow's own planning."""
    models, seeds, densities = len(cfg["models"]), len(cfg["seeds"]), len(cfg["densities"])
    sparse = cfg["algorithms"]
    imp = {**expand_preset(cfg["recipe"]), **expand_preset(cfg.get("settings", {}).get("imp", {}))}
    rate = imp.get("imp_rate", 0.2)
    rounds = len(schedule(cfg["densities"], rate)) if "imp" in sparse else 0
    frozen = [a for a in cfg.get("freeze_algorithms", ["dnw"]) if a in sparse]
    freeze = len(cfg.get("freeze_epochs", [])) * len(frozen)
    per_seed = models * seeds
    sparse_runs = per_seed * densities * len(sparse)
    # training jobs: each model and label's runs in groups of at most runs_per_job (one seed of dense per run)
    per_job = cfg.get("resources", {}).get("runs_per_job", 8)
    # E1: each sparse label's runs in groups of at most runs_per_job retrainings (at least one run), a run's being
    # its variants but the rewind of a run whose mask never changed (that is the run: recorded, not retrained)
    e1 = cfg.get("reinit", {}).get("variants", [])
    trained = {a: len(e1) - ("rewind" in e1 and a not in CHANGING) for a in sparse}
    retrain_jobs = sum(-(-(seeds * densities) // max(1, per_job // max(1, trained[a]))) for a in sparse) if e1 else 0
    labels = 1 + len([a for a in sparse if a != "imp"]) + freeze
    # analysis jobs: every masked label's runs (imp's and the freeze sweep's too) grouped the same way
    masked = len(sparse) + freeze
    counts = {
        "train": models * (-(-seeds // per_job) + (labels - 1) * -(-(seeds * densities) // per_job)),
        "imp_round": models * -(-seeds // per_job) * (rounds - 1), "imp_last_round": models * -(-seeds // per_job),
        "imp_select": per_seed * densities if "imp" in sparse else 0,
        "retrain": models * retrain_jobs, "analyse": models * masked * -(-(seeds * densities) // per_job),
        "tables": 1, "similarity": 1 if sparse_runs else 0, "figures": 1, "summary": 1, "all": 1,
    }
    return {k: v for k, v in counts.items() if v}


@pytest.mark.parametrize(
    "config", ["config.yaml", "config/cifar10.yaml", "config/paper-mnist.yaml", "config/paper-mnist-matched.yaml",
               "config/paper-fashion-mnist.yaml", "config/paper-fashion-mnist-matched.yaml", "config/extended.yaml",
               "tests/config/tiny.yaml"])
def test_dry_run_plans_every_job(tmp_path, config):
    # Planned where config.yaml lies, as from the repository root: a --configfile study must replace it, not
    # be merged into it (the default's imp_rate 0.5 would halve the full-length studies' imp rounds).
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    counts = planned(tmp_path, "--configfile", str(REPO / config))
    assert counts == expected_counts(yaml.safe_load((REPO / config).read_text()))
    # the library's training jobs (sparsenet.study, which `sparsenet plan` prices) are those Snakemake plans
    library = job_counts(load_study(REPO / config))
    assert {rule: counts.get(rule, 0) for rule in library} == dict(library)


@pytest.mark.parametrize("per_job", [1, 3, 100])
def test_runs_per_job_sizes_the_training_groups(tmp_path, per_job):
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    cfg["resources"]["runs_per_job"] = per_job
    (tmp_path / "grouped.yaml").write_text(yaml.safe_dump(cfg))
    assert planned(tmp_path, "--configfile", str(tmp_path / "grouped.yaml")) == expected_counts(cfg)


def test_a_frozen_run_has_its_algorithms_settings_until_its_own_override_them(tmp_path):
    cfg = yaml.safe_load(TINY.read_text())
    cfg.update(freeze_algorithms=["snfs", "dnw"], freeze_epochs=[1])
    cfg["settings"].update(snfs={"prune_rate": 0.3, "distribution": "erk"}, snfs_freeze={"prune_rate": 0.4})
    (tmp_path / "frozen.yaml").write_text(yaml.safe_dump(cfg))
    out = snakemake(tmp_path, "-n", "-p", "--configfile", str(tmp_path / "frozen.yaml"))
    commands = [line for line in out.stdout.splitlines() if "python -m sparsenet train" in line]
    frozen = [c for c in commands if "--algorithm snfs " in c and "--freeze-epoch 1" in c]
    assert len(frozen) == 1 and "--distribution erk" in frozen[0] and "--prune-rate 0.4" in frozen[0]
    assert "--freeze-epoch 1" in frozen[0]


def test_a_preset_recipe_reaches_every_run(tmp_path):
    cfg = yaml.safe_load(TINY.read_text())
    cfg["recipe"] = {"preset": "open_lth_mnist_lenet_300_100", "epochs": 2, "train_subset": 2000}
    cfg["settings"]["snfs"] = {"preset": "sparse_learning_mnist", "epochs": 2, "milestones": []}
    (tmp_path / "preset.yaml").write_text(yaml.safe_dump(cfg))
    out = snakemake(tmp_path, "-n", "-p", "--configfile", str(tmp_path / "preset.yaml"))
    commands = [line for line in out.stdout.splitlines() if "python -m sparsenet" in line]
    snfs = [c for c in commands if "--algorithm snfs" in c]
    others = [c for c in commands if "--algorithm dnw " in c or "imp-round" in c]
    assert snfs and all("--nesterov True" in c and "--batch-size 100" in c for c in snfs)
    assert others and all("--momentum 0.0" in c and "--batch-size 128" in c for c in others)


def test_a_users_own_model_plans_like_a_registered_one(tmp_path):
    cfg = yaml.safe_load(TINY.read_text())
    (tmp_path / "own.yaml").write_text(yaml.safe_dump({**cfg, "models": ["tests.custom_model:two_layer"]}))
    counts = planned(tmp_path, "--configfile", str(tmp_path / "own.yaml"))
    assert counts == planned(tmp_path, "--configfile", str(TINY))
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({**cfg, "models": ["tests.custom_model:nothing"]}))
    out = snakemake(tmp_path, "-n", "--configfile", str(tmp_path / "bad.yaml"), check=False)
    assert out.returncode != 0 and "cannot be imported" in out.stdout + out.stderr


def test_a_users_own_dataset_plans_like_a_built_in_one(tmp_path):
    cfg = yaml.safe_load(TINY.read_text())
    (tmp_path / "own.yaml").write_text(yaml.safe_dump({**cfg, "dataset": "tests.custom_data:stripes"}))
    assert planned(tmp_path, "--configfile", str(tmp_path / "own.yaml")) == planned(tmp_path, "--configfile", str(TINY))
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({**cfg, "dataset": "tests.custom_data:nothing"}))
    out = snakemake(tmp_path, "-n", "--configfile", str(tmp_path / "bad.yaml"), check=False)
    assert out.returncode != 0 and "config.yaml: dataset: dataset 'tests.custom_data:nothing' cannot be imported" in (
        out.stdout + out.stderr)


def test_lint_passes(tmp_path):  # in a work folder of its own: Snakemake writes .snakemake/ there
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    out = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path),
                          "--lint"], cwd=tmp_path, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stdout + out.stderr


BAD_CONFIGS = [  # (change to tests/config/tiny.yaml, what the error must name)
    ({"unknown_key": 1}, "unknown_key"),
    ({"densities": [0.1, 1.5]}, "densities"),
    ({"densities": [0]}, "densities"),
    ({"densities": [-0.1]}, "densities"),
    ({"algorithms": ["imp", "magic"]}, "algorithms: unknown algorithm 'magic'"),
    ({"models": ["resnet9000"]}, "models"),
    ({"dataset": "imagenet"}, "dataset"),
    ({"recipe": {"epochs": 0}}, "epochs: must be >= 1"),
    ({"recipe": {"epochs": "ten"}}, "epochs: expected int"),
    ({"recipe": {"lr": "fast"}}, "lr: expected float"),
    ({"recipe": {"warmup": 1}}, "warmup: unknown key"),
    ({"freeze_epochs": [2]}, "freeze_epoch: must be < epochs=2"),
    ({"freeze_algorithms": ["rigl"]}, "freeze_algorithms: ['rigl'] must be in algorithms"),
    ({"freeze_algorithms": ["imp"]}, "freeze_algorithms: imp cannot freeze its mask"),
    ({"algorithms": ["dense"]}, "algorithms: 'dense' is not a sparse algorithm a study trains"),
    ({"algorithms": ["dnw_freeze"]}, "algorithms: unknown algorithm 'dnw_freeze'"),
    ({"settings": {"imp_freeze": {"lr": 0.1}}}, "settings: imp cannot freeze its mask"),
    ({"algorithms": ["nowhere:Thing"]}, "algorithms: algorithm 'nowhere:Thing' cannot be imported"),
    ({"settings": {"magic": {"lr": 0.1}}}, "settings: unknown algorithm 'magic'"),
    ({"settings": {"rigl": {"drop_fraction": 1.0}}}, "drop_fraction"),
    ({"prune_sweep": {"fractions": [0.5, 1.0]}}, "fractions"),
    ({"prune_sweep": {"fractions": [-0.1]}}, "fractions"),
    ({"seeds": []}, "seeds"),
    ({"seeds": [0, 0]}, "seeds"),
    ({"seeds": ["zero"]}, "seeds"),
    ({"reinit": {"variants": ["rewind", "mirror"]}}, "variants"),
    ({"settings": {"snfs": {"prune_rate": 1.5}}}, "prune_rate"),
    ({"recipe": {"density": 0.3}}, "must not set ['density']"),
    ({"recipe": {"preset": "no_such_recipe"}}, "preset: must be one of"),
    ({"settings": {"snfs": {"preset": "no_such_recipe"}}}, "preset: must be one of"),
    ({"device": "tpu"}, "device"),
]


def bad_config(tmp_path, change: dict) -> Path:
    cfg = yaml.safe_load(TINY.read_text())
    for key, value in change.items():
        cfg[key] = {**cfg[key], **value} if isinstance(value, dict) and key in cfg else value
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(cfg))
    return tmp_path / "bad.yaml"


@pytest.mark.parametrize("change,message", BAD_CONFIGS, ids=[m for _, m in BAD_CONFIGS])
def test_bad_config_is_rejected_naming_the_key(tmp_path, change, message):
    # in this process, as the Snakefile checks a study: the schema (study.load_study), then sparsenet.plan.check
    from sparsenet import plan, study
    from sparsenet.config import ConfigError

    with pytest.raises(ConfigError) as e:
        plan.check(study.load_study(bad_config(tmp_path, change)))
    assert message in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("change,message", [BAD_CONFIGS[1], BAD_CONFIGS[-4]], ids=["schema", "plan"])
def test_the_workflow_rejects_a_bad_config_before_any_job(tmp_path, change, message):
    out = snakemake(tmp_path, "--cores", "1", "--configfile", str(bad_config(tmp_path, change)), check=False)
    assert out.returncode != 0
    assert message in out.stdout + out.stderr
    assert "Select jobs to execute" not in out.stdout + out.stderr
    assert not (tmp_path / "results").exists()


def test_tiny_study_writes_every_table_and_figure(study):
    repo, work = study
    # prune: 3 fractions x (2 magnitude + 2 random draws + one per sparse layer: imp keeps fc3 dense)
    rows = {"runs": 5, "reinit": 3 * 6, "prune": 3 * (4 + 2) + 2 * 3 * (4 + 3), "emergence": 2 * 4 * 4, "freeze": 2,
            "layers": 4 * (3 + 1),
            "similarity": 6 * (1 + 3)}  # 4 sparse runs: 6 pairs, whole mask and 3 layers
    for name, schema in SCHEMAS.items():
        table = pq.read_table(work / "results" / "tables" / f"{name}.parquet")
        assert table.schema.equals(schema), name
        assert table.num_rows == rows[name], name
    runs = pd.read_parquet(work / "results/tables/runs.parquet")
    assert sorted(runs["algorithm"]) == ["dense", "dnw", "dnw_freeze", "imp", "snfs"]
    assert (runs["status"] == "ok").all() and runs["test_acc"].between(0.3, 1).all()
    reinit = pd.read_parquet(work / "results/tables/reinit.parquet")
    copied = reinit[reinit["copy_of_source"]]  # imp's rewind variant is its trained run, not trained again
    assert list(copied["algorithm"]) == ["imp"] and list(copied["variant"]) == ["rewind"]
    assert copied["test_acc"].iloc[0] == runs.loc[runs["algorithm"] == "imp", "test_acc"].iloc[0]
    freeze = pd.read_parquet(work / "results/tables/freeze.parquet").set_index("algorithm")
    assert freeze.loc["dnw", "grad_macs_vs_unfrozen"] == 1 and freeze.loc["dnw_freeze", "grad_macs_vs_unfrozen"] < 0.7
    for name in FIGURES:
        for ext in ("png", "pdf"):
            assert (work / "results" / "figures" / f"{name}.{ext}").stat().st_size > 1000


def test_summary_gives_every_experiment_with_means_over_seeds(study):
    from sparsenet import answers, summary

    repo, work = study
    tables = work / "results" / "tables"
    result = summary.summarise(tables)
    runs = pd.read_parquet(tables / "runs.parquet")
    e0 = result["E0"].set_index(["algorithm", "density"])
    assert sorted(e0.index.get_level_values("algorithm")) == ["dense", "dnw", "imp", "snfs"]
    for (algorithm, density), group in runs[runs["algorithm"] != "dnw_freeze"].groupby(["algorithm", "density"]):
        assert e0.loc[(algorithm, density), "test_acc_mean"] == pytest.approx(group["test_acc"].mean())
        assert e0.loc[(algorithm, density), "test_acc_n"] == len(group)
    reinit, runs_by_key = pd.read_parquet(tables / "reinit.parquet"), runs.set_index(["algorithm", "seed"])
    e1 = result["E1"].set_index(["algorithm", "variant"])
    for row in reinit.itertuples():  # one seed in the tiny study: the gap is the difference itself
        gap = row.test_acc - runs_by_key.loc[(row.algorithm, row.seed), "test_acc"]
        assert e1.loc[(row.algorithm, row.variant), "gap_mean"] == pytest.approx(gap)
    prune = pd.read_parquet(tables / "prune.parquet")
    e2 = result["E2"].set_index(["algorithm", "method"])
    magnitude = prune[(prune["algorithm"] == "snfs") & (prune["method"] == "magnitude_global")].sort_values("q")
    # the tiny study sweeps q in {0, 0.5, 0.9}: q=0.5 is measured, q=0.25 halfway between 0 and 0.5
    snfs = e2.loc[("snfs", "magnitude_global")]
    assert snfs["acc_q0.5_mean"] == pytest.approx(magnitude["test_acc"].iloc[1])
    assert snfs["acc_q0.25_mean"] == pytest.approx(magnitude["test_acc"].iloc[:2].mean())
    e3 = result["E3"]
    assert set(e3["epoch"]) == {0.5, 1.0, 2.0} and (e3["overlap_final_mean"] <= 1).all()
    assert (e3["kappa_final_mean"] <= 1).all() and (e3["hamming_chance_mean"] > 0).all()
    e4 = result["E4"].set_index("k")
    assert e4.loc["dnw", "grad_macs_vs_unfrozen_mean"] == 1 and e4.loc["1", "grad_macs_vs_unfrozen_mean"] < 0.7
    whole = pd.read_parquet(tables / "layers.parquet").query("layer == 'all'").set_index("algorithm")
    e6 = result["E6"].set_index("algorithm")
    assert sorted(e6.index) == ["dnw", "imp", "snfs"]
    for algorithm, row in e6.iterrows():
        assert row["effective_density_mean"] == pytest.approx(whole.loc[algorithm, "effective_kept"]
                                                              / whole.loc[algorithm, "size"])
        assert 0 < row["effective_fraction_mean"] <= 1
    text = (work / "results" / "summary.md").read_text()
    assert text == answers.document(result) and "(n=1)" in text and "±" not in text  # one seed: no spread
    assert (work / "results" / "summary.html").exists()


def test_the_report_opens_on_the_four_answers(study):
    repo, work = study
    snakemake(work, "--configfile", str(repo / "tests/config/tiny.yaml"), "--report", "results/report.html",
              repo=repo)
    page = (work / "results" / "report.html").read_text()
    # the first page is the workflow description: the rst of rule summary, included and rendered to HTML
    assert "The four questions" in page and "Does the structure alone carry the accuracy?" in page
    assert "undecided" in page and "include::" not in page  # one seed decides nothing


def test_finished_study_has_nothing_to_do(study):
    repo, work = study
    assert planned(work, "--configfile", str(repo / "tests/config/tiny.yaml"), repo=repo) == {}


# one E1 job retrains all of the run's variants
SNFS_AND_DOWNSTREAM = {"train": 1, "retrain": 1, "analyse": 1, "tables": 1, "similarity": 1, "figures": 1,
                       "summary": 1, "all": 1}


def test_changing_one_algorithms_setting_plans_only_its_jobs(study):
    repo, work = study
    cfg = yaml.safe_load((repo / "tests/config/tiny.yaml").read_text())
    cfg["settings"]["snfs"] = {"prune_rate": 0.3}
    (work / "changed.yaml").write_text(yaml.safe_dump(cfg))
    assert planned(work, "--configfile", str(work / "changed.yaml"), repo=repo) == SNFS_AND_DOWNSTREAM


def test_editing_an_algorithms_module_plans_its_jobs(study):
    repo, work = study
    module = repo / "sparsenet" / "algorithms" / "snfs.py"
    original = module.read_text()
    module.write_text(original + "\n# an edit\n")
    try:
        assert planned(work, "--configfile", str(repo / "tests/config/tiny.yaml"), repo=repo) == SNFS_AND_DOWNSTREAM
    finally:
        module.write_text(original)


def test_killed_study_completes_on_rerun_with_the_same_tables(study, tmp_path):
    """A copy of the finished study less snfs's runs and the tables after them (so it plans snfs's jobs and those
    downstream), killed with every job it runs once snfs's training is written, then rerun: the same tables."""
    repo, reference = study
    work = tmp_path / "work"
    shutil.copytree(reference, work, symlinks=True)  # with Snakemake's records; copies keep their times
    shutil.rmtree(work / "results" / "tables")
    shutil.rmtree(next((work / "results" / "runs").glob("*/snfs")))
    args = ["--cores", "2", "--configfile", str(repo / "tests/config/tiny.yaml")]
    assert planned(work, *args[2:], repo=repo) == SNFS_AND_DOWNSTREAM
    proc = subprocess.Popen([sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), "-d", str(work), *args],
                            cwd=work, env={**os.environ, "PYTHONPATH": str(repo)}, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not list(work.glob("results/runs/*/snfs/*/*/run.json")) and time.time() < deadline:
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole study: snakemake and the jobs it runs
    proc.wait()
    assert not (work / "results" / "tables").exists()
    snakemake(work, "--unlock", *args, repo=repo)
    snakemake(work, *args, repo=repo)  # profiles/default reruns what the kill cut off
    for name in SCHEMAS:
        pd.testing.assert_frame_equal(table(work, name), table(reference, name))


def test_extended_study_runs_every_algorithm_through_every_experiment(tmp_path):
    """config/extended.yaml end to end at tiny sizes: its algorithms, freezes, experiments and tables as shipped.
    Beside them, a user's own algorithm (tests/custom_algorithm.py), named by import path with no other file
    changed, is trained, retrained, pruned further and followed over time (its mask changes) like a built-in one."""
    own = "tests.custom_algorithm:Redraw"
    cfg = yaml.safe_load((REPO / "config/extended.yaml").read_text())
    tiny = {"epochs": 2, "milestones": [1], "train_subset": 2000, "snapshot_fractions": [0.5]}
    cfg["recipe"] = {**cfg["recipe"], **tiny}
    cfg["settings"]["imp"] = {**cfg["settings"]["imp"], **tiny, "imp_rate": 0.7}
    for algorithm in ("rigl", "set"):  # 40 steps in all: several mask updates
        cfg["settings"][algorithm] = {"update_interval": 5}
    cfg["settings"]["gmp"] = {"gmp_interval": 5}
    cfg["settings"][own] = {"redraw_every": 1}
    cfg.update(seeds=[0], freeze_epochs=[1], device="cpu", reinit={"variants": ["rewind", "reinit"]},
               prune_sweep={"fractions": [0.0, 0.5], "methods": ["magnitude_global", "random"], "draws": 1})
    builtin = cfg["algorithms"]
    cfg["algorithms"] = [*builtin, own]
    (tmp_path / "extended.yaml").write_text(yaml.safe_dump(cfg))
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    snakemake(tmp_path, "--cores", "2", "--configfile", str(tmp_path / "extended.yaml"))
    tables = tmp_path / "results" / "tables"
    runs = pd.read_parquet(tables / "runs.parquet")
    frozen = [f"{a}_freeze" for a in cfg["freeze_algorithms"]]
    assert sorted(runs["algorithm"]) == sorted(["dense", *builtin, own, *frozen])
    assert (runs["status"] == "ok").all()
    assert (runs.loc[~runs["algorithm"].isin(["dense", own]), "final_density"] - 0.05).abs().max() < 1e-4
    reinit = pd.read_parquet(tables / "reinit.parquet")
    assert set(reinit["algorithm"]) == {*builtin, own} and set(reinit["variant"]) == {"rewind", "reinit"}
    assert set(pd.read_parquet(tables / "prune.parquet")["algorithm"]) == {*builtin, own}
    assert set(pd.read_parquet(tables / "emergence.parquet")["algorithm"]) == CHANGING | {own}  # its class says
    # its mask changes
    record = json.loads(next((tmp_path / "results/runs").glob(f"*/{own}/*/*/run.json")).read_text())
    assert record["config"]["algorithm"]["redraw_every"] == 1  # its own setting, from the study's settings
    freeze = pd.read_parquet(tables / "freeze.parquet").set_index("algorithm")
    assert sorted(freeze.index) == sorted([*cfg["freeze_algorithms"], *frozen])
    assert freeze.loc[cfg["freeze_algorithms"], "epoch_s_after_freeze"].isna().all()  # never frozen
    assert freeze.loc[frozen, ["epoch_s_before_freeze", "epoch_s_after_freeze"]].notna().all().all()
    for algorithm in cfg["freeze_algorithms"]:
        assert freeze.loc[algorithm, "grad_macs_vs_unfrozen"] == 1
        # after the freeze no step needs a dense gradient: set never needs one, the others at every or some steps
        assert freeze.loc[f"{algorithm}_freeze", "grad_macs_vs_unfrozen"] <= (1 if algorithm == "set" else 0.7)
    e4 = summary_of(tmp_path)["E4"]
    assert sorted(set(e4["algorithm"])) == sorted(cfg["freeze_algorithms"])
    for name in FIGURES:
        assert (tmp_path / "results" / "figures" / f"{name}.png").stat().st_size > 1000


def summary_of(work):
    from sparsenet import summary

    return summary.summarise(work / "results" / "tables")


def test_summary_statistics_are_t_intervals_over_seeds_and_paired_gaps():
    from scipy import stats

    from sparsenet import summary

    acc = [0.90, 0.92, 0.97]
    frame = pd.DataFrame({"algorithm": ["a"] * 3 + ["b"], "seed": [0, 1, 2, 0], "test_acc": acc + [0.5]})
    out = summary._stats(frame, ["algorithm"], ["test_acc"]).set_index("algorithm")
    low, high = stats.t.interval(0.95, 2, loc=sum(acc) / 3, scale=stats.sem(acc))
    assert out.loc["a", ["test_acc_mean", "test_acc_low", "test_acc_high", "test_acc_n"]].tolist() == \
        pytest.approx([sum(acc) / 3, low, high, 3])
    cells = summary._formatted(out.reset_index())["test_acc (%)"].tolist()
    assert cells == [f"{100 * sum(acc) / 3:.2f} [{100 * low:.2f}, {100 * high:.2f}] (n=3)", "50.00 (n=1)"]
    # E4: the gap to the unfrozen run is taken per seed, then averaged (a paired difference)
    freeze = pd.DataFrame({"algorithm": ["dnw", "dnw", "dnw_freeze", "dnw_freeze"], "density": [0.1] * 4,
                           "seed": [0, 1, 0, 1], "freeze_epoch": [None, None, 1, 1],
                           "test_acc": [0.90, 0.80, 0.89, 0.77], "grad_macs_vs_unfrozen": [1, 1, 0.2, 0.2],
                           "train_s_vs_unfrozen": [1, 1, 0.5, 0.5]})
    e4 = summary.freeze({"freeze": freeze}).set_index("k")
    gaps = [-0.01, -0.03]
    low, high = stats.t.interval(0.95, 1, loc=-0.02, scale=stats.sem(gaps))
    assert e4.loc["1", ["gap_mean", "gap_low", "gap_high"]].tolist() == pytest.approx([-0.02, low, high])
    assert e4.loc["dnw", "gap_mean"] == 0
