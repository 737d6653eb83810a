"""Reset a trained run's weights by a variant (sparsenet.variants), keeping (or, for the control, shuffling) its
final mask, and retrain it (E1). A retraining uses the run's recipe, including an imp round's start at its rewind
epoch; `rewind` of a run that trained its final mask from its own initial weights replays it (replays_its_run).
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from sparsenet import algorithms, datasets, models
from sparsenet.algorithms.fixed import Fixed
from sparsenet.checkpoint import load_weights
from sparsenet.config import RunConfig
from sparsenet.files import atomic_path
from sparsenet.masks import Mask
from sparsenet.record import RunFolder, RunRecord
from sparsenet.train import train
from sparsenet.variants import VARIANTS

RESEED = 10_000  # reinit draws its weights with seed + RESEED: never a seed the study trains


def initial_weights(cfg: RunConfig, seed: int) -> dict[str, torch.Tensor]:
    """The weights a fresh run of `cfg` with `seed` starts from (the trainer seeds the same way)."""
    torch.manual_seed(seed)
    spec = datasets.spec(cfg.data.dataset)
    model = models.build(cfg.model.model, spec.input_shape, spec.num_classes, cfg.model.init, cfg.model.bn_init)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def reset(cfg: RunConfig, own: dict[str, torch.Tensor], mask: Mask, variant: str
          ) -> tuple[dict[str, torch.Tensor], Mask]:
    """(starting weights, mask) for retraining a run of `cfg` that started from `own` and ended with `mask`."""
    if variant not in VARIANTS:
        raise ValueError(f"variant: must be one of {', '.join(VARIANTS)}; got {variant!r}")
    if variant == "reinit":
        return initial_weights(cfg, cfg.seed + RESEED), mask
    if variant == "signed_constant":
        late = cfg.algorithm.algorithm == "imp" and cfg.algorithm.rewind_epoch > 0
        initial = initial_weights(cfg, cfg.seed) if late else own  # `own` holds the rewind weights there
        weights = dict(own)
        for name in mask.layers:
            weights[name] = torch.sign(initial[name]) * initial[name].std()
        return weights, mask
    generator = torch.Generator().manual_seed(cfg.seed + RESEED)
    if variant == "reshuffle":
        weights = dict(own)
        for name, m in mask.layers.items():
            kept = m.flatten().cpu().nonzero().flatten()
            values = own[name].flatten().clone()
            values[kept] = values[kept[torch.randperm(len(kept), generator=generator)]]
            weights[name] = values.view(own[name].shape)
        return weights, mask
    if variant == "shuffle_fanin":
        return own, mask.shuffled_within_units(generator)
    if variant == "shuffle":
        return own, mask.shuffled(generator)
    return own, mask


def retrain(run: str | Path, variant: str, out: str | Path, *, data_root=None, device=None,
            code: str | None = None) -> RunRecord:
    """Retrain run folder `run` under its final mask, reset by `variant`, with the run's own recipe."""
    return retrain_variants([run], [variant], [[out]], data_root=data_root, device=device, code=code)[0][0]


@dataclass
class _Retraining:
    """One retraining to train: its settings, folder, starting weights and mask, run.json extras (its first epoch
    among them)."""

    cfg: RunConfig
    out: Path
    weights: dict
    mask: Mask
    extra: dict

    @property
    def first_epoch(self) -> int:
        return self.extra["first_epoch"]

    def fusable(self) -> tuple:
        """What the retrainings of one fused model share (sparsenet.fused): all but seed, density and mask."""
        return (self.first_epoch, self.cfg.model, self.cfg.data, self.cfg.train, self.cfg.execution)


def retrain_variants(runs: list[str | Path], variants: list[str], outs: list[list[str | Path]], *, data_root=None,
                     device=None, code: str | None = None) -> list[list[RunRecord]]:
    """Retrain each run folder of `runs` once per variant, into `outs[i][j]` for run i and variant j; each with
    its run's recipe. Retrainings that share a recipe and first epoch (the variants of a run, the runs of one
    algorithm) train as one fused group (sparsenet.fused) where the model allows; a rewind that replays its run
    is recorded, not trained."""
    records, todo = {}, {}
    for i, (run, run_outs) in enumerate(zip(map(RunFolder, runs), outs, strict=True)):
        record = run.record()
        source = record.run_config()
        final_mask = Mask.load(run.mask)
        cfg = source.replace(algorithm=Fixed.name, freeze_epoch=0,
                             density=round(final_mask.density(exclude=source.algorithm.dense_layers), 6))
        own = load_weights(run.init)
        for j, (variant, out) in enumerate(zip(variants, run_outs, strict=True)):
            extra = {"variant": variant, "source_algorithm": algorithms.label(source.algorithm.algorithm,
                                                                               source.algorithm.freeze_epoch),
                     "source_run": str(run.path), "first_epoch": record.first_epoch}
            if variant == "rewind" and replays_its_run(source.algorithm.algorithm):
                records[i, j] = _record_source(run, RunFolder(out), record.replace(**extra, config=cfg.to_dict(),
                                                                                   copy_of_source=True))
            else:
                todo[i, j] = _Retraining(cfg, Path(out), *reset(source, own, final_mask, variant), extra)
    groups: dict[tuple, list] = {}
    for key, job in todo.items():
        groups.setdefault(job.fusable(), []).append(key)
    for keys in groups.values():
        jobs = [todo[k] for k in keys]
        if len(jobs) > 1 and jobs[0].cfg.model.model in models.BUILTIN:
            from sparsenet.fused import train_fused

            done = train_fused([j.cfg for j in jobs], [j.out for j in jobs], data_root=data_root, device=device,
                               masks=[j.mask for j in jobs], init_weights=[j.weights for j in jobs],
                               extras=[j.extra for j in jobs], first_epoch=jobs[0].first_epoch, code=code)
            records.update(zip(keys, done))
        for k, j in zip(keys, jobs):
            if k not in records:
                records[k] = train(j.cfg, j.out, data_root=data_root, device=device, init_weights=j.weights,
                                   mask=j.mask, first_epoch=j.first_epoch, extra=j.extra, code=code)
    return [[records[i, j] for j in range(len(variants))] for i in range(len(runs))]


def replays_its_run(algorithm: str) -> bool:
    """Whether a run of `algorithm` trained its final mask from its initial weights, as a rewind retraining would:
    its mask never changes while it trains (imp's last round, static, pruning at initialisation)."""
    return algorithm != "dense" and not algorithms.get(algorithm).mask_changes


def _record_source(run: RunFolder, out: RunFolder, record: RunRecord) -> RunRecord:
    """The trained run's files as this retraining's, and `record` (last: it marks the run complete)."""
    out.path.mkdir(parents=True, exist_ok=True)
    for name in RunFolder.FILES[:-1]:
        with atomic_path(out.path / name) as tmp:
            shutil.copyfile(run.path / name, tmp)
    record.write(out.record_path)
    return record
