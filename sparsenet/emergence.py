"""When does the structure emerge (E3)? Every snapshot of a run against its final mask and the one before.

overlap_final = |snapshot & final| / |final| (share of the final structure already in place);
overlap_prev = |snapshot & previous| / |previous| (share of the previous structure still kept); IoU of both.
Rows for the whole network (layer "all": the sparse layers, as the run's density counts them) and for each layer.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from sparsenet.masks import Mask, load_snapshots
from sparsenet.train import run_config


def _row(epoch: float, step: int, layer: str, snap: Mask, final: Mask, prev: Mask | None) -> dict:
    return {"epoch": epoch, "step": step, "layer": layer, "density": snap.density(),
            "overlap_final": final.overlap(snap), "iou_final": final.iou(snap),
            "overlap_prev": prev.overlap(snap) if prev is not None else None,
            "iou_prev": prev.iou(snap) if prev is not None else None}


def emergence(run: str | Path) -> pd.DataFrame:
    run = Path(run)
    snapshots, labels = load_snapshots(run / "snapshots.safetensors")
    final = Mask.load(run / "mask.safetensors")
    dense = run_config(run).algorithm.dense_layers
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
    return pd.DataFrame(rows)
