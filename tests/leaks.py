"""A pytest plugin (tests/conftest.py loads it): a test that leaves process state or the checkout changed fails.

Checked around every test: torch's thread count, the environment, the model registry and the files of the checkout
pytest runs in (its rootdir), ignored ones included (`git status --ignored`). Restore what a test changes
(monkeypatch, tmp_path, a fixture).
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest


def _checkout(root: Path) -> set[str]:
    # --ignored=matching lists an ignored folder without walking it (the default walks .venv/: 50 ms a call, twice
    # a test)
    out = subprocess.run(["git", "status", "--porcelain", "--ignored=matching"], cwd=root, capture_output=True,
                         text=True)
    # Python's own byte-code caches are not a test's output
    return {line for line in out.stdout.splitlines() if not line.endswith("__pycache__/")} if out.returncode == 0 \
        else set()


def state(root: Path) -> dict[str, object]:
    import torch

    from sparsenet import models

    # pytest's own variable changes per phase; torch's inductor sets its own on first use (cache folder, compile)
    environment = {k: v for k, v in os.environ.items()
                   if k != "PYTEST_CURRENT_TEST" and not k.lstrip("_").startswith("TORCHINDUCTOR_")}
    return {"torch threads": torch.get_num_threads(), "environment": environment,
            "model registry": (tuple(models.MODELS), tuple(models.OUTPUT_LAYER)), "checkout": _checkout(root)}


def _difference(key: str, before, after) -> str:
    if key == "environment":
        keys = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
        return f"environment ({', '.join(keys)})"
    if key in ("checkout", "model registry"):
        flat = (lambda x: set(x)) if key == "checkout" else (lambda x: {n for names in x for n in names})
        return f"{key} ({', '.join(sorted(flat(before) ^ flat(after))[:5])})"
    return f"{key} ({before!r} -> {after!r})"


@pytest.fixture(autouse=True)
def leaves_no_trace(request):
    before = state(request.config.rootpath)
    yield
    after = state(request.config.rootpath)
    changed = [_difference(k, before[k], after[k]) for k in before if before[k] != after[k]]
    if changed:
        pytest.fail(f"the test left changed: {'; '.join(changed)}", pytrace=False)
