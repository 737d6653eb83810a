"""Real speed from sparsity: linear layers computed with CSR kernels while a run's mask is fixed (on the CPU).

The weights stay ordinary dense parameters, so the optimizer, checkpoints and every analysis see nothing
different. Per layer, the index structure of its mask is built once; each step gathers the kept values into a
CSR matrix and computes the forward (x @ W^T), the input gradient (g @ W) and the weight gradient at the kept
positions only (`torch.sparse.sampled_addmm`), scattered into a zero dense gradient: absent weights never get a
non-zero gradient. Results equal the dense masked computation up to float summation order.

Which layers take the sparse path: `sparse_kernels` = `on` (every linear layer with absent weights), `off`, or
`auto`: on a CPU, linear layers of at most MAX_DENSITY and at least MIN_WEIGHTS weights, the region where
`sparsenet bench` measured the CSR step faster than the dense masked one (LeNet-300-100's layers). Convolutions
stay dense: no sparse form of them has been measured yet. GPUs stay dense too (unstructured sparse kernels lost
to dense there at every density measured, see DESIGN.md).
"""
from __future__ import annotations

import warnings
from functools import partial

import torch
from torch import nn

from sparsenet import models
from sparsenet.masks import Mask

MAX_DENSITY = 0.1  # measured: see README, Performance ("sparse kernels")
MIN_WEIGHTS = 10_000

warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")


class Structure:
    """The CSR index structures of one layer's mask [out, in] and of its transpose: built once per mask."""

    def __init__(self, mask: torch.Tensor):
        out_f, in_f = mask.shape
        self.shape = (out_f, in_f)
        csr, csr_t = mask.float().to_sparse_csr(), mask.t().contiguous().float().to_sparse_csr()
        self.crow, self.col = csr.crow_indices(), csr.col_indices()
        self.crow_t, self.col_t = csr_t.crow_indices(), csr_t.col_indices()
        self.kept = mask.flatten().nonzero().squeeze(1)  # W's flat positions in CSR (row-major) order
        flat_t = mask.t().flatten().nonzero().squeeze(1)  # the same entries in W^T's row-major order
        self.kept_t = (flat_t % out_f) * in_f + flat_t // out_f  # ... as positions in W
        self.pattern = self.csr(self.crow, self.col, torch.zeros(len(self.kept)), self.shape)
        # the weight gradient: absent entries are zero once and for all; each backward overwrites the kept ones
        self.grad = torch.zeros(mask.numel())

    @staticmethod
    def csr(crow, col, values, shape) -> torch.Tensor:
        return torch.sparse_csr_tensor(crow, col, values, shape, check_invariants=False)

    def matrices(self, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """W and W^T as CSR matrices holding the current kept values of `weight`."""
        flat = weight.detach().reshape(-1)
        return (self.csr(self.crow, self.col, flat.index_select(0, self.kept), self.shape),
                self.csr(self.crow_t, self.col_t, flat.index_select(0, self.kept_t), self.shape[::-1]))


class _CSRLinear(torch.autograd.Function):
    """x @ (W * mask)^T, with W's gradient at the kept positions only.

    Kernel forms measured fastest on this CPU (1 thread, batch 128, LeNet's layers): W @ x^T and W^T @ g^T with
    torch.sparse.mm (the transposed results are views: the next layer's x^T is then contiguous), and
    sampled_addmm for the weight gradient.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, structure: Structure) -> torch.Tensor:
        w, w_t = structure.matrices(weight)
        ctx.save_for_backward(x)
        ctx.structure, ctx.w_t = structure, w_t
        return torch.sparse.mm(w, x.t()).t()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (x,) = ctx.saved_tensors
        s = ctx.structure
        grad_x = torch.sparse.mm(ctx.w_t, grad.t()).t() if ctx.needs_input_grad[0] else None
        grad_w = None
        if ctx.needs_input_grad[1]:
            kept = torch.sparse.sampled_addmm(s.pattern, grad.t().contiguous(), x, beta=0.0).values()
            # autograd copies it into .grad (we keep a reference), so the buffer is never changed behind our back
            grad_w = s.grad.index_copy_(0, s.kept, kept).view(s.shape)
        return grad_x, grad_w, None


def _forward(module: nn.Linear, structure: Structure, x: torch.Tensor) -> torch.Tensor:
    out = _CSRLinear.apply(x.reshape(-1, module.in_features), module.weight, structure)
    out = out.reshape(*x.shape[:-1], module.out_features)
    return out + module.bias if module.bias is not None else out


def chosen(mode: str, mask: torch.Tensor, device: torch.device) -> bool:
    """Whether a linear layer with this mask takes the sparse path under `mode`."""
    kept = int(mask.sum())
    if mode == "off" or kept == mask.numel() or device.type != "cpu":
        return False
    return mode == "on" or (kept <= MAX_DENSITY * mask.numel() and mask.numel() >= MIN_WEIGHTS)


def install(model: nn.Module, mask: Mask, mode: str) -> dict[str, Structure]:
    """Route the chosen linear layers of `model` through CSR kernels for `mask`; their structures by weight name."""
    routed = {}
    for key, module in models.prunable_modules(model).items():
        if isinstance(module, nn.Linear) and key in mask.layers and chosen(mode, mask.layers[key],
                                                                          module.weight.device):
            routed[key] = Structure(mask.layers[key].cpu())
            module.forward = partial(_forward, module, routed[key])  # this instance only
    return routed
