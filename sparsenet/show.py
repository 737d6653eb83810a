"""A run's results without opening Python: `sparsenet show RUN` and `sparsenet compare RUN RUN`."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from sparsenet.files import read_parquet
from sparsenet.masks import Mask
from sparsenet.record import RunFolder, RunRecord

HISTORY = ["epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc", "density", "train_s"]


def _results(record: RunRecord) -> dict:
    keys = ("status", "test_acc", "test_loss", "val_acc", "density", "epochs_run", "wall_s", "device", "git_commit")
    return {k: getattr(record, k) for k in keys}


def show(run: str | Path) -> str:
    folder = RunFolder(run)
    record = folder.record()
    settings = pd.DataFrame(list(record.run_config().flat().items()), columns=["setting", "value"])
    results = pd.DataFrame(list(_results(record).items()), columns=["result", "value"])
    layers = pd.DataFrame(Mask.load(folder.mask).per_layer()).drop(columns="shape")
    history = read_parquet(folder.history)[HISTORY].astype({"epoch": str})  # not 2.0000
    parts = [f"# {run}", results.to_markdown(index=False), settings.to_markdown(index=False),
             "## density per layer", layers.to_markdown(index=False, floatfmt=".4f"),
             "## history", history.to_markdown(index=False, floatfmt=".4f")]
    return "\n\n".join(parts) + "\n"


def compare(a: str | Path, b: str | Path) -> str:
    folder_a, folder_b = RunFolder(a), RunFolder(b)
    ra, rb = folder_a.record(), folder_b.record()
    sa, sb = ra.run_config().flat(), rb.run_config().flat()
    keys = [*sa, *(k for k in sb if k not in sa)]  # an algorithm's own settings: "-" in a run of another
    differ = pd.DataFrame([(k, sa.get(k, "-"), sb.get(k, "-")) for k in keys if sa.get(k, "-") != sb.get(k, "-")],
                          columns=["setting", "A", "B"])
    results = pd.DataFrame([(k, v, _results(rb)[k]) for k, v in _results(ra).items()], columns=["result", "A", "B"])
    ma, mb = Mask.load(folder_a.mask), Mask.load(folder_b.mask)
    parts = [f"# A: {a}\n# B: {b}", "## settings that differ",
             differ.to_markdown(index=False) if len(differ) else "(none)", results.to_markdown(index=False)]
    try:
        overlap = pd.DataFrame(ma.per_layer_overlap(mb)).rename(columns={"overlap": "overlap (of A's kept)"})
        parts += [f"## masks: overlap {ma.overlap(mb):.4f} of A's kept weights, IoU {ma.iou(mb):.4f}",
                  overlap.to_markdown(index=False, floatfmt=".4f")]
    except ValueError:  # other models: the masks cover other layers
        parts.append("## masks: different layers or shapes, not compared")
    return "\n\n".join(parts) + "\n"
