"""Faults: kills, corrupt or missing files, divergence, hostile checkpoints, determinism."""
import copy
import os
import pickle
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from sparsenet import algorithms
from sparsenet.checkpoint import CheckpointError, load_checkpoint, load_weights
from sparsenet.cli import main
from sparsenet.figures import draw_all
from sparsenet.tables import build_all
from sparsenet.train import train

from .conftest import own_settings, tiny
from .forked import Forked
from .test_train import _same_run

TESTS = Path(__file__).parent
ARGS = ["--algorithm", "snfs", "--density", "0.1", "--epochs", "6", "--train-subset", "10000", "--device", "cpu",
        "--threads", "1"]


def cli(out, *args, script=None, env=None) -> Forked:
    """`sparsenet train --out OUT` with ARGS (or `args`) in a process of its own; its stderr beside `out`."""
    stderr = Path(tempfile.mkstemp(dir=out.parent, prefix=f"{out.name}.", suffix=".stderr")[1])
    return Forked(["train", "--out", str(out), *(args or ARGS)], stderr, script=script, env=env)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data_root):
    out = tmp_path_factory.mktemp("ref") / "run"
    assert cli(out).wait() == 0
    return out


def _checkpoint_epoch(run: Path) -> int:
    return load_checkpoint(run / "checkpoint.pt")["epoch"] if (run / "checkpoint.pt").exists() else 0


@pytest.mark.parametrize("point", [0, 1, 2])
def test_sigkill_at_a_random_point_then_resume_gives_the_same_run(tmp_path, reference, point):
    out = tmp_path / "run"
    rng = random.Random(point)
    epoch, delay = rng.randint(1, 3), rng.uniform(0, 0.3)  # kill inside a random epoch, at least 2 before the end
    proc = cli(out)
    deadline = time.time() + 300
    while _checkpoint_epoch_or_none(out) < epoch and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL and not (out / "run.json").exists()
    assert cli(out).wait() == 0
    _same_run(reference, out)


def _checkpoint_epoch_or_none(run: Path) -> int:
    """The checkpoint's epoch, read safely while the trainer may be replacing it."""
    try:
        return _checkpoint_epoch(run)
    except CheckpointError:  # replaced between the existence check and the read: ask again
        return 0


def test_sigkill_during_a_checkpoint_write_resumes_from_the_last_complete_one(tmp_path, reference):
    out = tmp_path / "run"
    proc = cli(out, script=TESTS / "kill_during_checkpoint.py", env={"KILL_AT": "3"})
    assert proc.wait() == -signal.SIGKILL
    assert [p.name for p in out.glob(".checkpoint.pt.tmp*")]  # the half-written file is the temporary one
    assert _checkpoint_epoch(out) == 2
    resume = cli(out)
    assert resume.wait() == 0
    assert "resuming" in resume.stderr and not list(out.glob(".*tmp*"))
    _same_run(reference, out)


@pytest.mark.parametrize("garble", ["truncate", "junk"])
def test_corrupt_checkpoint_is_named_not_loaded(tmp_path, reference, garble, capsys):
    out = tmp_path / "run"
    out.mkdir()
    data = (TESTS / "__init__.py").read_bytes() + b"\x80\x02junk" * 50 if garble == "junk" else b""
    if garble == "truncate":
        torch.save({"epoch": 1, "weights": torch.zeros(1000)}, out / "full.pt")
        data = (out / "full.pt").read_bytes()[:500]
    (out / "checkpoint.pt").write_bytes(data)
    threads = torch.get_num_threads()
    try:
        assert main(["train", "--out", str(out), *ARGS]) == 2
    finally:
        torch.set_num_threads(threads)  # --threads sets the process's: restore it for the tests after this one
    err = capsys.readouterr().err
    assert str(out / "checkpoint.pt") in err and "delete it" in err


class Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_crafted_pickle_in_a_checkpoint_is_refused_not_run(tmp_path):
    marker = tmp_path / "payload-ran"
    path = tmp_path / "checkpoint.pt"
    with open(path, "wb") as f:
        pickle.dump({"epoch": 1, "model": Payload(marker)}, f)
    with pytest.raises(CheckpointError, match="holds objects other than tensors"):
        load_checkpoint(path)
    torch.save({"epoch": 1, "model": Payload(marker)}, path)  # the same inside torch's zip format
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize("victim,command", [
    ("mask.safetensors", ["emergence"]),
    ("snapshots.safetensors", ["emergence"]),
    ("final.safetensors", ["prune-sweep", "--fractions", "0.5"]),
    ("run.json", ["prune-sweep", "--fractions", "0.5"]),
])
def test_corrupt_run_files_give_one_clear_error(tmp_path, reference, victim, command, capsys):
    run = tmp_path / "run"
    run.mkdir()
    for f in reference.iterdir():
        (run / f.name).write_bytes(f.read_bytes())
    (run / victim).write_bytes((run / victim).read_bytes()[:40])
    assert main([command[0], "--run", str(run), "--out", str(tmp_path / "x.parquet"), *command[1:]]) == 2
    err = capsys.readouterr().err
    assert str(run / victim) in err and "rerun" in err
    assert "Traceback" not in err


