"""What the algorithms that follow google-research/rigl's scripts (rigl, set, static, gmp) share: their layers.

The layers per model are sparsenet.models.RIGL_LAYERS, after rigl/mnist/mnist_train_eval.py (output layer dense,
fc2 at 0.9 of fc1's sparsity), rigl/cifar_resnet/resnet_train_eval.py and rigl/imagenet_resnet/imagenet_train_eval.py
(first conv dense); README's Fidelity table, row "layers of rigl, set, gmp, static".
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from sparsenet.config import AlgorithmHparams, RunConfig, check_choice, setting

RIGL_LAYER_RULES = ("reference", "all")


@dataclass(frozen=True)
class Hparams(AlgorithmHparams):
    rigl_layers: str = setting("reference", "the layers google-research/rigl's scripts keep dense and their sparsity "
                               "scales (reference: LeNet-300-100's output layer dense and fc2.weight:0.9, a conv "
                               "net's first conv dense), or every prunable weight sparse (all)",
                               choices=RIGL_LAYER_RULES)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice(self.rigl_layers, "rigl_layers", RIGL_LAYER_RULES)


def resolve_layers(cfg: RunConfig) -> Hparams:
    """Write the layer treatment of google-research/rigl's scripts into dense_layers / sparsity_scales (idempotent).

    `reference` takes sparsenet.models.RIGL_LAYERS for the model (nothing for a user's own model); the scales
    apply to uniform layer densities only, as ERK sets every ratio itself. `all`: every prunable weight sparse.
    """
    from sparsenet.models import RIGL_LAYERS

    hp = cfg.algorithm
    if hp.rigl_layers == "all" or hp.density == 1:
        return hp
    dense, scales = RIGL_LAYERS.get(cfg.model.model, ((), ()))
    dense_layers = (*hp.dense_layers, *(n for n in dense if n not in hp.dense_layers))
    named = dict(hp.sparsity_scales)
    extra = tuple((n, v) for n, v in scales if n not in named and n not in dense_layers)
    return dataclasses.replace(hp, dense_layers=dense_layers, sparsity_scales=(
        *hp.sparsity_scales, *(extra if hp.distribution == "uniform" else ())))
