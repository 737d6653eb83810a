"""When does the structure emerge (E3)? Every snapshot of a run against its final mask and the one before.

Positional measures, for the whole network (layer "all": the sparse layers, as the run's density counts them) and
for each layer:
- overlap_final = |snapshot & final| / |final|: the share of the final structure already in place (recall);
- iou_final = |snapshot & final| / |snapshot | final|;
- hamming_final: the share of all weights on which snapshot and final disagree (Early-Bird tickets' distance,
  You et al. 2020), and hamming_chance, its expected value for random masks with the same per-layer densities
  (d_s(1 - d_f) + d_f(1 - d_s) per layer, weighted by size): at 5% density chance is already under 0.1;
- kappa_final: Cohen's kappa, the agreement 1 - hamming corrected for that chance, (p_o - p_e) / (1 - p_e);
  for one layer with masks of equal size it is (recall - d) / (1 - d). 0: no more alike than chance, 1: equal;
- overlap_prev, iou_prev, hamming_prev: the same against the previous snapshot (how fast the mask still moves).
The functional reading of emergence is E4's: the accuracy of the mask frozen at that epoch. Each row also gives
lr, the learning rate training goes on with after the snapshot (sparsenet.step.lr_at), so that a figure can
mark where the schedule drops it.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from sparsenet.masks import Mask, load_snapshots
from sparsenet.record import RunFolder
from sparsenet.step import lr_at


def agreement(a: Mask, b: Mask) -> dict[str, float]:
    """Hamming distance between two masks of the same layers, its chance value and Cohen's kappa (pooled)."""
    size = a.size()
    differ = chance = 0.0
    for name, m in a.layers.items():
        other = b.layers[name].to(m.device)
        differ += int((m ^ other).sum())
        da, db = float(m.float().mean()), float(other.float().mean())
        chance += m.numel() * (da * (1 - db) + db * (1 - da))
    hamming, chance = differ / size, chance / size
    kappa = (chance - hamming) / chance if chance > 0 else (1.0 if hamming == 0 else 0.0)
    return {"hamming": hamming, "hamming_chance": chance, "kappa": kappa}


def _row(epoch: float, step: int, layer: str, snap: Mask, final: Mask, prev: Mask | None) -> dict:
    to_final = agreement(snap, final)
    return {"epoch": epoch, "step": step, "layer": layer, "density": snap.density(),
            "overlap_final": final.overlap(snap), "iou_final": final.iou(snap),
            "hamming_final": to_final["hamming"], "hamming_chance": to_final["hamming_chance"],
            "kappa_final": to_final["kappa"],
            "overlap_prev": prev.overlap(snap) if prev is not None else None,
            "iou_prev": prev.iou(snap) if prev is not None else None,
            "hamming_prev": agreement(snap, prev)["hamming"] if prev is not None else None}


def emergence(run: str | Path) -> pd.DataFrame:
    run = RunFolder(run)
    snapshots, labels = load_snapshots(run.snapshots)
    final = Mask.load(run.mask)
    record = run.record()
    cfg = record.run_config()
    dense = cfg.algorithm.dense_layers
    rows = []
    prev = None
    for snap, label in zip(snapshots, labels):
        rows.append(_row(label["epoch"], label["step"], "all", snap.without(dense), final.without(dense),
                         prev.without(dense) if prev is not None else None))
        for name in snap.layers:
            layer = {m_name: Mask({name: m.layers[name]}) for m_name, m in (("snap", snap), ("final", final))}
            prev_layer = Mask({name: prev.layers[name]}) if prev is not None else None
            rows.append(_row(label["epoch"], label["step"], name, layer["snap"], layer["final"], prev_layer))
        prev = snap
    frame = pd.DataFrame(rows)
    lr = {label["step"]: lr_at(cfg.train, label["step"], record.steps_per_epoch) for label in labels}  # a snapshot's
    frame["lr"] = frame["step"].map(lr)
    return frame
