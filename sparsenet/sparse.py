"""Real speed from sparsity: linear layers computed with CSR kernels while a run's mask is fixed (on the CPU).

The weights stay ordinary dense parameters, so checkpoints and every analysis see nothing different. Per layer,
the index structure of its mask is built once (`Structure`). Each step computes the forward (x @ W^T), the
input gradient (g @ W) and the weight gradient at the kept positions only (`torch.sparse.sampled_addmm`), and
the optimizer (`sparsenet.optim.SGD`) updates the kept entries from that compact gradient and writes them back
into the dense weight: no dense gradient of a routed weight is ever materialised (its `.grad` stays None), so
absent weights never get one. Results equal the dense masked computation up to float summation order.

Which layers take the sparse path: `sparse_kernels` = `on` (every linear layer with absent weights), `off`, or
`auto`: on a CPU, linear layers in the region where `sparsenet bench` measured the CSR step faster than the
dense masked one (LIMITS). Convolutions stay dense: no sparse form of them has been measured yet. GPUs stay
dense too (unstructured sparse kernels lost to dense there at every density measured, see DESIGN.md).
"""
from __future__ import annotations

import warnings
from functools import partial

import torch
from torch import nn

from sparsenet import models
from sparsenet.masks import Mask

# (at least this many weights, at most this density): LeNet-300-100's fc1 and fc2 routed against the dense masked
# step (whose masking is one float multiply of the gradient under a fixed mask), medians of interleaved repeats on
# this project's CPU at commit 37434b7: a single run 0.70x at density 0.4, 0.85x at 0.3, 0.89x at
# 0.25, 1.13x at 0.2, 1.18x at 0.15; 8 fused runs 0.85x, 0.98x, 1.11x and 1.30x at 0.4, 0.3, 0.25 and 0.2; 3 fused
# runs (ERK) 0.74x at 0.4, 1.05x at 0.2, 1.16x at 0.13. Layers of a thousand weights gain nothing.
LIMITS = ((10_000, 0.2),)
# Evaluation only (the forward, no backward), for the prune sweep's many masks of one run: LeNet-300-100 on
# MNIST's test set, every layer routed, was 1.6-1.8x faster at densities 0.05 to 0.005, even at 0.1, and 0.7x at 0.2.
EVAL_LIMITS = ((10_000, 0.05),)

warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")


