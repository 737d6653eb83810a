"""Weights and training checkpoints on disk, written atomically and read without executing code.

Weights are safetensors files. A checkpoint (model, optimizer and algorithm state, history, snapshots) is a
torch file read with ``weights_only=True``, which refuses anything but tensors and plain containers.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from sparsenet.errors import InputError
from sparsenet.files import atomic_path


class CheckpointError(InputError, RuntimeError):
    """A weights or checkpoint file is missing, corrupt, or holds something other than tensors."""


def save_weights(path: str | Path, state: dict[str, torch.Tensor]) -> None:
    with atomic_path(path) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(tmp))


def load_weights(path: str | Path, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path), device=str(device))
    except FileNotFoundError:
        raise CheckpointError(f"weights file {path} does not exist") from None
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"weights file {path} is corrupt ({e}); rerun the job that wrote it") from None


def save_checkpoint(path: str | Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(f"checkpoint {path} holds objects other than tensors and was not loaded ({e}); "
                              "delete it to restart the run from scratch") from None
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist") from None
    except Exception as e:  # garbage makes the safe unpickler fail in many ways (KeyError, struct.error, ...)
        raise CheckpointError(f"checkpoint {path} is corrupt ({type(e).__name__}: {e}); "
                              "delete it to restart the run") from None
