"""GraSP (Wang et al. 2020): keep the weights whose removal least reduces the gradient flow, at initialisation.

Follows alecwangcq/GraSP, pruner/GraSP.py: with logits divided by a temperature T = 200, g is the gradient of
the loss on the batch and Hg the Hessian-gradient product (the gradient of g_detached . grad L); each weight's
score is -w * Hg, and the weights with the largest scores are removed, globally over the sparse layers
(sparsenet.algorithms.at_init). The reference draws 10 samples per class; here the run's first training batch.
"""
from __future__ import annotations

import torch
from torch import nn

from sparsenet.algorithms.at_init import AtInit

TEMPERATURE = 200  # GraSP.py, GraSP(..., T=200)


class GraSP(AtInit):
    def scores(self, mask=None) -> dict[str, torch.Tensor]:
        model, weights = self.scoring_copy()
        x, y = self.batch
        params = list(weights.values())
        g = torch.autograd.grad(nn.functional.cross_entropy(model(x) / TEMPERATURE, y), params)
        grad = torch.autograd.grad(nn.functional.cross_entropy(model(x) / TEMPERATURE, y), params, create_graph=True)
        z = sum((gi.detach() * fi).sum() for gi, fi in zip(g, grad))
        hg = torch.autograd.grad(z, params)
        # removed: the largest -w * Hg; kept: the largest w * Hg
        return {n: (w * h).detach() for (n, w), h in zip(weights.items(), hg)}
