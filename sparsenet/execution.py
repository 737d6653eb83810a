"""How a run executes on its device (the `execution` settings): determinism, precision, memory format, compile.

Nothing here changes what is trained, only how the kernels compute it: bf16 autocast, channels-last and
torch.compile change float rounding; `deterministic` (the default) asks CUDA for repeatable kernels.
"""
from __future__ import annotations

import os
from contextlib import nullcontext
from typing import Callable, ContextManager

import torch
from torch import nn

from sparsenet.config import ExecutionHparams


def configure(hp: ExecutionHparams, device: torch.device) -> None:
    """Process-wide kernel choices for a run on `device` (a process trains runs of one setting at a time)."""
    if device.type != "cuda":
        return  # CPU kernels are deterministic already
    if hp.deterministic:
        # cuBLAS reads this when its first handle is made: set before any CUDA matmul of this process
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.deterministic = hp.deterministic
    torch.backends.cudnn.benchmark = not hp.deterministic
    # warn_only: an op without a deterministic CUDA kernel warns (naming itself) instead of stopping a long run
    torch.use_deterministic_algorithms(hp.deterministic, warn_only=True)


def autocast(hp: ExecutionHparams, device: torch.device) -> ContextManager:
    """The context for forward and loss: bf16 autocast, or nothing."""
    if hp.precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return nullcontext()


def prepare_model(model: nn.Module, hp: ExecutionHparams) -> nn.Module:
    """The model in the memory format of `hp` (in place; returned for chaining)."""
    if hp.channels_last:
        model.to(memory_format=torch.channels_last)
    return model


def prepare_input(x: torch.Tensor, hp: ExecutionHparams) -> torch.Tensor:
    if hp.channels_last and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


def forward_fn(model: nn.Module, hp: ExecutionHparams) -> Callable[[torch.Tensor], torch.Tensor]:
    """The callable the trainer runs batches through: the model, compiled where asked.

    The module itself stays uncompiled, so state dicts, checkpoints and analyses see plain parameter names.
    """
    return torch.compile(model) if hp.compile else model
