"""SGD with momentum, Nesterov and weight decay: torch.optim.SGD's arithmetic, bitwise (tested), in a small class.

Why not torch.optim.SGD itself: its methods import torch._dynamo on first use, 1.2 s of start-up in every
training job here (a third of a short job's wall time), and it cannot restrict an update to the kept entries of
a weight. This class does both jobs. A weight routed through CSR kernels (`route`, sparsenet.sparse) has no dense
gradient: its layer hands over the gradient at the kept positions, and the step updates those entries only,
giving them the values the dense update would give, then writes them back into the dense weight; absent
entries have zero weight, gradient and momentum, which the dense update would leave at zero anyway. The momentum
buffer of a routed weight holds its kept entries only; `state_dict` and `momentum` give it back dense. Other
momentum buffers are dense tensors keyed by parameter, as torch's SGD keeps them (snfs reads them, rigl, set and
freezing reset them; none of them runs once a mask is fixed and routed). The learning rate may be a 0-dim device
tensor, which a CUDA graph of the step reads at each replay (sparsenet.graph); the update is then d * lr subtracted,
the same arithmetic up to the rounding of a fused multiply-add.
"""
from __future__ import annotations

from typing import Iterable, Protocol

import torch


class Routed(Protocol):
    """What a CSR-routed layer gives the optimizer (sparsenet.sparse.Structure)."""

    kept: torch.Tensor  # flat positions of the kept weights
    grad: torch.Tensor | None  # the gradient at them, from the last backward

    def values(self, weight: torch.Tensor) -> torch.Tensor: ...  # the kept values of `weight`

    def write(self, weight: torch.Tensor, values: torch.Tensor) -> None: ...  # store them back into `weight`


class SGD:
    def __init__(self, params: Iterable[torch.Tensor], *, lr: float, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0):
        self.param_groups = [{"params": list(params), "lr": lr, "momentum": momentum, "nesterov": nesterov,
                              "weight_decay": weight_decay}]
        self.state: dict[torch.Tensor, dict[str, torch.Tensor]] = {}
        self.routed: dict[torch.Tensor, Routed] = {}  # weight -> its layer's sparsenet.sparse.Structure

    def route(self, param: torch.Tensor, routed: Routed) -> None:
        """From now on, update `param` at its kept positions only, from the gradient its CSR layer hands over;
        its momentum buffer (in `state`) shrinks to those positions."""
        self.routed[param] = routed
        buf = self.state.get(param, {}).get("momentum_buffer")
        if buf is not None and buf.shape == param.shape:
            self.state[param]["momentum_buffer"] = buf.view(-1).index_select(0, routed.kept)

    def momentum(self, param: torch.Tensor) -> torch.Tensor | None:
        """The momentum buffer of `param` as a dense tensor (None before the first step)."""
        buf = self.state.get(param, {}).get("momentum_buffer")
        if buf is not None and param in self.routed:
            return torch.zeros_like(param).view(-1).index_copy_(0, self.routed[param].kept, buf).view_as(param)
        return buf

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.param_groups[0]["params"]:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()
        for routed in self.routed.values():  # the compact gradients a routed layer's backward passes sum into
            routed.grad = None

    @torch.no_grad()
    def step(self) -> None:
        """One multi-tensor step over every weight with a gradient (few kernel launches): whole dense weights,
        and the kept entries of routed ones, which are then written back."""
        group = self.param_groups[0]
        params, weights, grads = [], [], []
        for p in group["params"]:
            routed = self.routed.get(p)
            if routed is not None and routed.grad is not None:
                update = routed.values(p), routed.grad
                routed.grad = None  # consumed: the next backward hands over a new one
            elif routed is None and p.grad is not None:
                update = p, p.grad
            else:
                continue
            params.append(p)
            weights.append(update[0])
            grads.append(update[1])
        if params:
            self._update(params, weights, grads, group)
        for p, weight in zip(params, weights):
            if p in self.routed:
                self.routed[p].write(p, weight)

    def _update(self, params: list[torch.Tensor], weights: list[torch.Tensor], grads: list[torch.Tensor],
                group: dict) -> None:
        """torch.optim.SGD's step (no dampening) on `weights` in place (each parameter itself, or its kept values),
        with momentum buffers kept per parameter."""
        lr, momentum, decay = group["lr"], group["momentum"], group["weight_decay"]
        d_p = torch._foreach_add(grads, weights, alpha=decay) if decay else list(grads)
        if momentum:
            states = [self.state.setdefault(p, {}) for p in params]
            old = [i for i, state in enumerate(states) if "momentum_buffer" in state]
            for state, d in zip(states, d_p):
                if "momentum_buffer" not in state:  # torch: the first buffer is the step itself
                    state["momentum_buffer"] = d.clone()
            if old:
                torch._foreach_mul_([states[i]["momentum_buffer"] for i in old], momentum)
                torch._foreach_add_([states[i]["momentum_buffer"] for i in old], [d_p[i] for i in old])
            bufs = [state["momentum_buffer"] for state in states]
            d_p = torch._foreach_add(d_p, bufs, alpha=momentum) if group["nesterov"] else bufs
        if isinstance(lr, torch.Tensor):  # on the device: a captured step reads it at every replay (sparsenet.graph)
            torch._foreach_sub_(weights, torch._foreach_mul(d_p, lr))
        else:
            torch._foreach_add_(weights, d_p, alpha=-lr)

    def state_dict(self) -> dict:
        params = self.param_groups[0]["params"]
        state = {i: dict(self.state.get(p, {})) for i, p in enumerate(params)}
        for i, p in enumerate(params):
            if "momentum_buffer" in state[i]:
                state[i]["momentum_buffer"] = self.momentum(p)
        return {"state": {i: s for i, s in state.items() if s},
                "param_groups": [{k: v for k, v in self.param_groups[0].items() if k != "params"}]}

    def load_state_dict(self, saved: dict) -> None:
        params = self.param_groups[0]["params"]
        self.param_groups[0].update(saved["param_groups"][0])
        self.state = {params[int(i)]: {k: v.to(params[int(i)].device) for k, v in s.items()}
                      for i, s in saved["state"].items()}
        for p, routed in self.routed.items():
            self.route(p, routed)
