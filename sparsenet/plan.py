"""The study plan: the runs a study config trains, their folders and settings, the training jobs that train
them in fused groups, the jobs that retrain them (E1) and those that analyse them. The workflow
(workflow/rules/common.smk), `sparsenet plan` and the tests read these same objects, so the three cannot disagree
on what a study is.

A run's folder is `results/runs/<dataset>-<model>/<label>/d<density>/s<seed>`, where the label is the algorithm,
or `<name>_freeze_f<k>` for a run of E4's freeze sweep.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from sparsenet import algorithms, models
from sparsenet.config import ConfigError, RunConfig, expand_preset
from sparsenet.reinit import replays_its_run
from sparsenet.variants import VARIANTS

RUNS = "results/runs"


def split_label(label: str) -> tuple[str, int | None]:
    """Folder label -> (the run's label, freeze epoch): 'rigl_freeze_f2' -> ('rigl_freeze', 2)."""
    frozen = re.fullmatch(rf"(.+{algorithms.FREEZE})_f(\d+)", label)
    return (frozen[1], int(frozen[2])) if frozen else (label, None)


def fmt(density: float | str) -> str:
    """A density as folder names and command lines write it: 0.05, 1."""
    return f"{float(density):g}"


@dataclass(frozen=True)
class PlannedRun:
    """One training of a study: a model and folder label at a density and seed."""

    model: str
    label: str
    density: float
    seed: int

    def folder(self, dataset: str) -> str:
        return self.pattern(dataset, [])

    def pattern(self, dataset: str, placeholders: list[str]) -> str:
        """The folder, with `{seed}` and `{density}` in place of the values of those named."""
        density = "{density}" if "density" in placeholders else fmt(self.density)
        seed = "{seed}" if "seed" in placeholders else self.seed
        return f"{RUNS}/{dataset}-{self.model}/{self.label}/d{density}/s{seed}"

    def setting(self, key: str) -> str:
        """Its seed or density as the command line and folder names write it."""
        return fmt(self.density) if key == "density" else str(self.seed)


def run_settings(config: dict, model: str, label: str, density: float = 1.0, seed: int = 0) -> dict:
    """The explicit flat settings of a run: the study's recipe, then its algorithm's settings (a `<name>_freeze`
    run first takes `<name>`'s, then those under `settings.<name>_freeze`), then the keys the study sets. Presets
    are expanded (with the settings they hold for the run's algorithm), so that editing a preset reruns what it
    changes."""
    run_label, freeze = split_label(label)
    base = algorithms.split(run_label)[0]  # <alg>_freeze runs as <alg> does until its freeze
    own = config.get("settings", {})
    return {
        **expand_preset(config["recipe"], base),
        **(expand_preset(own.get(base, {}), base) if base != run_label else {}),
        **expand_preset(own.get(run_label, {}), base),
        "dataset": config["dataset"], "model": model, "density": float(density), "seed": int(seed),
        **algorithms.from_label(run_label, 1 if freeze is None else freeze),
    }


def freeze_labels(config: dict) -> list[str]:
    return [f"{a}{algorithms.FREEZE}_f{k}" for a in config["freeze_algorithms"]  # the schema fills its default
            for k in config["freeze_epochs"]]


def planned_runs(config: dict) -> list[PlannedRun]:
    """Every trained run of the study: dense, each sparse algorithm, the freeze sweep; by model, seed, label,
    density."""
    return [PlannedRun(model, "dense", 1.0, seed) if label == "dense" else PlannedRun(model, label, density, seed)
            for model in config["models"] for seed in config["seeds"]
            for label in ["dense", *config["algorithms"], *freeze_labels(config)]
            for density in ([1.0] if label == "dense" else config["densities"])]


# the settings a study sets for each run itself: a recipe or an algorithm's settings must not
STUDY_KEYS = {"dataset", "model", "algorithm", "density", "seed", "freeze_epoch"}


def _check_names(config: dict) -> None:
    """Every algorithm the study names is in the registry (or importable), and can do what the study asks of it."""
    def known(key: str, name: str) -> type:
        try:
            return algorithms.get(name)
        except ConfigError as e:
            raise ConfigError(f"config.yaml: {key}: {str(e).removeprefix('algorithm: ')}") from None

    def freezable(key: str, name: str) -> None:
        if not known(key, name).freezable:
            raise ConfigError(f"config.yaml: {key}: {name} cannot freeze its mask; those that can: "
                              f"{', '.join(algorithms.freezable())}")

    for name in config["algorithms"]:
        if name == "dense" or known("algorithms", name).needs_mask:
            raise ConfigError(f"config.yaml: algorithms: {name!r} is not a sparse algorithm a study trains (dense "
                              "always runs; fixed needs a given mask)")
    for name in config["freeze_algorithms"]:
        freezable("freeze_algorithms", name)
    unknown = [v for v in config.get("reinit", {}).get("variants", []) if v not in VARIANTS]
    if unknown:
        raise ConfigError(f"config.yaml: reinit.variants: unknown variant {unknown[0]!r}; known: {', '.join(VARIANTS)}")
    for name in config["settings"]:  # an algorithm's, or its frozen runs' (<name>_freeze)
        base, frozen = algorithms.split(name)
        if frozen:
            freezable("settings", base)
        else:
            known("settings", base)


def check(config: dict) -> None:
    """Reject a bad study before any job runs, with one line naming the key (the schema checked its shape)."""
    for model in config["models"]:  # registered, or importable: before any settings are built with it
        try:
            models.resolve(model)
        except KeyError as e:
            raise ConfigError(f"config.yaml: models: {e.args[0]}") from None
    _check_names(config)
    clash = STUDY_KEYS & (set(config["recipe"]) | {k for s in config["settings"].values() for k in s})
    if clash:
        raise ConfigError(f"config.yaml: recipe/settings must not set {sorted(clash)}: the study sets them")
    # every settings entry, also of an algorithm the study does not run: a typo there is still a typo
    unplanned = [PlannedRun(config["models"][0], a, 1.0 if a == "dense" else config["densities"][0],
                            config["seeds"][0])
                 for a in config["settings"] if a not in ["dense", *config["algorithms"]]]
    for run in [*planned_runs(config), *unplanned]:
        try:
            RunConfig.from_flat(run_settings(config, run.model, run.label, run.density, run.seed))
        except ConfigError as e:
            algorithm = split_label(run.label)[0]
            where = f"recipe or settings.{algorithm}" if algorithm in config["settings"] else "recipe"
            raise ConfigError(f"config.yaml: {e} (in {where}, for run {run.folder(config['dataset'])})") from None
    missing = [a for a in config["freeze_algorithms"] if a not in config["algorithms"]]
    if config["freeze_epochs"] and missing:
        raise ConfigError(f"config.yaml: freeze_algorithms: {missing} must be in algorithms too: the E4 sweep "
                          "compares each frozen run with its algorithm's own")


@dataclass(frozen=True)
class RunGroup:
    """Runs of one model and label (so one recipe and algorithm) that one job handles together: a training job
    trains them as one fused model (sparsenet.fused), an analysis job analyses them in one process; or a single
    run. `name` is the job's rule name."""

    name: str
    runs: tuple[PlannedRun, ...]

    @property
    def model(self) -> str:
        return self.runs[0].model

    @property
    def label(self) -> str:
        return self.runs[0].label

    @property
    def size(self) -> int:
        return len(self.runs)

    @property
    def varying(self) -> list[str]:
        """The settings its runs differ in, each run's own (seed, density); the rest they share."""
        return [k for k in ("seed", "density") if len({getattr(r, k) for r in self.runs}) > 1]

    def fuse(self) -> list[str]:
        """`sparsenet train --fuse` of each run (none for a single run): 'seed=1,density=0.05'."""
        return [",".join(f"{k}={r.setting(k)}" for k in self.varying) for r in self.runs] if self.varying else []

    def out(self, dataset: str) -> str:
        """`sparsenet train --out`: the folder of its runs, with a placeholder for each setting they vary in."""
        return self.runs[0].pattern(dataset, self.varying)


def runs_per_job(config: dict, model: str) -> int:
    """How many runs one training job fuses: the study's `resources.runs_per_job`; 1 for a user's own model,
    whose forward the fused layout may not survive (sparsenet.fused)."""
    return config["resources"]["runs_per_job"] if model in models.BUILTIN else 1


def _groups(config: dict, runs: list[PlannedRun], kind: str, trainings=lambda label: 1) -> list[RunGroup]:
    """Each model and label's `runs`, by seed then density, in consecutive groups of at most `runs_per_job`
    trainings (`trainings(label)` per run; at least one run), named `<kind>_<label>_<i>` (i counts the groups of
    its label). Deterministic; each run is in exactly one group."""
    by_label: dict[tuple[str, str], list[PlannedRun]] = {}
    for run in runs:
        by_label.setdefault((run.model, run.label), []).append(run)
    groups, counter = [], {}
    for (model, label), same in by_label.items():
        same = sorted(same, key=lambda r: (r.seed, r.density))
        size = max(1, runs_per_job(config, model) // max(1, trainings(label)))
        for start in range(0, len(same), size):
            i = counter[label] = counter.get(label, -1) + 1
            groups.append(RunGroup(f"{kind}_{label}_{i}", tuple(same[start:start + size])))
    return groups


def train_groups(config: dict) -> list[RunGroup]:
    """The training jobs of every planned run but imp's (its rounds have jobs of their own)."""
    return _groups(config, [r for r in planned_runs(config) if r.label != "imp"], "train")


def analyses(config: dict, label: str) -> tuple[str, ...]:
    """The analyses (sparsenet.record.RunFolder.ANALYSIS_FILE) of a run of folder `label`: E6's wiring for every
    masked run, E2's prune sweep for a sparse algorithm's own runs (not E4's frozen ones), and E3's emergence for
    those whose mask changes while they train (an imp round's, a static or pruned-at-init mask never does)."""
    if label == "dense":
        return ()
    if label not in config["algorithms"]:
        return ("layers",)
    return ("layers", "prune", "emergence") if algorithms.get(label).mask_changes else ("layers", "prune")


def analysis_groups(config: dict) -> list[RunGroup]:
    """The analysis jobs (`sparsenet analyse`): the runs that have analyses, in groups made as train_groups makes
    them (imp's runs, selected from its chains, too): a job's start-up, mostly torch's import, is paid once per
    group instead of once per run and analysis."""
    return _groups(config, [r for r in planned_runs(config) if analyses(config, r.label)], "analyse")


def retrained_variants(config: dict, label: str) -> list[str]:
    """E1's variants (`reinit.variants`) that a run of sparse algorithm `label` trains: all, but `rewind` where it
    would replay the run (sparsenet.reinit.replays_its_run), which is recorded instead."""
    return [v for v in config["reinit"]["variants"] if not (v == "rewind" and replays_its_run(label))]


def retrain_groups(config: dict) -> list[RunGroup]:
    """E1's jobs (`sparsenet retrain --run R1 R2 ...`): each sparse algorithm's runs, in groups of at most
    `runs_per_job` retrainings (each run's trained variants), which train as one fused model; a job records the
    rewinds that replay their runs too. None without variants."""
    if not config["reinit"]["variants"]:
        return []
    runs = [r for r in planned_runs(config) if r.label in config["algorithms"]]
    return _groups(config, runs, "retrain", lambda label: len(retrained_variants(config, label)))


@dataclass(frozen=True)
class ChainGroup:
    """imp's chains of some seeds of one model, trained in lockstep: each round is one job that trains that round
    of every chain as one fused model (sparsenet.rounds.run_rounds), or of its one chain alone. `name` is the
    suffix of its rules' names."""

    name: str
    model: str
    seeds: tuple[int, ...]
    label = "imp"

    @property
    def size(self) -> int:
        return len(self.seeds)

    def round_folder(self, dataset: str, round_: int | str, seed: int | str | None = None) -> str:
        """A round's folder of the chain of `seed`; with several seeds and none given, `{seed}` in its place."""
        seed = seed if seed is not None else ("{seed}" if len(self.seeds) > 1 else self.seeds[0])
        return f"{RUNS}/{dataset}-{self.model}/imp/chain/s{seed}/r{round_}"

    def fuse(self) -> list[str]:
        return [f"seed={s}" for s in self.seeds] if len(self.seeds) > 1 else []


def chain_groups(config: dict) -> list[ChainGroup]:
    """imp's chains, each model's seeds in consecutive groups of at most `runs_per_job` (none without imp)."""
    if "imp" not in config["algorithms"]:
        return []
    groups = []
    for model in config["models"]:
        size = runs_per_job(config, model)
        for start in range(0, len(config["seeds"]), size):
            groups.append(ChainGroup(str(len(groups)), model, tuple(config["seeds"][start:start + size])))
    return groups
