"""Hyperparameters of a run, as dataclasses (after open_lth's foundations/hparams.py): one section per concern.

Every field is a flat command-line flag (``--batch-size``) and a key of a run config file, declared with its
default, meaning, unit and allowed values (`setting`); its type is the field's type hint. A bad value is
rejected when the dataclass is built, with the key and the allowed values in the message.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import yaml

DATASETS = ("mnist", "fashion_mnist", "cifar10")
SCHEDULES = ("cosine", "step", "constant")
DISTRIBUTIONS = ("uniform", "erk")
IMP_SCOPES = ("global", "layerwise")
IMP_OUTPUTS = ("reference", "dense", "half", "global")
RIGL_LAYER_RULES = ("reference", "all")
INITS = ("kaiming_normal", "kaiming_uniform", "pytorch", "variance_scaling")
BN_INITS = ("uniform", "fixed")
PRECISIONS = ("fp32", "bf16")
SPARSE_KERNELS = ("auto", "on", "off")
PRESET_DIR = Path(__file__).parent / "recipes"


def setting(default: Any, help: str, *, unit: str = "", choices: tuple[str, ...] = ()) -> Any:
    """A run setting's field: its default, and for --help, `sparsenet settings` and README (sparsenet.settings)
    its meaning (ranges are in it where the dataclass checks one), unit and allowed values."""
    return field(default=default, metadata={"help": help, "unit": unit, "choices": choices})


class ConfigError(ValueError):
    """A setting is missing, unknown or out of range; the message names the key."""


def _check(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"{key}: {message}")


def _check_fraction(value: float, key: str, *, low_open: bool, high_open: bool) -> None:
    above = value > 0 if low_open else value >= 0
    below = value < 1 if high_open else value <= 1
    lo, hi = ("(" if low_open else "["), (")" if high_open else "]")
    _check(above and below, key, f"must lie in {lo}0, 1{hi}, got {value!r}")


@dataclass(frozen=True)
class DataHparams:
    dataset: str = setting("mnist", "the dataset: a built-in name, or your own by import path package.module:function",
                           choices=DATASETS)
    batch_size: int = setting(128, "training batch size", unit="samples")
    val_fraction: float = setting(0.0, "part of the training split held out for validation, the same for every seed, "
                                  "in [0, 1)", unit="fraction")
    train_subset: int = setting(0, "train on the first N training samples only (0: all); at most the split's size",
                                unit="samples")
    augment: bool = setting(True, "random crop (4-pixel zero padding) and horizontal flip; CIFAR-10 only")

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            from sparsenet.datasets import loader

            try:
                loader(self.dataset)
            except KeyError as e:
                raise ConfigError(f"dataset: {e.args[0]}") from None
        _check(self.batch_size >= 1, "batch_size", f"must be >= 1, got {self.batch_size!r}")
        _check_fraction(self.val_fraction, "val_fraction", low_open=False, high_open=True)
        _check(self.train_subset >= 0, "train_subset", f"must be >= 0, got {self.train_subset!r}")


@dataclass(frozen=True)
class ModelHparams:
    model: str = setting("lenet300_100", "the model: a registered name, or your own by import path "
                         "package.module:function")
    # open_lth models/initializers.py (kaiming_normal) and models/bn_initializers.py (uniform)
    init: str = setting("kaiming_normal", "initialisation of conv and linear weights: open_lth's Kaiming normal, "
                        "Kaiming uniform, PyTorch's default, or TensorFlow's variance scaling with zero biases (SNIP's "
                        "authors)", choices=INITS)
    bn_init: str = setting("uniform", "batch-norm scales: U[0, 1) as open_lth (uniform) or 1 (fixed); shifts 0",
                           choices=BN_INITS)

    def __post_init__(self) -> None:
        from sparsenet.models import resolve

        try:
            resolve(self.model)
        except KeyError as e:
            raise ConfigError(f"model: {e.args[0]}") from None
        _check(self.init in INITS, "init", f"must be one of {', '.join(INITS)}; got {self.init!r}")
        _check(self.bn_init in BN_INITS, "bn_init", f"must be one of {', '.join(BN_INITS)}; got {self.bn_init!r}")


@dataclass(frozen=True)
class TrainHparams:
    epochs: int = setting(30, "length of training", unit="epochs")
    lr: float = setting(0.1, "peak learning rate, > 0")
    momentum: float = setting(0.9, "SGD momentum, in [0, 1)")
    nesterov: bool = setting(True, "Nesterov momentum (when momentum > 0)")
    weight_decay: float = setting(1e-4, "L2 weight decay, >= 0")
    schedule: str = setting("cosine", "learning-rate schedule after warm-up", choices=SCHEDULES)
    warmup_epochs: int = setting(0, "linear warm-up from 0 to lr, in [0, epochs)", unit="epochs")
    milestones: tuple[int, ...] = setting((), "the step schedule multiplies lr by gamma at each, in (0, epochs); "
                                          "comma-separated", unit="epochs")
    gamma: float = setting(0.1, "factor of the step schedule, in (0, 1]")
    label_smoothing: float = setting(0.0, "label smoothing of the cross-entropy, in [0, 1)", unit="fraction")
    snapshot_fractions: tuple[float, ...] = setting((0.1, 0.25, 0.5), "extra mask snapshots inside epoch 1, each in "
                                                    "(0, 1); comma-separated", unit="fraction of epoch 1")

    def __post_init__(self) -> None:
        _check(self.epochs >= 1, "epochs", f"must be >= 1, got {self.epochs!r}")
        _check(self.lr > 0, "lr", f"must be > 0, got {self.lr!r}")
        _check(0 <= self.momentum < 1, "momentum", f"must lie in [0, 1), got {self.momentum!r}")
        _check(self.weight_decay >= 0, "weight_decay", f"must be >= 0, got {self.weight_decay!r}")
        _check(self.schedule in SCHEDULES, "schedule", f"must be one of {', '.join(SCHEDULES)}; got {self.schedule!r}")
        _check(0 <= self.warmup_epochs < self.epochs, "warmup_epochs",
               f"must lie in [0, epochs={self.epochs}), got {self.warmup_epochs!r}")
        _check(all(0 < m < self.epochs for m in self.milestones), "milestones",
               f"each must lie in (0, epochs={self.epochs}), got {list(self.milestones)}")
        _check(0 < self.gamma <= 1, "gamma", f"must lie in (0, 1], got {self.gamma!r}")
        _check_fraction(self.label_smoothing, "label_smoothing", low_open=False, high_open=True)
        for f in self.snapshot_fractions:
            _check_fraction(f, "snapshot_fractions", low_open=True, high_open=True)


@dataclass(frozen=True)
class AlgorithmHparams:
    algorithm: str = setting("dense", "the sparse-training algorithm (sparsenet.algorithms; fixed: train under a given "
                             "mask, as retraining does), or a user's own by import path 'package.module:Class'")
    density: float = setting(1.0, "kept / prunable weights over the sparse layers, in (0, 1]; 1 for dense",
                             unit="fraction")
    distribution: str = setting("uniform", "per-layer densities of the mask (snfs, dnw, set, rigl, static, gmp's "
                                "schedule, random masks)", choices=DISTRIBUTIONS)
    dense_layers: tuple[str, ...] = setting((), "prunable weights kept whole, by name (`sparsenet layers MODEL` lists "
                                            "them, e.g. fc3.weight); comma-separated")
    sparsity_scales: tuple[tuple[str, float], ...] = setting((), "a layer's sparsity as a multiple of the other sparse "
                                                             "layers' (uniform densities; the total stays exact), as "
                                                             "name:scale pairs (e.g. fc2.weight:0.9)")
    rigl_layers: str = setting("reference", "rigl, set, gmp, static: the layers google-research/rigl's scripts keep "
                               "dense and their sparsity scales (reference: LeNet-300-100's output layer dense and "
                               "fc2.weight:0.9, a conv net's first conv dense), or every prunable weight sparse (all)",
                               choices=RIGL_LAYER_RULES)
    prune_rate: float = setting(0.5, "snfs: fraction of kept weights pruned and regrown at the first update, decaying "
                                "by cosine, in [0, 1)", unit="fraction")
    freeze_epoch: int = setting(0, "fix the mask after this many epochs (an algorithm that can freeze, `sparsenet "
                                "algorithms`; tables call the run <name>_freeze), in [0, epochs); 0: never",
                                unit="epochs")
    update_interval: int = setting(100, "rigl, set: optimizer steps between mask updates, >= 1", unit="steps")
    update_end: float = setting(0.75, "rigl, set: no mask update after this fraction of training, in (0, 1]",
                                unit="fraction")
    drop_fraction: float = setting(0.3, "rigl, set: fraction of each layer's kept weights dropped and regrown at the "
                                   "first update, decaying by cosine to 0 at update_end, in (0, 1)", unit="fraction")
    gmp_start: float = setting(0.0167, "gmp: the cubic pruning schedule starts at this fraction of training, in [0, 1)",
                               unit="fraction")
    gmp_end: float = setting(0.25, "gmp: the target density is reached at this fraction of training, above gmp_start",
                             unit="fraction")
    gmp_interval: int = setting(500, "gmp: optimizer steps between pruning steps, >= 1", unit="steps")
    synflow_rounds: int = setting(100, "synflow: scoring rounds, densities on an exponential schedule, >= 1")
    imp_rate: float = setting(0.2, "imp: fraction of the remaining weights pruned per round, in (0, 1)",
                              unit="fraction")
    imp_scope: str = setting("global", "imp: rank weights across all sparse layers (global) or within each layer",
                             choices=IMP_SCOPES)
    imp_layer_rates: tuple[tuple[str, float], ...] = setting((), "imp: per-layer multipliers of imp_rate, as "
                                                             "name:multiplier pairs (e.g. fc3.weight:0.5)")
    imp_output: str = setting("reference", "imp: the output layer as the model's reference code treats it (reference), "
                              "kept dense, pruned at half the rate, or globally", choices=IMP_OUTPUTS)
    rewind_epoch: int = setting(0, "imp: rewind each round to the weights after this many epochs of round 0 (0: the "
                                "initial weights), below epochs", unit="epochs")

    def __post_init__(self) -> None:
        from sparsenet import algorithms  # it imports this module: not at the top

        algorithms.get(self.algorithm)  # a ConfigError naming the key where there is no such algorithm
        _check_fraction(self.density, "density", low_open=True, high_open=False)
        _check(self.algorithm != "dense" or self.density == 1.0, "density",
               f"the dense algorithm has density 1.0, got {self.density!r}")
        _check(self.distribution in DISTRIBUTIONS, "distribution",
               f"must be one of {', '.join(DISTRIBUTIONS)}; got {self.distribution!r}")
        for name, scale in self.sparsity_scales:
            _check(scale > 0, "sparsity_scales", f"the scale of {name!r} must be > 0, got {scale!r}")
        _check(not self.sparsity_scales or self.distribution == "uniform", "sparsity_scales",
               f"apply to distribution 'uniform' only, got distribution {self.distribution!r}")
        _check(self.rigl_layers in RIGL_LAYER_RULES, "rigl_layers",
               f"must be one of {', '.join(RIGL_LAYER_RULES)}; got {self.rigl_layers!r}")
        _check_fraction(self.prune_rate, "prune_rate", low_open=False, high_open=True)
        _check(self.freeze_epoch >= 0, "freeze_epoch", f"must be >= 0, got {self.freeze_epoch!r}")
        _check(self.update_interval >= 1, "update_interval", f"must be >= 1, got {self.update_interval!r}")
        _check_fraction(self.update_end, "update_end", low_open=True, high_open=False)
        _check_fraction(self.drop_fraction, "drop_fraction", low_open=True, high_open=True)
        _check_fraction(self.gmp_start, "gmp_start", low_open=False, high_open=True)
        _check_fraction(self.gmp_end, "gmp_end", low_open=True, high_open=False)
        _check(self.gmp_start < self.gmp_end, "gmp_end",
               f"must be above gmp_start={self.gmp_start}, got {self.gmp_end!r}")
        _check(self.gmp_interval >= 1, "gmp_interval", f"must be >= 1, got {self.gmp_interval!r}")
        _check(self.synflow_rounds >= 1, "synflow_rounds", f"must be >= 1, got {self.synflow_rounds!r}")
        _check_fraction(self.imp_rate, "imp_rate", low_open=True, high_open=True)
        _check(self.imp_scope in IMP_SCOPES, "imp_scope",
               f"must be one of {', '.join(IMP_SCOPES)}; got {self.imp_scope!r}")
        _check(self.imp_output in IMP_OUTPUTS, "imp_output",
               f"must be one of {', '.join(IMP_OUTPUTS)}; got {self.imp_output!r}")
        for name, mult in self.imp_layer_rates:
            _check(mult > 0 and mult * self.imp_rate < 1, "imp_layer_rates",
                   f"multiplier for {name!r} must make the rate lie in (0, 1), got {mult!r}")
        _check(self.rewind_epoch >= 0, "rewind_epoch", f"must be >= 0, got {self.rewind_epoch!r}")


@dataclass(frozen=True)
class ExecutionHparams:
    """How a run executes on its device. These change speed, and (but eval_batch_size) float rounding."""

    precision: str = setting("fp32", "fp32, or bf16 autocast of forward and loss (weights and optimizer stay fp32)",
                             choices=PRECISIONS)
    channels_last: bool = setting(False, "NHWC memory format for model, inputs and masks (faster convolutions on "
                                  "recent GPUs)")
    compile: bool = setting(False, "torch.compile the model's forward (single-seed trainer)")
    deterministic: bool = setting(True, "on CUDA: deterministic kernels and no cuDNN autotuning; false is faster and "
                                  "not repeatable (no effect on a CPU)")
    eval_batch_size: int = setting(1000, "batch size of evaluation (speed only)", unit="samples")
    sparse_kernels: str = setting("auto", "CSR kernels for linear layers while the mask is fixed, on a CPU in fp32: "
                                  "auto (where they pay), on, off", choices=SPARSE_KERNELS)

    def __post_init__(self) -> None:
        _check(self.precision in PRECISIONS, "precision",
               f"must be one of {', '.join(PRECISIONS)}; got {self.precision!r}")
        _check(self.sparse_kernels in SPARSE_KERNELS, "sparse_kernels",
               f"must be one of {', '.join(SPARSE_KERNELS)}; got {self.sparse_kernels!r}")
        _check(self.eval_batch_size >= 1, "eval_batch_size", f"must be >= 1, got {self.eval_batch_size!r}")


@dataclass(frozen=True)
class RunConfig:
    data: DataHparams = field(default_factory=DataHparams)
    model: ModelHparams = field(default_factory=ModelHparams)
    train: TrainHparams = field(default_factory=TrainHparams)
    algorithm: AlgorithmHparams = field(default_factory=AlgorithmHparams)
    execution: ExecutionHparams = field(default_factory=ExecutionHparams)
    seed: int = setting(0, "seed of initialisation, data order and random masks")

    def __post_init__(self) -> None:
        _check(self.seed >= 0, "seed", f"must be >= 0, got {self.seed!r}")
        from sparsenet import algorithms

        _check(self.algorithm.freeze_epoch < self.train.epochs, "freeze_epoch",
               f"must be < epochs={self.train.epochs}, got {self.algorithm.freeze_epoch}")
        object.__setattr__(self, "algorithm", algorithms.of(self.algorithm).resolve(self))  # of: can it freeze?

    def to_dict(self) -> dict[str, Any]:
        """Nested sections as JSON would store them (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_flat(cls, values: dict[str, Any]) -> RunConfig:
        """Build from one flat mapping of field names (as in a run config file or on the command line).

        A `preset` key names a recipe (sparsenet/recipes/<name>.yaml); the mapping's other keys override it.
        """
        values = expand_preset(values)
        unknown = set(values) - set(FIELDS)
        if unknown:
            raise ConfigError(f"{sorted(unknown)[0]}: unknown key; allowed keys are "
                              f"{', '.join(sorted([*FIELDS, 'preset']))}")
        sections = {}
        for section, hp_cls in SECTIONS.items():
            kwargs = {}
            for f in dataclasses.fields(hp_cls):
                if f.name in values:
                    kwargs[f.name] = _coerce(f.name, values[f.name], FIELDS[f.name])
            sections[section] = hp_cls(**kwargs)
        seed = _coerce("seed", values.get("seed", 0), int)
        return cls(seed=seed, **sections)

    @classmethod
    def from_nested(cls, data: dict[str, Any]) -> RunConfig:
        """Inverse of to_dict (as stored in run.json)."""
        flat = {k: v for section in SECTIONS for k, v in data.get(section, {}).items()}
        flat["seed"] = data.get("seed", 0)
        return cls.from_flat(flat)

    def flat(self) -> dict[str, Any]:
        out = {k: v for section in SECTIONS for k, v in dataclasses.asdict(getattr(self, section)).items()}
        out["seed"] = self.seed
        return out

    def replace(self, **flat_changes: Any) -> RunConfig:
        return RunConfig.from_flat({**self.flat(), **flat_changes})


SECTIONS = {"data": DataHparams, "model": ModelHparams, "train": TrainHparams, "algorithm": AlgorithmHparams,
            "execution": ExecutionHparams}
# every setting, flat: key -> (its field, its type); the seed is the run's own
SETTINGS: dict[str, tuple[dataclasses.Field, Any]] = {
    f.name: (f, get_type_hints(owner)[f.name]) for owner in SECTIONS.values() for f in dataclasses.fields(owner)}
SETTINGS["seed"] = (RunConfig.__dataclass_fields__["seed"], get_type_hints(RunConfig)["seed"])
FIELDS: dict[str, Any] = {key: hint for key, (_, hint) in SETTINGS.items()}


def type_name(hint: Any) -> str:
    """A setting's type as written: int, tuple[float, ...], ..."""
    return hint.__name__ if isinstance(hint, type) else str(hint)


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """Turn a value from YAML/JSON/CLI text into the field's type, or say which key is wrong."""
    try:
        if hint is bool:
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                return value.lower() in ("true", "1", "yes")
            if not isinstance(value, bool):
                raise ValueError
            return value
        if hint is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if hint is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if hint is str:
            if not isinstance(value, str):
                raise ValueError
            return value
        item = get_args(hint)[0] if get_origin(hint) is tuple else None
        if item == tuple[str, float]:
            if isinstance(value, str):  # the command line's name:float,name:float
                value = [v.rsplit(":", 1) for v in value.split(",") if v.strip()]
            items = value.items() if isinstance(value, dict) else value
            return tuple((str(k), float(v)) for k, v in items)
        if item in (int, float, str):
            if isinstance(value, str):
                value = [v for v in value.split(",") if v.strip()]
            return tuple(item(v) for v in value)
    except (ValueError, TypeError):
        quote = " (YAML reads unquoted on/off/yes/no as true/false: quote the word)" \
            if hint is str and isinstance(value, bool) else ""
        raise ConfigError(f"{key}: expected {type_name(hint)}, got {value!r}{quote}") from None
    raise AssertionError(f"unhandled field type {type_name(hint)}")


def load_file(path: str | Path) -> dict[str, Any]:
    """Read a flat run config from YAML or JSON; run.json's nested layout is accepted too."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {path} is not valid YAML/JSON: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys to values")
    if "config" in data and isinstance(data["config"], dict):  # a run.json
        data = data["config"]
    if any(isinstance(data.get(section), dict) for section in SECTIONS):  # nested, as in run.json
        return RunConfig.from_nested(data).flat()
    return data


def dumps(cfg: RunConfig) -> str:
    return json.dumps(cfg.to_dict(), sort_keys=True)


def presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def expand_preset(values: dict[str, Any]) -> dict[str, Any]:
    """`values` with its `preset` (if any) replaced by the preset's keys, which `values` override."""
    if values.get("preset") is None:
        return {k: v for k, v in values.items() if k != "preset"}
    name = values["preset"]
    path = PRESET_DIR / f"{name}.yaml"
    if not isinstance(name, str) or "/" in name or not path.exists():
        raise ConfigError(f"preset: must be one of {', '.join(presets())}; got {name!r}")
    base = yaml.safe_load(path.read_text())
    return {**base, **{k: v for k, v in values.items() if k != "preset"}}
