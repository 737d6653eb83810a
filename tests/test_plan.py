"""The study plan (sparsenet.plan): which runs a study trains and how its training jobs group them."""
import itertools
import re
import subprocess
import sys

import pytest
import yaml

from sparsenet import plan, study
from sparsenet.algorithms.imp import schedule
from sparsenet.config import ConfigError
from sparsenet.masks import Mask

from .conftest import REPO


def load(name="config.yaml", **changes) -> dict:
    cfg = study.load_study(REPO / name)
    for key, value in changes.items():
        cfg[key] = {**cfg[key], **value} if isinstance(value, dict) else value
    return cfg


# a kind of group -> (the plan's groups, the runs they must cover)
GROUPINGS = {"train": (plan.train_groups, lambda cfg, r: r.label != "imp"),
             "retrain": (plan.retrain_groups, lambda cfg, r: r.label in cfg["algorithms"]),
             "analyse": (plan.analysis_groups, lambda cfg, r: r.label != "dense")}


@pytest.mark.parametrize("kind", GROUPINGS)
@pytest.mark.parametrize("per_job", [1, 2, 3, 8, 1000])
@pytest.mark.parametrize("name", ["config.yaml", "config/cifar10.yaml", "config/extended.yaml"])
def test_groups_cover_every_trained_run_once_and_share_a_label(name, per_job, kind):
    cfg = load(name, resources={"runs_per_job": per_job})
    make, covered = GROUPINGS[kind]
    groups = make(cfg)
    grouped = [r for g in groups for r in g.runs]
    assert sorted(grouped, key=repr) == sorted((r for r in plan.planned_runs(cfg) if covered(cfg, r)), key=repr)
    assert len(set(grouped)) == len(grouped)
    assert len({g.name for g in groups}) == len(groups) and all(g.name.startswith(f"{kind}_") for g in groups)
    for g in groups:
        assert 1 <= len(g.runs) <= per_job
        assert len({(r.model, r.label) for r in g.runs}) == 1  # one recipe and algorithm: fusable, one analysis
        if kind == "retrain":  # at most runs_per_job retrainings, but never less than one run
            assert len(g.runs) == 1 or len(g.runs) * len(plan.retrained_variants(cfg, g.label)) <= per_job
    assert make(cfg) == groups  # deterministic


@pytest.mark.parametrize("per_job, sizes", [(8, {"imp": [2, 2], "snfs": [2, 2], "dnw": [2, 2]}),
                                            (3, {"imp": [1] * 4, "snfs": [1] * 4, "dnw": [1] * 4}),
                                            (12, {"imp": [4], "snfs": [3, 1], "dnw": [3, 1]})])
def test_a_retraining_job_fills_runs_per_job_with_its_runs_variants(per_job, sizes):
    """The default study's 4 variants: imp's rewind is recorded (3 trained a run), snfs and dnw train all 4."""
    cfg = load(resources={"runs_per_job": per_job})
    assert plan.retrained_variants(cfg, "imp") == ["reinit", "signed_constant", "shuffle"]
    assert plan.retrained_variants(cfg, "snfs") == cfg["reinit"]["variants"]
    got = {}
    for g in plan.retrain_groups(cfg):
        got.setdefault(g.label, []).append(g.size)
    assert got == sizes
    assert plan.retrain_groups(load(reinit={"variants": []})) == []


def test_each_label_has_the_analyses_of_its_algorithm():
    """E6 for every masked run, E2 for the sparse algorithms' own runs, E3 where the mask changes as it trains."""
    cfg = load("config/extended.yaml")
    all_three = ("layers", "prune", "emergence")
    expected = {"dense": (), "imp": ("layers", "prune"), "static": ("layers", "prune"), "snip": ("layers", "prune"),
                "snfs": all_three, "dnw": all_three, "set": all_three, "rigl": all_three, "gmp": all_three,
                "dnw_freeze_f1": ("layers",)}
    labels = {r.label for r in plan.planned_runs(cfg)}
    assert {label: plan.analyses(cfg, label) for label in expected if label in labels} == {
        label: kinds for label, kinds in expected.items() if label in labels}
    assert {"imp", "snfs", "dnw_freeze_f1"} <= labels and len(labels) > 6


