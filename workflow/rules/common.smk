# Shared by every rule: the planned runs, their paths and settings, and the code each rule runs.
import functools
import os
import re
import shlex
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

from sparsenet import figures, plan
from sparsenet.algorithms.imp import schedule
from sparsenet.config import ConfigError, RunConfig
from sparsenet.provenance import identity
from sparsenet.record import RunFolder

REPO = Path(workflow.basedir)
RUNS = plan.RUNS
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

# --- the code each job runs: its identity is a parameter, so an edit reruns exactly the jobs it affects ---
PKG = REPO / "sparsenet"


def code(command, run=None):
    """The code identity of a job of `sparsenet <command>` (sparsenet.provenance.identity): the modules the
    command imports, and those the settings of its run import (`run`: (model, label, density, seed))."""
    return identity(command, RunConfig.from_flat(run_settings(*run)) if run else None, PKG)


# --- the runs of the study (sparsenet.plan) ---
def run_settings(model, label, density, seed):
    """Explicit settings of a run (a `preset` expanded, so that editing a preset reruns what it changes)."""
    return plan.run_settings(config, model, label, density, seed)


def cli_flags(settings):
    def text(v):
        return ",".join(str(x) for x in v) if isinstance(v, (list, tuple)) else str(v)

    return " ".join(f"--{k.replace('_', '-')} {shlex.quote(text(v))}" for k, v in sorted(settings.items()))


def run_dir(model, label, density, seed):
    return plan.PlannedRun(model, label, density, seed).folder(DATASET)


try:  # a bad study is rejected before any job runs (sparsenet.plan.check)
    plan.check(config)
except ConfigError as e:
    raise WorkflowError(str(e))
SPARSE = list(config["algorithms"])


def planned_runs():
    """(model, label, density, seed) of every trained run: dense, each sparse algorithm, the freeze sweep."""
    return [(r.model, r.label, r.density, r.seed) for r in plan.planned_runs(config)]


IMP_RATE = RunConfig.from_flat(run_settings(config["models"][0], "imp", 0.5, 0)).algorithm.imp_rate
SCHEDULE = schedule(config["densities"], IMP_RATE)
LAST_ROUND = f"{len(SCHEDULE) - 1:02d}"

F = {**RunFolder.FILE, **RunFolder.ROUND_FILE}  # a run's files by role (sparsenet.record)
RUN_FILES = list(RunFolder.FILES)
ALL_RUNS = [run_dir(*r) for r in planned_runs()]
SPARSE_RUNS = [run_dir(m, a, d, s) for m, a, d, s in planned_runs() if a in SPARSE]
MASKED_RUNS = [run_dir(m, a, d, s) for m, a, d, s in planned_runs() if a != "dense"]
A = RunFolder.ANALYSIS_FILE  # a run's analyses by kind (sparsenet analyse)
# each kind's files, of every run that has it (sparsenet.plan.analyses)
ANALYSED = {k: [f"{run_dir(*r)}/{f}" for r in planned_runs() if k in plan.analyses(config, r[1])] for k, f in A.items()}
E1_VARIANTS = list(config["reinit"]["variants"])
RETRAINS = [f"{r}/reinit/{v}" for r in SPARSE_RUNS for v in E1_VARIANTS]
TABLE_NAMES = ["runs", "reinit", "prune", "emergence", "freeze", "layers"]  # made by the tables rule
TABLES = expand("results/tables/{name}.parquet", name=TABLE_NAMES)
FIGURES = expand("results/figures/{name}.{ext}", name=figures.FIGURES, ext=["png", "pdf"])


# --- training jobs: one per group of the plan (rules train_<label>_<i>) ---
TRAIN_GROUPS = plan.train_groups(config)


def group_log(group, single):
    """A single run's log is in its folder (named `single`); a group's beside its runs' folders."""
    if group.size == 1:
        return f"{group.runs[0].folder(DATASET)}/{single}"
    return f"{RUNS}/{DATASET}-{group.model}/{group.name}.log"


