"""Freezing a dynamic algorithm's mask after `freeze_epoch` epochs: the paper's proposal for dnw, for any of them.

Until the freeze the algorithm is itself; at the end of epoch k, after the algorithm's own epoch-end update (snfs
regrows there: that update is what k epochs of training taught it), its mask becomes fixed, absent weights and
their momentum are zeroed, and from then on only kept weights get gradients: no dense gradient is needed, and
sparse kernels may run the rest of the run.
"""
from __future__ import annotations

import torch

from sparsenet.algorithms._base import Algorithm


def freezing(base: type[Algorithm]) -> type[Algorithm]:
    """`base` with its mask frozen after `hp.freeze_epoch` epochs."""

    class Freezing(base):
        frozen = False

        @property
        def dense_gradients(self) -> bool:
            return not self.frozen and super().dense_gradients

        @property
        def mask_fixed(self) -> bool:
            return self.frozen

        @property
        def takes_optimizer_step(self) -> bool:
            return self.frozen or super().takes_optimizer_step

        def mask(self):
            return self._mask if self.frozen else super().mask()

        def kept_counts(self):
            return Algorithm.kept_counts(self) if self.frozen else super().kept_counts()

        def forward_mask(self):
            return None if self.frozen else super().forward_mask()

        def after_backward(self) -> None:
            if self.frozen:
                Algorithm.after_backward(self)
            else:
                super().after_backward()

        def after_step(self) -> None:
            if self.frozen:
                Algorithm.after_step(self)
            else:
                super().after_step()

        @torch.no_grad()
        def end_of_epoch(self, epoch, optimizer) -> None:
            if self.frozen:
                return
            super().end_of_epoch(epoch, optimizer)
            if epoch == self.hp.freeze_epoch:
                self._freeze(optimizer)

        def _freeze(self, optimizer) -> None:
            self._mask = super().mask()
            self.frozen = True
            self._mask.apply(self.weights)
            # absent weights are zeroed after every step from now on, so their momentum has no effect on training;
            # it is cleared so that the run's state says so too (a CSR-routed layer drops it anyway)
            for name, m in self._mask.layers.items():
                buf = optimizer.state.get(self.weights[name], {}).get("momentum_buffer")
                if buf is not None:
                    buf.mul_(m)

        def state_dict(self) -> dict:
            return {**Algorithm.state_dict(self), "frozen": True} if self.frozen else super().state_dict()

        def load_state_dict(self, state: dict) -> None:
            if state.get("frozen"):
                Algorithm.load_state_dict(self, state)
                self.frozen = True
            else:
                super().load_state_dict(state)

    Freezing.__name__ = Freezing.__qualname__ = f"{base.__name__}Freeze"
    return Freezing
