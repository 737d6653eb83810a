"""Datasets as device-resident uint8 tensors; batches are drawn by index and normalised/augmented on the device.

The files are read by torchvision's own dataset classes (which download where the data is missing and the
network allows); MNIST-like raw files and CIFAR-10's ``cifar10.npz`` are read directly, and a user's own dataset
comes from its function (sparsenet.datasets). The data folder comes from the caller, or the environment
variable SPARSENET_DATA, or ``./data``.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from sparsenet import datasets
from sparsenet.config import ConfigError, DataHparams
from sparsenet.datasets import data_root
from sparsenet.errors import InputError

# allocates a batch (shape, device) in the memory layout a model's first kernel reads (sparsenet.execution)
BatchBuffer = Callable[[torch.Size, torch.device], torch.Tensor]

CROP_PAD = 4  # CIFAR-10 augmentation: random 32x32 crop of the 4-pixel zero-padded image
_IDX = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_EXPECTED = {
    "mnist": ", ".join(f"MNIST/raw/{f}" for f in _IDX),
    "fashion_mnist": ", ".join(f"FashionMNIST/raw/{f}" for f in _IDX),
    "cifar10": "cifar10.npz (uint8 x_train, y_train, x_test, y_test) or cifar-10-batches-py/",
}


class DataError(InputError, RuntimeError):
    """The data folder lacks a dataset and it could not be fetched."""


@dataclass
class Split:
    """One split on the device: images uint8 [N, C, H, W], labels int64 [N]."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)


_FOLDER = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}


def _read_idx(path: Path) -> np.ndarray:
    """An uncompressed IDX file of unsigned bytes (MNIST's format), as torchvision reads it."""
    data = bytearray(path.read_bytes())  # writable: torch refuses to share read-only numpy memory
    if len(data) < 4 or data[:3] != b"\x00\x00\x08":
        raise DataError(f"{path} is not an IDX file of unsigned bytes; delete it to download it again")
    ndim = data[3]
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">i4", count=ndim, offset=4))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise DataError(f"{path} is truncated ({body.size} of {int(np.prod(shape))} bytes); delete it to download "
                        "it again")
    return body.reshape(shape)


@functools.lru_cache(maxsize=2)
def _read_npz(path: Path, part: str, mtime_ns: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """One part of cifar10.npz as NCHW uint8 images and int64 labels, kept for the process: decompressing it takes
    seconds, and a process (a benchmark, the test suite) may load it several times. The file's time and size are
    part of the key, so a replaced file is read again."""
    try:
        with np.load(path) as npz:
            x, y = npz[f"x_{part}"], npz[f"y_{part}"]
    except (KeyError, OSError, ValueError) as e:
        raise DataError(f"{path} is unreadable or lacks x_{part}/y_{part}: {e}") from None
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2)), y.astype(np.int64)


def npz_split(path: Path, part: str) -> tuple[np.ndarray, np.ndarray]:
    """Split `part` (train or test) of a cifar10.npz: NCHW uint8 images and int64 labels, read once per process
    (do not modify them)."""
    stat = path.stat()
    return _read_npz(path, part, stat.st_mtime_ns, stat.st_size)


def _load_raw(name: str, root: Path, train: bool) -> tuple[np.ndarray, np.ndarray]:
    """Images as uint8 NCHW and labels as int64: MNIST-like raw files and cifar10.npz are read directly (no
    torchvision import: it costs a training job seconds of start-up); anything else goes through torchvision,
    which downloads what is missing."""
    if name not in datasets.BUILTIN:
        arrays = datasets.own(name, root)[0]
        part = "train" if train else "test"
        return arrays[f"x_{part}"], arrays[f"y_{part}"]
    raw = root / _FOLDER.get(name, "-") / "raw"
    prefix = "train" if train else "t10k"
    images, labels = raw / f"{prefix}-images-idx3-ubyte", raw / f"{prefix}-labels-idx1-ubyte"
    if images.exists() and labels.exists():
        return _read_idx(images)[:, None], _read_idx(labels).astype(np.int64)
    if name == "cifar10" and (root / "cifar10.npz").exists():
        x, y = npz_split(root / "cifar10.npz", "train" if train else "test")
        return x.copy(), y.copy()  # a split on the CPU shares its array's memory: the cached arrays stay apart
    import torchvision

    tv = torchvision.datasets
    cls = {"mnist": tv.MNIST, "fashion_mnist": tv.FashionMNIST, "cifar10": tv.CIFAR10}[name]
    try:
        ds = cls(str(root), train=train, download=True)
    except Exception as e:  # torchvision raises RuntimeError/URLError/OSError depending on what failed
        raise DataError(
            f"dataset {name!r} was not found in {root.resolve()} and could not be downloaded ({e}). "
            f"Expected {_EXPECTED[name]} under that folder; set SPARSENET_DATA or the data_root key."
        ) from None
    if name == "cifar10":
        return np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2)), np.asarray(ds.targets, dtype=np.int64)
    return ds.data.numpy()[:, None], ds.targets.numpy().astype(np.int64)


