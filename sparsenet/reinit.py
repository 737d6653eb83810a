"""Reset a trained run's weights by a variant, keeping (or, for the control, shuffling) its final mask (E1).

Variants, after Zhou et al. 2019:
- ``rewind``: the run's own initial weights (init.safetensors: for imp, the rewind weights);
- ``reinit``: a fresh initialisation from another seed;
- ``signed_constant``: +-sigma of each layer's initial weights, with the signs of the run's initial weights;
- ``shuffle``: the run's own initial weights under a mask shuffled within each layer (same per-layer density,
  structure destroyed: the control that makes the claim falsifiable).
"""
from __future__ import annotations

from pathlib import Path

import torch

from sparsenet import data as data_mod
from sparsenet import models
from sparsenet.checkpoint import load_weights
from sparsenet.config import RunConfig
from sparsenet.masks import Mask
from sparsenet.train import run_config, train

VARIANTS = ("rewind", "reinit", "signed_constant", "shuffle")
RESEED = 10_000  # reinit draws its weights with seed + RESEED: never a seed the study trains


def initial_weights(cfg: RunConfig, seed: int) -> dict[str, torch.Tensor]:
    """The weights a fresh run of `cfg` with `seed` starts from (the trainer seeds the same way)."""
    torch.manual_seed(seed)
    dataset = cfg.data.dataset
    model = models.build(cfg.model.model, data_mod.INPUT_SHAPE[dataset], data_mod.NUM_CLASSES[dataset])
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def reset(cfg: RunConfig, own: dict[str, torch.Tensor], mask: Mask, variant: str
          ) -> tuple[dict[str, torch.Tensor], Mask]:
    """(starting weights, mask) for retraining a run of `cfg` that started from `own` and ended with `mask`."""
    if variant not in VARIANTS:
        raise ValueError(f"variant: must be one of {', '.join(VARIANTS)}; got {variant!r}")
    if variant == "reinit":
        return initial_weights(cfg, cfg.seed + RESEED), mask
    if variant == "signed_constant":
        weights = dict(own)
        for name in mask.layers:
            weights[name] = torch.sign(own[name]) * own[name].std()
        return weights, mask
    if variant == "shuffle":
        return own, mask.shuffled(torch.Generator().manual_seed(cfg.seed + RESEED))
    return own, mask


def retrain(run: str | Path, variant: str, out: str | Path, *, data_root=None, device=None) -> dict:
    """Retrain run folder `run` under its final mask, reset by `variant`, with the run's own recipe."""
    run = Path(run)
    source = run_config(run)
    mask = Mask.load(run / "mask.safetensors")
    weights, mask = reset(source, load_weights(run / "init.safetensors"), mask, variant)
    cfg = source.replace(algorithm="fixed", density=round(mask.density(exclude=source.algorithm.dense_layers), 6))
    return train(cfg, out, data_root=data_root, device=device, init_weights=weights, mask=mask,
                 extra={"variant": variant, "source_algorithm": source.algorithm.algorithm,
                        "source_run": str(run)})
