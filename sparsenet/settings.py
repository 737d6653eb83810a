"""What every run setting means: one source for `sparsenet train --help`, `sparsenet settings` and README's table.

Types and defaults come from the hyperparameter dataclasses (sparsenet.config), allowed values from the same
tuples that validate them; this module adds the meaning and the unit. A test holds it to the dataclasses.
"""
from __future__ import annotations

import dataclasses

from sparsenet import config as c

# key -> (meaning, unit); ranges are in the meaning where the dataclass checks one
HELP: dict[str, tuple[str, str]] = {
    "dataset": ("the dataset: a built-in name, or your own by import path package.module:function", ""),
    "batch_size": ("training batch size", "samples"),
    "val_fraction": ("part of the training split held out for validation, the same for every seed, in [0, 1)",
                     "fraction"),
    "train_subset": ("train on the first N training samples only (0: all); at most the split's size", "samples"),
    "augment": ("random crop (4-pixel zero padding) and horizontal flip; CIFAR-10 only", ""),
    "model": ("the model: a registered name, or your own by import path package.module:function", ""),
    "init": ("initialisation of conv and linear weights: open_lth's Kaiming normal, Kaiming uniform, PyTorch's "
             "default, or TensorFlow's variance scaling with zero biases (SNIP's authors)", ""),
    "bn_init": ("batch-norm scales: U[0, 1) as open_lth (uniform) or 1 (fixed); shifts 0", ""),
    "epochs": ("length of training", "epochs"),
    "lr": ("peak learning rate, > 0", ""),
    "momentum": ("SGD momentum, in [0, 1)", ""),
    "nesterov": ("Nesterov momentum (when momentum > 0)", ""),
    "weight_decay": ("L2 weight decay, >= 0", ""),
    "schedule": ("learning-rate schedule after warm-up", ""),
    "warmup_epochs": ("linear warm-up from 0 to lr, in [0, epochs)", "epochs"),
    "milestones": ("the step schedule multiplies lr by gamma at each, in (0, epochs); comma-separated", "epochs"),
    "gamma": ("factor of the step schedule, in (0, 1]", ""),
    "label_smoothing": ("label smoothing of the cross-entropy, in [0, 1)", "fraction"),
    "snapshot_fractions": ("extra mask snapshots inside epoch 1, each in (0, 1); comma-separated",
                           "fraction of epoch 1"),
    "algorithm": ("the sparse-training algorithm (fixed: train under a given mask, as retraining does)", ""),
    "density": ("kept / prunable weights over the sparse layers, in (0, 1]; 1 for dense", "fraction"),
    "distribution": ("per-layer densities of the mask (snfs, dnw, set, rigl, static, gmp's schedule, random masks)",
                     ""),
    "dense_layers": ("prunable weights kept whole, by name (`sparsenet layers MODEL` lists them, e.g. fc3.weight); "
                     "comma-separated", ""),
    "sparsity_scales": ("a layer's sparsity as a multiple of the other sparse layers' (uniform densities; the total "
                        "stays exact), as name:scale pairs (e.g. fc2.weight:0.9)", ""),
    "rigl_layers": ("rigl, set, gmp, static: the layers google-research/rigl's scripts keep dense and their "
                    "sparsity scales (reference: LeNet-300-100's output layer dense and fc2.weight:0.9, a conv "
                    "net's first conv dense), or every prunable weight sparse (all)", ""),
    "prune_rate": ("snfs: fraction of kept weights pruned and regrown at the first update, decaying by cosine, "
                   "in [0, 1)", "fraction"),
    "freeze_epoch": ("snfs_freeze, dnw_freeze, set_freeze, rigl_freeze: the mask is fixed after this many epochs, "
                     "in [1, epochs)", "epochs"),
    "update_interval": ("rigl, set: optimizer steps between mask updates, >= 1", "steps"),
    "update_end": ("rigl, set: no mask update after this fraction of training, in (0, 1]", "fraction"),
    "drop_fraction": ("rigl, set: fraction of each layer's kept weights dropped and regrown at the first update, "
                      "decaying by cosine to 0 at update_end, in (0, 1)", "fraction"),
    "gmp_start": ("gmp: the cubic pruning schedule starts at this fraction of training, in [0, 1)", "fraction"),
    "gmp_end": ("gmp: the target density is reached at this fraction of training, above gmp_start", "fraction"),
    "gmp_interval": ("gmp: optimizer steps between pruning steps, >= 1", "steps"),
    "synflow_rounds": ("synflow: scoring rounds, densities on an exponential schedule, >= 1", ""),
    "imp_rate": ("imp: fraction of the remaining weights pruned per round, in (0, 1)", "fraction"),
    "imp_scope": ("imp: rank weights across all sparse layers (global) or within each layer", ""),
    "imp_layer_rates": ("imp: per-layer multipliers of imp_rate, as name:multiplier pairs (e.g. fc3.weight:0.5)", ""),
    "imp_output": ("imp: the output layer as the model's reference code treats it (reference), kept dense, pruned "
                   "at half the rate, or globally", ""),
    "rewind_epoch": ("imp: rewind each round to the weights after this many epochs of round 0 (0: the initial "
                     "weights), below epochs", "epochs"),
    "precision": ("fp32, or bf16 autocast of forward and loss (weights and optimizer stay fp32)", ""),
    "channels_last": ("NHWC memory format for model, inputs and masks (faster convolutions on recent GPUs)", ""),
    "compile": ("torch.compile the model's forward (single-seed trainer)", ""),
    "deterministic": ("on CUDA: deterministic kernels and no cuDNN autotuning; false is faster and not "
                      "repeatable (no effect on a CPU)", ""),
    "eval_batch_size": ("batch size of evaluation (speed only)", "samples"),
    "sparse_kernels": ("CSR kernels for linear layers while the mask is fixed, on a CPU in fp32: auto (where they "
                       "pay), on, off", ""),
    "seed": ("seed of initialisation, data order and random masks", ""),
}

