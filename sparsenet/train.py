"""The one training loop, for every algorithm.

A run folder ends up holding: init.safetensors (the dense weights training started from, before the mask),
final.safetensors (the weights the forward pass used at the end), mask.safetensors (the final mask),
snapshots.safetensors (the mask at epoch 0, at `snapshot_fractions` of epoch 1 and after every epoch),
history.parquet (one row per epoch) and run.json (settings, results, provenance), written last. While it
runs, checkpoint.pt holds the last finished epoch; rerunning the same command resumes from it.
"""
from __future__ import annotations

import math
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from sparsenet import config as config_mod
from sparsenet import data as data_mod
from sparsenet import models, provenance
from sparsenet.algorithms import ALGORITHMS, Algorithm
from sparsenet.checkpoint import load_checkpoint, save_checkpoint, save_weights
from sparsenet.config import ConfigError, RunConfig, TrainHparams
from sparsenet.files import ResultFileError, read_json, remove_stale_temporaries, write_json, write_parquet
from sparsenet.masks import Mask, save_snapshots

RUN_FILES = ("init.safetensors", "final.safetensors", "mask.safetensors", "snapshots.safetensors",
             "history.parquet", "run.json")


def resolve_device(name: str | None = None) -> torch.device:
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def run_config(run: str | Path) -> RunConfig:
    """The settings of the finished run in folder `run` (from its run.json)."""
    path = Path(run) / "run.json"
    record = read_json(path)
    if "config" not in record:
        raise ResultFileError(f"{path} is not a run record (no 'config'); rerun the job that writes it")
    return RunConfig.from_nested(record["config"])


def lr_at(hp: TrainHparams, step: int, steps_per_epoch: int) -> float:
    warm = hp.warmup_epochs * steps_per_epoch
    if step < warm:
        return hp.lr * (step + 1) / warm
    if hp.schedule == "cosine":
        t = (step - warm) / max(hp.epochs * steps_per_epoch - warm, 1)
        return hp.lr * 0.5 * (1 + math.cos(math.pi * t))
    if hp.schedule == "step":
        return hp.lr * hp.gamma ** sum(step >= m * steps_per_epoch for m in hp.milestones)
    return hp.lr


def weight_grad_macs_per_sample(model: nn.Module, input_shape, device) -> dict[str, int]:
    """Multiply-adds per sample that one weight's gradient costs, per prunable layer (1 for linear, H*W for conv)."""
    factors, hooks = {}, []
    for name, mod in model.named_modules():
        if isinstance(mod, (nn.Conv2d, nn.Linear)):
            key = f"{name}.weight"

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
def evaluate(model: nn.Module, algo: Algorithm, batcher: data_mod.Batcher,
             split: data_mod.Split) -> tuple[float, float]:
    """(mean loss, accuracy) over a split, with the weights the forward pass uses."""
    model.eval()
    loss_sum = torch.zeros((), device=split.labels.device)
    correct = torch.zeros((), device=split.labels.device, dtype=torch.long)
    with algo.forward_weights():
        for x, y in batcher.ordered(split):
            out = model(x)
            loss_sum += nn.functional.cross_entropy(out, y, reduction="sum")
            correct += (out.argmax(1) == y).sum()
    model.train()
    return loss_sum.item() / len(split), correct.item() / len(split)


