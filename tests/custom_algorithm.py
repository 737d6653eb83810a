"""A user's own algorithm, outside the package: the tests name it by import path (tests.custom_algorithm:Redraw)."""
from dataclasses import dataclass

import torch

from sparsenet.algorithms._base import Algorithm
from sparsenet.config import AlgorithmHparams, check, setting
from sparsenet.masks import Mask


@dataclass(frozen=True)
class Hparams(AlgorithmHparams):
    redraw_every: int = setting(1, "epochs between two draws of the mask, >= 1", unit="epochs")

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.redraw_every >= 1, "redraw_every", f"must be >= 1, got {self.redraw_every!r}")


class Redraw(Algorithm):
    """A random mask of the run's layer densities, drawn again at the end of every `redraw_every` epochs (seeded by
    the epoch, so a resumed run draws the same); absent weights are zeroed, weights that enter start at zero."""

    hparams = Hparams
    reference = "none: a test of the registry"
    mask_changes = True
    mask_fixed = False

    def end_of_epoch(self, epoch: int, optimizer: torch.optim.Optimizer) -> None:
        if epoch < self.epochs and epoch % self.hp.redraw_every == 0:
            self._mask = Mask.random(self.weights, self.counts(), torch.Generator().manual_seed(epoch)).like(
                self.weights)
            self._mask.apply(self.weights)
