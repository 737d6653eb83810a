# Shared by every rule: the planned runs, their paths and settings, and the code each rule runs.
import functools
import os
import re
import shlex
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

from sparsenet import models
from sparsenet.algorithms import ALGORITHMS
from sparsenet.algorithms.imp import schedule
from sparsenet.config import ConfigError, RunConfig, expand_preset
from sparsenet.provenance import identity
from sparsenet.reinit import VARIANTS

REPO = Path(workflow.basedir)
RUNS = "results/runs"
ENV = "../envs/sparsenet.yaml"
# Jobs run `python -m sparsenet`: the package from this checkout, with the Python that runs Snakemake unless
# a conda env (--sdm conda) puts its own first. Jobs inherit both, locally and on a cluster.
# data_root reaches jobs as SPARSENET_DATA, not as a parameter: moving the data must not rerun the study.
if config["data_root"]:
    os.environ.update(SPARSENET_DATA=str(Path(config["data_root"]).resolve()))
os.environ.update(
    PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
)
RES = config["resources"]
DATASET = config["dataset"]
WORKFLOW_KEYS = {"dataset", "model", "algorithm", "density", "seed", "freeze_epoch"}

# --- the code each job runs: its identity is a parameter, so an edit reruns exactly the jobs it affects ---
PKG = REPO / "sparsenet"


def code(command, run=None):
    """The code identity of a job of `sparsenet <command>` (sparsenet.provenance.identity): the modules the
    command imports, and those the settings of its run import (`run`: (model, label, density, seed))."""
    return identity(command, RunConfig.from_flat(run_settings(*run)) if run else None, PKG)


@functools.cache
def _run_folders():
    return {run_dir(*r).removeprefix(f"{RUNS}/"): r for r in planned_runs()}


def run_of(path):
    """(model, label, density, seed) of a planned run's folder under RUNS (an analysis job's `run` wildcard)."""
    if path not in _run_folders():
        raise WorkflowError(f"not a run folder of this study: {RUNS}/{path}")
    return _run_folders()[path]


# --- the runs of the study ---
def split_label(label):
    """Folder label -> (algorithm, freeze epoch): 'rigl_freeze_f2' -> ('rigl_freeze', 2)."""
    frozen = re.fullmatch(r"(\w+_freeze)_f(\d+)", label)
    return (frozen[1], int(frozen[2])) if frozen else (label, None)


def run_settings(model, label, density, seed):
    """Explicit settings of a run (a `preset` expanded, so that editing a preset reruns what it changes)."""
    algorithm, freeze = split_label(label)
    base = algorithm.removesuffix("_freeze")  # <alg>_freeze runs as <alg> does until its freeze
    settings = {
        **expand_preset(config["recipe"]),
        **(expand_preset(config["settings"].get(base, {})) if base != algorithm else {}),
        **expand_preset(config["settings"].get(algorithm, {})),
        "dataset": DATASET,
        "model": model,
        "algorithm": algorithm,
        "density": float(density),
        "seed": int(seed),
    }
    if freeze is not None:
        settings["freeze_epoch"] = freeze
    return settings


def cli_flags(settings):
    def text(v):
        return ",".join(str(x) for x in v) if isinstance(v, (list, tuple)) else str(v)

    return " ".join(f"--{k.replace('_', '-')} {shlex.quote(text(v))}" for k, v in sorted(settings.items()))


def stacked_settings(w):
    """The settings of a run configuration for all seeds at once (the seeds go to --stack-seeds)."""
    settings = run_settings(w.model, w.label, w.density, config["seeds"][0])
    del settings["seed"]
    return cli_flags(settings)


def imp_round_settings(w):
    r = int(w.round)
    return cli_flags({**run_settings(w.model, "imp", SCHEDULE[r], w.seed), "density": SCHEDULE[r]})


def imp_prev(w):
    """The previous round's outputs that round `w.round` starts from (none for round 0)."""
    r = int(w.round)
    if r == 0:
        return []
    prev = f"{RUNS}/{w.dataset}-{w.model}/imp/chain/s{w.seed}/r{r - 1:02d}"
    return [f"{prev}/run.json", f"{prev}/init.safetensors", f"{prev}/next_mask.safetensors"]


def fmt(density):
    return f"{float(density):g}"


def run_dir(model, label, density, seed):
    return f"{RUNS}/{DATASET}-{model}/{label}/d{fmt(density)}/s{seed}"


for _model in config["models"]:  # registered, or importable: before any settings are built with it
    try:
        models.resolve(_model)
    except KeyError as e:
        raise WorkflowError(f"config.yaml: models: {e.args[0]}")
SPARSE = list(config["algorithms"])
FREEZE_LABELS = [f"{a}_freeze_f{k}" for a in config["freeze_algorithms"] for k in config["freeze_epochs"]]


def planned_runs():
    """(model, label, density, seed) of every trained run: dense, each sparse algorithm, the freeze sweep."""
    for model in config["models"]:
        for seed in config["seeds"]:
            yield model, "dense", 1.0, seed
            for label in SPARSE + FREEZE_LABELS:
                for density in config["densities"]:
                    yield model, label, density, seed


