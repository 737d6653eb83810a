"""What a study costs: its trainings and epochs, counted from the study config as the workflow plans them,
and an estimate of device hours from measured epoch times (`sparsenet plan`).

The count mirrors `workflow/rules/` (tests compare it with Snakemake's own dry run, job for job). Epoch times
are measured on the device at hand with the study's own recipe: a few training steps per (model, kind of
training) plus one evaluation of the test split, scaled to an epoch.
"""
from __future__ import annotations

import tempfile
import time
from collections import Counter
from pathlib import Path

import jsonschema
import pandas as pd
import yaml

from sparsenet import algorithms, models
from sparsenet.algorithms.imp import schedule
from sparsenet.config import ConfigError, RunConfig
from sparsenet.plan import (
    chain_groups,
    freeze_labels,
    retrain_groups,
    retrained_variants,
    run_settings,
    split_label,
    train_groups,
)

SCHEMA = Path(__file__).resolve().parent / "schemas" / "config.schema.yaml"  # the workflow validates with it too


def load_study(path: str | Path) -> dict:
    """The study config, checked against the schema (jsonschema, as the Snakefile's validate does: a bad key is
    named) and with the schema's defaults filled in, as the Snakefile sees it."""
    try:
        config = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"study config {path}: {e}") from None
    schema = yaml.safe_load(SCHEMA.read_text())
    try:
        jsonschema.validate(config, schema)
    except jsonschema.ValidationError as e:
        where = ".".join(str(k) for k in e.absolute_path) or "(top level)"
        raise ConfigError(f"study config {path}: {where}: {e.message}") from None
    return _with_defaults(config, schema)


def _with_defaults(value, schema: dict):
    if not isinstance(value, dict):
        return value
    out = dict(value)
    for key, sub in schema.get("properties", {}).items():
        if key not in out and "default" in sub:
            out[key] = sub["default"]
        if key in out:
            out[key] = _with_defaults(out[key], sub)
    return out


def settings(config: dict, model: str, algorithm: str, density: float = 1.0, seed: int = 0) -> RunConfig:
    """The run settings the workflow gives a training (sparsenet.plan.run_settings)."""
    return RunConfig.from_flat(run_settings(config, model, algorithm, density, seed))


def trainings(config: dict) -> pd.DataFrame:
    """One row per kind of training and model: how many trainings the study runs and their epochs each.

    Kinds: dense, imp_round (every round of every seed's chain), each other sparse algorithm, <alg>_freeze_f<k>
    (E4), and retrain_<alg> (E1: one per variant of each trained sparse run). `steps_by_speed` splits a
    training's epochs by what they cost: an algorithm's own epochs, or `fixed` ones under a fixed mask.
    `fused` is how many trainings its jobs train at once (sparsenet.plan; E1: its runs' variants), the largest
    group.
    """
    rows = []
    n_seeds, n_dens = len(config["seeds"]), len(config["densities"])
    sparse = config["algorithms"]
    # (label, algorithm, k) of each frozen run: 'dnw_freeze_f2' -> ('dnw_freeze_f2', 'dnw', 2)
    freeze = [(label, algorithms.split(split_label(label)[0])[0], split_label(label)[1])
              for label in freeze_labels(config)]
    fused: dict[tuple[str, str], int] = {}  # (model, label) -> the largest group its jobs train (sparsenet.plan)
    for group in [*train_groups(config), *chain_groups(config)]:
        fused[group.model, group.label] = max(fused.get((group.model, group.label), 0), group.size)
    for group in retrain_groups(config):
        key = group.model, f"retrain_{group.label}"
        fused[key] = max(fused.get(key, 0), group.size)
    for model in config["models"]:
        epochs = settings(config, model, "dense").train.epochs
        rows.append(("dense", model, n_seeds, epochs, {"dense": epochs}, fused[model, "dense"]))
        if "imp" in sparse:
            imp = settings(config, model, "imp", 0.5).algorithm
            rounds = len(schedule(config["densities"], imp.imp_rate))
            each = epochs - imp.rewind_epoch * (rounds - 1) / rounds  # later rounds start at the rewind epoch
            rows.append(("imp_round", model, rounds * n_seeds, each, {"fixed": each}, fused[model, "imp"]))
        for algorithm in (a for a in sparse if a != "imp"):
            rows.append((algorithm, model, n_dens * n_seeds, epochs, {algorithm: epochs}, fused[model, algorithm]))
        for label, algorithm, k in (f for f in freeze if f[1] in sparse):
            rows.append((label, model, n_dens * n_seeds, epochs, {algorithm: k, "fixed": epochs - k},
                         fused[model, label]))
        for algorithm in sparse:
            trained = retrained_variants(config, algorithm)  # a replayed rewind is recorded
            each = epochs - (imp.rewind_epoch if algorithm == "imp" else 0)
            runs = fused.get((model, f"retrain_{algorithm}"), 1)  # E1: runs per group, each of its variants
            rows.append((f"retrain_{algorithm}", model, n_dens * n_seeds * len(trained), each, {"fixed": each},
                         runs * len(trained) if model in models.BUILTIN else 1))
    return pd.DataFrame([{"kind": kind, "model": model, "trainings": n, "fused": g, "epochs_each": e, "epochs": n * e,
                          "steps_by_speed": split} for kind, model, n, e, split, g in rows if n])


