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
from sparsenet.masks import Mask, topk_mask, topk_mask_near

BAND = 0.01  # the first and narrowest relative band around the last step's k-th magnitude; doubled after a miss


@register
class DNW(Algorithm):
    reference = "allenai/dnw: imagenet_sparsity_experiments/image_classification/sparse_util.py (ChooseTopEdges)"
    freezable = True
    dense_gradients = True
    mask_fixed, mask_changes, masks_weights = False, True, False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._counts = self.counts()
        self._near: dict[str, tuple[float, float]] = {}  # per layer: the last k-th magnitude, and the band

    def initial_mask(self, generator):
        return Mask.from_magnitude(self.weights, self.counts())

    def mask(self) -> Mask:
        return Mask.from_magnitude(self.weights, self._counts)

    def kept_counts(self) -> dict[str, int]:
        return self._counts

    def forward_mask(self) -> Mask:
        """Each layer's top-k weights by magnitude, for layers that do not keep every weight."""
        return Mask({name: self._top(name, w.detach().abs()) for name, w in self.weights.items()
                     if self._counts[name] < w.numel()})

    def _top(self, name: str, score):
        """topk_mask(score, k), on the CPU found near the last step's k-th magnitude: a step moves the weights
        little, and ranking the entries near it costs less than ranking them all (masks.topk_mask_near; the same
        mask, so nothing of it is checkpointed). On a GPU torch.topk is fast and a guess would need a host sync."""
        k, last = self._counts[name], self._near.get(name)
        if score.device.type != "cpu" or k == 0:
            return topk_mask(score, k)
        found = None if last is None else topk_mask_near(score, k, *last)
        if found is not None:
            mask, kth = found
            near, band = last
            moved = abs(kth - near) / near if near > 0 else band
            # narrowed again where the k-th value moved well inside it: a band only ever widened grows to every
            # weight within a few epochs of noisy training (dnw at 2% on MNIST took 17 s for its first epoch and
            # 29-43 s for its last ones as the band grew), and then ranks nearly all of them
            self._near[name] = (kth, max(BAND, band / 2) if moved < band / 4 else band)
            return mask
        mask = topk_mask(score, k)
        self._near[name] = (float(score[mask].min()), BAND if last is None else min(2 * last[1], 1.0))
        return mask

    def after_backward(self) -> None:
        pass  # straight-through: every weight keeps its gradient

    def after_step(self) -> None:
        pass  # weights stay dense; the mask is chosen anew at the next forward

    def state_dict(self) -> dict:
        return {}  # the mask is a function of the weights

    def load_state_dict(self, state: dict) -> None:
        pass
