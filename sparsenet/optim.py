"""SGD with momentum, Nesterov and weight decay: torch.optim.SGD's arithmetic, bitwise (tested), in a small class.

Why not torch.optim.SGD itself: its methods import torch._dynamo on first use, 1.2 s of start-up in every
training job here (a third of a short job's wall time), and it cannot restrict an update to the kept entries of
a weight. This class does both jobs: weights routed through CSR kernels (`kept`) are updated at their kept
positions only, where they get the values the dense update would give; absent entries have zero weight,
gradient and momentum, which the dense update would leave at zero anyway. Momentum buffers stay dense tensors
keyed by parameter, as torch's SGD keeps them (snfs reads them, rigl, set and freezing reset them).
"""
from __future__ import annotations

from typing import Iterable

import torch


class SGD:
    def __init__(self, params: Iterable[torch.Tensor], *, lr: float, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0):
        self.param_groups = [{"params": list(params), "lr": lr, "momentum": momentum, "nesterov": nesterov,
                              "weight_decay": weight_decay}]
        self.state: dict[torch.Tensor, dict[str, torch.Tensor]] = {}
        self.kept: dict[torch.Tensor, torch.Tensor] = {}  # parameter -> flat kept positions (CSR-routed weights)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.param_groups[0]["params"]:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        group = self.param_groups[0]
        active = [p for p in group["params"] if p.grad is not None]
        dense = [p for p in active if p not in self.kept]
        if dense:  # one multi-tensor step, as torch.optim.SGD takes on GPUs (few kernel launches)
            self._update(dense, [p.grad for p in dense], dense, group)
        for p in active:
            if p in self.kept:
                idx, flat = self.kept[p], p.view(-1)
                weight = flat.index_select(0, idx)
                self._update([p], [p.grad.view(-1).index_select(0, idx)], [weight], group, idx)
                flat.index_copy_(0, idx, weight)

    def _update(self, params: list[torch.Tensor], grads: list[torch.Tensor], weights: list[torch.Tensor],
                group: dict, idx: torch.Tensor | None = None) -> None:
        """torch.optim.SGD's step (no dampening) on `weights` in place: the whole `params`, or (with `idx`) the
        kept entries of one parameter."""
        lr, momentum, decay = group["lr"], group["momentum"], group["weight_decay"]
        d_p = torch._foreach_add(grads, weights, alpha=decay) if decay else list(grads)
        if momentum:
            states = [self.state.setdefault(p, {}) for p in params]
            if idx is None:
                old = [i for i, state in enumerate(states) if "momentum_buffer" in state]
                for state, d in zip(states, d_p):
                    state.setdefault("momentum_buffer", d.clone())  # torch: the first buffer is the step itself
                if old:
                    torch._foreach_mul_([states[i]["momentum_buffer"] for i in old], momentum)
                    torch._foreach_add_([states[i]["momentum_buffer"] for i in old], [d_p[i] for i in old])
                bufs = [state["momentum_buffer"] for state in states]
            else:
                state = states[0]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(params[0])
                    buf = d_p[0].clone()
                else:
                    buf = state["momentum_buffer"].view(-1).index_select(0, idx).mul_(momentum).add_(d_p[0])
                state["momentum_buffer"].view(-1).index_copy_(0, idx, buf)
                bufs = [buf]
            d_p = torch._foreach_add(d_p, bufs, alpha=momentum) if group["nesterov"] else bufs
        torch._foreach_add_(weights, d_p, alpha=-lr)

    def state_dict(self) -> dict:
        params = self.param_groups[0]["params"]
        return {"state": {i: dict(self.state[p]) for i, p in enumerate(params) if p in self.state},
                "param_groups": [{k: v for k, v in self.param_groups[0].items() if k != "params"}]}

    def load_state_dict(self, saved: dict) -> None:
        params = self.param_groups[0]["params"]
        self.param_groups[0].update(saved["param_groups"][0])
        self.state = {params[int(i)]: {k: v.to(params[int(i)].device) for k, v in s.items()}
                      for i, s in saved["state"].items()}