def group_params(group):
    """The shared settings, one --fuse per run with its own (seed, density), the --out pattern, the identity."""
    r = group.runs[0]
    first = (r.model, r.label, r.density, r.seed)
    settings = {k: v for k, v in run_settings(*first).items() if k not in group.varying}
    return dict(
        settings=cli_flags(settings),
        fuse=" ".join(f"--fuse {f}" for f in group.fuse()),
        out=lambda w, out=group.out(DATASET): out,  # a function: its {seed}, {density} are placeholders, not wildcards
        code=code("train", first),
    )


wildcard_constraints:
    dataset=re.escape(DATASET),
    model="|".join(re.escape(m) for m in config["models"]),
    density=r"[0-9.e-]+",
    seed=r"\d+",
    round=r"\d\d",


# --- analysis jobs: one per group of the plan (rules analyse_<label>_<i>) ---
ANALYSIS_GROUPS = plan.analysis_groups(config)


def analysis_params(group):
    """The runs, the analyses their label has (the prune sweep's settings, --emergence), the identity."""
    kinds = plan.analyses(config, group.label)
    sweep = config["prune_sweep"]
    prune = (
        f"--fractions {' '.join(map(str, sweep['fractions']))} --methods {' '.join(sweep['methods'])} "
        f"--draws {sweep['draws']}{' --recompute-bn' if sweep['recompute_bn'] else ''}"
    )
    r = group.runs[0]
    return dict(
        runs=" ".join(run.folder(DATASET) for run in group.runs),
        analyses=" ".join([prune] * ("prune" in kinds) + ["--emergence"] * ("emergence" in kinds)),
        code=code("analyse", (r.model, r.label, r.density, r.seed)),
    )


# --- E1's jobs: one per retraining group of the plan (rules retrain_<label>_<i>) ---
RETRAIN_GROUPS = plan.retrain_groups(config)


# --- imp's chains: a round of each chain group is one job (rules imp_round_<i>, imp_last_round_<i>) ---
CHAIN_GROUPS = plan.chain_groups(config)
IMP_CMD = (
    "python -m sparsenet imp-round --out '{params.out}' {params.prev} {params.next} {params.fuse} "
    "{params.settings} --device {params.device} --threads {threads} > {log} 2>&1"
)


def imp_outputs(chain, round_, *extra):
    return [f"{chain.round_folder(DATASET, round_, s)}/{f}" for s in chain.seeds for f in [*RUN_FILES, *extra]]


def imp_log(chain, round_):
    if len(chain.seeds) == 1:
        return f"{chain.round_folder(DATASET, round_)}/train.log"
    return f"{RUNS}/{DATASET}-{chain.model}/imp/chain/imp_round_{chain.name}_r{round_}.log"


def imp_prev(chain, w):
    """The previous round's outputs that round `w.round` of the chains starts from (none for round 0)."""
    r = int(w.round) if "round" in w.keys() else len(SCHEDULE) - 1
    if r == 0:
        return []
    files = [F["record"], F["init"], F["next_mask"]]
    return [f"{chain.round_folder(DATASET, f'{r - 1:02d}', s)}/{f}" for s in chain.seeds for f in files]


def imp_params(chain):
    """Settings at the round's density, one --fuse per chain, --out and --prev (placeholders), the identity."""

    def round_of(w):
        return int(w.round) if "round" in w.keys() else len(SCHEDULE) - 1

    def settings(w):
        values = run_settings(chain.model, "imp", SCHEDULE[round_of(w)], chain.seeds[0])
        return cli_flags({k: v for k, v in values.items() if not (k == "seed" and chain.fuse())})

    def prev(w):
        r = round_of(w)
        return f"--prev '{chain.round_folder(DATASET, f'{r - 1:02d}')}'" if r else ""

    def nxt(w):
        r = round_of(w)
        return f"--next-density {SCHEDULE[r + 1]}" if r + 1 < len(SCHEDULE) else ""

    return dict(
        device=config["device"],
        settings=settings,
        fuse=" ".join(f"--fuse {f}" for f in chain.fuse()),
        prev=prev,
        next=nxt,
        out=lambda w: chain.round_folder(DATASET, f"{round_of(w):02d}"),
        code=lambda w: code("imp-round", (chain.model, "imp", SCHEDULE[round_of(w)], chain.seeds[0])),
    )