def train(cfg: RunConfig, out: str | Path, *, data_root: str | Path | None = None, device: str | None = None,
          init_weights: dict[str, torch.Tensor] | None = None, mask: Mask | None = None,
          save_weights_at_epoch: int = 0, extra: dict | None = None) -> dict:
    """Train one run into folder `out` and return its run.json record; resume if a checkpoint is there.

    `init_weights` and `mask` start the run from given weights and structure (imp rounds, reinit retraining);
    `save_weights_at_epoch` > 0 also saves the weights after that epoch as rewind.safetensors (imp round 0).
    `extra` is stored in run.json (e.g. the variant and source run of a retraining).
    """
    if cfg.algorithm.algorithm == "fixed" and mask is None:
        raise ConfigError("algorithm: 'fixed' trains under a given mask, and none was given")
    out = Path(out)
    record_path = out / "run.json"
    if record_path.exists():
        record = read_json(record_path)
        if record.get("config") != cfg.to_dict():
            raise ConfigError(f"{out} already holds a finished run with other settings; "
                              "remove it or use another folder")
        return record
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out)
    dev = resolve_device(device)
    started = time.time()

    train_split, test_split, val_split = data_mod.load(cfg.data, dev, data_root)
    batcher = data_mod.Batcher(cfg.data, dev)
    input_shape = data_mod.INPUT_SHAPE[cfg.data.dataset]

    torch.manual_seed(cfg.seed)
    model = models.build(cfg.model.model, input_shape, data_mod.NUM_CLASSES[cfg.data.dataset]).to(dev)
    if init_weights is not None:
        model.load_state_dict({k: v.to(dev) for k, v in init_weights.items()})
    init_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    weights = models.prunable(model)
    algo = ALGORITHMS[cfg.algorithm.algorithm](cfg.algorithm, weights, cfg.train.epochs, mask=mask,
                                                generator=torch.Generator().manual_seed(cfg.seed))
    hp = cfg.train
    optimizer = torch.optim.SGD(model.parameters(), lr=hp.lr, momentum=hp.momentum,
                                nesterov=hp.nesterov and hp.momentum > 0, weight_decay=hp.weight_decay)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=hp.label_smoothing)
    macs = weight_grad_macs_per_sample(model, input_shape, dev)
    steps_per_epoch = batcher.batches_per_epoch(train_split)
    snapshot_steps = {max(1, round(f * steps_per_epoch)): f for f in hp.snapshot_fractions}

    history: list[dict] = []
    snapshots: list[Mask] = []
    labels: list[dict] = []

    def snapshot(epoch: float, step: int) -> None:
        snapshots.append(algo.mask().to("cpu"))
        labels.append({"epoch": epoch, "step": step})

    start_epoch, status, prior_wall = 0, "running", 0.0
    ckpt_path = out / "checkpoint.pt"
    code = provenance.code_hash(provenance.training_code(cfg.algorithm.algorithm))
    ckpt = load_checkpoint(ckpt_path) if ckpt_path.exists() else None
    if ckpt is not None and ckpt["config"] != config_mod.dumps(cfg):
        raise ConfigError(f"{ckpt_path} belongs to a run with other settings; delete it to start afresh")
    if ckpt is not None and ckpt["code"] != code:
        print(f"{ckpt_path} was written by other training code; starting afresh", file=sys.stderr)
        ckpt = None
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        algo.load_state_dict(ckpt["algorithm"])
        history, labels, prior_wall = ckpt["history"], ckpt["snapshot_labels"], ckpt["wall_s"]
        snapshots = [Mask(s) for s in ckpt["snapshots"]]
        start_epoch = ckpt["epoch"]
        print(f"resuming {out} after epoch {start_epoch}", file=sys.stderr)
    else:
        save_weights(out / "init.safetensors", init_state)
        snapshot(0.0, 0)

    bar = tqdm(total=hp.epochs * steps_per_epoch, initial=start_epoch * steps_per_epoch, disable=None,
               desc=f"{cfg.algorithm.algorithm} d={cfg.algorithm.density:g} s={cfg.seed}", file=sys.stderr, leave=False)
    model.train()
    for epoch in range(start_epoch, hp.epochs):
        generator = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)  # data order, resumable per epoch
        dense_grad = algo.dense_gradients
        loss_sum = torch.zeros((), device=dev)
        correct = torch.zeros((), device=dev, dtype=torch.long)
        t0 = time.perf_counter()
        for i, (x, y) in enumerate(batcher.epoch(train_split, generator)):
            step = epoch * steps_per_epoch + i
            for group in optimizer.param_groups:
                group["lr"] = lr_at(hp, step, steps_per_epoch)
            with algo.forward_weights():
                output = model(x)
                loss = loss_fn(output, y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
            algo.after_backward()
            optimizer.step()
            algo.after_step()
            loss_sum += loss.detach() * len(y)
            correct += (output.argmax(1) == y).sum()
            if epoch == 0 and (i + 1) in snapshot_steps:
                snapshot(snapshot_steps[i + 1], step + 1)
            bar.update()
        train_s = time.perf_counter() - t0
        train_loss = loss_sum.item() / len(train_split)
        kept = {n: int(m.sum()) for n, m in algo.mask().layers.items()}
        grad_macs = len(train_split) * sum(macs[n] * (weights[n].numel() if dense_grad else kept[n]) for n in weights)
        if not math.isfinite(train_loss):
            status = "diverged"
        else:
            algo.end_of_epoch(epoch + 1, optimizer)
            snapshot(float(epoch + 1), (epoch + 1) * steps_per_epoch)
        test_loss, test_acc = evaluate(model, algo, batcher, test_split)
        row = {"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"], "train_loss": train_loss,
               "train_acc": correct.item() / len(train_split), "test_loss": test_loss, "test_acc": test_acc,
               "density": snapshots[-1].density(), "weight_grad_macs": grad_macs, "dense_gradients": dense_grad,
               "train_s": train_s, "samples_per_s": len(train_split) / train_s}
        if val_split is not None:
            row["val_loss"], row["val_acc"] = evaluate(model, algo, batcher, val_split)
        history.append(row)
        line = (f"epoch {epoch + 1}/{hp.epochs} loss {train_loss:.4f} test_acc {test_acc:.4f} "
                f"density {row['density']:.4f} {row['samples_per_s']:.0f} samples/s")
        (bar.write(line, file=sys.stderr) if not bar.disable else print(line, file=sys.stderr, flush=True))
        if status == "diverged":
            print(f"{out}: training loss is not finite at epoch {epoch + 1}; the run stops as diverged",
                  file=sys.stderr)
            break
        if save_weights_at_epoch == epoch + 1:
            save_weights(out / "rewind.safetensors", model.state_dict())
        save_checkpoint(ckpt_path, {
            "epoch": epoch + 1, "config": config_mod.dumps(cfg), "code": code, "model": model.state_dict(),
            "optimizer": optimizer.state_dict(), "algorithm": algo.state_dict(), "history": history,
            "snapshots": [s.layers for s in snapshots], "snapshot_labels": labels,
            "wall_s": prior_wall + time.time() - started})
    bar.close()

    with algo.forward_weights():
        save_weights(out / "final.safetensors", model.state_dict())
    final_mask = algo.mask()
    final_mask.save(out / "mask.safetensors")
    save_snapshots(out / "snapshots.safetensors", snapshots, labels)
    frame = pd.DataFrame(history)
    frame.insert(0, "status", "diverged" if status == "diverged" else "ok")
    write_parquet(out / "history.parquet", frame)
    last = history[-1]
    record = {
        "config": cfg.to_dict(), "status": "diverged" if status == "diverged" else "ok",
        "test_acc": last["test_acc"], "test_loss": last["test_loss"], "val_acc": last.get("val_acc"),
        "density": final_mask.density(), "epochs_run": len(history),
        "weight_grad_macs": sum(r["weight_grad_macs"] for r in history),
        "wall_s": prior_wall + time.time() - started,
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **provenance.describe(dev), **(extra or {}),
    }
    write_json(record_path, record)
    ckpt_path.unlink(missing_ok=True)
    return record
