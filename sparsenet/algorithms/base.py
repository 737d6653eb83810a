"""The protocol every sparse-training algorithm offers the trainer, and the fixed-mask behaviour most share.

The trainer calls, per step: ``with algo.forward_weights(): forward + backward``; ``after_backward()``;
``optimizer.step()``; ``after_step()``; and ``end_of_epoch(epoch, optimizer)`` after each epoch. ``mask()`` is
the structure at that moment (for snapshots), ``dense_gradients`` says whether absent weights receive gradients
(the E4 cost model).
"""
from __future__ import annotations

from contextlib import nullcontext
from typing import ContextManager

import torch

from sparsenet.config import AlgorithmHparams
from sparsenet.masks import Mask, layer_counts


class Algorithm:
    """Fixed mask: absent weights are zero after every step and get no gradient (imp; dense with no mask)."""

    dense_gradients = False
    # layers whose kernels give absent weights an exact zero gradient (sparsenet.sparse): with zero weights and
    # zero momentum there, SGD keeps them zero, so masking their gradients and weights each step is skipped
    exact_layers: frozenset[str] = frozenset()

    def __init__(self, hp: AlgorithmHparams, weights: dict[str, torch.nn.Parameter], epochs: int,
                 mask: Mask | None = None, generator: torch.Generator | None = None):
        self.hp, self.weights, self.epochs = hp, weights, epochs
        self._mask = (mask if mask is not None else self.initial_mask(generator)).like(weights)
        self.after_step()

    def counts(self) -> dict[str, int]:
        """Kept weights per layer at the configured density and distribution."""
        shapes = {n: w.shape for n, w in self.weights.items()}
        return layer_counts(shapes, self.hp.density, self.hp.distribution, self.hp.dense_layers)

    def initial_mask(self, generator: torch.Generator | None) -> Mask:
        if self.hp.density == 1:
            return Mask.ones_like(self.weights)
        return Mask.random(self.weights, self.counts(), generator)

    def mask(self) -> Mask:
        return self._mask

    def forward_weights(self) -> ContextManager:
        """The weights the forward pass must see, for the duration of the context."""
        return nullcontext()

    @torch.no_grad()
    def after_backward(self) -> None:
        if not self.dense_gradients:
            for name, m in self._mask.layers.items():
                if self.weights[name].grad is not None and name not in self.exact_layers:
                    self.weights[name].grad.mul_(m)

    @torch.no_grad()
    def after_step(self) -> None:
        self._mask.without(self.exact_layers).apply(self.weights)  # momentum and weight decay must not revive them

    def end_of_epoch(self, epoch: int, optimizer: torch.optim.Optimizer) -> None:
        """`epoch` counts completed epochs, from 1."""

    def state_dict(self) -> dict:
        return {"mask": {n: m.cpu() for n, m in self._mask.layers.items()}}

    def load_state_dict(self, state: dict) -> None:
        self._mask = Mask(state["mask"]).like(self.weights)
