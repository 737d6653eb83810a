"""Hyperparameters of a run, as dataclasses (after open_lth's foundations/hparams.py): one section per concern.

Every field is a flat command-line flag (``--batch-size``) and a key of a run config file, declared with its
default, meaning, unit and allowed values (`setting`); its type is the field's type hint. A bad value is
rejected when the dataclass is built, with the key and the allowed values in the message.
"""
from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import yaml

from sparsenet.errors import InputError

DATASETS = ("mnist", "fashion_mnist", "cifar10")
SCHEDULES = ("cosine", "step", "constant")
DISTRIBUTIONS = ("uniform", "erk")
INITS = ("kaiming_normal", "kaiming_uniform", "pytorch", "variance_scaling")
BN_INITS = ("uniform", "fixed")
PRECISIONS = ("fp32", "bf16")
SPARSE_KERNELS = ("auto", "on", "off")
PRESET_DIR = Path(__file__).parent / "recipes"


def setting(default: Any, help: str, *, unit: str = "", choices: tuple[str, ...] = ()) -> Any:
    """A run setting's field: its default, and for --help, `sparsenet settings` and README (sparsenet.settings)
    its meaning (ranges are in it where the dataclass checks one), unit and allowed values."""
    return field(default=default, metadata={"help": help, "unit": unit, "choices": choices})


class ConfigError(InputError, ValueError):
    """A setting is missing, unknown or out of range; the message names the key."""


def check(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"{key}: {message}")


def check_choice(value: str, key: str, choices: tuple[str, ...]) -> None:
    check(value in choices, key, f"must be one of {', '.join(choices)}; got {value!r}")


def check_fraction(value: float, key: str, *, low_open: bool, high_open: bool) -> None:
    above = value > 0 if low_open else value >= 0
    below = value < 1 if high_open else value <= 1
    lo, hi = ("(" if low_open else "["), (")" if high_open else "]")
    check(above and below, key, f"must lie in {lo}0, 1{hi}, got {value!r}")


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
        check(self.batch_size >= 1, "batch_size", f"must be >= 1, got {self.batch_size!r}")
        check_fraction(self.val_fraction, "val_fraction", low_open=False, high_open=True)
        check(self.train_subset >= 0, "train_subset", f"must be >= 0, got {self.train_subset!r}")


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
        check_choice(self.init, "init", INITS)
        check_choice(self.bn_init, "bn_init", BN_INITS)


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
        check(self.epochs >= 1, "epochs", f"must be >= 1, got {self.epochs!r}")
        check(self.lr > 0, "lr", f"must be > 0, got {self.lr!r}")
        check(0 <= self.momentum < 1, "momentum", f"must lie in [0, 1), got {self.momentum!r}")
        check(self.weight_decay >= 0, "weight_decay", f"must be >= 0, got {self.weight_decay!r}")
        check_choice(self.schedule, "schedule", SCHEDULES)
        check(0 <= self.warmup_epochs < self.epochs, "warmup_epochs",
              f"must lie in [0, epochs={self.epochs}), got {self.warmup_epochs!r}")
        check(all(0 < m < self.epochs for m in self.milestones), "milestones",
              f"each must lie in (0, epochs={self.epochs}), got {list(self.milestones)}")
        check(0 < self.gamma <= 1, "gamma", f"must lie in (0, 1], got {self.gamma!r}")
        check_fraction(self.label_smoothing, "label_smoothing", low_open=False, high_open=True)
        for f in self.snapshot_fractions:
            check_fraction(f, "snapshot_fractions", low_open=True, high_open=True)


@dataclass(frozen=True)
class AlgorithmHparams:
    algorithm: str = setting("dense", "the sparse-training algorithm (sparsenet.algorithms; fixed: train under a given "
                             "mask, as retraining does), or a user's own by import path 'package.module:Class'")
    density: float = setting(1.0, "kept / prunable weights over the sparse layers, in (0, 1]; 1 for dense",
                             unit="fraction")
    distribution: str = setting("uniform", "per-layer densities of a mask an algorithm draws, "
                                "regrows or schedules by layer, and of random masks", choices=DISTRIBUTIONS)
    dense_layers: tuple[str, ...] = setting((), "prunable weights kept whole, by name (`sparsenet layers MODEL` lists "
                                            "them, e.g. fc3.weight); comma-separated")
    sparsity_scales: tuple[tuple[str, float], ...] = setting((), "a layer's sparsity as a multiple of the other sparse "
                                                             "layers' (uniform densities; the total stays exact), as "
                                                             "name:scale pairs (e.g. fc2.weight:0.9)")
    freeze_epoch: int = setting(0, "fix the mask after this many epochs (an algorithm that can freeze, `sparsenet "
                                "algorithms`; tables call the run <name>_freeze), in [0, epochs); 0: never",
                                unit="epochs")

    def __post_init__(self) -> None:
        from sparsenet import algorithms  # it imports this module: not at the top

        algorithms.get(self.algorithm)  # a ConfigError naming the key where there is no such algorithm
        check_fraction(self.density, "density", low_open=True, high_open=False)
        check(self.algorithm != "dense" or self.density == 1.0, "density",
              f"the dense algorithm has density 1.0, got {self.density!r}")
        check_choice(self.distribution, "distribution", DISTRIBUTIONS)
        for name, scale in self.sparsity_scales:
            check(scale > 0, "sparsity_scales", f"the scale of {name!r} must be > 0, got {scale!r}")
        check(not self.sparsity_scales or self.distribution == "uniform", "sparsity_scales",
              f"apply to distribution 'uniform' only, got distribution {self.distribution!r}")
        check(self.freeze_epoch >= 0, "freeze_epoch", f"must be >= 0, got {self.freeze_epoch!r}")


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
        check_choice(self.precision, "precision", PRECISIONS)
        check_choice(self.sparse_kernels, "sparse_kernels", SPARSE_KERNELS)
        check(self.eval_batch_size >= 1, "eval_batch_size", f"must be >= 1, got {self.eval_batch_size!r}")


