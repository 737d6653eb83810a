import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import hypothesis
import pandas as pd
import pytest

from .slurm_study import SELECTED as SLURM_SELECTED
from .slurm_study import SlurmStudy, is_slurm_test

pytest_plugins = ["tests.leaks", "pytester"]  # tests.leaks: every test must leave no trace
hypothesis.settings.register_profile("sparsenet", database=None)  # no .hypothesis/ folder in the checkout
hypothesis.settings.load_profile("sparsenet")
REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "config" / "tiny.yaml"
SHARED_DATA = REPO.parent / "shared" / "data"

# Tests read the offline copies beside the checkout unless SPARSENET_DATA points elsewhere.
if "SPARSENET_DATA" not in os.environ and SHARED_DATA.exists():
    os.environ["SPARSENET_DATA"] = str(SHARED_DATA)
# Snakemake imports its SLURM plugin, which asks `scontrol` for the controller's settings: where SLURM is installed
# but not running, that waits 10 s in every Snakemake process. Without the SLURM test no test needs the answer.
if not SLURM_SELECTED:
    os.environ["SLURM_CONF"] = os.devnull  # an empty configuration: scontrol then fails at once


def pytest_configure(config):
    if os.environ.get("PYTEST_XDIST_WORKER"):  # `make test` runs a worker per core: one torch thread each,
        import torch

        torch.set_num_threads(1)
        os.environ["OMP_NUM_THREADS"] = "1"  # and in the processes it starts (threads that spin on a busy core)
    elif getattr(config.option, "numprocesses", None):  # the controller of the workers, before it starts them
        root = Path(os.environ.get("SPARSENET_DATA", ""))
        if (root / "cifar10.npz").is_file():
            config.stash[UNCOMPRESSED] = UncompressedCifar10(root)
            os.environ["SPARSENET_DATA"] = str(config.stash[UNCOMPRESSED].root)


def pytest_unconfigure(config):
    if UNCOMPRESSED in config.stash:
        config.stash[UNCOMPRESSED].close()


class UncompressedCifar10:
    """A data root like `source` whose cifar10.npz is stored uncompressed, for the suite's processes: each worker and
    each process a test starts would otherwise decompress the LZMA file again (12 s of CPU). The copy is written in
    the background; until it is ready, the root links to the compressed file."""

    def __init__(self, source: Path):
        self.root = Path(tempfile.mkdtemp(prefix="sparsenet-data-"))
        for entry in source.iterdir():
            (self.root / entry.name).symlink_to(entry.resolve())
        self.thread = threading.Thread(target=self._write, args=(source / "cifar10.npz",), daemon=True)
        self.thread.start()

    def _write(self, compressed: Path) -> None:
        import numpy as np

        with np.load(compressed) as npz:
            arrays = {name: npz[name] for name in npz.files}
        np.savez(self.root / "cifar10.part.npz", **arrays)
        os.replace(self.root / "cifar10.part.npz", self.root / "cifar10.npz")  # a reader sees one file or the other

    def close(self) -> None:
        self.thread.join()
        shutil.rmtree(self.root)


UNCOMPRESSED = pytest.StashKey[UncompressedCifar10]()


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist's loadgroup, the tests of the tiny study share one worker: the study runs once. The SLURM
    test comes last: its study runs in the background while the others run (tests/slurm_study.py)."""
    for item in items:
        if "study" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("study"))
    items.sort(key=is_slurm_test)  # stable: the rest keep their order


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = Path(os.environ.get("SPARSENET_DATA", ""))
    if not (root / "MNIST" / "raw").exists():
        pytest.fail(f"MNIST not found under SPARSENET_DATA={root!s}; point it at a folder with MNIST/raw")
    return root


def tiny(**changes):
    """A run config that trains in about a second: 2000 MNIST samples, LeNet-300-100. `algorithm` may be a label:
    <name>_freeze freezes after `freeze_epoch` (default 1) epochs; any other label runs unfrozen."""
    from sparsenet import algorithms
    from sparsenet.config import RunConfig

    settings = {"dataset": "mnist", "model": "lenet300_100", "train_subset": 2000, "epochs": 3, "batch_size": 100,
                "snapshot_fractions": (0.25, 0.5)}
    if "algorithm" in changes:
        changes.update(algorithms.from_label(changes["algorithm"], changes.get("freeze_epoch", 1)))
    settings.update(changes)
    return RunConfig.from_flat(settings)


def own_settings(label: str, settings: dict) -> dict:
    """Of `settings` (flat keys), those a run of `label` has: a test parametrised over algorithms gives each the
    keys any of them reads, and an algorithm refuses another's."""
    from sparsenet import algorithms
    from sparsenet.config import settings as keys_of

    keys = keys_of(algorithms.get(algorithms.split(label)[0]).hparams)
    return {k: v for k, v in settings.items() if k.replace("-", "_") in keys}