class Structure:
    """One routed layer: the CSR index structures of its mask [out, in] and of the transpose (built once per
    mask), and the compact state of a step: the kept values in CSR order and the gradient at them.

    Indices are int32: MKL's sparse routines take 32-bit indices, and torch converts 64-bit ones on every call.
    The kept values gathered for a forward are reused by the optimizer and, after its write-back, by the next
    forward, as long as the weight's version counter says nothing else has written to it since. Writes through
    `.data` do not count as writes there: change a routed weight in place under torch.no_grad() instead.
    """

    def __init__(self, mask: torch.Tensor):
        """`mask` [out, in], or [runs, out, in] for fused runs (sparsenet.fused): then the matrix is block-diagonal,
        run k's block mapping its inputs k*in.. to its outputs k*out.., and the weight is the runs' stacked
        weights (any shape with runs * out * in entries in that order)."""
        blocks = mask.reshape(-1, *mask.shape[-2:])
        runs, out_f, in_f = blocks.shape
        self.shape = (runs * out_f, runs * in_f)
        crow, col, crow_t, col_t, order_t = [], [], [], [], []
        kept_before = 0
        for k, block in enumerate(blocks):  # each block's CSR, shifted to its place on the diagonal
            csr, csr_t = block.float().to_sparse_csr(), block.t().contiguous().float().to_sparse_csr()
            crow.append(csr.crow_indices()[1:] + kept_before)
            crow_t.append(csr_t.crow_indices()[1:] + kept_before)
            col.append(csr.col_indices() + k * in_f)
            col_t.append(csr_t.col_indices() + k * out_f)
            kept = block.flatten().nonzero().squeeze(1)  # the block's flat positions in CSR (row-major) order
            flat_t = block.t().flatten().nonzero().squeeze(1)  # the same entries in the block's W^T order
            order_t.append(torch.searchsorted(kept, (flat_t % out_f) * in_f + flat_t // out_f) + kept_before)
            kept_before += len(kept)
        zero = torch.zeros(1, dtype=torch.long)
        self.crow, self.col = torch.cat([zero, *crow]).int(), torch.cat(col).int()
        self.crow_t, self.col_t = torch.cat([zero, *crow_t]).int(), torch.cat(col_t).int()
        self.order_t = torch.cat(order_t)  # W^T's entries in kept order
        self.kept = blocks.flatten().nonzero().squeeze(1)  # the weight's flat positions in CSR order
        self.pattern = self.csr(self.crow, self.col, torch.zeros(len(self.kept)), self.shape)
        # the weight's gradient at the kept positions, set by backward (the pattern's values: the optimizer
        # consumes it before the next backward overwrites it)
        self.grad: torch.Tensor | None = None
        self._values, self._version = None, None

    @staticmethod
    def csr(crow, col, values, shape) -> torch.Tensor:
        return torch.sparse_csr_tensor(crow, col, values, shape, check_invariants=False)

    def values(self, weight: torch.Tensor) -> torch.Tensor:
        """The kept values of `weight` in CSR order (gathered again only if the weight changed since)."""
        if self._version != weight._version:
            self._values, self._version = weight.detach().reshape(-1).index_select(0, self.kept), weight._version
        return self._values

    @torch.no_grad()
    def write(self, weight: torch.Tensor, values: torch.Tensor) -> None:
        """Store updated kept values into the dense `weight` (its absent entries stay as they are: zero)."""
        weight.view(-1).index_copy_(0, self.kept, values)
        self._values, self._version = values, weight._version

    def matrix(self, weight: torch.Tensor) -> torch.Tensor:
        return self.csr(self.crow, self.col, self.values(weight), self.shape)

    def matrix_t(self, weight: torch.Tensor) -> torch.Tensor:
        return self.csr(self.crow_t, self.col_t, self.values(weight).index_select(0, self.order_t), self.shape[::-1])


class CSRLinear(torch.autograd.Function):
    """x @ (W * mask)^T + b, with W's gradient at the kept positions only, handed to the optimizer through the
    layer's Structure (autograd gets None for W: a dense gradient would cost a scatter and a gather per step).

    Kernel forms measured fastest on this CPU (1 thread, batch 128, LeNet's layers): W @ x^T and W^T @ g^T with
    torch.sparse.mm on contiguous x^T and g^T (the transposed results are views, so the next layer's x^T and the
    previous layer's g^T are contiguous already), the bias inside the same addmm, and sampled_addmm(g^T, x) for
    the weight gradient, given x as a view of the saved x^T: one transposed copy of the input per step.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                structure: Structure) -> torch.Tensor:
        x_t = x.t().contiguous()
        ctx.save_for_backward(x_t, weight)
        ctx.structure = structure
        w = structure.matrix(weight)
        out_t = torch.sparse.mm(w, x_t) if bias is None else torch.addmm(bias.detach().unsqueeze(1), w, x_t)
        return out_t.t()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x_t, weight = ctx.saved_tensors
        s, grad_t = ctx.structure, grad.t().contiguous()
        grad_x = torch.sparse.mm(s.matrix_t(weight), grad_t).t() if ctx.needs_input_grad[0] else None
        if ctx.needs_input_grad[1]:  # summed, as autograd sums .grad: a layer may run twice in one graph
            if s.grad is None:  # into the pattern's own values, zeroed first: out of place, sampled_addmm copies
                s.pattern.values().zero_()  # the pattern's values and indices at every call
                s.grad = torch.sparse.sampled_addmm(s.pattern, grad_t, x_t.t(), beta=0.0, out=s.pattern).values()
            else:
                s.grad.add_(torch.sparse.sampled_addmm(s.pattern, grad_t, x_t.t(), beta=0.0).values())
        grad_b = grad_t.sum(1) if ctx.needs_input_grad[2] else None
        return grad_x, None, grad_b, None


def _forward(module: nn.Linear, structure: Structure, x: torch.Tensor) -> torch.Tensor:
    out = CSRLinear.apply(x.reshape(-1, module.in_features), module.weight, module.bias, structure)
    return out.reshape(*x.shape[:-1], module.out_features)


def chosen(mode: str, mask: torch.Tensor, device: torch.device, precision: str = "fp32", limits=LIMITS) -> bool:
    """Whether a linear layer with this mask takes the sparse path under `mode` (never on a GPU, nor in bf16:
    MKL's CSR kernels have no bfloat16, and CPU autocast would hand them bf16 matrices); `auto` routes it within
    `limits` (LIMITS for training, EVAL_LIMITS for evaluation)."""
    kept = int(mask.sum())
    if mode == "off" or kept == mask.numel() or device.type != "cpu" or precision != "fp32":
        return False
    return mode == "on" or any(mask.numel() >= size and kept <= density * mask.numel() for size, density in limits)


def takes_the_input(model: nn.Module, routed: dict[str, Structure]) -> bool:
    """Whether the model's first layer, reached through flattening only, is routed (then feature-major batches
    spare it the transposed copy of each batch; sparsenet.data.Batcher.normalise)."""
    if not isinstance(model, nn.Sequential):
        return False
    for name, module in model.named_children():
        if not isinstance(module, nn.Flatten):
            return f"{name}.weight" in routed
    return False


def install(model: nn.Module, mask: Mask, mode: str, precision: str = "fp32", limits=LIMITS) -> dict[str, Structure]:
    """Route the chosen linear layers of `model` through CSR kernels for `mask` (a layer routed for an earlier
    mask and not chosen now computes densely again); their structures by weight name."""
    routed = {}
    for key, module in models.prunable_modules(model).items():
        if not isinstance(module, nn.Linear):
            continue
        module.__dict__.pop("forward", None)  # the class's dense forward
        if key in mask.layers and chosen(mode, mask.layers[key], module.weight.device, precision, limits):
            routed[key] = Structure(mask.layers[key].cpu())
            module.forward = partial(_forward, module, routed[key])  # this instance only
    return routed
