"""Gradual magnitude pruning, GMP (Zhu & Gupta 2017): from dense to the target density on a cubic schedule.

Follows TensorFlow's model_pruning library as google-research/rigl runs it (rigl/mnist/mnist_train_eval.py:
prune_begin_step 2000, prune_end_step 30000, pruning_frequency 500 of its 120000 steps; here the start and end
as fractions of training, 2000/120000 and 30000/120000): at step t in [start, end], every `gmp_interval` steps
and at the end step, each sparse layer keeps its largest-magnitude kept weights at density

    d(t) = d_f + (1 - d_f) (1 - (t - start) / (end - start))^3

(model_pruning's _get_sparsity with exponent 3, initial sparsity 0), the same in every layer (the library
prunes each layer by its own threshold) or by `distribution`, with the layers and sparsity scales of
`rigl_layers` (the script's weight_sparsity_map: each layer's sparsity follows the cubic toward its own target,
so the scales hold at every step). The CIFAR-10 presets carry rigl's CIFAR-10 schedule (sparsenet/recipes).

Deviation: pruned weights stay zero and get no gradient, so they never return; model_pruning thresholds the raw
kernel variable (pruning.py, _update_mask), which keeps its value under the mask, so there a pruned weight can
come back at a later pruning step. The target is reached exactly at the end step.
"""
from __future__ import annotations

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
    gmp_start: float = setting(0.0167, "the cubic pruning schedule starts at this fraction of training, in [0, 1)",
                               unit="fraction")
    gmp_end: float = setting(0.25, "the target density is reached at this fraction of training, above gmp_start",
                             unit="fraction")
    gmp_interval: int = setting(500, "optimizer steps between pruning steps, >= 1", unit="steps")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_fraction(self.gmp_start, "gmp_start", low_open=False, high_open=True)
        check_fraction(self.gmp_end, "gmp_end", low_open=True, high_open=False)
        check(self.gmp_start < self.gmp_end, "gmp_end",
              f"must be above gmp_start={self.gmp_start}, got {self.gmp_end!r}")
        check(self.gmp_interval >= 1, "gmp_interval", f"must be >= 1, got {self.gmp_interval!r}")


@register
class GMP(Algorithm):
    hparams = Hparams
    reference = "google-research/rigl: rigl/mnist/mnist_train_eval.py (TensorFlow's model_pruning, pruning.py)"
    resolve = staticmethod(resolve_layers)  # google-research/rigl's scripts' layers
    mask_changes = True
    settled_when_fixed = False  # its last pruning leaves momentum at the pruned weights: they stay masked

    def __init__(self, *args, **kwargs):
        self.step = 0
        super().__init__(*args, **kwargs)

    def initial_mask(self, generator):
        return Mask.ones_like(self.weights)

    def bounds(self) -> tuple[int, int]:
        """(start, end) in optimizer steps; the end is at least step 1, so even a tiny run prunes."""
        total = self.epochs * self.steps_per_epoch
        end = max(round(self.hp.gmp_end * total), 1)
        return min(round(self.hp.gmp_start * total), end), end

    @property
    def mask_fixed(self) -> bool:
        return self.step >= self.bounds()[1]

    def density_at(self, t: int) -> float:
        start, end = self.bounds()
        progress = 1.0 if t >= end else max((t - start) / (end - start), 0.0)
        return self.hp.density + (1 - self.hp.density) * (1 - progress) ** 3

    def update_due(self, t: int) -> bool:
        start, end = self.bounds()
        return start <= t <= end and ((t - start) % self.hp.gmp_interval == 0 or t == end)

    @torch.no_grad()
    def after_step(self) -> None:
        self.step += 1
        super().after_step()
        if self.update_due(self.step):
            counts = self.counts(self.density_at(self.step))
            self._mask = Mask({n: topk_mask(torch.where(m, self.weights[n].abs(), torch.full_like(m, -1.0,
                                                                                           dtype=self.weights[n].dtype)),
                                            min(counts[n], int(m.sum())))
                               for n, m in self._mask.layers.items()})
            self._mask.apply(self.weights)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "step": self.step}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.step = state["step"]
