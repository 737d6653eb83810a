"""Sparse momentum, Sparse Networks From Scratch (Dettmers & Zettlemoyer 2019).

Follows TimDettmers/sparse_learning, sparselearning/core.py (Masking, CosineDecay) and funcs.py
(magnitude_prune, momentum_growth, momentum_redistribution), with mnist_cifar/main.py's loop:

- fixed total density from the first step; gradients are dense, so the optimizer's momentum covers absent
  weights too;
- the prune rate decays by cosine per optimizer step to a floor of 0.005 (CosineDecay(prune_rate,
  steps * epochs), eta_min 0.005); after e of E epochs it is 0.005 + (p - 0.005) (1 + cos(pi e / E)) / 2;
- at every epoch end but the last (after the evaluation): a layer denser than 0.8 whose share of the momentum is
  above the mean share prunes at most its own sparsity (adjust_prune_rate); each layer removes
  ceil(rate * kept) of its smallest-magnitude weights; the removed weights are shared among layers in
  proportion to each layer's mean momentum magnitude over its kept weights, a layer getting at most 0.99 of its
  free slots and the excess spread equally over all layers (calc_growth_redistribution); each layer regrows
  where the momentum of its absent weights (the ones just pruned included) is largest;
- a weight pruned and regrown in the same update keeps its value; newly grown weights start at zero.

Deviation: the reference floors each layer's regrowth and corrects the drift in later updates (adjusted_growth);
here the shares are rounded to integers that sum exactly to the removed count, so the density stays exact.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from sparsenet.algorithms import register
from sparsenet.algorithms._base import Algorithm
from sparsenet.config import AlgorithmHparams, check_fraction, setting
from sparsenet.masks import Mask, topk_mask

PRUNE_RATE_FLOOR = 0.005  # CosineDecay's eta_min
DENSE_LAYER = 0.8  # adjust_prune_rate: layers denser than this may prune less


@dataclass(frozen=True)
class Hparams(AlgorithmHparams):
    prune_rate: float = setting(0.5, "fraction of kept weights pruned and regrown at the first update, decaying by "
                                "cosine, in [0, 1)", unit="fraction")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_fraction(self.prune_rate, "prune_rate", low_open=False, high_open=True)


@register
class SNFS(Algorithm):
    hparams = Hparams
    reference = "TimDettmers/sparse_learning: sparselearning/core.py, sparselearning/funcs.py, mnist_cifar/main.py"
    freezable = True
    dense_gradients = True
    mask_fixed, mask_changes = False, True

    def after_backward(self) -> None:
        pass  # absent weights need their gradient: it feeds the momentum that decides regrowth

    def prune_rate_at(self, epoch: int) -> float:
        """The prune rate after `epoch` of the run's epochs (per-step cosine, evaluated at the epoch end)."""
        p = self.hp.prune_rate
        floor = min(PRUNE_RATE_FLOOR, p)
        return floor + (p - floor) * 0.5 * (1 + math.cos(math.pi * epoch / self.epochs))

    @torch.no_grad()
    def end_of_epoch(self, epoch: int, optimizer: torch.optim.Optimizer) -> None:
        if epoch >= self.epochs:
            return
        sparse = [n for n in self.weights if n not in self.hp.dense_layers]
        masks = {n: self._mask.layers[n] for n in sparse}
        kept = {n: int(masks[n].sum()) for n in sparse}
        momentum = {n: _momentum(optimizer, self.weights[n]).abs() for n in sparse}
        share = {n: float(momentum[n][masks[n]].mean()) if kept[n] else 0.0 for n in sparse}
        total = sum(share.values())
        share = {n: (v / total if total > 0 else 1 / len(sparse)) for n, v in share.items()}
        removed = prune_counts(self.prune_rate_at(epoch), kept, {n: masks[n].numel() for n in sparse}, share)
        pruned = {}
        for n in sparse:
            keep_score = torch.where(masks[n], self.weights[n].abs(), torch.full_like(self.weights[n], -1.0))
            pruned[n] = topk_mask(keep_score, kept[n] - removed[n])  # absent weights rank last
        free = {n: masks[n].numel() - kept[n] + removed[n] for n in sparse}
        regrow = redistribute(sum(removed.values()), share, free)
        new = dict(self._mask.layers)
        for n in sparse:
            grow_score = torch.where(pruned[n], torch.full_like(momentum[n], -1.0), momentum[n])
            new[n] = pruned[n] | topk_mask(grow_score, regrow[n])
            self.weights[n].mul_(new[n])  # pruned weights vanish; regrown ones keep their value (0 if new)
        self._mask = Mask(new)


def _momentum(optimizer: torch.optim.Optimizer, weight: torch.Tensor) -> torch.Tensor:
    state = optimizer.state.get(weight, {})
    buf = state.get("momentum_buffer")
    return buf if buf is not None else torch.zeros_like(weight)


def prune_counts(rate: float, kept: dict[str, int], size: dict[str, int], share: dict[str, float]) -> dict[str, int]:
    """Weights each layer removes: ceil(rate * kept); a layer denser than 0.8 whose momentum share is above the
    mean removes at most its sparsity instead (sparse_learning's adjust_prune_rate: it is still growing)."""
    out = {}
    for n in kept:
        sparsity = 1 - kept[n] / size[n]
        layer_rate = min(sparsity, rate) if sparsity < 1 - DENSE_LAYER and share[n] > 1 / len(kept) else rate
        out[n] = min(math.ceil(layer_rate * kept[n]), kept[n])
    return out


def redistribute(total: int, share: dict[str, float], free: dict[str, int], cap: float = 0.99) -> dict[str, int]:
    """Regrowth per layer: `total` split by `share`; a layer gets at most `cap` of its `free` slots, and what it
    cannot take is spread equally over all layers, until nothing is left (sparse_learning's
    calc_growth_redistribution). The result is rounded to integers summing to `total`, none above `free`."""
    exact = {n: total * share[n] for n in share}
    for _ in range(1000):
        excess = 0.0
        for n in exact:
            if exact[n] > cap * free[n]:
                excess += exact[n] - cap * free[n]
                exact[n] = cap * free[n]
        if excess <= 1e-9:
            break
        exact = {n: v + excess / len(exact) for n, v in exact.items()}
    counts = {n: min(math.floor(v), free[n]) for n, v in exact.items()}
    short = min(total, sum(free.values())) - sum(counts.values())
    by_remainder = sorted(exact, key=lambda n: exact[n] - math.floor(exact[n]), reverse=True)
    for n in by_remainder:  # what rounding down left: one more each to the largest remainders under their cap
        if short and counts[n] < math.floor(cap * free[n]):
            counts[n], short = counts[n] + 1, short - 1
    for n in by_remainder:  # only when the layers are nearly full: fill their remaining free slots
        give = min(short, free[n] - counts[n])
        counts[n], short = counts[n] + give, short - give
    return counts
