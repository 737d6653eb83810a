"""A run's folder and its record, run.json: one typed definition, written by the trainer, read by every stage.

run.json is RunRecord's fields as flat JSON. `version` counts changes of that layout or of what its settings mean
(3: a frozen run is its algorithm with `freeze_epoch` set, not `<name>_freeze`; 4: the settings hold its
algorithm's own, not every algorithm's). A record of another version
is refused with its version named (records written before the field existed are version 1), so that a result of
older code never reads as current: rerunning the job that wrote it brings it up to date.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sparsenet.files import ResultFileError, read_json, write_json

if TYPE_CHECKING:
    from sparsenet.config import RunConfig

VERSION = 4


@dataclass(frozen=True)
class RunRecord:
    config: dict  # the resolved settings, as RunConfig.to_dict()
    status: str  # "ok", or "diverged" (a non-finite loss ended it)
    test_acc: float
    test_loss: float
    val_acc: float | None  # None without a validation split
    density: float  # of the final mask, over the run's sparse layers
    epochs_run: int
    steps_per_epoch: int  # optimizer steps in an epoch: a snapshot's step places it in the schedule
    weight_grad_macs: float  # multiply-adds its weight gradients cost, all epochs
    wall_s: float
    finished: str  # UTC, ISO 8601
    sparse_layers: list[str]  # the layers that trained through CSR kernels
    git_commit: str | None  # provenance (sparsenet.provenance.describe)
    code_hash: str | None
    versions: dict
    device: str
    host: str
    imp_round: int | None = None  # imp: the round of its chain
    first_epoch: int = 0  # the epoch it started at (imp's rounds after late rewinding, and their retrainings)
    variant: str | None = None  # E1 retrainings: the variant,
    source_algorithm: str | None = None  # the label of the run retrained (<name>_freeze where it froze),
    source_run: str | None = None  # that run's folder,
    copy_of_source: bool = False  # and whether this is that run's own result (rewind that replays it exactly)
    version: int = VERSION

    @classmethod
    def read(cls, path: Path) -> RunRecord:
        data = read_json(path)
        version = data.get("version", 1) if isinstance(data, dict) else None
        if version != VERSION:
            raise ResultFileError(f"{path} is a run record of version {version}, this sparsenet reads version "
                                  f"{VERSION}; rerun the job that wrote it")
        names = {f.name for f in dataclasses.fields(cls)}
        required = {f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING}
        if set(data) - names or required - set(data):
            raise ResultFileError(f"{path} is not a run record of version {VERSION} (unknown fields "
                                  f"{sorted(set(data) - names)}, missing {sorted(required - set(data))}); rerun "
                                  "the job that wrote it")
        return cls(**data)

    @classmethod
    def check_extra(cls, extra: dict) -> None:
        """Fail now, not when the run ends, on what a trainer is asked to record beyond its results."""
        optional = {f.name for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING} - {"version"}
        if set(extra) - optional:
            raise ValueError(f"a run record has no fields {sorted(set(extra) - optional)}; its optional fields: "
                             f"{sorted(optional)}")

    def write(self, path: Path) -> None:
        write_json(path, dataclasses.asdict(self))

    def run_config(self) -> RunConfig:
        from sparsenet.config import RunConfig

        return RunConfig.from_nested(self.config)

    def replace(self, **changes) -> RunRecord:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class RunFolder:
    """The files of one run. While it trains: checkpoint.pt and its snapshots in checkpoint_snapshots/. Finished:
    FILES, run.json last (it marks the run complete); imp's rounds add rewind and next_mask."""

    path: Path

    # a finished run's files by role, each named here once; run.json is written last (it marks the run complete)
    FILE = {"init": "init.safetensors", "final": "final.safetensors", "mask": "mask.safetensors",
            "snapshots": "snapshots.safetensors", "history": "history.parquet", "record": "run.json"}
    ROUND_FILE = {"rewind": "rewind.safetensors", "next_mask": "next_mask.safetensors"}  # imp's rounds add these
    FILES = tuple(FILE.values())
    # its analyses (`sparsenet analyse`): E6's wiring of the final mask, E2's prune sweep, E3's emergence
    ANALYSIS_FILE = {"layers": "layers.parquet", "prune": "prune_sweep.parquet", "emergence": "emergence.parquet"}

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path))

    record_path = property(lambda self: self.path / self.FILE["record"])
    init = property(lambda self: self.path / self.FILE["init"])  # the weights it started from
    final = property(lambda self: self.path / self.FILE["final"])  # its weights at the end
    mask = property(lambda self: self.path / self.FILE["mask"])  # its final mask
    snapshots = property(lambda self: self.path / self.FILE["snapshots"])  # its masks during training (E3)
    history = property(lambda self: self.path / self.FILE["history"])  # one row per epoch
    layers = property(lambda self: self.path / self.ANALYSIS_FILE["layers"])
    prune_sweep = property(lambda self: self.path / self.ANALYSIS_FILE["prune"])
    emergence = property(lambda self: self.path / self.ANALYSIS_FILE["emergence"])
    checkpoint = property(lambda self: self.path / "checkpoint.pt")
    checkpoint_snapshots = property(lambda self: self.path / "checkpoint_snapshots")
    rewind = property(lambda self: self.path / self.ROUND_FILE["rewind"])  # imp round 0: the weights to rewind to
    next_mask = property(lambda self: self.path / self.ROUND_FILE["next_mask"])  # imp: the next round's mask

    def is_finished(self) -> bool:
        return self.record_path.exists()

    def record(self) -> RunRecord:
        return RunRecord.read(self.record_path)

    def config(self) -> RunConfig:
        return self.record().run_config()
