"""Datasets by name: MNIST, Fashion-MNIST and CIFAR-10, or a user's own named by import path
('my_pkg.data:load'), like models. Each has a Spec (input shape, classes, normalisation), known up front for the
built-in ones and measured from the arrays for a user's own.

A user's own dataset is a function of the data folder that returns uint8 images and integer labels of both
splits: {"x_train": [N, C, H, W] or [N, H, W], "y_train": [N], "x_test": ..., "y_test": ...} (numpy arrays or
tensors); its classes are 0..max(label), its mean and std those of the training images.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from sparsenet import by_path
from sparsenet.config import ConfigError


@dataclass(frozen=True)
class Spec:
    input_shape: tuple[int, int, int]
    num_classes: int
    mean: tuple[float, ...]  # per channel, of the training images after /255
    std: tuple[float, ...]


BUILTIN = {
    "mnist": Spec((1, 28, 28), 10, (0.1307,), (0.3081,)),
    "fashion_mnist": Spec((1, 28, 28), 10, (0.2860,), (0.3530,)),
    "cifar10": Spec((3, 32, 32), 10, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
}
KEYS = ("x_train", "y_train", "x_test", "y_test")


def loader(name: str) -> Callable[[Path], dict]:
    """The function behind a user's dataset name; KeyError with the reason where there is none."""
    return by_path.function(name, "dataset", f"built in: {', '.join(BUILTIN)}", "the data folder")


_LOADED: dict[tuple[str, Path], tuple[dict[str, np.ndarray], Spec]] = {}


def own(name: str, root: Path) -> tuple[dict[str, np.ndarray], Spec]:
    """A user's dataset, loaded once per process and checked: its arrays (images uint8 NCHW) and its Spec."""
    if (name, root) not in _LOADED:
        _LOADED[name, root] = _check(name, loader(name)(root))
    return _LOADED[name, root]


def _check(name: str, out) -> tuple[dict[str, np.ndarray], Spec]:
    missing = [k for k in KEYS if not isinstance(out, dict) or k not in out]
    if missing:
        raise ConfigError(f"dataset: {name!r}: its function must return a dict with {', '.join(KEYS)}; "
                         f"missing {', '.join(missing)}")
    arrays = {k: np.asarray(out[k]) for k in KEYS}
    for part in ("train", "test"):
        x, y = arrays[f"x_{part}"], arrays[f"y_{part}"]
        if x.ndim == 3:
            arrays[f"x_{part}"] = x = x[:, None]
        if x.dtype != np.uint8 or x.ndim != 4:
            raise ConfigError(f"dataset: {name!r}: x_{part} must be uint8 [N, C, H, W] or [N, H, W]; got {x.dtype} "
                             f"{list(x.shape)}")
        if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer) or y.min(initial=0) < 0:
            raise ConfigError(f"dataset: {name!r}: y_{part} must hold {len(x)} labels >= 0; got {y.dtype} "
                             f"{list(y.shape)}")
        arrays[f"y_{part}"] = y.astype(np.int64)
    x = arrays["x_train"]
    if x.shape[1:] != arrays["x_test"].shape[1:]:
        raise ConfigError(f"dataset: {name!r}: train images are {list(x.shape[1:])}, test images "
                         f"{list(arrays['x_test'].shape[1:])}")
    pixels = x.transpose(1, 0, 2, 3).reshape(x.shape[1], -1) / 255.0
    classes = int(max(arrays["y_train"].max(), arrays["y_test"].max())) + 1
    std = tuple(float(s) or 1.0 for s in pixels.std(1))  # a constant channel is left unscaled
    return arrays, Spec(tuple(x.shape[1:]), classes, tuple(float(m) for m in pixels.mean(1)), std)


def data_root(root: str | Path | None = None) -> Path:
    """The data folder: `root`, else $SPARSENET_DATA, else ./data."""
    return Path(root or os.environ.get("SPARSENET_DATA") or "data").expanduser()


def spec(name: str, root: str | Path | None = None) -> Spec:
    """Input shape, classes and normalisation of a dataset. A user's own is loaded to find them: from `root`, or
    where this process loaded it already, or from the default data folder."""
    if name in BUILTIN:
        return BUILTIN[name]
    if root is None:
        for (loaded, _), (_, found) in _LOADED.items():
            if loaded == name:
                return found
    return own(name, data_root(root))[1]
