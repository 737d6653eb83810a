"""Discovering Neural Wirings (Wortsman et al. 2019).

Every forward keeps each layer's top-k weights by magnitude; the backward is straight-through: the gradient
with respect to the kept-weights tensor is applied to the dense weights, so every weight, kept or not, learns
and can re-enter. Implemented by giving each weight, for the forward and backward, a storage that holds only
its top-k entries, and handing the dense storage back before the optimizer step (`Algorithm.forward_weights`).
Reference: allenai/dnw, imagenet_sparsity_experiments/image_classification/sparse_util.py (ChooseTopEdges).
"""
from __future__ import annotations

from sparsenet.algorithms import register
from sparsenet.algorithms._base import Algorithm
from sparsenet.masks import Mask, topk_mask


@register
class DNW(Algorithm):
    reference = "allenai/dnw: imagenet_sparsity_experiments/image_classification/sparse_util.py (ChooseTopEdges)"
    freezable = True
    dense_gradients = True
    mask_fixed, mask_changes, masks_weights = False, True, False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._counts = self.counts()

    def initial_mask(self, generator):
        return Mask.from_magnitude(self.weights, self.counts())

    def mask(self) -> Mask:
        return Mask.from_magnitude(self.weights, self._counts)

    def kept_counts(self) -> dict[str, int]:
        return self._counts

    def forward_mask(self) -> Mask:
        """Each layer's top-k weights by magnitude, for layers that do not keep every weight."""
        return Mask({name: topk_mask(w.detach().abs(), self._counts[name]) for name, w in self.weights.items()
                     if self._counts[name] < w.numel()})

    def after_backward(self) -> None:
        pass  # straight-through: every weight keeps its gradient

    def after_step(self) -> None:
        pass  # weights stay dense; the mask is chosen anew at the next forward

    def state_dict(self) -> dict:
        return {}  # the mask is a function of the weights

    def load_state_dict(self, state: dict) -> None:
        pass