TRACE = REPO / "tests" / "trace"  # its sitecustomize records what each `python -m sparsenet` job imports


class Planner:
    """One process (tests/plan_server.py) for this test process's Snakemake calls that run no job: each then
    costs Snakemake's planning alone, not the 4 s of CPU a process takes to start. It imports the package from
    this checkout; a copy of the repository planned there differs in its workflow files and in the module files
    its code identities hash, which the plan reads from the copy."""

    def __init__(self):
        self.proc, self.lock = None, threading.Lock()

    def __call__(self, workdir, argv) -> subprocess.CompletedProcess:
        with self.lock:  # one request at a time
            if self.proc is None or self.proc.poll() is not None:
                self.proc = subprocess.Popen([sys.executable, str(REPO / "tests" / "plan_server.py")], cwd=REPO,
                                             env={**os.environ, "PYTHONPATH": str(REPO)}, text=True,
                                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            self.proc.stdin.write(json.dumps({"workdir": str(workdir), "argv": argv}) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"the planning process ended (exit code {self.proc.wait()}): see its stderr")
        reply = json.loads(line)
        return subprocess.CompletedProcess(argv, reply["returncode"], reply["stdout"], reply["stderr"])

    def close(self):
        if self.proc is not None:
            self.proc.stdin.close()
            self.proc.wait()


PLANNER = Planner()
RUN_NO_JOB = {"-n", "--dry-run", "--summary", "--report", "--unlock"}  # the planning process serves these; the rest
# (a study that runs jobs) runs as a process of its own


@pytest.fixture(scope="session", autouse=True)
def _planner():
    yield PLANNER
    PLANNER.close()


def snakemake(workdir, *args, repo=REPO, check=True, trace=None):
    """Snakemake on `workdir` with the Snakefile of `repo`; `trace`: a folder for the jobs' import traces. What
    runs no job (a dry run, `--summary`, `--report`, `--unlock`) goes to the planning process (`Planner`)."""
    argv = ["-s", str(repo / "Snakefile"), "-d", str(workdir), *args]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    if trace is not None:
        env.update(PYTHONPATH=os.pathsep.join([str(repo), str(TRACE)]), SPARSENET_TRACE_IMPORTS=str(trace))
    if trace is None and RUN_NO_JOB & set(args):
        out = PLANNER(workdir, argv)
    else:
        out = subprocess.run([sys.executable, "-m", "snakemake", *argv], capture_output=True, text=True, env=env,
                             cwd=workdir)
    if check and out.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return out


STARTED = {}  # what the study fixture started in the background


@pytest.fixture(scope="session")
def study(tmp_path_factory, request):
    """The tiny study, run once end to end in a copy of the repository (so tests may edit its code). Where the SLURM
    test is selected, the same study then starts on SLURM in the background (`slurm_study`)."""
    root = tmp_path_factory.mktemp("study")
    repo = root / "repo"
    for part in ("sparsenet", "workflow", "profiles", "tests/config"):
        shutil.copytree(REPO / part, repo / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "Snakefile", repo / "Snakefile")
    shutil.copy(REPO / "config.yaml", repo / "config.yaml")
    work, trace = root / "work", root / "trace"
    work.mkdir()
    trace.mkdir()
    snakemake(work, "--cores", "2", "--configfile", str(repo / "tests/config/tiny.yaml"), repo=repo, trace=trace)
    if SLURM_SELECTED and any(map(is_slurm_test, request.session.items)):
        assert subprocess.run(["sinfo"], capture_output=True).returncode == 0, "SLURM does not answer"
        on_slurm = SlurmStudy(repo, root / "slurm")
        request.addfinalizer(on_slurm.kill)
        STARTED["slurm"] = on_slurm
    return repo, work


@pytest.fixture(scope="session")
def slurm_study(study) -> SlurmStudy:
    """The tiny study on SLURM, started by `study` (tests/test_slurm.py)."""
    return STARTED["slurm"]


def table(work: Path, name: str) -> pd.DataFrame:
    """A table without its timing columns, in a fixed row order."""
    from sparsenet.tables import TIMING

    frame = pd.read_parquet(work / "results" / "tables" / f"{name}.parquet").drop(columns=list(TIMING),
                                                                                  errors="ignore")
    return frame.sort_values([c for c in frame.columns if frame[c].notna().any()]).reset_index(drop=True)
