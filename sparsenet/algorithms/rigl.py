"""Rigging the Lottery, RigL (Evci et al. 2020): drop by magnitude, grow where the dense gradient is largest.

Follows google-research/rigl, rigl/sparse_optimizers_base.py (SparseRigLOptimizerBase: apply_gradients,
generic_mask_update; SparseSETOptimizerBase: cond_mask_update_op, is_mask_update_iter, get_drop_fraction), with
rigl/mnist/mnist_train_eval.py's defaults (drop_fraction 0.3 annealed by cosine, maskupdate_frequency 100):

- the mask keeps its per-layer counts from the start (`distribution`: uniform or ERK; which layers stay dense and
  how sparse each is: `rigl_layers`, sparsenet.models.RIGL_LAYERS);
- a batch is an update step when the global step g (optimizer steps taken so far) has reached the last update's
  g plus `update_interval`, and g <= `update_end` of training (last_mask_update_step starts at -frequency, so the
  first batch updates); there the mask update *replaces* the optimizer step (cond_mask_update_op(global_step,
  apply_gradient_op)), so g does not advance: with an interval of 100 the update batches are 0, 101, 202, ...;
- an update drops, in each sparse layer, floor(f * kept) of the kept weights, smallest magnitude first, with
  f = drop_fraction * (1 + cos(pi g / T_end)) / 2, and grows as many among the weights not kept after the drop,
  largest magnitude of that batch's dense gradient first (the only steps that need a dense gradient);
- grown weights start at zero and their momentum is reset; a weight dropped and grown again keeps its value
  (reinit_when_same=False);
- between updates, absent weights are zero and get no gradient.

Deviations: the reference adds noise of std 1e-5 to the drop score to break ties; here ties go in the order
torch.topk returns them. `update_end` defaults to 0.75 of training, the RigL paper's choice (its MNIST script
stops at 50000 of 120000 steps).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from sparsenet.algorithms import register
from sparsenet.algorithms._base import Algorithm
from sparsenet.algorithms._rigl_scripts import Hparams as RiglScripts
from sparsenet.algorithms._rigl_scripts import resolve_layers
from sparsenet.config import check, check_fraction, setting
from sparsenet.masks import Mask, topk_mask


@dataclass(frozen=True)
class Hparams(RiglScripts):
    update_interval: int = setting(100, "optimizer steps between mask updates, >= 1", unit="steps")
    update_end: float = setting(0.75, "no mask update after this fraction of training, in (0, 1]", unit="fraction")
    drop_fraction: float = setting(0.3, "fraction of each layer's kept weights dropped and regrown at the first "
                                   "update, decaying by cosine to 0 at update_end, in (0, 1)", unit="fraction")

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.update_interval >= 1, "update_interval", f"must be >= 1, got {self.update_interval!r}")
        check_fraction(self.update_end, "update_end", low_open=True, high_open=False)
        check_fraction(self.drop_fraction, "drop_fraction", low_open=True, high_open=True)


@register
class RigL(Algorithm):
    hparams = Hparams
    reference = "google-research/rigl: rigl/sparse_optimizers_base.py, rigl/mnist/mnist_train_eval.py"
    freezable = True
    resolve = staticmethod(resolve_layers)  # google-research/rigl's scripts' layers
    mask_fixed, mask_changes = False, True

    step_first = 0  # set: 1, its batch's optimizer step comes first and the global step counts it

    def __init__(self, hp, *args, **kwargs):
        self.global_step = 0  # optimizer steps taken: the reference's global_step, which an update batch skips
        self.last_update = -hp.update_interval  # last_mask_update_step's initial value
        self._grad: dict[str, torch.Tensor] = {}
        super().__init__(hp, *args, **kwargs)

    @property
    def end_step(self) -> int:
        return int(self.hp.update_end * self.epochs * self.steps_per_epoch)

    def update_due(self) -> bool:
        """Whether the batch under way is an update step (is_mask_update_iter at the global step it reads)."""
        g = self.global_step + self.step_first
        return g - self.last_update >= self.hp.update_interval and g <= self.end_step

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
        update, g = self.update_due(), self.global_step + self.step_first
        super().after_step()
        if update:
            self.update(self.drop_fraction(g))
            self.last_update, self._grad = g, {}
        if self.step_first or not update:  # rigl's update batch takes no optimizer step
            self.global_step += 1

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
        return {**super().state_dict(), "global_step": self.global_step, "last_update": self.last_update}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.global_step, self.last_update = state["global_step"], state["last_update"]