def test_a_label_fills_its_groups_before_starting_another():
    cfg = load(resources={"runs_per_job": 3})  # 2 seeds x 2 densities per sparse label: groups of 3 and 1
    sizes = {}
    for g in plan.train_groups(cfg):
        sizes.setdefault(g.runs[0].label, []).append(len(g.runs))
    assert sizes == {"dense": [2], **{label: [3, 1] for label in ["snfs", "dnw", "dnw_freeze_f1", "dnw_freeze_f2"]}}


def test_a_users_own_model_trains_one_run_per_job():
    cfg = load("tests/config/tiny.yaml", models=["tests.custom_model:two_layer", "lenet300_100"], seeds=[0, 1])
    for g in plan.train_groups(cfg):
        assert len(g.runs) == (1 if g.runs[0].model.startswith("tests.") else 2)


def test_run_settings_of_a_frozen_run_take_its_algorithms_then_its_own():
    cfg = load("tests/config/tiny.yaml", settings={"dnw": {"lr": 0.3, "weight_decay": 0.1},
                                                    "dnw_freeze": {"lr": 0.2}})
    settings = plan.run_settings(cfg, "lenet300_100", "dnw_freeze_f1", 0.1, 2)
    assert settings["lr"] == 0.2 and settings["weight_decay"] == 0.1
    assert (settings["algorithm"], settings["freeze_epoch"], settings["seed"]) == ("dnw", 1, 2)
    assert plan.run_settings(cfg, "lenet300_100", "dnw", 0.1, 2)["freeze_epoch"] == 0


def test_the_workflow_plans_the_groups_of_the_library(tmp_path):
    """The job names Snakemake plans are the plan's group names, each once."""
    from .test_workflow import planned

    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    cfg["resources"]["runs_per_job"] = 3
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(cfg))
    jobs = planned(tmp_path, "--configfile", str(tmp_path / "study.yaml"), groups=True)
    cfg = load(resources={"runs_per_job": 3})
    names = {g.name for g in [*plan.train_groups(cfg), *plan.retrain_groups(cfg), *plan.analysis_groups(cfg)]}
    assert {rule: n for rule, n in jobs.items() if rule in names} == dict.fromkeys(names, 1)
    assert not [rule for rule in jobs if rule.startswith(("train_", "retrain_", "analyse_")) and rule not in names]
    assert list(itertools.chain(names)) and not {"train", "retrain", "analyse"} & set(jobs)


@pytest.mark.parametrize("per_job", [1, 3, 8])
def test_each_groups_command_names_its_runs_folders(per_job):
    cfg = load(resources={"runs_per_job": per_job})
    for g in plan.train_groups(cfg):
        folders = [g.out("mnist").format(**dict(kv.split("=") for kv in f.split(","))) for f in g.fuse()]
        assert folders == ([r.folder("mnist") for r in g.runs] if len(g.runs) > 1 else [])
        if len(g.runs) == 1:
            assert g.out("mnist") == g.runs[0].folder("mnist")


def test_a_grouped_study_trains_its_groups_as_one_job_each_and_equals_single_runs(study, tmp_path):
    """The tiny study with a second seed, two runs fused to a job (dense, snfs, and imp's chains in lockstep):
    one job per group, and its seed-0 runs as the tiny study trained them one per job: the same masks,
    accuracies within float rounding. A finished grouped study plans nothing more."""
    from .conftest import snakemake, table
    from .test_workflow import planned

    repo, single = study
    cfg = yaml.safe_load((repo / "tests/config/tiny.yaml").read_text())
    cfg.update(seeds=[0, 1], algorithms=["imp", "snfs"], freeze_epochs=[], reinit={"variants": []},
               prune_sweep={"fractions": [0.0], "methods": ["random"], "draws": 1}, resources={"runs_per_job": 2})
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(cfg))
    out = snakemake(tmp_path, "--cores", "2", "--configfile", str(tmp_path / "study.yaml"), repo=repo)
    log = out.stdout + out.stderr
    assert len(re.findall(r"^(?:local)?rule (train_\w+):", log, flags=re.M)) == 2  # dense and snfs: 1 job each
    rounds = re.findall(r"^(?:local)?rule (imp_(?:last_)?round_\d+):", log, flags=re.M)
    assert len(rounds) == len(schedule([0.1], 0.7))  # each round of both chains: one job
    assert planned(tmp_path, "--configfile", str(tmp_path / "study.yaml"), repo=repo) == {}
    grouped, alone = table(tmp_path, "runs"), table(single, "runs").set_index("run")
    assert sorted(grouped["seed"]) == [0, 0, 0, 1, 1, 1] and (grouped["status"] == "ok").all()
    grouped = grouped[grouped["seed"] == 0].set_index("run")
    assert (grouped["final_density"] == alone.loc[grouped.index, "final_density"]).all()
    assert (grouped["test_acc"] - alone.loc[grouped.index, "test_acc"]).abs().max() < 0.005
    for run in grouped.index:
        fused, one = (Mask.load(root / run / "mask.safetensors") for root in (tmp_path, single))
        agree = [(fused.layers[k] == one.layers[k]).float().mean().item() for k in one.layers]
        assert min(agree) > 0.999, (run, agree)