@dataclass(frozen=True)
class RunConfig:
    data: DataHparams = field(default_factory=DataHparams)
    model: ModelHparams = field(default_factory=ModelHparams)
    train: TrainHparams = field(default_factory=TrainHparams)
    algorithm: AlgorithmHparams = field(default_factory=AlgorithmHparams)
    execution: ExecutionHparams = field(default_factory=ExecutionHparams)
    seed: int = setting(0, "seed of initialisation, data order and random masks")

    def __post_init__(self) -> None:
        check(self.seed >= 0, "seed", f"must be >= 0, got {self.seed!r}")
        from sparsenet import algorithms

        check(self.algorithm.freeze_epoch < self.train.epochs, "freeze_epoch",
              f"must be < epochs={self.train.epochs}, got {self.algorithm.freeze_epoch}")
        object.__setattr__(self, "algorithm", algorithms.of(self.algorithm).resolve(self))  # of: can it freeze?

    def to_dict(self) -> dict[str, Any]:
        """Nested sections as JSON would store them (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_flat(cls, values: dict[str, Any]) -> RunConfig:
        """Build from one flat mapping of field names (as in a run config file or on the command line): the
        shared settings and those of the run's algorithm (its `hparams`).

        A `preset` key names a recipe (sparsenet/recipes/<name>.yaml); the mapping's other keys override it.
        """
        values = expand_preset(values)
        own = algorithm_hparams(_coerce("algorithm", values.get("algorithm", AlgorithmHparams.algorithm), str))
        keys = settings(own)
        unknown = set(values) - set(keys)
        if unknown:
            name = values.get("algorithm", AlgorithmHparams.algorithm)
            raise ConfigError(f"{sorted(unknown)[0]}: unknown key for algorithm {name!r} (its own keys: "
                              f"{', '.join(own_settings(own)) or 'none'}; every key: `sparsenet settings`)")
        sections = {}
        for section, hp_cls in {**SECTIONS, "algorithm": own}.items():
            sections[section] = hp_cls(**{f.name: _coerce(f.name, values[f.name], keys[f.name][1])
                                          for f in dataclasses.fields(hp_cls) if f.name in values})
        return cls(seed=_coerce("seed", values.get("seed", 0), int), **sections)

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
        """These settings changed; a change of algorithm leaves the old algorithm's own settings behind."""
        keys = settings(algorithm_hparams(flat_changes.get("algorithm", self.algorithm.algorithm)))
        return RunConfig.from_flat({**{k: v for k, v in self.flat().items() if k in keys}, **flat_changes})


SECTIONS = {"data": DataHparams, "model": ModelHparams, "train": TrainHparams, "algorithm": AlgorithmHparams,
            "execution": ExecutionHparams}


def algorithm_hparams(algorithm: str) -> type[AlgorithmHparams]:
    """The settings class of `algorithm` (its registry entry's `hparams`); ConfigError naming `algorithm`."""
    from sparsenet import algorithms  # it imports this module: not at the top

    return algorithms.get(algorithm).hparams


@functools.cache
def settings(own: type[AlgorithmHparams] = AlgorithmHparams) -> dict[str, tuple[dataclasses.Field, Any]]:
    """Every setting of a run whose algorithm's settings are `own`, flat: key -> (its field, its type hint)."""
    classes = [own if section == "algorithm" else hp_cls for section, hp_cls in SECTIONS.items()]
    out = {f.name: (f, get_type_hints(hp_cls)[f.name]) for hp_cls in classes for f in dataclasses.fields(hp_cls)}
    out["seed"] = (RunConfig.__dataclass_fields__["seed"], get_type_hints(RunConfig)["seed"])
    return out


def own_settings(own: type[AlgorithmHparams]) -> list[str]:
    """The settings an algorithm's class `own` adds to the shared ones."""
    return [key for key in settings(own) if key not in SETTINGS]


SETTINGS = settings()  # the settings every run has, whatever its algorithm
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


def expand_preset(values: dict[str, Any], algorithm: str | None = None) -> dict[str, Any]:
    """`values` with its `preset` (if any) replaced by the preset's keys, which `values` override. A preset holds
    the shared settings, and an algorithm's own under its name (`snfs: {prune_rate: 0.5}`): those of the run's
    algorithm (`values`' own, else `algorithm`) are taken."""
    if values.get("preset") is None:
        return {k: v for k, v in values.items() if k != "preset"}
    name = values["preset"]
    path = PRESET_DIR / f"{name}.yaml"
    if not isinstance(name, str) or "/" in name or not path.exists():
        raise ConfigError(f"preset: must be one of {', '.join(presets())}; got {name!r}")
    from sparsenet.algorithms import NAMES

    base = yaml.safe_load(path.read_text())
    algorithm = values.get("algorithm", algorithm or base.get("algorithm", AlgorithmHparams.algorithm))
    return {**{k: v for k, v in base.items() if k not in NAMES}, **base.get(algorithm, {}),
            **{k: v for k, v in values.items() if k != "preset"}}
