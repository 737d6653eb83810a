"""The fused engine: several runs of one model and recipe trained in one process as one model.

The runs (seeds, densities, masks of one algorithm) each keep their own `Run`: initialisation, data order and
augmentation, algorithm, mask, optimizer state, checkpoint and run folder, so each writes what it writes when
trained alone. Their parameters live as slices of one fused model whose layers compute every run at once:
- activations are laid out [batch, runs x features]: row b holds sample b of every run's batch, run k's
  channels or features as its k-th block, so activations, pooling, residual additions and flattening act per
  run unchanged;
- a linear layer holds the runs' weights stacked [runs x out, in] and runs as one batched matmul, or, once
  every run's mask is fixed, as one block-diagonal CSR product over the runs (sparsenet.sparse);
- a convolution is one grouped convolution (groups = runs x its own groups);
- batch norm is one BatchNorm2d over runs x channels: exactly the runs' own batch norms, running statistics
  included;
- the loss is the sum of the runs' mean losses, so each run gets the gradient it gets alone.
Each run's parameters and buffers are views into the fused ones. While an algorithm changes its mask, its own
hooks and optimizer step act on those views in place, after the fused backward; once every run's mask is fixed
(fixed-mask training, imp rounds, retraining, pruning at initialisation, frozen phases), one fused masked SGD
step over the stacked tensors replaces the runs' own: the fixed-mask algorithm's hooks (Algorithm) over the
stacked weights and masks. Either way the step is sparsenet.step.Trainer's, in its one order. On CUDA that fused
fixed-mask step runs without the host: captured once as a CUDA graph and replayed (sparsenet.graph,
`device_step`). Results equal training each run alone up to the float rounding of batched kernels (tested).
"""
from __future__ import annotations

import copy
import math
import sys
from contextlib import nullcontext
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

from sparsenet import algorithms, models, sparse
from sparsenet.algorithms._base import Algorithm
from sparsenet.config import ConfigError, RunConfig
from sparsenet.execution import resolve_device
from sparsenet.graph import StepGraph
from sparsenet.masks import Mask, kept_only
from sparsenet.optim import SGD
from sparsenet.record import RunRecord
from sparsenet.step import Trainer, lr_at
from sparsenet.train import Run, finished_record, load_data, train