def load(hp: DataHparams, device: torch.device, root: str | Path | None = None) -> tuple[Split, Split, Split | None]:
    """(train, test, val or None) on `device`. The validation split is a fixed random part of the training set."""
    root = data_root(root)
    xs, ys = _load_raw(hp.dataset, root, train=True)
    xt, yt = _load_raw(hp.dataset, root, train=False)
    val = None
    if hp.val_fraction > 0:
        order = np.random.default_rng(0).permutation(len(ys))  # same held-out set for every seed
        n_val = int(round(hp.val_fraction * len(ys)))
        val_idx, train_idx = np.sort(order[:n_val]), np.sort(order[n_val:])
        val = Split(torch.from_numpy(xs[val_idx]).to(device), torch.from_numpy(ys[val_idx]).to(device))
        xs, ys = xs[train_idx], ys[train_idx]
    if hp.train_subset > len(ys):
        raise ConfigError(f"train_subset: {hp.dataset}'s training split has {len(ys)} samples"
                          f"{' after the validation split' if val is not None else ''}; got {hp.train_subset}")
    if hp.train_subset:
        xs, ys = xs[: hp.train_subset], ys[: hp.train_subset]
    train = Split(torch.from_numpy(xs).to(device), torch.from_numpy(ys).to(device))
    test = Split(torch.from_numpy(xt).to(device), torch.from_numpy(yt).to(device))
    return train, test, val


class Batcher:
    """Normalises (and for CIFAR-10 augments) index batches of a device-resident split."""

    def __init__(self, hp: DataHparams, device: torch.device, root: str | Path | None = None):
        spec = datasets.spec(hp.dataset, root)
        mean, std = spec.mean, spec.std
        self.mean = torch.tensor(mean, device=device).view(1, -1, 1, 1) * 255
        self.std = torch.tensor(std, device=device).view(1, -1, 1, 1) * 255
        self.augment = hp.augment and hp.dataset == "cifar10"
        self.batch_size = hp.batch_size

    def normalise(self, images: torch.Tensor, buffer: BatchBuffer | None = None) -> torch.Tensor:
        """The batch as floats: the subtraction converts from uint8, the division works in place (one pass and one
        batch-sized allocation fewer than converting first); into `buffer`'s allocation where given (the layout
        the model's first kernel reads, sparsenet.execution.Platform.batch_buffer)."""
        out = buffer(images.shape, images.device) if buffer is not None else None
        return torch.sub(images, self.mean, out=out).div_(self.std)

    def epoch(self, split: Split, generator: torch.Generator, buffer: BatchBuffer | None = None):
        """Yield (inputs, labels) for one shuffled pass; all randomness from `generator` (resumable).

        The order and the augmentation of the whole epoch are drawn up front and copied to the device once:
        no host-to-device copy per batch, so a GPU never waits on the host inside an epoch.
        """
        n, device = len(split), split.labels.device
        order = torch.randperm(n, generator=generator).to(device)
        if self.augment:
            shifts = torch.randint(0, 2 * CROP_PAD + 1, (2, n), generator=generator).to(device)
            flips = (torch.rand(n, generator=generator) < 0.5).to(device)
        for start in range(0, n, self.batch_size):
            batch = slice(start, start + self.batch_size)
            idx = order[batch]
            x = split.images.index_select(0, idx)  # a few times faster than split.images[idx] on the CPU
            if self.augment:
                x = _crop_flip(x, shifts[0, batch], shifts[1, batch], flips[batch])
            yield self.normalise(x, buffer), split.labels[idx]

    def batches_per_epoch(self, split: Split) -> int:
        return -(-len(split) // self.batch_size)

    def ordered(self, split: Split, batch_size: int, buffer: BatchBuffer | None = None):
        """Unshuffled, unaugmented batches for evaluation."""
        for start in range(0, len(split), batch_size):
            batch = slice(start, start + batch_size)
            yield self.normalise(split.images[batch], buffer), split.labels[batch]


def _crop_flip(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, flip: torch.Tensor,
               pad: int = CROP_PAD) -> torch.Tensor:
    """Random crop with zero padding (offsets dy, dx in [0, 2*pad]) and horizontal flip, a whole batch at once."""
    b, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    rows = (dy[:, None] + torch.arange(h, device=x.device)[None])  # [b, h]
    cols = dx[:, None] + torch.arange(w, device=x.device)[None]  # [b, w]
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    bi = torch.arange(b, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[bi, rows[:, :, None], cols[:, None, :]]  # [b, h, w, c]
    return out.permute(0, 3, 1, 2).contiguous()
