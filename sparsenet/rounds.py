"""Lottery-ticket rounds: each round trains from the rewind weights under the last round's mask, then prunes.

Round 0 trains dense; the rewind weights are its initial weights, or with `rewind_epoch` k its weights after
epoch k (rewind.safetensors). Each later round starts from the previous round's init.safetensors (the dense
weights it started from, so the rewind weights), under the previous round's next mask. After late rewinding
a round trains epochs k+1..T only, with data order and learning-rate schedule (warm-up included) continuing
from step k, as open_lth's lottery/runner.py trains each level from `train_start_step` (training/train.py).
Every round but the last writes next_mask.safetensors, the mask of the next density of the schedule. A round
is an ordinary run folder, so the workflow can make each round a job.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

from sparsenet import fused
from sparsenet.algorithms import imp
from sparsenet.checkpoint import load_weights
from sparsenet.config import ConfigError, RunConfig
from sparsenet.files import atomic_path
from sparsenet.masks import Mask
from sparsenet.record import RunFolder, RunRecord
from sparsenet.train import train


def _round_start(cfg: RunConfig, prev: str | Path | None) -> tuple[RunConfig, dict]:
    """The round after the round in folder `prev` (round 0 if None): its settings at its mask's density, and how
    it trains (`train`'s keyword arguments: rewind weights, mask, first epoch, the rewind point to save)."""
    if prev is None:
        if cfg.algorithm.density != 1.0:
            raise ConfigError(f"density: round 0 of imp trains dense (density 1.0), got {cfg.algorithm.density}")
        return cfg, dict(save_weights_at_epoch=cfg.algorithm.rewind_epoch, extra={"imp_round": 0})
    prev = RunFolder(prev)
    mask = Mask.load(prev.next_mask)
    rewind = prev.rewind if prev.rewind.exists() else prev.init
    prev_round = prev.record().imp_round
    k = cfg.algorithm.rewind_epoch
    return (cfg.replace(density=round(mask.density(exclude=cfg.algorithm.dense_layers), 6)),
            dict(init_weights=load_weights(rewind), mask=mask, first_epoch=k,
                 extra={"imp_round": prev_round + 1, "first_epoch": k}))


def _prune_for_next(cfg: RunConfig, out: RunFolder, next_density: float | None) -> None:
    if next_density is not None and not out.next_mask.exists():
        final = load_weights(out.final)
        imp.prune(final, Mask.load(out.mask), next_density, cfg.algorithm).save(out.next_mask)


def run_round(cfg: RunConfig, out: str | Path, *, prev: str | Path | None, next_density: float | None,
              data_root=None, device=None, code: str | None = None) -> RunRecord:
    """Train one round into `out` (after the round in folder `prev`, or round 0 if None); prune for the next."""
    cfg, how = _round_start(cfg, prev)
    record = train(cfg, out, data_root=data_root, device=device, code=code, **how)
    _prune_for_next(cfg, RunFolder(out), next_density)
    return record


def run_rounds(cfgs: list[RunConfig], outs: list[str | Path], *, prevs: list[str | Path | None],
               next_density: float | None, data_root=None, device=None, code: str | None = None) -> list[RunRecord]:
    """The same round of several chains (seeds) at once, trained as one fused model (sparsenet.fused); each
    folder of `outs` ends as `run_round` leaves it."""
    starts = [_round_start(c, p) for c, p in zip(cfgs, prevs, strict=True)]
    how = [h for _, h in starts]
    records = fused.train_fused([c for c, _ in starts], outs, data_root=data_root, device=device, code=code,
                                masks=[h.get("mask") for h in how], init_weights=[h.get("init_weights") for h in how],
                                extras=[h["extra"] for h in how], first_epoch=how[0].get("first_epoch", 0),
                                save_weights_at_epoch=how[0].get("save_weights_at_epoch", 0))
    for (cfg, _), out in zip(starts, outs):
        _prune_for_next(cfg, RunFolder(out), next_density)
    return records


def run_chain(cfg: RunConfig, out: str | Path, *, data_root=None, device=None,
              code: str | None = None) -> RunRecord:
    """All rounds down to cfg's density in out/rounds/rNN; the last round's files become the run in `out`."""
    out = Path(out)
    densities = imp.schedule([cfg.algorithm.density], cfg.algorithm.imp_rate)
    prev = None
    for r in range(len(densities)):
        folder = out / "rounds" / f"r{r:02d}"
        nxt = densities[r + 1] if r + 1 < len(densities) else None
        record = run_round(cfg.replace(density=1.0) if r == 0 else cfg, folder, prev=prev, next_density=nxt,
                           data_root=data_root, device=device, code=code)
        print(f"imp round {r}: density {record.density:.4f} test_acc {record.test_acc:.4f}", file=sys.stderr)
        prev = folder
    for name in RunFolder.FILES:  # run.json last: it marks the run complete
        with atomic_path(out / name) as tmp:
            shutil.copyfile(prev / name, tmp)
    return record
