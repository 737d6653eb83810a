"""Rigging the Lottery, RigL (Evci et al. 2020): drop by magnitude, grow where the dense gradient is largest.

Follows google-research/rigl, rigl/sparse_optimizers_base.py (SparseRigLOptimizerBase: apply_gradients,
generic_mask_update; SparseSETOptimizerBase: _get_update_op, get_drop_fraction, is_mask_update_iter), with
rigl/mnist/mnist_train_eval.py's defaults (drop_fraction 0.3 annealed by cosine, maskupdate_frequency 100):

- the mask keeps its per-layer counts from the start (`distribution`: uniform or ERK);
- the batches with index t = 0, `update_interval`, 2 `update_interval`, ... up to `update_end` of training are
  update steps (the reference's last_mask_update_step starts at -frequency: the first batch updates); there the
  mask update *replaces* the optimizer step (cond_mask_update_op(global_step, apply_gradient_op));
- an update drops, in each sparse layer, floor(f * kept) of the kept weights, smallest magnitude first, with
  f = drop_fraction * (1 + cos(pi t / T_end)) / 2, and grows as many among the weights not kept after the drop,
  largest magnitude of that batch's dense gradient first (the only steps that need a dense gradient);
- grown weights start at zero and their momentum is reset; a weight dropped and grown again keeps its value
  (reinit_when_same=False);
- between updates, absent weights are zero and get no gradient.

Deviations: the reference adds noise of std 1e-5 to the drop score to break ties; here ties go by position.
`update_end` defaults to 0.75 of training, the RigL paper's choice (its MNIST script stops at 50000 of
120000 steps).
"""
from __future__ import annotations

import math

import torch

from sparsenet.algorithms.base import Algorithm
from sparsenet.masks import Mask, topk_mask


class RigL(Algorithm):
    mask_fixed, mask_changes = False, True

    def __init__(self, *args, **kwargs):
        self.step = 0  # batches done: the index of the batch under way
        self._grad: dict[str, torch.Tensor] = {}
        super().__init__(*args, **kwargs)

    @property
    def end_step(self) -> int:
        return int(self.hp.update_end * self.epochs * self.steps_per_epoch)

    def update_due(self) -> bool:
        """Whether the batch under way is an update step."""
        return self.step % self.hp.update_interval == 0 and self.step <= self.end_step

    @property
    def dense_gradients(self) -> bool:
        return self.update_due()  # growth reads the dense gradient of the update's batch

    @property
    def takes_optimizer_step(self) -> bool:
        return not self.update_due()  # the update replaces the step

    def drop_fraction(self, t: int) -> float:
        """The cosine-annealed drop fraction at global step t (tf.train.cosine_decay over [0, end_step])."""
        return self.hp.drop_fraction * 0.5 * (1 + math.cos(math.pi * min(t, self.end_step) / max(self.end_step, 1)))

    @torch.no_grad()
    def after_backward(self) -> None:
        if self.dense_gradients:
            self._grad = {n: w.grad.detach().abs() for n, w in self.weights.items()
                          if n not in self.hp.dense_layers and w.grad is not None}
        super().after_backward()

    @torch.no_grad()
    def after_step(self) -> None:
        update, fraction = self.update_due(), self.drop_fraction(self.step)
        self.step += 1
        super().after_step()
        if update:
            self.update(fraction)
            self._grad = {}

    def grow_score(self, name: str) -> torch.Tensor:
        return self._grad[name]

    def update(self, fraction: float) -> None:
        """Drop `fraction` of each sparse layer's kept weights by magnitude and grow as many by `grow_score`."""
        new = dict(self._mask.layers)
        for n in self._mask.layers:
            if n in self.hp.dense_layers:
                continue
            mask, w = self._mask.layers[n], self.weights[n]
            kept = int(mask.sum())
            n_drop = int(kept * fraction)
            if n_drop == 0:
                continue
            survivors = topk_mask(torch.where(mask, w.abs(), torch.full_like(w, -1.0)), kept - n_drop)
            score = self.grow_score(n)
            grown = topk_mask(torch.where(survivors, torch.full_like(score, -math.inf), score), n_drop)
            fresh = grown & ~mask  # new connections: zero weight, zero momentum
            w.masked_fill_(fresh, 0.0)
            buf = self.optimizer.state.get(w, {}).get("momentum_buffer") if self.optimizer else None
            if buf is not None:
                buf.masked_fill_(fresh, 0.0)
            new[n] = survivors | grown
            w.mul_(new[n])
        self._mask = Mask(new)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "step": self.step}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.step = state["step"]
