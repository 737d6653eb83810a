"""E6 wiring: what a mask actually connects, per layer.

A kept weight is *effective* when it lies on some path from an input to an output of the masked network; the
others carry nothing whatever their values (Vysogorets & Kempe 2023, "Connectivity matters"). A unit (a linear
layer's output neuron, a conv's output channel) is *dead* when none of its positions lies on such a path.

Paths are found by one forward and one backward pass through a copy of the model in float64 whose prunable
weights are the mask itself (0/1), biases zero, batch norm and dropout the identity and max-pools average-pools
(a window connects all its inputs): every activation is then the number of input paths reaching it and every
gradient the number of paths on to the outputs, so a weight is effective exactly where the gradient of the
summed output with respect to it is positive. ReLUs pass non-negative values unchanged; residual additions
add paths. Works for any model made of these parts; the test checks it against a brute-force graph search.

Also per layer: the spread of fan-in over units (coefficient of variation of kept incoming weights per unit).
"""
from __future__ import annotations

import copy
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from sparsenet import datasets, models
from sparsenet.masks import Mask
from sparsenet.record import RunFolder


def _path_network(model: nn.Module, mask: Mask) -> nn.Module:
    net = copy.deepcopy(model).double().eval()
    for name, module in list(net.named_modules()):
        if isinstance(module, nn.modules.batchnorm._BatchNorm) or isinstance(module, nn.Dropout):
            replacement = nn.Identity()
        elif isinstance(module, nn.MaxPool2d):
            replacement = nn.AvgPool2d(module.kernel_size, module.stride, module.padding)
        else:
            continue
        parent, _, attr = name.rpartition(".")
        setattr(net.get_submodule(parent) if parent else net, attr, replacement)
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        weights = models.prunable(net)
        for name, m in mask.layers.items():
            weights[name].copy_(m.to(torch.float64))
    return net


def wiring(model: nn.Module, mask: Mask, input_shape: tuple[int, ...],
           dense_layers: tuple[str, ...] = ()) -> pd.DataFrame:
    """One row per prunable layer: units, dead units, kept and effective weights, fan-in CV; then a row 'all'
    over the sparse layers (`dense_layers` left out, as density leaves them out)."""
    net = _path_network(model, mask)
    modules = models.prunable_modules(net)
    weights = {name: m.weight for name, m in modules.items()}
    outputs: dict[str, torch.Tensor] = {}

    def keep(name):
        def hook(_module, _inputs, out):
            out.retain_grad()
            outputs[name] = out
        return hook

    handles = [modules[name].register_forward_hook(keep(name)) for name in mask.layers]
    try:
        net(torch.ones(1, *input_shape, dtype=torch.float64)).sum().backward()
    finally:
        for h in handles:
            h.remove()
    rows = []
    for name, m in mask.layers.items():
        out = outputs[name]
        units = out.shape[1]
        on_path = (out.detach() * out.grad)[0].reshape(units, -1).sum(1) > 0
        effective = (weights[name].grad > 0) & m.to(weights[name].device)
        fan_in = m.reshape(m.shape[0], -1).sum(1).double()
        cv = float(fan_in.std(unbiased=False) / fan_in.mean()) if fan_in.mean() > 0 else float("nan")
        rows.append({"layer": name, "units": units, "dead_units": int((~on_path).sum()), "size": m.numel(),
                     "kept": int(m.sum()), "effective_kept": int(effective.sum()), "fanin_cv": cv})
    frame = pd.DataFrame(rows)
    sparse = frame[~frame["layer"].isin(dense_layers)]
    total = {"layer": "all", "units": int(frame["units"].sum()), "dead_units": int(frame["dead_units"].sum()),
             "size": int(sparse["size"].sum()), "kept": int(sparse["kept"].sum()),
             "effective_kept": int(sparse["effective_kept"].sum()), "fanin_cv": float("nan")}
    frame = pd.concat([frame, pd.DataFrame([total])], ignore_index=True)
    frame["density"] = frame["kept"] / frame["size"]
    frame["effective_density"] = frame["effective_kept"] / frame["size"]
    return frame


def of_run(run: str | Path) -> pd.DataFrame:
    """wiring() of a trained run's final mask, on its model (E6: a run's layers table)."""
    run = RunFolder(run)
    cfg = run.config()
    spec = datasets.spec(cfg.data.dataset)
    model = models.build(cfg.model.model, spec.input_shape, spec.num_classes)
    return wiring(model, Mask.load(run.mask), spec.input_shape, cfg.algorithm.dense_layers)
