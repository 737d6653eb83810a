"""What a run.json records besides the settings: code version, library versions, device."""
from __future__ import annotations

import hashlib
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch

PACKAGE_DIR = Path(__file__).parent


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PACKAGE_DIR, capture_output=True, text=True,
                             timeout=10)
        return out.stdout.strip() if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def code_hash(paths: list[Path] | None = None) -> str:
    """sha256 over the package's (or the given) Python sources: identifies the code that produced a result."""
    files = sorted(paths or PACKAGE_DIR.rglob("*.py"))
    h = hashlib.sha256()
    for f in files:
        h.update(f.relative_to(PACKAGE_DIR).as_posix().encode() if f.is_relative_to(PACKAGE_DIR) else f.name.encode())
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
