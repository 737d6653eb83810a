"""SGD with momentum, Nesterov and weight decay: torch.optim.SGD's arithmetic, bitwise (tested), in a small class.

Why not torch.optim.SGD itself: its methods import torch._dynamo on first use, 1.2 s of start-up in every
training job here (a third of a short job's wall time), and it cannot restrict an update to the kept entries of
a weight. This class does both jobs. A weight routed through CSR kernels (`route`, sparsenet.sparse) has no dense
gradient: its layer hands over the gradient at the kept positions, and the step updates those entries only,
giving them the values the dense update would give, then writes them back into the dense weight; absent
entries have zero weight, gradient and momentum, which the dense update would leave at zero anyway. The momentum
of a routed weight is kept at its kept entries only; `state_dict` and `momentum` give it back dense. Other
momentum buffers stay dense tensors keyed by parameter, as torch's SGD keeps them (snfs reads them, rigl, set
and freezing reset them).
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
        self.kept_momentum: dict[torch.Tensor, torch.Tensor] = {}  # routed parameter -> momentum at kept positions

    def route(self, param: torch.Tensor, routed: Routed) -> None:
        """From now on, update `param` at its kept positions only, from the gradient its CSR layer hands over."""
        self.routed[param] = routed
        buf = self.state.get(param, {}).pop("momentum_buffer", None)
        if buf is not None:
            self.kept_momentum[param] = buf.view(-1).index_select(0, routed.kept)

    def momentum(self, param: torch.Tensor) -> torch.Tensor | None:
        """The momentum buffer of `param` as a dense tensor (None before the first step)."""
        if param in self.kept_momentum:
            dense = torch.zeros_like(param)
            dense.view(-1).index_copy_(0, self.routed[param].kept, self.kept_momentum[param])
            return dense
        return self.state.get(param, {}).get("momentum_buffer")

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.param_groups[0]["params"]:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        group = self.param_groups[0]
        dense = [p for p in group["params"] if p.grad is not None and p not in self.routed]
        if dense:  # one multi-tensor step, as torch.optim.SGD takes on GPUs (few kernel launches)
            self._update(dense, [p.grad for p in dense], group)
        for p, routed in self.routed.items():
            if routed.grad is not None:
                self._update_kept(p, routed, group)

    def _update(self, params: list[torch.Tensor], grads: list[torch.Tensor], group: dict) -> None:
        """torch.optim.SGD's step (no dampening) on whole `params`, in place."""
        lr, momentum, decay = group["lr"], group["momentum"], group["weight_decay"]
        d_p = torch._foreach_add(grads, params, alpha=decay) if decay else list(grads)
        if momentum:
            states = [self.state.setdefault(p, {}) for p in params]
            old = [i for i, state in enumerate(states) if "momentum_buffer" in state]
            for state, d in zip(states, d_p):
                state.setdefault("momentum_buffer", d.clone())  # torch: the first buffer is the step itself
            if old:
                torch._foreach_mul_([states[i]["momentum_buffer"] for i in old], momentum)
                torch._foreach_add_([states[i]["momentum_buffer"] for i in old], [d_p[i] for i in old])
            bufs = [state["momentum_buffer"] for state in states]
            d_p = torch._foreach_add(d_p, bufs, alpha=momentum) if group["nesterov"] else bufs
        torch._foreach_add_(params, d_p, alpha=-lr)

    def _update_kept(self, p: torch.Tensor, routed: Routed, group: dict) -> None:
        """The same step on the kept entries of one routed weight, from its layer's compact gradient."""
        lr, momentum, decay = group["lr"], group["momentum"], group["weight_decay"]
        weight, d_p = routed.values(p), routed.grad
        routed.grad = None  # consumed: like a dense gradient, it is set again by the next backward
        if decay:
            d_p = d_p.add(weight, alpha=decay)
        if momentum:
            buf = self.kept_momentum.get(p)
            if buf is None:
                buf = self.kept_momentum[p] = d_p.clone()
            else:
                buf.mul_(momentum).add_(d_p)
            d_p = d_p.add(buf, alpha=momentum) if group["nesterov"] else buf
        routed.write(p, weight.add_(d_p, alpha=-lr))

    def state_dict(self) -> dict:
        params = self.param_groups[0]["params"]
        state = {i: dict(self.state.get(p, {})) for i, p in enumerate(params)}
        for i, p in enumerate(params):
            if p in self.kept_momentum:
                state[i]["momentum_buffer"] = self.momentum(p)
        return {"state": {i: s for i, s in state.items() if s},
                "param_groups": [{k: v for k, v in self.param_groups[0].items() if k != "params"}]}

    def load_state_dict(self, saved: dict) -> None:
        params = self.param_groups[0]["params"]
        self.param_groups[0].update(saved["param_groups"][0])
        self.state = {params[int(i)]: {k: v.to(params[int(i)].device) for k, v in s.items()}
                      for i, s in saved["state"].items()}
        self.kept_momentum = {}
        for p, routed in list(self.routed.items()):
            self.route(p, routed)
