"""A training step without the host: on CUDA, a step captured once as a CUDA graph and replayed.

On a GPU a small model's step is bound by the host launching its hundreds of kernels (README, "On a GPU"). A CUDA
graph records them once and replays them with one launch. What it records must read and write the same memory at
every replay and never wait for the host, so the step it captures (sparsenet.fused, `FusedRuns.device_step`)
reads its batch from static buffers, its learning rate from a device tensor (sparsenet.optim), adds its loss and
accuracy into device sums, and reads nothing back. The capture follows PyTorch's whole-network recipe
(torch.cuda.graphs, "Whole-network capture"): a few eager steps on a side stream first, so that what a first step
makes lazily (momentum buffers, cuBLAS and cuDNN handles, cuDNN's autotuning) exists before the capture, then the
capture, whose kernels do not run until the graph is replayed. Off CUDA there are no graphs: the same step runs
eagerly, which is how the tests check it on a CPU.
"""
from __future__ import annotations

from typing import Callable

import torch

WARMUP = 3  # eager steps before the capture, as PyTorch's recipe warms up (its example: 3 iterations)


class StepGraph:
    """Calls of `step` (no arguments, no host synchronisation, the same memory at each call) on `device`."""

    def __init__(self, step: Callable[[], None], device: torch.device):
        self.step, self.device = step, device
        self.eager_calls = 0
        self.graph: torch.cuda.CUDAGraph | None = None

    def __call__(self) -> None:
        if self.graph is not None:
            self.graph.replay()
        elif self.device.type != "cuda":
            self.step()
        elif self.eager_calls < WARMUP:
            self.eager_calls += 1
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                self.step()
            torch.cuda.current_stream(self.device).wait_stream(side)
        else:
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):  # records the step's kernels; none runs yet
                self.step()
            self.graph = graph
            graph.replay()  # this call's step
