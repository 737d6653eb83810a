"""Pruning at initialisation: score every weight once, before training, keep the top scores, train that mask.

What snip, grasp, synflow and magnitude_init share: scores are computed on a copy of the model (its batch-norm
statistics and gradients stay untouched), ranked globally over the sparse layers as the originals do, and the
mask is then fixed for the whole run (the base class's training).

Layer-collapse guard (Tanaka et al. 2020 name the failure: a global ranking can empty a whole layer and
disconnect the network): each sparse layer keeps at least its best-scored weight. This changes nothing unless a
layer would otherwise be emptied, and the total count stays exact.
"""
from __future__ import annotations

import copy

import torch

from sparsenet.algorithms._base import Algorithm
from sparsenet.config import ConfigError
from sparsenet.masks import Mask, topk_mask
from sparsenet.models import prunable


class AtInit(Algorithm):
    """Each subclass defines `scores(mask)`: a score per weight of every prunable layer, under `mask` (None: all)."""

    needs_batch = True  # the trainer passes `scoring_batch` of the run's first epoch

    @classmethod
    def scoring_batch(cls, batches, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The data the scores read, from the run's first epoch of training batches: its first batch."""
        return next(iter(batches))

    def initial_mask(self, generator):
        self.generator = generator  # for scores that draw (GraSP's redrawn scoring weights)
        if self.hp.density == 1:
            return Mask.ones_like(self.weights)
        if self.model is None or (self.needs_batch and self.batch is None):
            raise ConfigError(f"algorithm: {self.hp.algorithm} scores weights at initialisation and needs the model "
                              "and a training batch")
        return self.select()

    def scoring_copy(self) -> tuple[torch.nn.Module, dict[str, torch.nn.Parameter]]:
        """A copy of the model to score on, and its prunable weights."""
        model = copy.deepcopy(self.model)
        model.zero_grad(set_to_none=True)
        return model, prunable(model)

    def counts_total(self, density: float) -> int:
        sparse = [w for n, w in self.weights.items() if n not in self.hp.dense_layers]
        return round(density * sum(w.numel() for w in sparse))

    def select(self, density: float | None = None, mask: Mask | None = None) -> Mask:
        """Global top-k of the scores under `mask` over the sparse layers, with the layer-collapse guard."""
        return global_topk(self.scores(mask), self.counts_total(self.hp.density if density is None else density),
                           self.weights, self.hp.dense_layers)


def global_topk(scores: dict[str, torch.Tensor], k: int, weights: dict[str, torch.Tensor],
                dense_layers=()) -> Mask:
    """Keep the `k` highest scores over the sparse layers, each layer keeping at least its best one."""
    sparse = [n for n in weights if n not in dense_layers]
    best = {n: topk_mask(scores[n], 1) for n in sparse}
    rest = torch.cat([torch.where(best[n], -torch.inf, scores[n].double()).flatten() for n in sparse])
    chosen = topk_mask(rest, k - len(sparse))
    out, offset = {}, 0
    for n in weights:
        if n in sparse:
            size = weights[n].numel()
            out[n] = chosen[offset:offset + size].view(weights[n].shape).to(best[n].device) | best[n]
            offset += size
        else:
            out[n] = torch.ones_like(weights[n], dtype=torch.bool)
    return Mask(out)