class _StraightThrough(torch.autograd.Function):
    """The weight with its absent entries zeroed for the forward; the backward passes the gradient to every
    entry (dnw's straight-through estimator, as `Algorithm.forward_weights` gives a single run)."""

    @staticmethod
    def forward(ctx, weight: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        return kept_only(weight, keep)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad, None


class _FusedLayer(nn.Module):
    """A fused conv or linear layer: the runs' weights stacked along the first dimension."""

    def __init__(self, layers: list[nn.Module]):
        super().__init__()
        self.runs = len(layers)
        self.weight = nn.Parameter(torch.cat([m.weight.detach() for m in layers]))
        self.bias = nn.Parameter(torch.cat([m.bias.detach() for m in layers])) if layers[0].bias is not None else None
        self.keep: torch.Tensor | None = None  # the forward mask (dnw), stacked as the weight
        self.structure: sparse.Structure | None = None  # the block-diagonal CSR structure while routed

    def forward_weight(self) -> torch.Tensor:
        return self.weight if self.keep is None else _StraightThrough.apply(self.weight, self.keep)


class FusedLinear(_FusedLayer):
    def __init__(self, layers: list[nn.Linear]):
        super().__init__(layers)
        self.in_features, self.out_features = layers[0].in_features, layers[0].out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x [batch, runs x in]
        b = x.shape[0]
        if self.structure is not None:
            return sparse.CSRLinear.apply(x, self.weight, None if self.bias is None else self.bias.view(-1),
                                          self.structure)
        # W @ x^T per run, not x @ W^T: the weight's gradient then comes out [runs, out, in], its own layout, where
        # x @ W^T gives it transposed and autograd copies it into place: a weight-sized copy per layer and step,
        # against the activation-sized one of the output here (on this project's CPU, 4 fused LeNet-300-100 runs
        # trained 6% more samples/s dense and 12-19% more under dnw)
        w = self.forward_weight().view(self.runs, self.out_features, self.in_features)
        xs_t = x.view(b, self.runs, self.in_features).permute(1, 2, 0)  # [runs, in, batch]
        out_t = torch.bmm(w, xs_t) if self.bias is None else torch.baddbmm(self.bias.view(self.runs, -1, 1), w, xs_t)
        return out_t.permute(2, 0, 1).reshape(b, -1)


class FusedConv2d(_FusedLayer):
    def __init__(self, layers: list[nn.Conv2d]):
        super().__init__(layers)
        c = layers[0]
        if c.padding_mode != "zeros":
            raise ConfigError(f"model: fused runs need zero-padded convolutions; a layer pads with {c.padding_mode!r}")
        self.stride, self.padding, self.dilation, self.groups = c.stride, c.padding, c.dilation, c.groups * self.runs

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x [batch, runs x channels, h, w]
        return F.conv2d(x, self.forward_weight(), self.bias, self.stride, self.padding, self.dilation, self.groups)


def _fused_batch_norm(layers: list[nn.BatchNorm2d]) -> nn.BatchNorm2d:
    """One batch norm over every run's channels (batch norm is per channel: the runs' own, stacked)."""
    first = layers[0]
    fused = nn.BatchNorm2d(first.num_features * len(layers), first.eps, first.momentum, first.affine,
                           first.track_running_stats).to(first.weight.device)
    with torch.no_grad():
        for name, tensor in [*fused.named_parameters(recurse=False), *fused.named_buffers(recurse=False)]:
            if name == "num_batches_tracked":
                tensor.copy_(first.num_batches_tracked)
            else:
                tensor.copy_(torch.cat([getattr(m, name) for m in layers]))
    return fused


FUSERS = {nn.Linear: FusedLinear, nn.Conv2d: FusedConv2d, nn.BatchNorm2d: _fused_batch_norm}


def fuse(runs: list[nn.Module], model: str) -> nn.Module:
    """One model computing all of `runs` (models `model`, one of the package's) at once, its parameters and
    buffers initialised from theirs."""
    fused = copy.deepcopy(runs[0])
    for name, module in list(runs[0].named_modules()):
        if type(module) in FUSERS:
            parent, _, child = name.rpartition(".")
            setattr(fused.get_submodule(parent), child,
                    FUSERS[type(module)]([r.get_submodule(name) for r in runs]))
    stray = [n for n, m in fused.named_modules()
             if list(m.parameters(recurse=False)) and not isinstance(m, (_FusedLayer, nn.BatchNorm2d))]
    if stray:
        raise ConfigError(f"model: {model} has layers fused runs cannot stack: {stray}")
    return fused


def _bind(runs: list[Run], fused: nn.Module) -> None:
    """Make every run's parameters and buffers views of its slice of the fused ones."""
    n = len(runs)
    for name, tensor in [*fused.named_parameters(), *fused.named_buffers()]:
        module_name, _, attr = name.rpartition(".")
        for k, run in enumerate(runs):
            module = run.model.get_submodule(module_name)
            if attr == "num_batches_tracked":
                module._buffers[attr] = tensor  # one counter: the runs step together
            elif attr in module._parameters:
                module._parameters[attr].data = tensor.detach().unflatten(0, (n, -1))[k]
            else:
                module._buffers[attr] = tensor.unflatten(0, (n, -1))[k]


class _SharedBatch:
    """A fused batch with one sample per column, for a routed first layer: one [runs x features, batch]
    allocation per step, into whose rows each run normalises its own batch (its `buffer`, sparsenet.data), so the
    runs' batches are the fused batch with no copy."""

    def __init__(self, n: int):
        self.n, self.whole = n, None

    def slot(self, k: int):
        def buffer(shape: torch.Size, device: torch.device) -> torch.Tensor:
            features = math.prod(shape[1:])
            if k == 0:  # the runs draw their batches of a step in order: the first starts the step's allocation
                self.whole = torch.empty(self.n * features, shape[0], device=device)
            return self.whole[k * features:(k + 1) * features].t().view(shape)
        return buffer

    def holds(self, xs: list[torch.Tensor]) -> bool:
        """Whether `xs` are this step's batches, each in its rows."""
        if self.whole is None or self.whole.shape[1] != len(xs[0]):
            return False
        rows = len(self.whole) // self.n
        return all(x.data_ptr() == self.whole[k * rows].data_ptr() for k, x in enumerate(xs))


class FusedRuns(Trainer):
    """The runs of one fused group and their fused model: the step, evaluation and the fused optimizer. Steps
    train the `active` runs (all but those that diverged). `graph`: whether the fused fixed-mask step is a
    StepGraph (captured on CUDA, eager elsewhere); by default where the platform captures steps."""

    def __init__(self, runs: list[Run], graph: bool | None = None):
        self.runs, self.n = runs, len(runs)
        first = runs[0]
        self.cfg, self.dev, self.platform = first.cfg, first.dev, first.platform
        self.model = fuse([r.model for r in runs], first.cfg.model.model)
        self.platform.prepare_model(self.model)
        _bind(runs, self.model)
        self.forward_fn = self.platform.forward_fn(self.model)
        self.layers = {f"{name}.weight": m for name, m in self.model.named_modules() if isinstance(m, _FusedLayer)}
        self.active = list(range(self.n))
        self.optimizer: SGD | None = None  # the fused step, once every mask is fixed,
        self.lr = first.cfg.train.lr  # its learning rate as a number (the step graph's is a device tensor)
        self.fixed: Algorithm | None = None  # with the stacked masks' hooks
        self.shared: _SharedBatch | None = None  # batches with one sample per column, for a routed first layer
        self.loss_fn = nn.CrossEntropyLoss(reduction="none", label_smoothing=first.cfg.train.label_smoothing)
        self.capture = self.platform.captures_steps if graph is None else graph
        self.graph: StepGraph | None = None  # the fused step without the host, once every mask is fixed,
        self.static: tuple[torch.Tensor, torch.Tensor] | None = None  # the batch (x, y) it reads
        # the runs' epoch sums of loss and correct predictions: each run's Run.record sums are its slices of these
        self.sums = torch.zeros(self.n, device=self.dev), torch.zeros(self.n, device=self.dev, dtype=torch.long)
        self.fix_if_all_fixed()

    # --- the fused step, once every mask is fixed -------------------------------------------------------------
    def fix_if_all_fixed(self) -> None:
        """Once every run's mask is fixed: one fused SGD step from now on (its momentum stacked from the runs'),
        stacked masks, and the layers `sparse_kernels` chooses routed through block-diagonal CSR kernels."""
        if self.optimizer is not None or not all(r.algo.mask_fixed for r in self.runs):
            return
        hp = self.cfg.train
        params = list(self.model.parameters())
        self.optimizer = SGD(params, lr=hp.lr, momentum=hp.momentum, nesterov=hp.nesterov and hp.momentum > 0,
                             weight_decay=hp.weight_decay)
        for name, p in self.model.named_parameters():
            own = [r.optimizer.state.get(r.model.get_parameter(name), {}) for r in self.runs]
            if all("momentum_buffer" in state for state in own):
                self.optimizer.state[p] = {"momentum_buffer": torch.cat([s["momentum_buffer"] for s in own])}
        masks = [r.algo.mask() for r in self.runs]
        stacked = Mask({name: torch.cat([m.layers[name] for m in masks]) for name in self.layers})
        for name, layer in self.layers.items():
            per_run = [m.layers[name] for m in masks]
            csr = isinstance(layer, FusedLinear) and all(map(self.platform.csr, per_run))
            if csr and not stacked.layers[name].all():
                layer.structure = sparse.Structure(stacked.layers[name].cpu().view(self.n, *per_run[0].shape))
                self.optimizer.route(layer.weight, layer.structure)
                for run in self.runs:
                    run.sparse_layers = [*(run.sparse_layers or []), name]
        # the base algorithm's fixed-mask hooks: its settings are unused under a given mask
        self.fixed = Algorithm(self.cfg.algorithm, {n: layer.weight for n, layer in self.layers.items()},
                               self.cfg.train.epochs, mask=stacked)
        self.fixed.optimizer = self.optimizer  # routed layers need no masking
        self.fixed.settled_when_fixed = all(r.algo.settled_when_fixed for r in self.runs)  # gmp's are not
        routed = {name: None for name, layer in self.layers.items() if layer.structure is not None}
        if self.platform.batch_buffer(self.model, routed) is not None:
            self.shared = _SharedBatch(self.n)
            for k, run in enumerate(self.runs):  # from their next epoch on
                run.buffer = self.shared.slot(k)
        elif self.capture and not routed:  # CSR kernels run on the CPU only, where nothing is captured
            self.optimizer.param_groups[0]["lr"] = torch.tensor(hp.lr, device=self.dev)
            self.graph = StepGraph(self.device_step, self.dev)

    def sync_runs(self) -> None:
        """Give each run's optimizer the fused step's momentum and learning rate (for its checkpoint)."""
        if self.optimizer is None:
            return
        for k, run in enumerate(self.runs):
            run.optimizer.param_groups[0]["lr"] = self.lr
            for name, fused_p in self.model.named_parameters():
                buf = self.optimizer.momentum(fused_p)
                if buf is not None:
                    run.optimizer.state[run.model.get_parameter(name)] = {
                        "momentum_buffer": buf.unflatten(0, (self.n, -1))[k].clone()}

    # --- one step ------------------------------------------------------------------------------------------
    def _forward_masks(self) -> None:
        """Each layer's forward mask (dnw), stacked over the runs, or None."""
        keeps = [r.algo.forward_mask() for r in self.runs]
        for name, layer in self.layers.items():
            if any(k is not None and name in k.layers for k in keeps):
                w = [r.weights[name] for r in self.runs]
                layer.keep = torch.cat([k.layers[name] if k is not None and name in k.layers
                                        else torch.ones_like(w_k, dtype=torch.bool) for k, w_k in zip(keeps, w)])
            else:
                layer.keep = None

    def batch(self, xs: list[torch.Tensor]) -> torch.Tensor:
        """The runs' batches as one: [batch, runs x channels, ...], or feature-major [batch, runs x features]."""
        if self.shared is not None:
            if self.shared.holds(xs):  # the runs' batches, normalised in place already
                return self.shared.whole.t()
            return torch.cat([x.reshape(len(x), -1).t() for x in xs]).t()  # one copy
        return torch.stack(xs, 1).flatten(1, 2)

    def outputs(self, x: torch.Tensor) -> torch.Tensor:
        """The fused batch's outputs [batch, runs, classes], in the runs' precision and memory format."""
        with self.platform.autocast():
            return self.forward_fn(self.platform.prepare_input(x)).view(len(x), self.n, -1)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(outputs [batch, runs, classes], per-run mean losses [runs]); `y` is [batch, runs]."""
        out = self.outputs(x)
        return out, self.loss_fn(out.float().transpose(1, 2), y).mean(0)

    def backward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`forward`'s (outputs, per-run mean losses), and the fused gradients: runs share no weights, so each run's
        gradient is its own loss's."""
        output, losses = self.forward(x, y)
        losses.sum().backward()
        return output, losses

    @property
    def steps_per_epoch(self) -> int:
        return self.runs[0].steps_per_epoch

    def begin_epoch(self, epoch: int):
        """Every run's batches of the epoch, step by step (each run draws its own order: all stay in step)."""
        batches = zip(*(r.begin_epoch(epoch) for r in self.runs))
        for sums in self.sums:
            sums.zero_()
        for k, run in enumerate(self.runs):
            run.loss_sum, run.correct = self.sums[0][k], self.sums[1][k]
        return batches

    def train_step(self, epoch: int, i: int, per_run: tuple) -> None:
        """Trainer.train_step; with a step graph, its forward, backward, update and the runs' sums run as one
        captured step (`device_step`) on the batch stacked into static buffers; the host part around it (the
        learning rate, the work counts, the snapshots) stays in Trainer.train_step's order."""
        if self.graph is None or len(per_run[0][1]) != self.cfg.data.batch_size:  # a smaller last batch: eagerly
            return super().train_step(epoch, i, per_run)
        xs, ys = [b[0] for b in per_run], [b[1] for b in per_run]
        if self.static is None:
            self.static = self.batch(xs), torch.stack(ys, 1)
        else:
            torch.stack(xs, 1, out=self.static[0].unflatten(1, (self.n, -1)))
            torch.stack(ys, 1, out=self.static[1])
        self.before_step(epoch, i)
        self.graph()
        self.count_work(len(ys[0]))
        for k in self.active:
            self.runs[k].snapshot_due(epoch, i)

    def device_step(self) -> None:
        """The fused fixed-mask step on the static batch, reading nothing back (what sparsenet.graph captures):
        Trainer.train_step's forward, backward and update, and every run's Run.record sums at once."""
        x, y = self.static
        self.optimizer.zero_grad()  # the backward writes fresh gradients: into the graph's own memory when captured
        output, losses = self.backward(x, y)
        self.update()
        self.add_sums(losses, output, y)

    def add_sums(self, losses: torch.Tensor, output: torch.Tensor, y: torch.Tensor) -> None:
        """Every run's Run.record sums at once, the same arithmetic per run (a run that diverged adds to sums no
        longer read)."""
        self.sums[0].add_(losses.detach() * len(y))
        self.sums[1].add_((output.argmax(2) == y).sum(0))

    # the parts of a step (sparsenet.step.Trainer.train_step puts them in order), on a batch per run (x, y)
    def before_step(self, epoch: int, i: int) -> None:
        if self.optimizer is None:
            for k in self.active:
                self.runs[k].before_step(epoch, i)
            self.model.zero_grad(set_to_none=True)
        else:
            self.lr = lr_at(self.cfg.train, epoch * self.steps_per_epoch + i, self.steps_per_epoch)
            if self.graph is None:
                self.optimizer.param_groups[0]["lr"] = self.lr
            else:  # the device tensor the step graph reads
                self.optimizer.param_groups[0]["lr"].fill_(self.lr)
            self.optimizer.zero_grad()

    def forward_weights(self):
        self._forward_masks()
        return nullcontext()

    def forward_backward(self, per_run: tuple):
        """(outputs [batch, runs, classes], per-run mean losses [runs], labels [batch, runs]), and each run's
        gradients: the fused ones, or each active run's views of them while the runs take their own steps."""
        y = torch.stack([b[1] for b in per_run], 1)
        output, losses = self.backward(self.batch([b[0] for b in per_run]), y)
        if self.optimizer is None:
            for k in self.active:
                for name, fused_p in self.model.named_parameters():
                    grad = fused_p.grad
                    self.runs[k].model.get_parameter(name).grad = None if grad is None else grad.unflatten(
                        0, (self.n, -1))[k]
        return output, losses, y

    def count_work(self, samples: int) -> None:
        for k in self.active:
            self.runs[k].count_work(samples)

    def stepped(self):
        if self.optimizer is None:
            return [(self.runs[k].algo, self.runs[k].optimizer) for k in self.active]
        return ((self.fixed, self.optimizer),)

    def record(self, epoch: int, i: int, loss: torch.Tensor, output: torch.Tensor, y: torch.Tensor) -> None:
        self.add_sums(loss, output, y)
        for k in self.active:
            self.runs[k].snapshot_due(epoch, i)

    @torch.no_grad()
    def evaluate(self, split) -> list[tuple[float, float]]:
        """(mean loss, accuracy) of every run over a split, each test batch through all runs at once."""
        self.model.eval()
        self._forward_masks()
        loss_sum = torch.zeros(self.n, device=self.dev)
        correct = torch.zeros(self.n, device=self.dev, dtype=torch.long)
        batcher, batch_size = self.runs[0].batcher, self.platform.hp.eval_batch_size
        for x, y in batcher.ordered(split, batch_size):
            ys = y.unsqueeze(1).expand(-1, self.n)
            out = self.outputs(self.batch([x] * self.n))
            loss_sum += F.cross_entropy(out.float().transpose(1, 2), ys, reduction="none").sum(0)
            correct += (out.argmax(2) == ys).sum(0)
        self.model.train()
        return [(loss / len(split), acc / len(split)) for loss, acc in zip(loss_sum.tolist(), correct.tolist())]


def _check_group(cfgs: list[RunConfig]) -> None:
    """Refuse, before anything is written, runs that cannot be fused."""
    first = cfgs[0]
    if first.model.model not in models.BUILTIN:  # a user's forward may reshape in ways the fused layout breaks
        raise ConfigError(f"model: fused runs take the package's models ({', '.join(models.BUILTIN)}); "
                          f"{first.model.model!r} trains its runs one by one")
    for c in cfgs[1:]:
        for part in ("model", "data", "train", "execution"):
            if getattr(c, part) != getattr(first, part):
                raise ConfigError(f"fused runs share model, data, recipe and execution settings; {part} differs "
                                  f"between the runs of seed {first.seed} and {c.seed}")
        label, first_label = (algorithms.label(x.algorithm.algorithm, x.algorithm.freeze_epoch) for x in (c, first))
        if label != first_label:  # one code identity for all: a frozen run's holds the freeze, an unfrozen one's not
            raise ConfigError(f"fused runs share an algorithm, frozen or not; got {first_label} and {label}")


def train_fused(cfgs: list[RunConfig], outs: list[str | Path], *, data_root=None, device: str | None = None,
                masks: list | None = None, init_weights: list | None = None, extras: list | None = None,
                first_epoch: int = 0, save_weights_at_epoch: int = 0, code: str | None = None) -> list[RunRecord]:
    """Train every run of `cfgs` into the matching folder of `outs` in one fused model; their run records.

    The runs share model, data, recipe, execution settings and algorithm, and may differ in seed, density and
    the algorithm's other settings; `masks` and `init_weights`, one per run, start each from given structure and
    weights, `extras` go into their run.json and all start at `first_epoch` and save their weights after epoch
    `save_weights_at_epoch` (as `train`). Runs resumed from
    checkpoints of different epochs train one after another.
    """
    if len(cfgs) != len(outs) or len({str(Path(o)) for o in outs}) != len(outs):
        raise ConfigError(f"fused runs: need one distinct output folder per run; got {len(outs)} for {len(cfgs)}")
    _check_group(cfgs)
    none = [None] * len(cfgs)
    masks, init_weights, extras = masks or none, init_weights or none, extras or none
    records = {i: finished_record(c, Path(o)) for i, (c, o) in enumerate(zip(cfgs, outs))}
    todo = [i for i, r in records.items() if r is None]
    dev = resolve_device(device)
    data = load_data(cfgs[0], dev, data_root)
    runs = {i: Run(cfgs[i], Path(outs[i]), dev, data, mask=masks[i], init_weights=init_weights[i], extra=extras[i],
                   first_epoch=first_epoch, save_weights_at_epoch=save_weights_at_epoch,
                   sparse_kernels=False, code=code)  # kernels: chosen for the fused layers
            for i in todo}
    if len({r.start_epoch for r in runs.values()}) > 1:
        print("checkpoints of different epochs: training the runs one after another", file=sys.stderr)
        return [records[i] or train(cfgs[i], outs[i], data_root=data_root, device=device, mask=masks[i],
                                    init_weights=init_weights[i], extra=extras[i], first_epoch=first_epoch,
                                    save_weights_at_epoch=save_weights_at_epoch, code=code)
                for i in range(len(cfgs))]
    if runs:
        records.update(zip(runs, _loop(list(runs.values()))))
    return [records[i] for i in range(len(cfgs))]


def _loop(runs: list[Run]) -> list[RunRecord]:
    """Train the fused group to its last epoch; each run's record."""
    group = FusedRuns(runs)
    first = runs[0]
    epochs = first.cfg.train.epochs
    records = {}
    bar = tqdm(total=epochs * first.steps_per_epoch, initial=first.start_epoch * first.steps_per_epoch,
               disable=None, desc=f"{len(runs)} fused {first.cfg.algorithm.algorithm} runs", file=sys.stderr,
               leave=False)
    for epoch in range(first.start_epoch, epochs):
        for i, per_run in enumerate(group.begin_epoch(epoch)):
            group.train_step(epoch, i, per_run)
            bar.update()
        for run in runs:
            run.stop_clock()
        test = group.evaluate(first.test_split)
        val = group.evaluate(first.val_split) if first.val_split is not None else [None] * len(runs)
        group.sync_runs()
        for k in list(group.active):
            if not runs[k].end_epoch(epoch, (test[k], val[k])):  # diverged: written now, before the fused
                records[k] = runs[k].finish()                    # steps move its slice further
                group.active.remove(k)
        if not group.active:
            break
        group.fix_if_all_fixed()
    bar.close()
    for k in group.active:
        records[k] = runs[k].finish()
    return [records[k] for k in range(len(runs))]
