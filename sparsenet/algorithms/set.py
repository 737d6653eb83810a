"""Sparse Evolutionary Training, SET (Mocanu et al. 2018): drop by magnitude, regrow at random.

RigL's update schedule and drop rule with random growth, as google-research/rigl implements SET
(rigl/sparse_optimizers.py, SparseSETOptimizer: random grow scores, reinit_when_same=True, so a weight dropped
and regrown starts again at zero), with the same defaults as `rigl` (sparsenet.algorithms.rigl). Growth is drawn
from a generator seeded by the run's seed, saved with the checkpoint, so a resumed run grows the same weights.
"""
from __future__ import annotations

import torch

from sparsenet.algorithms.rigl import RigL


class SET(RigL):
    reinit_when_same = True
    dense_gradients = False  # random growth reads no gradient

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
