"""The one training loop, for every algorithm.

A run folder (sparsenet.record.RunFolder) ends up holding: init.safetensors (the dense weights training started
from, before the mask), final.safetensors (the weights the forward pass used at the end), mask.safetensors (the
final mask), snapshots.safetensors (the mask at epoch 0, at `snapshot_fractions` of epoch 1 and after every
epoch), history.parquet (one row per epoch) and run.json (its RunRecord: settings, results, provenance), written
last. While it runs, checkpoint.pt holds the last finished epoch (its snapshots in checkpoint_snapshots/, one
file each, written once); rerunning the same command resumes from it.
"""
from __future__ import annotations

import math
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import torch
from torch import nn
from tqdm import tqdm

from sparsenet import algorithms, datasets, models, provenance
from sparsenet import config as config_mod
from sparsenet import data as data_mod
from sparsenet.algorithms._base import Algorithm
from sparsenet.checkpoint import load_checkpoint, load_weights, save_checkpoint, save_weights
from sparsenet.config import ConfigError, RunConfig
from sparsenet.execution import Platform, resolve_device
from sparsenet.files import remove_stale_temporaries, write_parquet
from sparsenet.masks import Mask, save_packed_snapshots
from sparsenet.optim import SGD
from sparsenet.record import RunFolder, RunRecord
from sparsenet.step import Trainer, lr_at


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The generator of a run's data order and augmentation in `epoch`: seeded per run and epoch, so resumable."""
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def weight_grad_macs_per_sample(model: nn.Module, input_shape, device) -> dict[str, int]:
    """Multiply-adds per sample that one weight's gradient costs, per prunable layer (1 for linear, H*W for conv)."""
    factors, hooks = {}, []
    for key, mod in models.prunable_modules(model).items():
        def hook(m, inp, out, key=key):
            factors[key] = out.shape[2] * out.shape[3] if out.dim() == 4 else 1
        hooks.append(mod.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, *input_shape, device=device))
    model.train(was_training)
    for h in hooks:
        h.remove()
    return factors


@torch.no_grad()
def evaluate(model: nn.Module, algo: Algorithm, batcher: data_mod.Batcher, split: data_mod.Split,
             platform: Platform | None = None, forward=None, buffer: data_mod.BatchBuffer | None = None,
             batches: list | None = None) -> tuple[float, float]:
    """(mean loss, accuracy) over a split, with the weights the forward pass uses (through `forward` if given), on
    `platform` (default: the split's device, default settings); batches laid out by `buffer` (Platform.batch_buffer),
    or `batches`, the split's evaluation batches made once by a caller that evaluates many masks."""
    device = split.labels.device
    platform = platform or Platform(device)
    model.eval()
    forward = forward or model
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    with algo.forward_weights():
        for x, y in batches or batcher.ordered(split, platform.hp.eval_batch_size, buffer):
            with platform.autocast():
                out = forward(platform.prepare_input(x))
            loss_sum += nn.functional.cross_entropy(out.float(), y, reduction="sum")
            correct += (out.argmax(1) == y).sum()
    model.train()
    return loss_sum.item() / len(split), correct.item() / len(split)


def finished_record(cfg: RunConfig, out: Path) -> RunRecord | None:
    """The record of a finished run of `cfg` in `out`, or None; an error if `out` holds another finished run."""
    folder = RunFolder(out)
    if not folder.is_finished():
        return None
    record = folder.record()
    if record.config != cfg.to_dict():
        raise ConfigError(f"{out} already holds a finished run with other settings; remove it or use another folder")
    return record


