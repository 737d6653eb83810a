"""Sparse momentum, Sparse Networks From Scratch (Dettmers & Zettlemoyer 2019).

Fixed total density from the first step. Gradients are dense, so the optimizer's momentum covers absent weights
too. At every epoch end but the last: prune the smallest-magnitude kept weights of each layer at a rate that
starts at `prune_rate` and decays by cosine; share the freed weights among layers in proportion to each layer's
mean momentum magnitude over its kept weights; regrow in each layer where the momentum of absent weights is
largest. Regrown weights start at zero.
"""
from __future__ import annotations

import math

import torch

from sparsenet.algorithms.base import Algorithm
from sparsenet.masks import Mask, apportion, topk_mask


class SNFS(Algorithm):
    dense_gradients = True

    def after_backward(self) -> None:
        pass  # absent weights need their gradient: it feeds the momentum that decides regrowth

    def prune_rate_at(self, epoch: int) -> float:
        return self.hp.prune_rate * 0.5 * (1 + math.cos(math.pi * (epoch - 1) / max(self.epochs - 1, 1)))

    @torch.no_grad()
    def end_of_epoch(self, epoch: int, optimizer: torch.optim.Optimizer) -> None:
        if epoch >= self.epochs:
            return
        rate = self.prune_rate_at(epoch)
        sparse = [n for n in self.weights if n not in self.hp.dense_layers]
        momentum = {n: _momentum(optimizer, self.weights[n]).abs() for n in sparse}
        pruned, removed, contribution = {}, 0, {}
        for n in sparse:
            w, m = self.weights[n], self._mask.layers[n]
            kept = int(m.sum())
            n_remove = int(round(rate * kept))
            keep_score = torch.where(m, w.abs(), torch.full_like(w, -1.0))  # absent weights rank last
            pruned[n] = topk_mask(keep_score, kept - n_remove)
            removed += n_remove
            contribution[n] = float(momentum[n][m].mean()) if kept else 0.0
        regrow = _share(removed, contribution, {n: int((~pruned[n]).sum()) for n in sparse})
        new = dict(self._mask.layers)
        for n in sparse:
            grow_score = torch.where(pruned[n], torch.full_like(momentum[n], -1.0), momentum[n])
            new[n] = pruned[n] | topk_mask(grow_score, regrow[n])
            self.weights[n].mul_(pruned[n])  # pruned weights vanish, regrown ones start at zero
        self._mask = Mask(new)


def _momentum(optimizer: torch.optim.Optimizer, weight: torch.Tensor) -> torch.Tensor:
    state = optimizer.state.get(weight, {})
    buf = state.get("momentum_buffer")
    return buf if buf is not None else torch.zeros_like(weight)


def _share(total: int, contribution: dict[str, float], capacity: dict[str, int]) -> dict[str, int]:
    """Split `total` in proportion to `contribution`, never giving a layer more than its `capacity`."""
    out = {n: 0 for n in contribution}
    open_layers = {n for n in contribution if capacity[n] > 0}
    left = total
    while left > 0 and open_layers:
        weight = sum(contribution[n] for n in open_layers)
        exact = {n: (left * contribution[n] / weight if weight > 0 else left / len(open_layers)) for n in open_layers}
        full = {n for n in open_layers if out[n] + exact[n] >= capacity[n]}
        if full:  # fill the layers that overflow, then share the rest among the others
            for n in full:
                left -= capacity[n] - out[n]
                out[n] = capacity[n]
            open_layers -= full
            continue
        for n, k in apportion(exact, left).items():
            out[n] += k
        left = 0
    return out
