"""Sparse Evolutionary Training, SET (Mocanu et al. 2018): drop by magnitude, regrow at random.

As google-research/rigl implements it (rigl/sparse_optimizers_base.py, SparseSETOptimizerBase): the update
rule, schedule and defaults of `rigl` (sparsenet.algorithms.rigl), with random grow scores, and the update made
*after* the optimizer step of its batch (apply_gradients, then cond_mask_update_op with global_step already
counting that batch): every batch advances the global step, the update batches are 0, 100, 200, ... and the
drop fraction is read at global step t + 1 of batch t. No gradient is read. Growth is drawn from a
generator seeded by the run's seed and saved with the checkpoint, so a resumed run grows the same weights.
"""
from __future__ import annotations

import torch

from sparsenet.algorithms import register
from sparsenet.algorithms.rigl import RigL


@register
class SET(RigL):
    reference = "google-research/rigl: rigl/sparse_optimizers_base.py (SparseSETOptimizerBase)"
    dense_gradients = False  # random growth reads no gradient
    takes_optimizer_step = True
    step_first = 1

    def __init__(self, *args, generator: torch.Generator | None = None, **kwargs):
        super().__init__(*args, generator=generator, **kwargs)
        seed = int(torch.randint(2**62, (1,), generator=generator)) if generator is not None else 0
        self.grow_generator = torch.Generator().manual_seed(seed)

    def grow_score(self, name: str) -> torch.Tensor:
        w = self.weights[name]
        return torch.rand(w.shape, generator=self.grow_generator).to(w.device)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "grow_generator": self.grow_generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.grow_generator.set_state(state["grow_generator"])