def test_readmes_counts_of_the_default_studys_training_jobs_are_the_plans():
    cfg = load()
    runs = [r for r in plan.planned_runs(cfg) if r.label != "imp"]
    readme = " ".join((REPO / "README.md").read_text().split())  # its lines wrapped anywhere
    assert f"The default study's {len(runs)} trainings are {len(plan.train_groups(cfg))} jobs" in readme
    rounds = len(schedule(cfg["densities"], cfg["settings"]["imp"]["imp_rate"]))
    jobs = rounds * len(plan.chain_groups(cfg))
    assert f"The default study's {rounds * len(cfg['seeds'])} imp rounds are {jobs} jobs" in readme
    analysed = [r for r in plan.planned_runs(cfg) if plan.analyses(cfg, r.label)]
    analyses = sum(len(plan.analyses(cfg, r.label)) for r in analysed)
    assert (f"The default study's {analyses} analyses of {len(analysed)} runs are {len(plan.analysis_groups(cfg))} "
            "jobs") in readme
    retrained = [r for r in plan.planned_runs(cfg) if r.label in cfg["algorithms"]]
    retrainings = sum(len(plan.retrained_variants(cfg, r.label)) for r in retrained)
    assert (f"The default study's {retrainings} retrainings of {len(retrained)} runs are "
            f"{len(plan.retrain_groups(cfg))} jobs") in readme
    paper = study.trainings(load("config/paper-mnist.yaml"))["trainings"].sum()
    assert f"every E0-E6 experiment; - {paper} trainings." in readme


@pytest.mark.parametrize("per_job", [1, 2, 8])
def test_chain_groups_hold_each_seeds_chain_once_and_name_its_folders(per_job):
    cfg = load("config/paper-mnist.yaml", resources={"runs_per_job": per_job})
    groups = plan.chain_groups(cfg)
    assert sorted(s for g in groups for s in g.seeds) == sorted(cfg["seeds"]) * len(cfg["models"])
    assert all(1 <= len(g.seeds) <= per_job for g in groups) and len({g.name for g in groups}) == len(groups)
    for g in groups:
        folders = [g.round_folder("mnist", "03").format(**dict([f.split("=")])) for f in g.fuse()]
        expected = [f"results/runs/mnist-{g.model}/imp/chain/s{s}/r03" for s in g.seeds]
        assert (folders or [g.round_folder("mnist", "03")]) == expected
    assert plan.chain_groups(load(algorithms=["snfs"])) == []


BLOCK_SNAKEMAKE = """
import importlib, pkgutil, sys

class NoSnakemake:  # as on a machine where the workflow extra is not installed
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "snakemake":
            raise ImportError("No module named 'snakemake'")

sys.meta_path.insert(0, NoSnakemake())
import sparsenet
for module in pkgutil.walk_packages(sparsenet.__path__, "sparsenet."):
    if module.name != "sparsenet.__main__":
        importlib.import_module(module.name)
from sparsenet.cli import main
sys.exit(main(["plan", "--configfile", "config.yaml"]))
"""


def test_the_library_imports_and_plans_a_study_without_snakemake():
    out = subprocess.run([sys.executable, "-c", BLOCK_SNAKEMAKE], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.splitlines()[-1].endswith("epochs") and "imp_round" in out.stdout


def test_a_bad_study_config_is_named_by_the_library_too(tmp_path):
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    cfg["resources"]["runs_per_job"] = 0
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match=r"resources\.runs_per_job: 0 is less than the minimum of 1"):
        study.load_study(tmp_path / "bad.yaml")
