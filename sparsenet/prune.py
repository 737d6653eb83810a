"""Further pruning of a trained sparse run, without retraining (E2): how robust is its structure?

For each fraction q, remove q of the run's remaining weights by magnitude (globally across layers, or layer by
layer), or at random as the control (several draws), and evaluate. Layers the run kept dense stay dense.
`magnitude_per_layer` prunes one sparse layer at a time (q of that layer's kept weights, the others untouched):
which layer's structure is fragile.
With `recompute_bn`, batch-norm statistics are re-estimated on training batches before each evaluation.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
from torch import nn

from sparsenet import data as data_mod
from sparsenet import datasets, models, sparse
from sparsenet.algorithms.fixed import Fixed
from sparsenet.algorithms.imp import Hparams as ImpHparams
from sparsenet.algorithms.imp import prune
from sparsenet.checkpoint import load_weights
from sparsenet.config import ConfigError
from sparsenet.execution import Platform, resolve_device
from sparsenet.masks import Mask, topk_mask
from sparsenet.record import RunFolder
from sparsenet.train import evaluate

METHODS = ("magnitude_global", "magnitude_layerwise", "random", "magnitude_per_layer")


def random_prune(mask: Mask, q: float, dense_layers, generator: torch.Generator) -> Mask:
    """Remove a fraction q of each sparse layer's kept weights, chosen at random."""
    out = {}
    for name, m in mask.layers.items():
        if name in dense_layers:
            out[name] = m
            continue
        kept = int(m.sum())
        score = torch.where(m.cpu(), torch.rand(m.shape, generator=generator), torch.full(m.shape, -1.0))
        out[name] = topk_mask(score, kept - round(q * kept)).to(m.device)
    return Mask(out)


def prune_one_layer(mask: Mask, weights: dict[str, torch.Tensor], layer: str, q: float) -> Mask:
    """Remove the fraction q of `layer`'s kept weights with the smallest magnitude; the other layers as they are."""
    m = mask.layers[layer]
    kept = int(m.sum())
    score = torch.where(m, weights[layer].abs(), torch.full_like(weights[layer], -1.0))
    return Mask({**mask.layers, layer: topk_mask(score, kept - round(q * kept))})


@torch.no_grad()
def recompute_batch_norm(model: nn.Module, batcher: data_mod.Batcher, split: data_mod.Split, batches: int = 20) -> None:
    """Re-estimate batch-norm running statistics for the pruned weights on training batches."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches seen
    model.train()
    for i, (x, _) in enumerate(batcher.epoch(split, torch.Generator().manual_seed(0))):
        if i == batches:
            break
        model(x)
    model.eval()


def sweep(run: str | Path, fractions: list[float], *, methods=METHODS, draws: int = 3, recompute_bn: bool = False,
          data_root=None, device=None) -> pd.DataFrame:
    """One row per (method, layer, draw, q): the density reached and the test accuracy and loss (layer 'all'
    unless the method prunes one layer at a time)."""
    for q in fractions:
        if not 0 <= q < 1:
            raise ConfigError(f"prune_sweep.fractions: each must lie in [0, 1), got {q}")
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise ConfigError(f"prune_sweep.methods: {sorted(unknown)} unknown; allowed: {', '.join(METHODS)}")
    run = RunFolder(run)
    cfg = run.config()
    platform = Platform(resolve_device(device), cfg.execution)
    dev = platform.device
    train_split, test_split, _ = data_mod.load(cfg.data, dev, data_root)
    batcher = data_mod.Batcher(cfg.data, dev, data_root)
    spec = datasets.spec(cfg.data.dataset, data_root)
    model = models.build(cfg.model.model, spec.input_shape, spec.num_classes).to(dev)
    platform.prepare_model(model)
    final = load_weights(run.final, dev)
    mask = Mask.load(run.mask, dev)
    dense_layers = cfg.algorithm.dense_layers
    base_density = mask.density(exclude=dense_layers)
    sparse_layers = [n for n in mask.layers if n not in dense_layers]
    rows, evaluated = [], {}  # the weights never change: an evaluation depends on the mask alone
    # normalised once for every mask, one sample per column: the layout a routed first layer reads without a
    # transposed copy, and a dense one as fast
    layout = platform.batch_buffer(model, dict.fromkeys(models.prunable(model)))
    batches = list(batcher.ordered(test_split, platform.hp.eval_batch_size, layout))
    for method in methods:
        for draw in range(draws if method == "random" else 1):
            generator = torch.Generator().manual_seed(cfg.seed * 1000 + draw)
            for layer in sparse_layers if method == "magnitude_per_layer" else ["all"]:
                for q in fractions:
                    if method == "random":
                        pruned = random_prune(mask, q, dense_layers, generator)
                    elif method == "magnitude_per_layer":
                        pruned = prune_one_layer(mask, final, layer, q)
                    else:
                        hp = ImpHparams(algorithm="imp", density=cfg.algorithm.density,
                                         dense_layers=dense_layers, imp_scope=method.split("_")[1])
                        pruned = prune(final, mask, base_density * (1 - q), hp)
                    key = tuple((n, t.numpy().tobytes()) for n, t in pruned.packed().items())
                    if key not in evaluated:  # every method's q = 0 gives the run's own mask, for one
                        model.load_state_dict(final)
                        fixed = Fixed(cfg.algorithm, models.prunable(model), 1, mask=pruned)  # applies it
                        platform.route(model, pruned, limits=sparse.EVAL_LIMITS)  # CSR where it is faster
                        if recompute_bn:
                            recompute_batch_norm(model, batcher, train_split)
                        evaluated[key] = evaluate(model, fixed, batcher, test_split, platform, batches=batches)
                    loss, acc = evaluated[key]
                    rows.append({"method": method, "layer": layer, "draw": draw, "q": q,
                                 "density": pruned.density(exclude=dense_layers), "bn_recomputed": recompute_bn,
                                 "test_acc": acc, "test_loss": loss})
    return pd.DataFrame(rows)
