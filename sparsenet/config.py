"""Hyperparameters of a run, as dataclasses (after open_lth): one section per concern.

Every field is a flat command-line flag (``--batch-size``) and a key of a run config file; a bad value is
rejected when the dataclass is built, with the key and the allowed values in the message.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DATASETS = ("mnist", "fashion_mnist", "cifar10")
DYNAMIC = ("snfs", "dnw", "set", "rigl")  # mask-changing algorithms that can freeze: <name>_freeze
# fixed: a given mask, as in retraining (sparsenet.algorithms.ALGORITHMS holds the classes; a test holds the two)
FROZEN = {f"{n}_freeze": n for n in DYNAMIC}  # <name>_freeze -> the algorithm it runs until its mask is frozen
ALGORITHMS = ("dense", "imp", *DYNAMIC, *FROZEN, "static", "gmp", "snip", "grasp",
              "synflow", "magnitude_init", "fixed")
SCHEDULES = ("cosine", "step", "constant")
DISTRIBUTIONS = ("uniform", "erk")
IMP_SCOPES = ("global", "layerwise")
IMP_OUTPUTS = ("reference", "dense", "half", "global")
RIGL_LAYER_RULES = ("reference", "all")
# the algorithms that follow google-research/rigl's scripts, whose layer treatment `rigl_layers` sets
RIGL_LAYERED = ("rigl", "set", "static", "gmp")  # and their freezes
INITS = ("kaiming_normal", "kaiming_uniform", "pytorch", "variance_scaling")
BN_INITS = ("uniform", "fixed")
PRECISIONS = ("fp32", "bf16")
SPARSE_KERNELS = ("auto", "on", "off")
PRESET_DIR = Path(__file__).parent / "recipes"


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
    dataset: str = "mnist"
    batch_size: int = 128
    val_fraction: float = 0.0  # held out from the training split, fixed across seeds
    train_subset: int = 0  # use only the first N training samples (0: all); for tests and small studies
    augment: bool = True  # random crop + flip; applies to CIFAR-10 only

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
    model: str = "lenet300_100"
    init: str = "kaiming_normal"  # conv and linear weights (open_lth models/initializers.py); pytorch: torch's default
    bn_init: str = "uniform"  # batch-norm scale ~ U[0, 1) (open_lth models/bn_initializers.py); fixed: 1

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
    epochs: int = 30
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 1e-4
    schedule: str = "cosine"
    warmup_epochs: int = 0
    milestones: tuple[int, ...] = ()  # epochs at which the step schedule multiplies lr by gamma
    gamma: float = 0.1
    label_smoothing: float = 0.0
    snapshot_fractions: tuple[float, ...] = (0.1, 0.25, 0.5)  # extra mask snapshots inside epoch 1

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
    algorithm: str = "dense"
    density: float = 1.0  # kept / prunable over the sparse layers (layers in dense_layers stay whole)
    distribution: str = "uniform"  # per-layer densities of the initial mask (snfs, dnw, set, rigl, static; gmp's)
    dense_layers: tuple[str, ...] = ()  # prunable weights kept dense, by parameter name
    sparsity_scales: tuple[tuple[str, float], ...] = ()  # a layer's sparsity as a multiple of the others' (uniform)
    rigl_layers: str = "reference"  # rigl, set, gmp, static: dense layers and scales of rigl's scripts, or all sparse
    prune_rate: float = 0.5  # snfs: fraction of kept weights pruned at the first epoch end, cosine-decayed
    freeze_epoch: int = 1  # <dynamic>_freeze: the mask is fixed after this many epochs
    update_interval: int = 100  # rigl, set: optimizer steps between mask updates
    update_end: float = 0.75  # rigl, set: no mask update after this fraction of training
    drop_fraction: float = 0.3  # rigl, set: fraction of kept weights dropped and regrown at the first update
    gmp_start: float = 0.0167  # gmp: pruning starts at this fraction of training
    gmp_end: float = 0.25  # gmp: the target density is reached at this fraction of training
    gmp_interval: int = 500  # gmp: optimizer steps between pruning steps
    synflow_rounds: int = 100  # synflow: scoring rounds, exponential schedule of densities
    imp_rate: float = 0.2  # imp: fraction of remaining weights pruned per round
    imp_scope: str = "global"
    imp_layer_rates: tuple[tuple[str, float], ...] = ()  # imp: per-layer rate multipliers, e.g. (("fc3.weight", 0.5),)
    imp_output: str = "reference"  # imp: the output layer kept dense, pruned at half the rate, or globally
    rewind_epoch: int = 0  # imp: rewind to the weights after this many epochs of round 0 (0: the initial weights)

    def __post_init__(self) -> None:
        _check(self.algorithm in ALGORITHMS, "algorithm",
               f"must be one of {', '.join(ALGORITHMS)}; got {self.algorithm!r}")
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
        _check(self.freeze_epoch >= 1, "freeze_epoch", f"must be >= 1, got {self.freeze_epoch!r}")
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

    precision: str = "fp32"  # bf16: autocast of forward and loss to bfloat16 (weights and optimizer stay fp32)
    channels_last: bool = False  # NHWC memory format for conv nets (faster convolutions on recent GPUs)
    compile: bool = False  # torch.compile the model's forward (single-seed trainer)
    deterministic: bool = True  # on CUDA: deterministic kernels, no cudnn autotuning (off: faster, not repeatable)
    eval_batch_size: int = 1000
    sparse_kernels: str = "auto"  # CSR kernels for linear layers under a fixed mask on the CPU (sparsenet.sparse)

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
    seed: int = 0

    def __post_init__(self) -> None:
        _check(self.seed >= 0, "seed", f"must be >= 0, got {self.seed!r}")
        if self.algorithm.algorithm in FROZEN:
            _check(self.algorithm.freeze_epoch < self.train.epochs, "freeze_epoch",
                   f"must be < epochs={self.train.epochs}, got {self.algorithm.freeze_epoch}")
        if self.algorithm.algorithm == "imp":
            _check(self.algorithm.rewind_epoch < self.train.epochs, "rewind_epoch",
                   f"must be < epochs={self.train.epochs}, got {self.algorithm.rewind_epoch}")
            # written out into dense_layers / imp_layer_rates, so run.json and every later stage see it
            object.__setattr__(self, "algorithm", _resolve_imp_output(self.algorithm, self.model.model))
        if FROZEN.get(self.algorithm.algorithm, self.algorithm.algorithm) in RIGL_LAYERED:  # written out as imp's is
            object.__setattr__(self, "algorithm", _resolve_rigl_layers(self.algorithm, self.model.model))

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
                    kwargs[f.name] = _coerce(f.name, values[f.name], f.type)
            sections[section] = hp_cls(**kwargs)
        seed = _coerce("seed", values.get("seed", 0), "int")
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
FIELDS: dict[str, str] = {f.name: f.type for hp in SECTIONS.values() for f in dataclasses.fields(hp)}
FIELDS["seed"] = "int"


def _coerce(key: str, value: Any, type_name: str) -> Any:
    """Turn a value from YAML/JSON/CLI text into the field's type, or say which key is wrong."""
    try:
        if type_name == "bool":
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                return value.lower() in ("true", "1", "yes")
            if not isinstance(value, bool):
                raise ValueError
            return value
        if type_name == "int":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if type_name == "float":
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if type_name == "str":
            if not isinstance(value, str):
                raise ValueError
            return value
        if type_name.startswith("tuple[tuple[str, float]"):
            if isinstance(value, str):  # the command line's name:float,name:float
                value = [v.rsplit(":", 1) for v in value.split(",") if v.strip()]
            items = value.items() if isinstance(value, dict) else value
            return tuple((str(k), float(v)) for k, v in items)
        if type_name.startswith("tuple["):
            item = {"int": int, "float": float, "str": str}[type_name[6:].split(",")[0].rstrip("]")]
            if isinstance(value, str):
                value = [v for v in value.split(",") if v.strip()]
            return tuple(item(v) for v in value)
    except (ValueError, TypeError):
        hint = " (YAML reads unquoted on/off/yes/no as true/false: quote the word)" \
            if type_name == "str" and isinstance(value, bool) else ""
        raise ConfigError(f"{key}: expected {type_name}, got {value!r}{hint}") from None
    raise AssertionError(f"unhandled field type {type_name}")


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


