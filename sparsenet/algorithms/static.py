"""Static sparse training: a random mask, drawn at initialisation (uniform or ERK per layer) and never changed.

The baseline every claim about learned structure needs: google-research/rigl's `static` mask method
(rigl/imagenet_resnet/imagenet_train_eval.py, mask_init_method random with no mask updates). The base class's
fixed-mask training does all of it; the mask comes from `Algorithm.initial_mask`.
"""
from __future__ import annotations

from sparsenet.algorithms.base import Algorithm


class Static(Algorithm):
    pass
