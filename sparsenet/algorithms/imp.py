"""Lottery ticket by iterative magnitude pruning (Frankle & Carbin 2019): the pruning step of one round.

Within a round the mask is fixed (the base Algorithm). Between rounds, `prune` removes the smallest-magnitude
remaining weights down to the next density of `schedule`; `sparsenet.rounds` chains the rounds and rewinds.
After facebookresearch/open_lth, pruning/sparse_global.py (global magnitude over the prunable weights, minus the
layers it ignores: here `dense_layers`, where `imp_output` puts the output layer as the model's default_hparams
do); unlike there, each round's count lands exactly on its target density over the pruned layers.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Iterable, Mapping

import torch

from sparsenet.algorithms import register
from sparsenet.algorithms._base import Algorithm
from sparsenet.config import AlgorithmHparams, ConfigError, RunConfig, check, check_choice, check_fraction, setting
from sparsenet.masks import Mask, apportion, topk_mask

SCOPES = ("global", "layerwise")
OUTPUTS = ("reference", "dense", "half", "global")


@dataclass(frozen=True)
class Hparams(AlgorithmHparams):
    imp_rate: float = setting(0.2, "fraction of the remaining weights pruned per round, in (0, 1)", unit="fraction")
    imp_scope: str = setting("global", "rank weights across all sparse layers (global) or within each layer",
                             choices=SCOPES)
    imp_layer_rates: tuple[tuple[str, float], ...] = setting((), "per-layer multipliers of imp_rate, as "
                                                             "name:multiplier pairs (e.g. fc3.weight:0.5)")
    imp_output: str = setting("reference", "the output layer as the model's reference code treats it (reference), "
                              "kept dense, pruned at half the rate, or globally", choices=OUTPUTS)
    rewind_epoch: int = setting(0, "rewind each round to the weights after this many epochs of round 0 (0: the "
                                "initial weights), below epochs", unit="epochs")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_fraction(self.imp_rate, "imp_rate", low_open=True, high_open=True)
        check_choice(self.imp_scope, "imp_scope", SCOPES)
        check_choice(self.imp_output, "imp_output", OUTPUTS)
        for name, mult in self.imp_layer_rates:
            check(mult > 0 and mult * self.imp_rate < 1, "imp_layer_rates",
                  f"multiplier for {name!r} must make the rate lie in (0, 1), got {mult!r}")
        check(self.rewind_epoch >= 0, "rewind_epoch", f"must be >= 0, got {self.rewind_epoch!r}")


@register
class IMP(Algorithm):
    """One round: train with the mask the previous round left (all ones in round 0)."""

    hparams = Hparams
    reference = "facebookresearch/open_lth: pruning/sparse_global.py, lottery/runner.py"

    @classmethod
    def resolve(cls, cfg: RunConfig) -> Hparams:
        """Write imp's treatment of the output layer into dense_layers / imp_layer_rates (idempotent).

        `reference` follows the code the model comes from: open_lth's `pruning_layers_to_ignore='fc.weight'` for
        LeNet and VGG (dense), none for its ResNet-20 (global); Frankle & Carbin's half rate for Conv-2/4/6.
        """
        from sparsenet.models import IMP_OUTPUT, OUTPUT_LAYER

        hp, model = cfg.algorithm, cfg.model.model
        if hp.rewind_epoch >= cfg.train.epochs:
            raise ConfigError(f"rewind_epoch: must be < epochs={cfg.train.epochs}, got {hp.rewind_epoch}")
        mode = IMP_OUTPUT.get(model, "global") if hp.imp_output == "reference" else hp.imp_output
        out = OUTPUT_LAYER.get(model)  # None for a model by import path: its output layer is not known by name
        if mode != "global" and out is None:
            raise ConfigError(f"imp_output: the output layer of model {model} is not known by name; use 'global' "
                              "and name it in dense_layers or imp_layer_rates")
        if mode == "dense" and out not in hp.dense_layers:
            return dataclasses.replace(hp, dense_layers=(*hp.dense_layers, out))
        if mode == "half" and out not in dict(hp.imp_layer_rates):
            return dataclasses.replace(hp, imp_layer_rates=(*hp.imp_layer_rates, (out, 0.5)))
        return hp

    def initial_mask(self, generator):
        return Mask.ones_like(self.weights)


def schedule(targets: Iterable[float], rate: float) -> list[float]:
    """Densities of the rounds, from 1.0: each round keeps (1 - rate) of the last, and lands exactly on targets."""
    targets = sorted(set(targets), reverse=True)
    out = [1.0]
    while targets and out[-1] > targets[-1] + 1e-12:
        step = out[-1] * (1 - rate)
        next_target = next(t for t in targets if t < out[-1] - 1e-12)
        out.append(max(step, next_target))
    return out


def prune(weights: Mapping[str, torch.Tensor], mask: Mask, density: float, hp: Hparams) -> Mask:
    """The next mask: keep exactly `density` of the sparse layers, removing the smallest-magnitude kept weights.

    Layers named in `imp_layer_rates` are pruned on their own at the round's rate times their multiplier; the
    remaining sparse layers share the rest of the removal, globally by magnitude or layer by layer.
    """
    sparse = [n for n in mask.layers if n not in hp.dense_layers]
    kept = {n: int(mask.layers[n].sum()) for n in sparse}
    target = round(density * sum(mask.layers[n].numel() for n in sparse))
    if target > sum(kept.values()):
        raise ValueError(f"density {density} is above the current mask's {sum(kept.values())} kept weights")
    rate = 1 - target / sum(kept.values())
    multipliers = dict(hp.imp_layer_rates)
    keep = {n: kept[n] - int(round(rate * multipliers[n] * kept[n])) for n in sparse if n in multipliers}
    rest = [n for n in sparse if n not in multipliers]
    rest_keep = target - sum(keep.values())
    score = {n: torch.where(mask.layers[n], weights[n].detach().abs(), torch.full_like(weights[n], -1.0))
             for n in sparse}
    if hp.imp_scope == "layerwise" or not rest:
        rest_kept = sum(kept[n] for n in rest)
        keep.update(apportion({n: kept[n] * rest_keep / max(rest_kept, 1) for n in rest}, rest_keep) if rest else {})
        layers = {n: topk_mask(score[n], keep[n]) for n in sparse}
    else:
        flat = torch.cat([score[n].flatten() for n in rest])
        chosen = topk_mask(flat, rest_keep)
        layers = {n: topk_mask(score[n], keep[n]) for n in keep}
        offset = 0
        for n in rest:
            size = score[n].numel()
            layers[n] = chosen[offset:offset + size].view(score[n].shape)
            offset += size
    return Mask({n: (layers[n] if n in layers else mask.layers[n]) for n in mask.layers})

