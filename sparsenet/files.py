"""Reading and writing result files safely.

Writes are atomic: to a temporary name in the same folder, then renamed over the target, so a job killed
mid-write leaves the old file (or none), never a truncated one that looks complete. Reads of JSON and Parquet
turn a missing or corrupt file into one error that names the file and what to do.
"""
from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from safetensors import SafetensorError

from sparsenet.errors import InputError

TMP_MARK = ".tmp"


class ResultFileError(InputError, RuntimeError):
    """A result file is missing or corrupt."""


def _hint(path: Path) -> str:
    return f"delete {path} and rerun the job that writes it (with Snakemake: rerun it, or `-R` its rule)"


def _missing(path: Path) -> str:
    """A missing file is not a corrupt one: say what is absent, and nothing about deleting it."""
    if not path.parent.exists():
        return f"{path.parent} does not exist (no run or result folder there)"
    return f"{path} does not exist: the job that writes it has not finished (with Snakemake: run it)"


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces `path`, on failure it is removed.

    A write that fails (a full disk, a read-only folder, a file size limit) becomes one ResultFileError naming
    the file and the cause, whichever library wrote it: torch and safetensors report such failures as
    RuntimeError or SafetensorError, not OSError. Nothing that looks finished is left behind.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError, SafetensorError) as e:
        cause = e.strerror if isinstance(e, OSError) and e.strerror else str(e).strip().splitlines()[-1]
        raise ResultFileError(f"cannot write {path}: {cause}") from None
    finally:
        tmp.unlink(missing_ok=True)


def remove_stale_temporaries(folder: Path) -> None:
    """Delete temporary files that a killed writer left in `folder`."""
    for tmp in Path(folder).glob(f".*{TMP_MARK}*"):
        tmp.unlink(missing_ok=True)


def read_json(path: str | Path) -> dict:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ResultFileError(_missing(path)) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ResultFileError(f"{path} is corrupt ({e}); {_hint(path)}") from None


def read_parquet(path: str | Path):
    import pandas as pd
    import pyarrow as pa

    path = Path(path)
    try:
        return pd.read_parquet(path)
    except FileNotFoundError:
        raise ResultFileError(_missing(path)) from None
    except (pa.ArrowException, OSError, ValueError) as e:
        raise ResultFileError(f"{path} is corrupt ({e}); {_hint(path)}") from None


def write_json(path: str | Path, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def write_parquet(path: str | Path, frame) -> None:
    """A pandas frame, or a pyarrow table (a training job writes its history so, without importing pandas)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    with atomic_path(path) as tmp:
        if isinstance(frame, pa.Table):
            pq.write_table(frame, tmp)
        else:
            frame.to_parquet(tmp, index=False)
