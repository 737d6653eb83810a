"""Discovering Neural Wirings (Wortsman et al. 2019).

Every forward keeps each layer's top-k weights by magnitude; the backward is straight-through: the gradient
with respect to the kept-weights tensor is applied to the dense weights, so every weight, kept or not, learns
and can re-enter. Implemented by zeroing the absent weights for the forward and backward, then restoring the
dense values before the optimizer step.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch

from sparsenet.algorithms.base import Algorithm
from sparsenet.masks import Mask


class DNW(Algorithm):
    dense_gradients = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._counts = self.counts()

    def initial_mask(self, generator):
        return Mask.from_magnitude(self.weights, self.counts())

    def mask(self) -> Mask:
        return Mask.from_magnitude(self.weights, self._counts)

    @contextmanager
    def forward_weights(self):
        with torch.no_grad():
            dense = {n: w.detach().clone() for n, w in self.weights.items()}
            self.mask().apply(self.weights)
        try:
            yield
        finally:
            with torch.no_grad():
                for n, w in self.weights.items():
                    w.copy_(dense[n])

    def after_backward(self) -> None:
        pass  # straight-through: every weight keeps its gradient

    def after_step(self) -> None:
        pass  # weights stay dense; the mask is chosen anew at the next forward

    def state_dict(self) -> dict:
        return {}  # the mask is a function of the weights

    def load_state_dict(self, state: dict) -> None:
        pass
