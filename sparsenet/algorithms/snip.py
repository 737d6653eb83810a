"""SNIP (Lee et al. 2019): connection sensitivity |g * w| on one training batch, at initialisation.

Follows namhoonlee/snip-public, snip/model.py (get_sparse_mask): the saliency of a weight is |dL/dc| for a
multiplicative mask c = 1, that is |g * w|, from one batch of the training data (there, a batch of the run's
batch size); ranked globally over the sparse layers (sparsenet.algorithms._at_init), the mask then fixed for
training. The scoring copy is in eval mode, as snip/prune.py feeds is_train=False: batch norm normalises with its
running statistics (at initialisation mean 0, variance 1), not the batch's. That repository's initialisation is
`init: variance_scaling` (sparsenet.models).
"""
from __future__ import annotations

import torch
from torch import nn

from sparsenet.algorithms import register
from sparsenet.algorithms._at_init import AtInit


@register
class SNIP(AtInit):
    reference = "namhoonlee/snip-public: snip/model.py (get_sparse_mask), snip/prune.py"
    def scores(self, mask=None) -> dict[str, torch.Tensor]:
        model, weights = self.scoring_copy()
        model.eval()
        x, y = self.batch
        nn.functional.cross_entropy(model(x), y).backward()
        return {n: (w.grad * w).abs().detach() for n, w in weights.items()}