def epoch_seconds(config: dict, model: str, speed: str, *, runs: int = 1, device=None, data=None, steps: int = 30,
                  warmup: int = 5, eval_samples: int = 0) -> float:
    """Seconds one epoch of `speed` (dense, fixed, or an algorithm) takes per run for `model` with the study's
    recipe here, trained alone or, with `runs` > 1, in a fused group of that many (sparsenet.fused): `steps`
    timed training steps after `warmup`, scaled to the epoch, plus one evaluation of the test split, divided
    among the runs. `data` (train.load_data's) saves loading the dataset again. `eval_samples` > 0 times the
    evaluation of the test split's first samples only, scaled to the split (a quick estimate)."""
    from sparsenet import train as train_mod
    from sparsenet.data import Split
    from sparsenet.execution import resolve_device
    from sparsenet.fused import FusedRuns
    from sparsenet.masks import random_for_model

    density = 1.0 if speed == "dense" else min(config["densities"])
    cfg = settings(config, model, "imp" if speed == "fixed" else speed, density).replace(algorithm=speed)
    dev = resolve_device(device or config.get("device"))
    data = data or train_mod.load_data(cfg, dev, config.get("data_root"))
    with tempfile.TemporaryDirectory() as tmp:
        members = []
        for seed in range(runs):
            mask = None
            if speed == "fixed":  # any mask of the density costs the same under dense masked compute
                mask = random_for_model(model, cfg.data.dataset, density, cfg.algorithm.distribution,
                                        cfg.algorithm.dense_layers, seed=seed)
            members.append(train_mod.Run(cfg.replace(seed=seed), Path(tmp) / f"r{seed}", dev, data, mask=mask,
                                         sparse_kernels=runs == 1))
        unit = members[0] if runs == 1 else FusedRuns(members)
        seconds = time_steps(unit, steps, warmup)
        test = members[0].test_split
        n = eval_samples or len(test)
        timed = Split(test.images[:n], test.labels[:n])
        start = time.perf_counter()
        unit.evaluate(timed)
        evaluation = (time.perf_counter() - start) * len(test) / len(timed)
    return (seconds * unit.steps_per_epoch + evaluation) / runs


def time_steps(unit, steps: int, warmup: int) -> float:
    """Mean seconds per training step of `unit` (a run, or a fused group of runs: each its own step), after
    `warmup` steps."""
    batches = unit.begin_epoch(0)
    for i in range(warmup + steps):
        if i == warmup:
            unit.platform.synchronize()
            start = time.perf_counter()
        try:
            batch = next(batches)
        except StopIteration:  # a small split: start another pass
            batches = unit.begin_epoch(1)
            batch = next(batches)
        unit.train_step(0, i % unit.steps_per_epoch, batch)  # as the first epoch: its learning rates
    unit.platform.synchronize()
    return (time.perf_counter() - start) / steps


def plan(config: dict, *, measure: bool = False, device=None, steps: int = 30, eval_samples: int = 0) -> pd.DataFrame:
    """The trainings table, with device hours per row where `measure`: epoch times measured here, per run of a
    fused group of each row's size (a single run where it is 1); `steps` and `eval_samples` as epoch_seconds'."""
    frame = trainings(config)
    if measure:
        from sparsenet.execution import resolve_device
        from sparsenet.train import load_data

        dev, times = resolve_device(device or config.get("device")), {}
        for model in config["models"]:
            data = load_data(settings(config, model, "dense"), dev, config.get("data_root"))  # once per model
            rows = frame[frame["model"] == model]
            kinds = {(s, g) for split, g in zip(rows["steps_by_speed"], rows["fused"]) for s in split}
            for speed, runs in sorted(kinds):
                times[model, speed, runs] = epoch_seconds(config, model, speed, runs=runs, device=str(dev), data=data,
                                                          steps=steps, eval_samples=eval_samples)
        frame["hours"] = [
            row.trainings * sum(e * times[row.model, s, row.fused] for s, e in row.steps_by_speed.items()) / 3600
            for row in frame.itertuples()]
    frame["steps_by_speed"] = frame["steps_by_speed"].map(
        lambda split: ", ".join(f"{e} {s}" for s, e in split.items()))
    return frame


def job_counts(config: dict) -> Counter:
    """Training jobs per workflow rule, as `snakemake -n` lists them (the tests hold the two together)."""
    counts: Counter = Counter()
    groups = Counter(g.model for g in chain_groups(config))
    for row in trainings(config).itertuples():
        if row.kind == "imp_round":  # a round of a group of chains is one job; the last has rules of its own
            rounds = row.trainings // len(config["seeds"])
            counts["imp_round"] += (rounds - 1) * groups[row.model]
            counts["imp_last_round"] += groups[row.model]
    counts["train"] = len(train_groups(config))  # rules train_<label>_<i>, one job each
    counts["retrain"] = len(retrain_groups(config))  # rules retrain_<label>_<i>
    # the groups' rules (train_<label>_<i>, imp_round_<i>, imp_last_round_<i>) counted by kind
    return counts