class Run(Trainer):
    """One run in training: model, algorithm, optimizer, history and snapshots, resumed from its checkpoint.

    The loops (`train` here, `sparsenet.fused` for several runs at once) drive it; everything a run
    writes is written here.
    """

    def __init__(self, cfg: RunConfig, out: Path, dev: torch.device, data: tuple, *,
                 init_weights: dict[str, torch.Tensor] | None = None, mask: Mask | None = None,
                 save_weights_at_epoch: int = 0, first_epoch: int = 0, extra: dict | None = None,
                 sparse_kernels: bool = True, code: str | None = None):
        """`sparse_kernels=False` keeps every layer dense whatever the settings say (fused runs choose kernels for
        the fused layers);
        `code` is the job's code identity (sparsenet.provenance), by default a `train` job's."""
        algorithm = algorithms.of(cfg.algorithm)
        if algorithm.needs_mask and mask is None:
            raise ConfigError(f"algorithm: {cfg.algorithm.algorithm!r} trains under a given mask, and none was given")
        self.cfg, self.out, self.folder, self.dev, self.extra = cfg, out, RunFolder(out), dev, extra or {}
        RunRecord.check_extra(self.extra)
        self.train_split, self.test_split, self.val_split, self.batcher = data
        self.save_weights_at_epoch = save_weights_at_epoch
        self.started = time.time()
        out.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(out)
        remove_stale_temporaries(self.folder.checkpoint_snapshots)
        self.platform = Platform(dev, cfg.execution)
        self.platform.configure()
        torch.manual_seed(cfg.seed)
        spec = datasets.spec(cfg.data.dataset)
        self.model = models.build(cfg.model.model, spec.input_shape, spec.num_classes, cfg.model.init,
                                  cfg.model.bn_init).to(dev)
        if init_weights is not None:
            self.model.load_state_dict({k: v.to(dev) for k, v in init_weights.items()})
        self.platform.prepare_model(self.model)
        self.forward_fn = self.platform.forward_fn(self.model)
        init_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.weights = models.prunable(self.model)
        self.steps_per_epoch = self.batcher.batches_per_epoch(self.train_split)
        batch = None  # pruning at initialisation scores on data of the run's first epoch
        if mask is None and algorithm.needs_batch:
            batch = algorithm.scoring_batch(self.batcher.epoch(self.train_split, epoch_generator(cfg.seed, 0)),
                                            spec.num_classes)
        self.algo = algorithm(cfg.algorithm, self.weights, cfg.train.epochs, mask=mask,
                              generator=torch.Generator().manual_seed(cfg.seed),
                              steps_per_epoch=self.steps_per_epoch, model=self.model, batch=batch)
        hp = cfg.train
        self.optimizer = SGD(self.model.parameters(), lr=hp.lr, momentum=hp.momentum,
                             nesterov=hp.nesterov and hp.momentum > 0, weight_decay=hp.weight_decay)
        self.algo.optimizer = self.optimizer
        self.loss_fn = nn.CrossEntropyLoss(label_smoothing=hp.label_smoothing)
        self.macs = weight_grad_macs_per_sample(self.model, spec.input_shape, dev)
        self.snapshot_steps = {max(1, round(f * self.steps_per_epoch)): f for f in hp.snapshot_fractions}
        self.history: list[dict] = []
        self.snapshots: list[dict[str, torch.Tensor]] = []  # bit-packed: a long run keeps hundreds
        self.snapshots_saved = 0  # how many of them are in the checkpoint's snapshot folder
        self.mask_shapes = {name: list(w.shape) for name, w in self.weights.items()}
        self.labels: list[dict] = []
        self.start_epoch, self.diverged, self.prior_wall = first_epoch, False, 0.0
        self.ckpt_path = self.folder.checkpoint
        self.code = code or provenance.identity("train", cfg)
        self._resume_or_start(init_state)
        self.sparse_mode = cfg.execution.sparse_kernels if sparse_kernels else "off"
        self.sparse_layers: list[str] | None = None
        self.buffer: data_mod.BatchBuffer | None = None  # the layout of batches for a routed first layer
        self.route_sparse()
        self.model.train()

    def route_sparse(self) -> None:
        """Once the mask is fixed for the rest of the run, route the chosen layers through CSR kernels."""
        if self.sparse_layers is None and self.algo.mask_fixed:
            routed = self.platform.route(self.model, self.algo.mask(), self.sparse_mode)
            self.sparse_layers = list(routed)
            self.buffer = self.platform.batch_buffer(self.model, routed)
            for name, structure in routed.items():
                self.optimizer.route(self.weights[name], structure)

    def _resume_or_start(self, init_state: dict) -> None:
        ckpt = load_checkpoint(self.ckpt_path) if self.ckpt_path.exists() else None
        if ckpt is not None and ckpt["code"] != self.code:  # first: other code may also spell the settings otherwise
            print(f"{self.ckpt_path} was written by other training code; starting afresh", file=sys.stderr)
            ckpt = None
        if ckpt is not None and ckpt["config"] != config_mod.dumps(self.cfg):
            raise ConfigError(f"{self.ckpt_path} belongs to a run with other settings; delete it to start afresh")
        if ckpt is None:
            save_weights(self.folder.init, init_state)
            self.snapshot(float(self.start_epoch), self.start_epoch * self.steps_per_epoch)
            return
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.algo.load_state_dict(ckpt["algorithm"])
        self.history, self.labels, self.prior_wall = ckpt["history"], ckpt["snapshot_labels"], ckpt["wall_s"]
        self.snapshots = [load_weights(self._snapshot_file(i)) for i in range(len(self.labels))]
        self.snapshots_saved, self.density = len(self.snapshots), ckpt["density"]
        self.start_epoch = ckpt["epoch"]
        # Snakemake deletes a killed job's outputs, not its checkpoint: init is rebuilt from the same seed and weights
        if not self.folder.init.exists():
            save_weights(self.folder.init, init_state)
        print(f"resuming {self.out} after epoch {self.start_epoch}", file=sys.stderr)

    def _snapshot_file(self, i: int) -> Path:
        return self.folder.checkpoint_snapshots / f"{i:05d}.safetensors"

    def _save_new_snapshots(self) -> None:
        """Each snapshot taken since the last checkpoint into a file of its own, before the checkpoint that counts it
        (its labels): a checkpoint writes only the new ones, never every earlier snapshot again."""
        self.folder.checkpoint_snapshots.mkdir(exist_ok=True)
        for i in range(self.snapshots_saved, len(self.snapshots)):
            save_weights(self._snapshot_file(i), self.snapshots[i])
        self.snapshots_saved = len(self.snapshots)

    def snapshot(self, epoch: float, step: int) -> None:
        mask = self.algo.mask()
        self.density = mask.density(exclude=self.cfg.algorithm.dense_layers)
        self.snapshots.append(mask.packed())
        self.labels.append({"epoch": epoch, "step": step})

    # --- one epoch ------------------------------------------------------------------------------------------
    def begin_epoch(self, epoch: int):
        """Reset the epoch's sums and return its batches (data order seeded per run and epoch: resumable)."""
        self.grad_work = dict.fromkeys(self.weights, 0)  # weight gradients computed per layer, summed over samples
        self.dense_steps = 0
        self.loss_sum = torch.zeros((), device=self.dev)
        self.correct = torch.zeros((), device=self.dev, dtype=torch.long)
        self.epoch_start, self.train_s = time.perf_counter(), None
        return self.batcher.epoch(self.train_split, epoch_generator(self.cfg.seed, epoch), self.buffer)

    # the parts of a step (sparsenet.step.Trainer.train_step puts them in order)
    def before_step(self, epoch: int, i: int) -> None:
        lr = lr_at(self.cfg.train, epoch * self.steps_per_epoch + i, self.steps_per_epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)

    def forward_weights(self):
        return self.algo.forward_weights()

    def forward_backward(self, batch: tuple[torch.Tensor, torch.Tensor]):
        """(output, loss, y) of batch (x, y), in the run's precision and memory format."""
        x, y = batch
        with self.platform.autocast():
            output = self.forward_fn(self.platform.prepare_input(x))
            loss = self.loss_fn(output, y)
        loss.backward()
        return output, loss, y

    def stepped(self):
        return ((self.algo, self.optimizer),)

    def count_work(self, samples: int) -> None:
        """All weights at steps that need dense gradients, kept ones else."""
        dense, kept = self.algo.dense_gradients, self.algo.kept_counts()
        self.dense_steps += dense
        for name, w in self.weights.items():
            self.grad_work[name] += samples * (w.numel() if dense else kept[name])

    def record(self, epoch: int, i: int, loss: torch.Tensor, output: torch.Tensor, y: torch.Tensor) -> None:
        """The step's loss and accuracy into the epoch's sums, and a snapshot where epoch 1 takes one."""
        self.loss_sum += loss.detach() * len(y)
        self.correct += (output.argmax(1) == y).sum()
        self.snapshot_due(epoch, i)

    def snapshot_due(self, epoch: int, i: int) -> None:
        """A snapshot after step `i` where epoch 1 takes one then."""
        if epoch == 0 and (i + 1) in self.snapshot_steps:
            self.snapshot(self.snapshot_steps[i + 1], epoch * self.steps_per_epoch + i + 1)

    def stop_clock(self) -> None:
        """The epoch's training loop has ended (its seconds go into the history)."""
        self.train_s = time.perf_counter() - self.epoch_start

    def end_epoch(self, epoch: int, evaluated: tuple | None = None) -> bool:
        """Algorithm update, snapshot, evaluation, history, checkpoint; False once the run has diverged.
        `evaluated` is (test, validation or None), each (loss, accuracy), where the caller evaluated already."""
        if self.train_s is None:
            self.stop_clock()
        train_s, n = self.train_s, len(self.train_split)
        train_loss = self.loss_sum.item() / n
        grad_macs = sum(self.macs[k] * work for k, work in self.grad_work.items())
        self.diverged = not math.isfinite(train_loss)
        # evaluate before the algorithm's epoch-end update, as sparse_learning's mnist_cifar/main.py does
        if evaluated is None:
            evaluated = (self.evaluate(self.test_split),
                         self.evaluate(self.val_split) if self.val_split is not None else None)
        (test_loss, test_acc), val = evaluated
        if not self.diverged:
            self.algo.end_of_epoch(epoch + 1, self.optimizer)
            self.route_sparse()
            self.snapshot(float(epoch + 1), (epoch + 1) * self.steps_per_epoch)
        row = {"epoch": epoch + 1, "lr": self.optimizer.param_groups[0]["lr"], "train_loss": train_loss,
               "train_acc": self.correct.item() / n, "test_loss": test_loss, "test_acc": test_acc,
               "density": self.density, "weight_grad_macs": grad_macs,
               "dense_gradients": self.dense_steps > 0, "train_s": train_s, "samples_per_s": n / train_s}
        if val is not None:
            row["val_loss"], row["val_acc"] = val
        self.history.append(row)
        tqdm.write(f"{self.out} epoch {epoch + 1}/{self.cfg.train.epochs} loss {train_loss:.4f} "
                   f"test_acc {test_acc:.4f} density {row['density']:.4f} {row['samples_per_s']:.0f} samples/s",
                   file=sys.stderr)
        if self.diverged:
            print(f"{self.out}: training loss is not finite at epoch {epoch + 1}; the run stops as diverged",
                  file=sys.stderr)
            return False
        if self.save_weights_at_epoch == epoch + 1:
            save_weights(self.folder.rewind, self.model.state_dict())
        self._save_new_snapshots()
        save_checkpoint(self.ckpt_path, {
            "epoch": epoch + 1, "config": config_mod.dumps(self.cfg), "code": self.code,
            # cloned: a fused run's tensors are views, and torch.save would write the fused storage whole
            "model": {k: v.clone() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "algorithm": self.algo.state_dict(), "history": self.history,
            "density": self.density, "snapshot_labels": self.labels,
            "wall_s": self.prior_wall + time.time() - self.started})
        return True

    def evaluate(self, split: data_mod.Split) -> tuple[float, float]:
        return evaluate(self.model, self.algo, self.batcher, split, self.platform, self.forward_fn, self.buffer)

    # --- the end ----------------------------------------------------------------------------------------------
    def finish(self) -> RunRecord:
        """Write the run's outputs, run.json last, and drop the checkpoint."""
        with self.algo.forward_weights():
            save_weights(self.folder.final, self.model.state_dict())
        final_mask = self.algo.mask()
        final_mask.save(self.folder.mask)
        save_packed_snapshots(self.folder.snapshots, self.snapshots, self.mask_shapes, self.labels)
        status = "diverged" if self.diverged else "ok"
        write_parquet(self.folder.history, pa.Table.from_pylist([{"status": status, **row} for row in self.history]))
        last = self.history[-1]
        record = RunRecord(
            config=self.cfg.to_dict(), status=status, test_acc=last["test_acc"], test_loss=last["test_loss"],
            val_acc=last.get("val_acc"), density=final_mask.density(exclude=self.cfg.algorithm.dense_layers),
            epochs_run=len(self.history), steps_per_epoch=self.steps_per_epoch,
            weight_grad_macs=sum(r["weight_grad_macs"] for r in self.history),
            wall_s=self.prior_wall + time.time() - self.started,
            finished=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            sparse_layers=self.sparse_layers or [], **provenance.describe(self.dev, self.code), **self.extra)
        record.write(self.folder.record_path)
        self.ckpt_path.unlink(missing_ok=True)
        # after the checkpoint that named its files
        shutil.rmtree(self.folder.checkpoint_snapshots, ignore_errors=True)
        return record


def load_data(cfg: RunConfig, dev: torch.device, data_root) -> tuple:
    """(train, test, val, batcher) for a run of `cfg` on `dev`."""
    train_split, test_split, val_split = data_mod.load(cfg.data, dev, data_root)
    return train_split, test_split, val_split, data_mod.Batcher(cfg.data, dev, data_root)


def train(cfg: RunConfig, out: str | Path, *, data_root: str | Path | None = None, device: str | None = None,
          init_weights: dict[str, torch.Tensor] | None = None, mask: Mask | None = None,
          save_weights_at_epoch: int = 0, first_epoch: int = 0, extra: dict | None = None,
          code: str | None = None) -> RunRecord:
    """Train one run into folder `out` and return its record; resume if a checkpoint is there.

    `init_weights` and `mask` start the run from given weights and structure (imp rounds, reinit retraining);
    `save_weights_at_epoch` > 0 also saves the weights after that epoch as rewind.safetensors (imp round 0);
    `first_epoch` k starts at epoch k, data order and learning-rate schedule as if k epochs had passed (imp
    rounds after late rewinding, as open_lth's `start_step`).
    `extra` is stored in run.json (e.g. the variant and source run of a retraining); `code` is the job's code
    identity (sparsenet.provenance.identity), kept in run.json and the checkpoint.
    """
    out = Path(out)
    record = finished_record(cfg, out)
    if record is not None:
        return record
    dev = resolve_device(device)
    run = Run(cfg, out, dev, load_data(cfg, dev, data_root), init_weights=init_weights, mask=mask,
              save_weights_at_epoch=save_weights_at_epoch, first_epoch=first_epoch, extra=extra, code=code)
    bar = tqdm(total=cfg.train.epochs * run.steps_per_epoch, initial=run.start_epoch * run.steps_per_epoch,
               disable=None, desc=f"{cfg.algorithm.algorithm} d={cfg.algorithm.density:g} s={cfg.seed}",
               file=sys.stderr, leave=False)
    for epoch in range(run.start_epoch, cfg.train.epochs):
        for i, batch in enumerate(run.begin_epoch(epoch)):
            run.train_step(epoch, i, batch)
            bar.update()
        if not run.end_epoch(epoch):
            break
    bar.close()
    return run.finish()
