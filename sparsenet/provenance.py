"""What a run.json records besides the settings: code version, library versions, device."""
from __future__ import annotations

import hashlib
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch

PACKAGE_DIR = Path(__file__).parent
# The modules a training of each algorithm runs: their hash decides whether a result (or a checkpoint) is current.
TRAINING_CODE = ("config.py", "data.py", "datasets.py", "models.py", "masks.py", "train.py", "execution.py",
                 "sparse.py", "optim.py", "checkpoint.py", "files.py", "provenance.py", "algorithms/base.py")
ALGORITHM_CODE = {"dense": ("dense.py",), "imp": ("imp.py",), "snfs": ("snfs.py",), "dnw": ("dnw.py",),
                  "rigl": ("rigl.py",), "set": ("rigl.py", "set.py"), "static": ("static.py",), "gmp": ("gmp.py",),
                  "snip": ("at_init.py", "snip.py"), "grasp": ("at_init.py", "grasp.py"),
                  "synflow": ("at_init.py", "synflow.py"), "magnitude_init": ("at_init.py", "magnitude_init.py"),
                  "fixed": ()}
ALGORITHM_CODE.update({f"{n}_freeze": (*ALGORITHM_CODE[n], "freeze.py") for n in ("snfs", "dnw", "set", "rigl")})


def training_code(algorithm: str, package_dir: Path = PACKAGE_DIR) -> list[Path]:
    own = [package_dir / "algorithms" / f for f in ALGORITHM_CODE[algorithm]]
    return [package_dir / f for f in TRAINING_CODE] + own


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PACKAGE_DIR, capture_output=True, text=True,
                             timeout=10)
        return out.stdout.strip() if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def code_hash(paths: list[Path] | None = None) -> str:
    """sha256 over the package's (or the given) Python sources: identifies the code that produced a result."""
    h = hashlib.sha256()
    for f in sorted(paths or PACKAGE_DIR.rglob("*.py")):
        h.update(f"{f.parent.name}/{f.name}".encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("torch", "torchvision", "numpy", "pandas", "pyarrow", "sparsenet"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"


def describe(device: torch.device) -> dict:
    return {"git_commit": git_commit(), "code_hash": code_hash(), "versions": versions(),
            "device": device_name(device), "host": platform.node()}
