"""The training step in its one order, for everything that trains: a run (sparsenet.train.Run), a fused group of
runs (sparsenet.fused.FusedRuns), the cost estimate (sparsenet.study.time_steps) and the tests' harnesses.

A `Trainer` says how each part of a step is done for the state it holds; `Trainer.train_step` alone says in
which order, the algorithms' hooks (sparsenet.algorithms._base) included.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from typing import Iterable

import torch

from sparsenet.config import TrainHparams


def lr_at(hp: TrainHparams, step: int, steps_per_epoch: int) -> float:
    """The learning rate of `step` (counted from 0 over the whole run): linear warm-up, then the schedule."""
    warm = hp.warmup_epochs * steps_per_epoch
    if step < warm:
        return hp.lr * (step + 1) / warm
    if hp.schedule == "cosine":
        t = (step - warm) / max(hp.epochs * steps_per_epoch - warm, 1)
        return hp.lr * 0.5 * (1 + math.cos(math.pi * t))
    if hp.schedule == "step":
        return hp.lr * hp.gamma ** sum(step >= m * steps_per_epoch for m in hp.milestones)
    return hp.lr


class Trainer(ABC):
    """What a training loop drives, one step at a time."""

    def train_step(self, epoch: int, i: int, batch) -> None:
        """Step `i` of `epoch` on `batch`."""
        self.before_step(epoch, i)
        with self.forward_weights():
            output, loss, y = self.forward_backward(batch)
        self.count_work(len(y))  # before the hooks, which may change the mask
        self.update()
        self.record(epoch, i, loss, output, y)

    def update(self) -> None:
        """After the backward pass: each algorithm's hooks around its optimizer's step (a fused group's captured
        step, sparsenet.fused, runs this part on the device too)."""
        for algo, optimizer in self.stepped():
            algo.after_backward()
            if algo.takes_optimizer_step:  # rigl's update step replaces it
                optimizer.step()
            algo.after_step()

    @abstractmethod
    def before_step(self, epoch: int, i: int) -> None:
        """The step's learning rate set, the last step's gradients cleared."""

    @abstractmethod
    def forward_weights(self) -> AbstractContextManager:
        """The weights the forward and backward pass see (Algorithm.forward_weights)."""

    @abstractmethod
    def forward_backward(self, batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(output, loss, labels) of `batch`, its gradients computed."""

    @abstractmethod
    def count_work(self, samples: int) -> None:
        """The step's weight-gradient work, for the E4 cost model."""

    @abstractmethod
    def stepped(self) -> Iterable[tuple]:
        """(algorithm, optimizer) pairs whose hooks and step follow the backward pass, in order."""

    @abstractmethod
    def record(self, epoch: int, i: int, loss: torch.Tensor, output: torch.Tensor, y: torch.Tensor) -> None:
        """The step's bookkeeping (loss and accuracy sums, snapshots)."""
