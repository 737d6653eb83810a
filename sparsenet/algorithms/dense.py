"""Dense training: the reference every figure needs. The mask keeps everything."""
from __future__ import annotations

from sparsenet.algorithms import register
from sparsenet.algorithms._base import Algorithm


@register
class Dense(Algorithm):
    reference = "facebookresearch/open_lth: training/train.py (the dense run of a recipe)"
    dense_gradients = True

    def after_backward(self) -> None:
        pass

    def after_step(self) -> None:
        pass