def _resolve_imp_output(hp: AlgorithmHparams, model: str) -> AlgorithmHparams:
    """Write imp's treatment of the output layer into dense_layers / imp_layer_rates (idempotent).

    `reference` follows the code the model comes from: open_lth's `pruning_layers_to_ignore='fc.weight'` for
    LeNet and VGG (dense), none for its ResNet-20 (global); Frankle & Carbin's half rate for Conv-2/4/6.
    """
    from sparsenet.models import IMP_OUTPUT, OUTPUT_LAYER

    mode = IMP_OUTPUT.get(model, "global") if hp.imp_output == "reference" else hp.imp_output
    out = OUTPUT_LAYER.get(model)  # None for a model by import path: its output layer is not known by name
    if mode != "global" and out is None:
        raise ConfigError(f"imp_output: the output layer of model {model} is not known by name; use 'global' and "
                          "name it in dense_layers or imp_layer_rates")
    if mode == "dense" and out not in hp.dense_layers:
        return dataclasses.replace(hp, dense_layers=(*hp.dense_layers, out))
    if mode == "half" and out not in dict(hp.imp_layer_rates):
        return dataclasses.replace(hp, imp_layer_rates=(*hp.imp_layer_rates, (out, 0.5)))
    return hp


def _resolve_rigl_layers(hp: AlgorithmHparams, model: str) -> AlgorithmHparams:
    """Write the layer treatment of google-research/rigl's scripts into dense_layers / sparsity_scales (idempotent).

    `reference` takes sparsenet.models.RIGL_LAYERS for the model (nothing for a user's own model); the scales
    apply to uniform layer densities only, as ERK sets every ratio itself. `all`: every prunable weight sparse.
    """
    from sparsenet.models import RIGL_LAYERS

    if hp.rigl_layers == "all" or hp.density == 1:
        return hp
    dense, scales = RIGL_LAYERS.get(model, ((), ()))
    dense_layers = (*hp.dense_layers, *(n for n in dense if n not in hp.dense_layers))
    named = dict(hp.sparsity_scales)
    extra = tuple((n, v) for n, v in scales if n not in named and n not in dense_layers)
    return dataclasses.replace(hp, dense_layers=dense_layers, sparsity_scales=(
        *hp.sparsity_scales, *(extra if hp.distribution == "uniform" else ())))


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
