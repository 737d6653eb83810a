import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# Tests read the offline copies beside the checkout unless SPARSENET_DATA points elsewhere.
if "SPARSENET_DATA" not in os.environ and SHARED_DATA.exists():
    os.environ["SPARSENET_DATA"] = str(SHARED_DATA)


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = Path(os.environ.get("SPARSENET_DATA", ""))
    if not (root / "MNIST" / "raw").exists():
        pytest.fail(f"MNIST not found under SPARSENET_DATA={root!s}; point it at a folder with MNIST/raw")
    return root


def tiny(**changes):
    """A run config that trains in about a second: 2000 MNIST samples, LeNet-300-100."""
    from sparsenet.config import RunConfig

    settings = {"dataset": "mnist", "model": "lenet300_100", "train_subset": 2000, "epochs": 3, "batch_size": 100,
                "snapshot_fractions": (0.25, 0.5)}
    settings.update(changes)
    return RunConfig.from_flat(settings)
