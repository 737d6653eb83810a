"""The protocol every sparse-training algorithm offers the trainer, and the fixed-mask behaviour most share.

The trainer calls, per step: ``with algo.forward_weights(): forward + backward``; ``after_backward()``;
``optimizer.step()`` (unless ``takes_optimizer_step`` is false); ``after_step()``; and
``end_of_epoch(epoch, optimizer)`` after each epoch. ``mask()`` is the structure at that moment (for snapshots),
``kept_counts()`` its kept weights per layer; ``dense_gradients`` says whether this step needs the gradient of
absent weights (the E4 cost model, counted per step); ``mask_fixed`` whether the mask stays as it is for the
rest of the run (sparse kernels need that); ``mask_changes`` whether the algorithm ever changes its mask (E3);
``freezable`` whether it can run as ``<name>_freeze`` (E4); ``hparams`` is its settings class (the shared
AlgorithmHparams, or a subclass adding the algorithm's own settings with their help and checks); ``reference``
names the code it follows; ``resolve`` writes what the algorithm's reference code
decides about the run's layers into its settings, once, before the run is recorded.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch

from sparsenet.config import AlgorithmHparams, RunConfig
from sparsenet.masks import Mask, kept_only, layer_counts


class Algorithm:
    """Fixed mask: absent weights are zero after every step and get no gradient (imp; dense with no mask)."""

    name = ""  # the registry's name for it (sparsenet.algorithms.register)
    hparams: type[AlgorithmHparams] = AlgorithmHparams
    reference = ""  # the repository and files it follows
    needs_mask = False  # trains under the mask it is given (retraining) and none of its own
    needs_batch = False  # scores weights on a batch of the run's first epoch (pruning at initialisation)
    dense_gradients = False
    mask_fixed = True
    mask_changes = False
    freezable = False  # dynamic algorithms whose mask can be frozen after k epochs (sparsenet.algorithms._freeze)
    masks_weights = True  # absent weights are zero from the start (dnw: the weights stay dense)
    takes_optimizer_step = True  # rigl: False at an update step, which replaces the optimizer step
    # once the mask is fixed, its absent weights and their momentum are zero (the mask came with the weights, or a
    # freeze cleared them), so nothing revives them; gmp ends its pruning with momentum at pruned weights
    settled_when_fixed = True
    # the trainer's optimizer, set by the trainer: for algorithms that reset the momentum of weights they grow
    optimizer: torch.optim.Optimizer | None = None

    def __init__(self, hp: AlgorithmHparams, weights: dict[str, torch.nn.Parameter], epochs: int,
                 mask: Mask | None = None, generator: torch.Generator | None = None, *, steps_per_epoch: int = 1,
                 model: torch.nn.Module | None = None, batch: tuple[torch.Tensor, torch.Tensor] | None = None):
        """`model` and `batch` (the run's first training batch) are for algorithms that score weights at
        initialisation; `steps_per_epoch` for those that act every few steps."""
        self.hp, self.weights, self.epochs = hp, weights, epochs
        self.steps_per_epoch, self.model, self.batch = steps_per_epoch, model, batch
        self._mask = (mask if mask is not None else self.initial_mask(generator)).like(weights)
        if self.masks_weights:
            self._mask.apply(self.weights)

    @classmethod
    def resolve(cls, cfg: RunConfig) -> AlgorithmHparams:
        """The run's algorithm settings with the algorithm's own layer treatment written out (idempotent), so that
        run.json and every later stage see it; ConfigError naming the key where a setting does not fit the run."""
        return cfg.algorithm

    def counts(self, density: float | None = None) -> dict[str, int]:
        """Kept weights per layer at `density` (default: the configured one), by the run's layer settings."""
        shapes = {n: w.shape for n, w in self.weights.items()}
        return layer_counts(shapes, self.hp.density if density is None else density, self.hp.distribution,
                            self.hp.dense_layers, self.hp.sparsity_scales)

    def initial_mask(self, generator: torch.Generator | None) -> Mask:
        if self.hp.density == 1:
            return Mask.ones_like(self.weights)
        return Mask.random(self.weights, self.counts(), generator)

    def mask(self) -> Mask:
        return self._mask

    def kept_counts(self) -> dict[str, int]:
        """Kept weights per layer now (cheap: counted again only when the mask object changes)."""
        if getattr(self, "_counted", None) is not self._mask:
            self._counted, self._kept = self._mask, {n: int(m.sum()) for n, m in self._mask.layers.items()}
        return self._kept

    def forward_mask(self) -> Mask | None:
        """The mask the forward pass applies to the weights while they themselves stay dense, the gradient passing
        straight through to every weight (dnw); None where the forward sees the weights as they are."""
        return None

    @contextmanager
    def forward_weights(self) -> Iterator[None]:
        """The weights the forward pass must see, for the duration of the context: each weight of `forward_mask`
        gets, for the forward and backward, a storage holding its kept entries only (no copy of the dense
        weights), and its dense storage back at the end (sparsenet.fused applies the same mask to fused layers)."""
        keep = self.forward_mask()
        dense = {}
        if keep is not None:
            with torch.no_grad():
                for name, m in keep.layers.items():
                    w = self.weights[name]
                    dense[name], w.data = w.data, kept_only(w, m)
        try:
            yield
        finally:
            for name, tensor in dense.items():
                self.weights[name].data = tensor

    def _to_mask(self) -> dict[str, torch.Tensor]:
        """The layers masking must act on, each with the factor to multiply by: not those that keep every weight,
        nor those the optimizer updates at their kept entries only (sparsenet.optim.SGD's routed weights: their
        absent weights get no gradient and no momentum, so they stay zero unmasked); cached per mask object and
        routing, as kept_counts. On the CPU the factor is the mask in the weight's dtype: multiplying by a bool
        mask converts it on every call, 3.6x the time of a float multiply here (705k weights, one thread); the
        product is the same bit for bit. Elsewhere it stays bool, a quarter of the memory traffic."""
        routed = getattr(self.optimizer, "routed", {})  # torch's optimizers route nothing
        key = (self._mask, len(routed))  # routing only adds weights: its size says whether it changed
        if getattr(self, "_to_mask_key", None) != key:
            exact = {n for n, w in self.weights.items() if w in routed}
            full = {n for n, k in self.kept_counts().items() if k == self.weights[n].numel()}
            self._to_mask_key, self._to_mask_cached = key, {
                n: m.to(self.weights[n].dtype) if m.device.type == "cpu" else m
                for n, m in self._mask.without(full | exact).layers.items()}
        return self._to_mask_cached

    @torch.no_grad()
    def after_backward(self) -> None:
        if not self.dense_gradients:
            for name, factor in self._to_mask().items():
                if self.weights[name].grad is not None:
                    self.weights[name].grad.mul_(factor)

    @torch.no_grad()
    def after_step(self) -> None:
        """Zero the absent weights, which momentum and weight decay would revive. Under a settled fixed mask with
        masked gradients nothing revives them (zero weight, gradient and momentum stay zero), so there this has
        nothing to do, as for routed weights."""
        if self.mask_fixed and self.settled_when_fixed and not self.dense_gradients:
            return
        for name, factor in self._to_mask().items():
            self.weights[name].mul_(factor)

    def end_of_epoch(self, epoch: int, optimizer: torch.optim.Optimizer) -> None:
        """`epoch` counts completed epochs, from 1."""

    def state_dict(self) -> dict:
        return {"mask": {n: m.cpu() for n, m in self._mask.layers.items()}}

    def load_state_dict(self, state: dict) -> None:
        self._mask = Mask(state["mask"]).like(self.weights)
