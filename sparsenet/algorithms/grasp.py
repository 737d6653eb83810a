"""GraSP (Wang et al. 2020): keep the weights whose removal least reduces the gradient flow, at initialisation.

Follows alecwangcq/GraSP, pruner/GraSP.py (GraSP with reinit=True, as main_prune_non_imagenet.py calls it, and
samples_per_class 10, as its configs/*/GraSP_*.json set):
- the scoring copy redraws every linear layer's weight with Xavier normal (the run trains its own weights);
- the data are the first 10 samples of each class in the run's first epoch, class by class (GraSP_fetch_data),
  split into two halves that hold different classes;
- with logits divided by a temperature T = 200, g is the sum of the two halves' loss gradients and Hg the sum of
  their Hessian-gradient products (the gradient of g_detached . grad L per half);
- each weight's score is -w * Hg, and the weights with the largest scores are removed, globally over the sparse
  layers (sparsenet.algorithms._at_init); the reference's normalisation by |sum of scores| does not change the rank.
The scoring copy stays in train mode (the reference's `.eval()` is commented out): batch norm uses batch statistics.
"""
from __future__ import annotations

import torch
from torch import nn

from sparsenet.algorithms import register
from sparsenet.algorithms._at_init import AtInit

TEMPERATURE = 200  # GraSP.py, GraSP(..., T=200)
SAMPLES_PER_CLASS = 10  # configs/cifar10/*/GraSP_*.json, "samples_per_class": 10


@register
class GraSP(AtInit):
    reference = "alecwangcq/GraSP: pruner/GraSP.py, main_prune_non_imagenet.py"
    @classmethod
    def scoring_batch(cls, batches, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The first SAMPLES_PER_CLASS samples of each class in the order of `batches`, concatenated by class."""
        xs: list[list[torch.Tensor]] = [[] for _ in range(num_classes)]
        ys: list[list[torch.Tensor]] = [[] for _ in range(num_classes)]
        have = [0] * num_classes
        for x, y in batches:
            for c in range(num_classes):
                if have[c] < SAMPLES_PER_CLASS:
                    idx = (y == c).nonzero().flatten()[:SAMPLES_PER_CLASS - have[c]]
                    xs[c].append(x[idx])
                    ys[c].append(y[idx])
                    have[c] += len(idx)
            if min(have) == SAMPLES_PER_CLASS:
                break
        return torch.cat([t for c in xs for t in c]), torch.cat([t for c in ys for t in c])

    def scores(self, mask=None) -> dict[str, torch.Tensor]:
        model, weights = self.scoring_copy()
        for mod in model.modules():
            if isinstance(mod, nn.Linear):  # reinit=True: nn.init.xavier_normal of every linear weight
                with torch.no_grad():
                    mod.weight.copy_(nn.init.xavier_normal_(torch.empty(mod.weight.shape), generator=self.generator))
        x, y = self.batch
        halves = [(x[:len(x) // 2], y[:len(y) // 2]), (x[len(x) // 2:], y[len(y) // 2:])]
        params = list(weights.values())

        def loss(half, **kw):
            xh, yh = half
            return torch.autograd.grad(nn.functional.cross_entropy(model(xh) / TEMPERATURE, yh), params, **kw)

        g = [sum(parts) for parts in zip(*(loss(h) for h in halves))]
        hg = [torch.zeros_like(p) for p in params]
        for half in halves:
            z = sum((gi.detach() * fi).sum() for gi, fi in zip(g, loss(half, create_graph=True)))
            hg = [acc + h for acc, h in zip(hg, torch.autograd.grad(z, params))]
        # removed: the largest -w * Hg; kept: the largest w * Hg (scored on the redrawn weights, as the reference)
        return {n: (w * h).detach() for (n, w), h in zip(weights.items(), hg)}