LIST_TYPES = {"tuple[tuple[str, float], ...]": "name:float list", "tuple[int, ...]": "int list",
              "tuple[float, ...]": "float list", "tuple[str, ...]": "str list"}
CHOICES: dict[str, tuple[str, ...]] = {
    "dataset": c.DATASETS, "algorithm": c.ALGORITHMS, "schedule": c.SCHEDULES, "distribution": c.DISTRIBUTIONS,
    "imp_scope": c.IMP_SCOPES, "precision": c.PRECISIONS, "sparse_kernels": c.SPARSE_KERNELS,
    "init": c.INITS, "bn_init": c.BN_INITS, "imp_output": c.IMP_OUTPUTS, "rigl_layers": c.RIGL_LAYER_RULES,
}


def _defaults() -> dict[str, tuple[str, object]]:
    """key -> (section, default), from the dataclasses."""
    out = {f.name: (section, f.default) for section, hp in c.SECTIONS.items() for f in dataclasses.fields(hp)}
    out["seed"] = ("", 0)
    return out


def allowed(key: str) -> str:
    if key == "model":  # the package's own: the registry also grows with models resolved by import path
        from sparsenet.models import BUILTIN

        return ", ".join(BUILTIN)
    return ", ".join(CHOICES.get(key, ()))


def _text(value) -> str:
    """A default as it is typed on the command line."""
    if isinstance(value, tuple):
        items = [f"{item[0]}:{item[1]}" if isinstance(item, tuple) else str(item) for item in value]
        return ",".join(items) or "(none)"
    return str(value).lower() if isinstance(value, bool) else str(value)


def describe(key: str) -> str:
    """One line of --help: meaning, allowed values, default and unit."""
    meaning, unit = HELP[key]
    parts = [meaning]
    if allowed(key):
        parts.append(f"one of {allowed(key)}")
    parts.append(f"default {_text(_defaults()[key][1])}" + (f" ({unit})" if unit else ""))
    return "; ".join(parts)


def markdown() -> str:
    """README's table of run settings."""
    lines = ["| key | section | type | default | allowed | meaning |", "|---|---|---|---|---|---|"]
    for key, (section, default) in _defaults().items():
        meaning, unit = HELP[key]
        kind = LIST_TYPES.get(c.FIELDS[key], c.FIELDS[key])
        unit = f" ({unit})" if unit else ""
        lines.append(f"| `{key}` | {section or '-'} | {kind} | `{_text(default)}` | {allowed(key) or '-'} | "
                     f"{meaning}{unit} |")
    return "\n".join(lines) + "\n"
