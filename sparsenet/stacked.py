"""Several seeds of one run configuration in one process and one batched forward/backward.

Each seed is an ordinary `Run` — its own initialisation, data order, mask, algorithm state, checkpoint and run
folder — so results equal training each seed alone (up to float rounding of batched matrix products). Per
step, the seeds' weights (as their algorithms present them to the forward pass) are stacked, one vmapped
forward and backward computes every seed's loss and gradients, and the gradients are handed back to each
seed's own optimizer step. Small models gain most: one large batched kernel instead of K small ones.
Models with buffers (batch norm) are not supported.
"""
from __future__ import annotations

import sys
from contextlib import ExitStack
from pathlib import Path

import torch
from torch.func import functional_call, stack_module_state, vmap

from sparsenet import datasets, execution, models
from sparsenet.config import ConfigError, RunConfig
from sparsenet.train import Run, finished_record, load_data, resolve_device, train


def train_stacked(cfg: RunConfig, seeds: list[int], outs: list[str | Path], *, data_root=None,
                  device: str | None = None, masks: list | None = None, init_weights: list | None = None,
                  code: str | None = None) -> list[dict]:
    """Train `cfg` for every seed in `seeds` into the matching folder of `outs`; return their run records.

    `masks` and `init_weights`, one per seed, start each seed from given structure and weights (as `train`).
    """
    if len(seeds) != len(outs) or len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds: need distinct seeds, one per output folder; got {seeds} for {len(outs)} folders")
    spec = datasets.spec(cfg.data.dataset)
    if dict(models.build(cfg.model.model, spec.input_shape, spec.num_classes).named_buffers()):
        raise ConfigError(f"model: stacked seeds need a model without buffers (batch norm); {cfg.model.model} has some")
    cfgs = [cfg.replace(seed=s) for s in seeds]
    records = {i: finished_record(c, Path(o)) for i, (c, o) in enumerate(zip(cfgs, outs))}
    todo = [i for i, r in records.items() if r is None]
    dev = resolve_device(device)
    data = load_data(cfg, dev, data_root)
    masks, init_weights = masks or [None] * len(seeds), init_weights or [None] * len(seeds)
    runs = {i: Run(cfgs[i], Path(outs[i]), dev, data, mask=masks[i], init_weights=init_weights[i],
                   sparse_kernels=False, code=code) for i in todo}  # vmap calls the shared template's forward
    if len({r.start_epoch for r in runs.values()}) > 1:  # resumed from different epochs: train them one by one
        print("checkpoints of different epochs: training the seeds one after another", file=sys.stderr)
        return [records[i] or train(cfgs[i], outs[i], data_root=data_root, device=device, mask=masks[i],
                                    init_weights=init_weights[i], code=code) for i in range(len(seeds))]
    active = list(runs.values())
    if active:
        _loop(active, cfg.train.epochs)
    for i, run in runs.items():
        records[i] = run.finish()
    return [records[i] for i in range(len(seeds))]


def _loop(active: list[Run], epochs: int) -> None:
    template = active[0].model
    model_call = vmap(lambda params, x: functional_call(template, params, (x,)))
    loss_fn = active[0].loss_fn
    for epoch in range(active[0].start_epoch, epochs):
        batches = zip(*(run.begin_epoch(epoch) for run in active))
        for i, per_seed in enumerate(batches):
            x = torch.stack([b[0] for b in per_seed])
            y = torch.stack([b[1] for b in per_seed])
            for run in active:
                run.before_step(epoch, i)
            with ExitStack() as forward:
                for run in active:
                    forward.enter_context(run.algo.forward_weights())
                params, _ = stack_module_state([run.model for run in active])
                with execution.autocast(active[0].cfg.execution, x.device):  # channels_last, compile: single-seed only
                    output = model_call(params, x)
                    losses = torch.stack([loss_fn(output[k], y[k]) for k in range(len(active))])
                losses.sum().backward()  # seeds share no weights: each seed's gradient is its own loss's
                for k, run in enumerate(active):
                    for name, p in run.model.named_parameters():
                        p.grad = params[name].grad[k]
            for k, run in enumerate(active):
                run.after_step(epoch, i, losses[k], output[k], y[k])
        active = [run for run in active if run.end_epoch(epoch)]  # a diverged seed stops, the others go on
        if not active:
            return
