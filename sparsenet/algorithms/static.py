"""Static sparse training: a random mask, drawn at initialisation (uniform or ERK per layer) and never changed.

The baseline every claim about learned structure needs: google-research/rigl's `scratch` training method
("`scratch` means initial mask is kept during training": rigl/mnist/mnist_train_eval.py,
rigl/cifar_resnet/resnet_train_eval.py, rigl/imagenet_resnet/imagenet_train_eval.py; mask_init_method random or
erdos_renyi, no mask updates), with those scripts' layer treatment (`rigl_layers`). Not rigl's `static`
(SparseStaticOptimizer, rigl/sparse_optimizers.py), which at every update step re-initialises the drop fraction of
the weakest kept weights in place. The base class's fixed-mask training does all of it; the mask comes from
`Algorithm.initial_mask`.
"""
from __future__ import annotations

from sparsenet.algorithms import register
from sparsenet.algorithms._base import Algorithm
from sparsenet.algorithms._rigl_scripts import Hparams, resolve_layers


@register
class Static(Algorithm):
    hparams = Hparams  # the layers of rigl's scripts, and nothing of its own
    reference = "google-research/rigl: rigl/mnist/mnist_train_eval.py (training_method 'scratch')"
    resolve = staticmethod(resolve_layers)  # google-research/rigl's scripts' layers