def check_config():
    """Reject a bad study before any job runs, naming the key (the schema checked the shape already)."""
    clash = WORKFLOW_KEYS & (set(config["recipe"]) | {k for s in config["settings"].values() for k in s})
    if clash:
        raise WorkflowError(f"config.yaml: recipe/settings must not set {sorted(clash)}: the study sets them")
    # every settings entry, also of an algorithm the study does not run: a typo there is still a typo
    unplanned = [
        (config["models"][0], a, 1.0 if a == "dense" else config["densities"][0], config["seeds"][0])
        for a in config["settings"]
        if a not in ["dense", *SPARSE]
    ]
    for model, label, density, seed in [*planned_runs(), *unplanned]:
        try:
            RunConfig.from_flat(run_settings(model, label, density, seed))
        except ConfigError as e:
            algorithm = split_label(label)[0]
            where = f"recipe or settings.{algorithm}" if algorithm in config["settings"] else "recipe"
            raise WorkflowError(f"config.yaml: {e} (in {where}, for run {run_dir(model, label, density, seed)})")
    own_models = [m for m in config["models"] if m not in models.BUILTIN]
    if config["stack_seeds"] and own_models:
        raise WorkflowError(
            f"config.yaml: stack_seeds: fused runs take the package's models; {own_models} "
            "train their runs one by one (stack_seeds: false)"
        )
    missing = [a for a in config["freeze_algorithms"] if a not in SPARSE]
    if config["freeze_epochs"] and missing:
        raise WorkflowError(
            f"config.yaml: freeze_algorithms: {missing} must be in algorithms too: the E4 sweep "
            "compares each frozen run with its algorithm's own"
        )


check_config()
IMP_RATE = RunConfig.from_flat(run_settings(config["models"][0], "imp", 0.5, 0)).algorithm.imp_rate
SCHEDULE = schedule(config["densities"], IMP_RATE)

RUN_FILES = [
    "run.json",
    "init.safetensors",
    "final.safetensors",
    "mask.safetensors",
    "snapshots.safetensors",
    "history.parquet",
]
ALL_RUNS = [run_dir(*r) for r in planned_runs()]
SPARSE_RUNS = [run_dir(m, a, d, s) for m, a, d, s in planned_runs() if a in SPARSE]
MASKED_RUNS = [run_dir(m, a, d, s) for m, a, d, s in planned_runs() if a != "dense"]
# E1's rewind of these replays the run itself (sparsenet.reinit.replays_its_run): recorded, not trained again
REPLAYED = [a for a in SPARSE if not ALGORITHMS[a].mask_changes]
# E3 where the mask changes during a run: an imp round's, a static or pruned-at-init mask never does
EMERGENCE_RUNS = [run_dir(m, a, d, s) for m, a, d, s in planned_runs() if a in SPARSE and ALGORITHMS[a].mask_changes]
RETRAINS = [f"{r}/reinit/{v}" for r in SPARSE_RUNS for v in config["reinit"]["variants"]]
TABLE_NAMES = ["runs", "reinit", "prune", "emergence", "freeze", "layers"]  # made by the tables rule
TABLES = expand("results/tables/{name}.parquet", name=TABLE_NAMES)
FIGURE_NAMES = ["e0_accuracy", "e1_reinit", "e2_prune", "e3_emergence", "e4_freeze", "e5_similarity", "e6_wiring"]
FIGURES = expand("results/figures/{name}.{ext}", name=FIGURE_NAMES, ext=["png", "pdf"])


# labels the train rules make: dense, every sparse algorithm but imp (its chain has rules of its own), E4's
TRAIN_LABELS = "|".join(["dense", *(re.escape(a) for a in SPARSE if a != "imp"), r"\w+_freeze_f\d+"])


wildcard_constraints:
    dataset=re.escape(DATASET),
    model="|".join(re.escape(m) for m in config["models"]),
    density=r"[0-9.e-]+",
    seed=r"\d+",
    round=r"\d\d",
    variant="|".join(VARIANTS),


# E1's retraining jobs (rules retrain and retrain_replayed): one per trained run, for all its trained variants
def retrain_rule_params(variants):
    return dict(
        device=config["device"],
        code=lambda w: code("retrain", (w.model, w.label, w.density, w.seed)),
        run=lambda w: f"{RUNS}/{w.dataset}-{w.model}/{w.label}/d{w.density}/s{w.seed}",
        variants=",".join(variants),
        out=lambda w: f"{RUNS}/{w.dataset}-{w.model}/{w.label}/d{w.density}/s{w.seed}/reinit/{{variant}}",
    )


RUN_PATTERN = f"{RUNS}/{{dataset}}-{{model}}/{{label}}/d{{density}}/s{{seed}}"
RETRAIN_CMD = (
    "python -m sparsenet retrain --run {params.run} --variant {params.variants} --out '{params.out}' "
    "--device {params.device} --threads {threads} > {log} 2>&1"
)
TRAINED_VARIANTS = {  # label kind -> the variants its runs train in E1
    "changing": list(config["reinit"]["variants"]),
    "replayed": [v for v in config["reinit"]["variants"] if v != "rewind"],
}
