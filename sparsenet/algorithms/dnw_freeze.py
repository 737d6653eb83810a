"""DNW that freezes its mask after `freeze_epoch` epochs (the paper's proposal).

Until then it is DNW; at the freeze the current top-k mask becomes fixed, absent weights are zeroed, and from
then on only kept weights get gradients, so no dense gradient is needed.
"""
from __future__ import annotations

from contextlib import nullcontext

import torch

from sparsenet.algorithms.base import Algorithm
from sparsenet.algorithms.dnw import DNW


class DNWFreeze(DNW):
    frozen = False

    @property
    def dense_gradients(self) -> bool:
        return not self.frozen

    def mask(self):
        return self._mask if self.frozen else super().mask()

    def forward_weights(self):
        return nullcontext() if self.frozen else super().forward_weights()

    def after_backward(self) -> None:
        if self.frozen:
            Algorithm.after_backward(self)

    def after_step(self) -> None:
        if self.frozen:
            Algorithm.after_step(self)

    @torch.no_grad()
    def end_of_epoch(self, epoch, optimizer) -> None:
        if epoch == self.hp.freeze_epoch:
            self._freeze(optimizer)

    def _freeze(self, optimizer: torch.optim.Optimizer) -> None:
        self._mask = super().mask()
        self.frozen = True
        self._mask.apply(self.weights)
        # absent weights are zeroed after every step from now on, so their momentum has no effect; clearing it
        # lets kernels that never touch absent weights (sparsenet.sparse) keep them exactly zero without that
        for name, m in self._mask.layers.items():
            buf = optimizer.state.get(self.weights[name], {}).get("momentum_buffer")
            if buf is not None:
                buf.mul_(m)

    def state_dict(self) -> dict:
        return Algorithm.state_dict(self) if self.frozen else {}

    def load_state_dict(self, state: dict) -> None:
        if state:
            Algorithm.load_state_dict(self, state)
            self.frozen = True