def test_a_missing_run_folder_is_reported_missing_not_corrupt(tmp_path, capsys):
    assert main(["show", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'nowhere'} does not exist" in err and "delete" not in err and "Traceback" not in err
    (tmp_path / "unfinished").mkdir()
    assert main(["show", str(tmp_path / "unfinished")]) == 2
    err = capsys.readouterr().err
    assert "run.json does not exist: the job that writes it has not finished" in err and "delete" not in err


def test_corrupt_table_names_the_file_and_the_rule(tmp_path, capsys):
    tables = tmp_path / "tables"
    tables.mkdir()
    for name in ("runs", "reinit", "prune", "emergence", "freeze"):
        (tables / f"{name}.parquet").write_bytes(b"PAR1 not really")
    assert main(["figures", "--tables", str(tables), "--out", str(tmp_path / "figures")]) == 2
    err = capsys.readouterr().err
    assert str(tables / "runs.parquet") in err and "-R" in err


def test_incomplete_data_folder_names_the_folder(tmp_path, data_root, monkeypatch):
    from sparsenet.config import DataHparams
    from sparsenet.data import DataError, load

    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        (raw / name).write_bytes((data_root / "MNIST" / "raw" / name).read_bytes())
    monkeypatch.setattr("torchvision.datasets.utils.download_url",
                        lambda *a, **k: (_ for _ in ()).throw(OSError("network unreachable")))
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte") as err:
        load(DataHparams(dataset="mnist"), torch.device("cpu"), root=tmp_path)
    assert str(tmp_path) in str(err.value)


def test_diverged_run_is_recorded_and_left_out_of_the_figures(tmp_path, data_root):
    ok = tmp_path / "runs" / "dnw"
    bad = tmp_path / "runs" / "snfs"
    train(tiny(algorithm="dnw", density=0.1, epochs=2), ok)
    record = train(tiny(algorithm="snfs", density=0.1, epochs=3, lr=1e9), bad)
    assert record.status == "diverged" and record.epochs_run < 3
    history = pd.read_parquet(bad / "history.parquet")
    assert (history["status"] == "diverged").all()
    for run in (ok, bad):
        assert main(["prune-sweep", "--run", str(run), "--out", str(run / "prune_sweep.parquet"),
                     "--fractions", "0", "0.5", "--draws", "1"]) == 0
        assert main(["emergence", "--run", str(run), "--out", str(run / "emergence.parquet")]) == 0
    build_all(tmp_path / "tables", runs=[ok, bad], retrains=[], layers=[],
              sweeps=[ok / "prune_sweep.parquet", bad / "prune_sweep.parquet"],
              emergence=[ok / "emergence.parquet", bad / "emergence.parquet"])
    runs = pd.read_parquet(tmp_path / "tables" / "runs.parquet").set_index("algorithm")
    assert runs.loc["snfs", "status"] == "diverged" and runs.loc["dnw", "status"] == "ok"
    assert main(["similarity", "--runs", str(ok), str(bad), "--out", str(tmp_path / "tables")]) == 0
    notes = draw_all(tmp_path / "tables", tmp_path / "figures")
    assert len(notes) == 1 and str(bad) in notes[0]
    assert (tmp_path / "figures" / "e2_prune.png").exists()


def test_same_seed_gives_byte_identical_masks_and_history(tmp_path, data_root):
    cfg = tiny(algorithm="snfs", density=0.1, epochs=3)
    train(cfg, tmp_path / "a")
    train(cfg, tmp_path / "b")
    for name in ("mask.safetensors", "snapshots.safetensors", "final.safetensors", "init.safetensors"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    timing = ["train_s", "samples_per_s"]
    a, b = (pd.read_parquet(tmp_path / r / "history.parquet").drop(columns=timing) for r in "ab")
    assert a.equals(b)
    wa, wb = load_weights(tmp_path / "a" / "final.safetensors"), load_weights(tmp_path / "b" / "final.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


# a process whose files may not grow past `limit` bytes (as a full disk): the kernel fails the write with EFBIG
LIMITED = ("import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
           "resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit})); "
           "from sparsenet.cli import main; sys.exit(main(sys.argv[1:]))")


@pytest.mark.parametrize("limit,fails", [(20_000, "init.safetensors"), (2_000_000, "checkpoint.pt")])
def test_a_write_that_fails_ends_the_job_in_one_line_naming_the_file(tmp_path, data_root, limit, fails):
    """Which library writes (safetensors for weights, torch for the checkpoint), a failed write is one line that
    names the file and the cause, and leaves no file that looks written, nor a run record."""
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-c", LIMITED.format(limit=limit), "train", "--out", str(out),
                           "--epochs", "1", "--train-subset", "500", "--device", "cpu"],
                          capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and errors[0].startswith(f"sparsenet train: error: cannot write {out / fails}: "), (
        proc.stderr[-2000:])
    if fails.endswith(".safetensors"):  # the kernel's own words, where the library passes them on
        assert "File too large" in errors[0]
    assert not (out / fails).exists() and not (out / "run.json").exists()
    assert not list(out.glob(".*.tmp*"))  # no temporary left either


KILLED = {"epochs": "3", "train-subset": "1000", "batch-size": "100", "density": "0.3", "device": "cpu"}
OWN = {"update-interval": "7", "gmp-interval": "5", "gmp-start": "0.1", "gmp-end": "0.9", "imp-rate": "0.7"}


def _final_checkpoint(monkeypatch) -> list[dict]:
    """The state of every last-epoch checkpoint the process writes (model, momentum, algorithm), as written."""
    from sparsenet import train as train_mod

    states, save = [], train_mod.save_checkpoint

    def keep(path, state):
        if state["epoch"] == int(KILLED["epochs"]):
            states.append(copy.deepcopy({k: state[k] for k in ("model", "optimizer", "algorithm", "history")}))
        save(path, state)
    monkeypatch.setattr(train_mod, "save_checkpoint", keep)
    return states


@pytest.mark.parametrize("algorithm", [a for a in algorithms.labels() if a != "fixed"])  # fixed: given a mask
def test_every_algorithm_killed_mid_epoch_resumes_to_the_identical_run(tmp_path, data_root, monkeypatch, capsys,
                                                                      algorithm):
    """A real SIGKILL at step 3 of the last epoch (after a freeze, for <name>_freeze; in round 1 of imp's chain),
    then a resume: the same weights, masks, snapshots and history, and the same last checkpoint (momentum and the
    algorithm's state included) as a run never killed."""
    settings = {k.replace("_", "-"): v for k, v in algorithms.from_label(algorithm).items()}  # a label's
    flags = [f"--{k}={v}" for k, v in {**KILLED, **own_settings(algorithm, OWN), **settings}.items()]
    flags.append(f"--threads={torch.get_num_threads()}")  # the killed process sums as this one does: bitwise
    if algorithm == "dense":
        flags.remove("--density=0.3")
    captured = _final_checkpoint(monkeypatch)
    assert main(["train", "--out", str(tmp_path / "whole"), *flags]) == 0
    whole = captured.copy()
    captured.clear()
    killed = tmp_path / "killed"
    proc = cli(killed, *flags, script=TESTS / "kill_at_step.py",
               env={"KILL_AT": f"2,3,{2 if algorithm == 'imp' else 1}"})
    assert proc.wait() == -signal.SIGKILL, proc.stderr[-2000:]
    assert not (killed / "run.json").exists()
    (killed / "init.safetensors").unlink(missing_ok=True)  # as Snakemake deletes an incomplete job's outputs
    capsys.readouterr()
    assert main(["train", "--out", str(killed), *flags]) == 0
    assert "resuming" in capsys.readouterr().err  # from the killed run's checkpoint, not afresh
    _same_run(tmp_path / "whole", killed)
    resumed = captured
    assert len(resumed) == 1 and len(whole) == (2 if algorithm == "imp" else 1)  # imp: its last round's
    for part in ("model", "optimizer", "algorithm"):
        assert _equal(whole[-1][part], resumed[0][part]), part


def _equal(a, b) -> bool:
    """Bitwise equality of nested checkpoint state (tensors, containers, numbers)."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    return a == b
