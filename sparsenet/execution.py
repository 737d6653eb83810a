"""Where and how a run executes: its platform (device and `execution` settings).

Nothing here changes what is trained, only how the kernels compute it: bf16 autocast, channels-last and
torch.compile change float rounding; `deterministic` (the default) asks CUDA for repeatable kernels. The
platform also says which kernels the device offers (CSR for linear layers under a fixed mask, sparsenet.sparse)
and the batch layout they read, so that neither the data nor the algorithms need to know of kernels.
"""
from __future__ import annotations

import math
import os
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Callable, ContextManager

import torch
from torch import nn

from sparsenet import sparse
from sparsenet.config import ExecutionHparams
from sparsenet.masks import Mask


def resolve_device(name: str | torch.device | None = None) -> torch.device:
    """`name`, or for None and "auto" a GPU where there is one, else the CPU."""
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _feature_major(shape: torch.Size, device: torch.device) -> torch.Tensor:
    """A batch with one sample per column in memory, viewed as [batch, ...]."""
    return torch.empty(math.prod(shape[1:]), shape[0], device=device).t().view(shape)


@dataclass(frozen=True)
class Platform:
    """A device and the `execution` settings of the runs on it."""

    device: torch.device
    hp: ExecutionHparams = field(default_factory=ExecutionHparams)

    def configure(self) -> None:
        """Process-wide kernel choices (a process trains runs of one setting at a time)."""
        if self.device.type != "cuda":
            return  # CPU kernels are deterministic already
        if self.hp.deterministic:
            # cuBLAS reads this when its first handle is made: set before any CUDA matmul of this process
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.deterministic = self.hp.deterministic
        torch.backends.cudnn.benchmark = not self.hp.deterministic
        # warn_only: an op without a deterministic CUDA kernel warns (naming itself) instead of stopping a long run
        torch.use_deterministic_algorithms(self.hp.deterministic, warn_only=True)

    def synchronize(self) -> None:
        """Wait for the device's queued work (before reading a clock)."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def autocast(self) -> ContextManager:
        """The context for forward and loss: bf16 autocast, or nothing."""
        if self.hp.precision == "bf16":
            # no cache of cast weights: a CUDA graph would replay the first step's casts (torch.cuda.graphs' rule)
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, cache_enabled=False)
        return nullcontext()

    def prepare_model(self, model: nn.Module) -> nn.Module:
        """The model in the settings' memory format (in place; returned for chaining)."""
        if self.hp.channels_last:
            model.to(memory_format=torch.channels_last)
        return model

    def prepare_input(self, x: torch.Tensor) -> torch.Tensor:
        if self.hp.channels_last and x.dim() == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def forward_fn(self, model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
        """The callable batches run through: the model, compiled where asked. The module itself stays
        uncompiled, so state dicts, checkpoints and analyses see plain parameter names."""
        return torch.compile(model) if self.hp.compile else model

    @property
    def captures_steps(self) -> bool:
        """Whether a fused group's fixed-mask step is captured once as a CUDA graph and replayed (sparsenet.graph):
        on CUDA, unless torch.compile compiles the forward."""
        return self.device.type == "cuda" and not self.hp.compile

    # --- kernels -----------------------------------------------------------------------------------------------
    def csr(self, mask: torch.Tensor, mode: str | None = None) -> bool:
        """Whether a linear layer with this fixed mask computes through CSR kernels here (`mode`: the settings'
        `sparse_kernels` unless given)."""
        return sparse.chosen(mode or self.hp.sparse_kernels, mask, self.device, self.hp.precision)

    def route(self, model: nn.Module, mask: Mask, mode: str | None = None,
              limits=sparse.LIMITS) -> dict[str, sparse.Structure]:
        """Route the linear layers `csr` chooses through CSR kernels for the fixed `mask` (`limits`: for training,
        or sparse.EVAL_LIMITS for evaluation only); their structures."""
        return sparse.install(model, mask, mode or self.hp.sparse_kernels, self.hp.precision, limits)

    @staticmethod
    def batch_buffer(model: nn.Module, routed: dict) -> Callable[[torch.Size, torch.device], torch.Tensor] | None:
        """How batches for `model` with layers `routed` are laid out: one sample per column where its first
        layer is routed (that kernel reads x^T, and the conversion to floats then does the transposition the
        layer would otherwise copy the batch for); None: as they come."""
        return _feature_major if sparse.takes_the_input(model, routed) else None
