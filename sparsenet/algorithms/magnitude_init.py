"""Magnitude at initialisation: keep the largest |w| of the initial weights, globally, and train that mask.

The baseline of the pruning-at-initialisation comparisons (Frankle et al. 2021, "Pruning Neural Networks at
Initialization: Why are We Missing the Mark?"; ganguli-lab/Synaptic-Flow, Pruners/pruners.py, Mag). No data.
"""
from __future__ import annotations

import torch

from sparsenet.algorithms import register
from sparsenet.algorithms._at_init import AtInit


@register
class MagnitudeInit(AtInit):
    reference = "ganguli-lab/Synaptic-Flow: Pruners/pruners.py (Mag)"
    needs_batch = False

    def scores(self, mask=None) -> dict[str, torch.Tensor]:
        return {n: w.detach().abs() for n, w in self.weights.items()}
