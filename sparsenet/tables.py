"""Tidy Parquet tables, one row per measurement, with fixed pyarrow schemas (README.md documents them).

Every table carries the run keys (dataset, model, algorithm, density, seed, freeze_epoch) and the provenance
of the run (git_commit, code_hash, device, run folder). Per-run results are gathered from run folders.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from sparsenet import algorithms
from sparsenet.files import atomic_path, read_parquet
from sparsenet.record import RunFolder, RunRecord

KEYS = [("dataset", pa.string()), ("model", pa.string()), ("algorithm", pa.string()), ("density", pa.float64()),
        ("seed", pa.int64()), ("freeze_epoch", pa.int64())]
PROVENANCE = [("git_commit", pa.string()), ("code_hash", pa.string()), ("device", pa.string()), ("run", pa.string())]


def _schema(*fields) -> pa.Schema:
    return pa.schema(KEYS + list(fields) + PROVENANCE)


# measured times: they differ between two runs of the same study, everything else must not
TIMING = ("wall_s", "epoch_s_before_freeze", "epoch_s_after_freeze", "train_s", "train_s_vs_unfrozen")

SCHEMAS = {
    "runs": _schema(("status", pa.string()), ("test_acc", pa.float64()), ("test_loss", pa.float64()),
                    ("val_acc", pa.float64()), ("final_density", pa.float64()), ("epochs_run", pa.int64()),
                    ("weight_grad_macs", pa.float64()), ("wall_s", pa.float64())),
    "reinit": _schema(("variant", pa.string()), ("status", pa.string()), ("test_acc", pa.float64()),
                      ("test_loss", pa.float64()), ("final_density", pa.float64()), ("wall_s", pa.float64()),
                      ("copy_of_source", pa.bool_())),
    "prune": _schema(("method", pa.string()), ("layer", pa.string()), ("draw", pa.int64()), ("q", pa.float64()),
                     ("pruned_density", pa.float64()), ("bn_recomputed", pa.bool_()), ("test_acc", pa.float64()),
                     ("test_loss", pa.float64())),
    "emergence": _schema(("epoch", pa.float64()), ("step", pa.int64()), ("layer", pa.string()),
                         ("snapshot_density", pa.float64()), ("overlap_final", pa.float64()),
                         ("iou_final", pa.float64()), ("hamming_final", pa.float64()),
                         ("hamming_chance", pa.float64()), ("kappa_final", pa.float64()),
                         ("overlap_prev", pa.float64()), ("iou_prev", pa.float64()), ("hamming_prev", pa.float64()),
                         ("lr", pa.float64())),
    "freeze": _schema(("test_acc", pa.float64()), ("weight_grad_macs", pa.float64()),
                      ("grad_macs_vs_unfrozen", pa.float64()), ("epoch_s_before_freeze", pa.float64()),
                      ("epoch_s_after_freeze", pa.float64()), ("train_s", pa.float64()),
                      ("train_s_vs_unfrozen", pa.float64())),
    # per layer of a final mask, and 'all' over its sparse layers; the wiring columns are E6
    "layers": _schema(("layer", pa.string()), ("size", pa.int64()), ("kept", pa.int64()),
                      ("layer_density", pa.float64()), ("units", pa.int64()), ("dead_units", pa.int64()),
                      ("effective_kept", pa.int64()), ("effective_density", pa.float64()), ("fanin_cv", pa.float64())),
    # E5: one row per pair of runs (same model and density) and layer ('all' for the whole mask)
    "similarity": pa.schema([("dataset", pa.string()), ("model", pa.string()), ("density", pa.float64()),
                             ("algorithm_a", pa.string()), ("seed_a", pa.int64()), ("algorithm_b", pa.string()),
                             ("seed_b", pa.int64()), ("layer", pa.string()), ("overlap", pa.float64()),
                             ("iou", pa.float64()), ("chance_overlap", pa.float64()), ("chance_iou", pa.float64()),
                             ("overlap_corrected", pa.float64()), ("iou_corrected", pa.float64()),
                             ("run_a", pa.string()), ("run_b", pa.string())]),
}


def run_keys(record: RunRecord, run: Path) -> dict:
    """Keys and provenance of a run, from its record (a retraining is keyed by its source run)."""
    cfg = record.config
    source = RunFolder(record.source_run).record() if record.source_run else record
    hp = source.config["algorithm"]
    return {"dataset": cfg["data"]["dataset"], "model": cfg["model"]["model"],
            "algorithm": algorithms.label(hp["algorithm"], hp["freeze_epoch"]), "density": hp["density"],
            "seed": cfg["seed"], "freeze_epoch": hp["freeze_epoch"] or None,
            "git_commit": record.git_commit, "code_hash": record.code_hash, "device": record.device,
            "run": str(run)}


def runs_table(runs: list[Path]) -> pd.DataFrame:
    rows = []
    for run in runs:
        r = RunFolder(run).record()
        rows.append({**run_keys(r, run), "status": r.status, "test_acc": r.test_acc, "test_loss": r.test_loss,
                     "val_acc": r.val_acc, "final_density": r.density, "epochs_run": r.epochs_run,
                     "weight_grad_macs": float(r.weight_grad_macs), "wall_s": r.wall_s})
    return pd.DataFrame(rows)


def reinit_table(retrains: list[Path]) -> pd.DataFrame:
    rows = []
    for run in retrains:
        r = RunFolder(run).record()
        rows.append({**run_keys(r, run), "variant": r.variant, "status": r.status, "test_acc": r.test_acc,
                     "test_loss": r.test_loss, "final_density": r.density, "wall_s": r.wall_s,
                     "copy_of_source": r.copy_of_source})
    return pd.DataFrame(rows)


def _per_run(files: list[Path], rename: dict | None = None) -> pd.DataFrame:
    """Concatenate per-run Parquet files (each in its run folder) with the keys of their run."""
    frames = []
    for f in files:
        frame = read_parquet(f).rename(columns=rename or {})
        for k, v in run_keys(RunFolder(f.parent).record(), f.parent).items():
            frame[k] = v
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def freeze_table(runs: pd.DataFrame) -> pd.DataFrame:
    """E4: each <alg>_freeze run and the <alg> runs it is compared with, with weight-gradient work and measured
    training time, also relative to <alg> at the same density and seed (the `_vs_unfrozen` columns). Epoch
    times are the training loop's (history's train_s), before and after the freeze."""
    frozen = runs["algorithm"].str.endswith(algorithms.FREEZE)
    unfrozen = runs.loc[frozen, "algorithm"].str.removesuffix(algorithms.FREEZE)
    sub = runs[frozen | runs["algorithm"].isin(unfrozen)].copy()
    times = [_epoch_times(Path(run), k) for run, k in zip(sub["run"], sub["freeze_epoch"])]
    for column in ("epoch_s_before_freeze", "epoch_s_after_freeze", "train_s"):
        sub[column] = [t[column] for t in times]
    keys = ["dataset", "model", "algorithm", "density", "seed"]
    reference = sub.set_index(keys)
    base = sub.assign(algorithm=sub["algorithm"].str.removesuffix(algorithms.FREEZE))
    for column, ratio in (("weight_grad_macs", "grad_macs_vs_unfrozen"), ("train_s", "train_s_vs_unfrozen")):
        ref = base.set_index(keys).index.map(lambda k, c=column: reference[c].get(k, float("nan")))
        sub[ratio] = sub[column].to_numpy() / ref.to_numpy(dtype=float)
    return sub


def _epoch_times(run: Path, freeze_epoch) -> dict[str, float]:
    """Mean training-loop seconds per epoch up to the freeze (every epoch of a run never frozen) and after it."""
    history = read_parquet(RunFolder(run).history)
    before = history["epoch"] <= (freeze_epoch if pd.notna(freeze_epoch) else len(history))
    return {"epoch_s_before_freeze": history.loc[before, "train_s"].mean(),
            "epoch_s_after_freeze": history.loc[~before, "train_s"].mean(), "train_s": history["train_s"].sum()}


def write(name: str, frame: pd.DataFrame, out_dir: str | Path) -> Path:
    """Write `frame` under the fixed schema of table `name` (columns missing from the frame are an error)."""
    schema = SCHEMAS[name]
    missing = [f.name for f in schema if f.name not in frame.columns]
    if missing and len(frame):
        raise ValueError(f"table {name}: columns {missing} missing")
    table = pa.Table.from_pandas(frame.reindex(columns=schema.names), schema=schema, preserve_index=False) \
        if len(frame) else schema.empty_table()
    path = Path(out_dir) / f"{name}.parquet"
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return path


def build_all(out_dir: str | Path, *, runs: list[Path], retrains: list[Path], sweeps: list[Path],
              emergence: list[Path], layers: list[Path]) -> dict[str, Path]:
    runs_frame = runs_table(runs)
    frames = {
        "runs": runs_frame,
        "reinit": reinit_table(retrains),
        "prune": _per_run(sweeps, {"density": "pruned_density"}),
        "emergence": _per_run(emergence, {"density": "snapshot_density"}),
        "freeze": freeze_table(runs_frame) if len(runs_frame) else runs_frame,
        "layers": _per_run(layers, {"density": "layer_density"}),
    }
    return {name: write(name, frame, out_dir) for name, frame in frames.items()}
