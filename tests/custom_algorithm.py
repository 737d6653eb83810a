"""A user's own algorithm, outside the package: the tests name it by import path (tests.custom_algorithm:Redraw)."""
import torch

from sparsenet.algorithms._base import Algorithm
from sparsenet.masks import Mask


class Redraw(Algorithm):
    """A random mask of the run's layer densities, drawn again at the end of every epoch (seeded by the epoch,
    so a resumed run draws the same); absent weights are zeroed, weights that enter start at zero."""

    mask_changes = True
    mask_fixed = False

    def end_of_epoch(self, epoch: int, optimizer: torch.optim.Optimizer) -> None:
        if epoch < self.epochs:
            self._mask = Mask.random(self.weights, self.counts(), torch.Generator().manual_seed(epoch)).like(
                self.weights)
            self._mask.apply(self.weights)
