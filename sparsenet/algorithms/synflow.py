"""SynFlow (Tanaka et al. 2020): iterative, data-free pruning at initialisation by synaptic flow.

Follows ganguli-lab/Synaptic-Flow, Pruners/pruners.py (SynFlow.score) and prune.py (prune_loop): all parameters
replaced by their absolute values, the model in eval mode fed an all-ones input, R = sum of the outputs; a
weight's score is |dR/dw * w| under the current mask. `synflow_rounds` rounds (100 there) each keep the global
top scores at density d^(r / rounds) (the exponential schedule), so the final round lands on d. Scored in float64
(the reference leaves that commented out; deep nets overflow float32 here and give the same ranking otherwise).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from sparsenet.algorithms import register
from sparsenet.algorithms._at_init import AtInit
from sparsenet.config import AlgorithmHparams, check, setting


@dataclass(frozen=True)
class Hparams(AlgorithmHparams):
    synflow_rounds: int = setting(100, "scoring rounds, densities on an exponential schedule, >= 1")

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.synflow_rounds >= 1, "synflow_rounds", f"must be >= 1, got {self.synflow_rounds!r}")


@register
class SynFlow(AtInit):
    hparams = Hparams
    reference = "ganguli-lab/Synaptic-Flow: Pruners/pruners.py (SynFlow), prune.py (prune_loop)"
    # needs_batch (inherited): only for the input's shape, the scores read no data

    def initial_mask(self, generator):
        if self.hp.density == 1 or self.model is None or self.batch is None:
            return super().initial_mask(generator)  # density 1, or the error naming what is missing
        mask = None
        for r in range(1, self.hp.synflow_rounds + 1):
            mask = self.select(self.hp.density ** (r / self.hp.synflow_rounds), mask)
        return mask

    @torch.no_grad()
    def _linearised(self, mask):
        model, weights = self.scoring_copy()
        model.double().eval()
        for p in model.state_dict().values():
            p.abs_()
        if mask is not None:
            for n, w in weights.items():
                w.mul_(mask.layers[n].to(w.device))
        return model, weights

    def scores(self, mask=None) -> dict[str, torch.Tensor]:
        model, weights = self._linearised(mask)
        shape = self.batch[0].shape[1:]
        model(torch.ones(1, *shape, dtype=torch.float64, device=next(iter(weights.values())).device)).sum().backward()
        return {n: (w.grad * w).abs().detach() for n, w in weights.items()}
