import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from sparsenet import train as train_mod
from sparsenet.checkpoint import load_weights
from sparsenet.masks import Mask, load_snapshots
from sparsenet.record import RunFolder
from sparsenet.rounds import run_chain, run_round
from sparsenet.step import lr_at
from sparsenet.train import train

from .conftest import tiny


def _same_run(a, b):
    for name in ("final.safetensors", "init.safetensors"):
        wa, wb = load_weights(a / name), load_weights(b / name)
        assert all(torch.equal(wa[k], wb[k]) for k in wa)
    ma, la = load_snapshots(a / "snapshots.safetensors")
    mb, lb = load_snapshots(b / "snapshots.safetensors")
    assert la == lb and all(x.equal(y) for x, y in zip(ma, mb))
    timing = ["train_s", "samples_per_s"]
    pd.testing.assert_frame_equal(pd.read_parquet(a / "history.parquet").drop(columns=timing),
                                  pd.read_parquet(b / "history.parquet").drop(columns=timing))


def test_run_folder_holds_every_output(tmp_path, data_root):
    cfg = tiny(algorithm="snfs", density=0.1)
    record = train(cfg, tmp_path / "run")
    assert all((tmp_path / "run" / f).exists() for f in RunFolder.FILES)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()
    stored = json.loads((tmp_path / "run" / "run.json").read_text())
    assert stored["config"] == cfg.to_dict() and stored["status"] == "ok"
    for key in ("git_commit", "code_hash", "versions", "device", "wall_s", "test_acc"):
        assert key in stored
    assert stored["test_acc"] > 0.7
    history = pd.read_parquet(tmp_path / "run" / "history.parquet")
    assert list(history["epoch"]) == [1, 2, 3] and history["test_acc"].between(0, 1).all()
    _, labels = load_snapshots(tmp_path / "run" / "snapshots.safetensors")
    assert [label["epoch"] for label in labels] == [0.0, 0.25, 0.5, 1.0, 2.0, 3.0]
    mask = Mask.load(tmp_path / "run" / "mask.safetensors")
    assert mask.kept() == round(0.1 * (784 * 300 + 300 * 100 + 100 * 10))
    final = load_weights(tmp_path / "run" / "final.safetensors")
    assert all((final[n][~m] == 0).all() for n, m in mask.layers.items())
    assert train(cfg, tmp_path / "run") == record  # a finished run is not trained again


def test_a_checkpoint_writes_only_the_snapshots_taken_since_the_last(tmp_path, data_root, monkeypatch):
    """Snapshots go to a file each, written once; a checkpoint counts them (its labels) and holds none itself."""
    written: list[str] = []
    states: list[tuple[int, bool]] = []  # (labels counted, snapshots held) of each checkpoint, when written
    real_weights, real_checkpoint = train_mod.save_weights, train_mod.save_checkpoint
    monkeypatch.setattr(train_mod, "save_weights", lambda path, state: (written.append(Path(path).name),
                                                                        real_weights(path, state)))
    monkeypatch.setattr(train_mod, "save_checkpoint", lambda path, state: (
        states.append((len(state["snapshot_labels"]), "snapshots" in state)), real_checkpoint(path, state)))
    train(tiny(algorithm="snfs", density=0.1, epochs=3), tmp_path / "run")
    parts = [name for name in written if name[:5].isdigit()]
    assert parts == [f"{i:05d}.safetensors" for i in range(6)]  # epochs 0, 0.25, 0.5, 1, 2, 3: each once
    assert states == [(4, False), (5, False), (6, False)]
    assert not RunFolder(tmp_path / "run").checkpoint_snapshots.exists()  # gone with the checkpoint
    _, labels = load_snapshots(tmp_path / "run" / "snapshots.safetensors")
    assert [label["epoch"] for label in labels] == [0.0, 0.25, 0.5, 1.0, 2.0, 3.0]


def test_same_seed_same_run_other_seed_other_run(tmp_path, data_root):
    cfg = tiny(algorithm="dnw", density=0.1, epochs=2)
    train(cfg, tmp_path / "a")
    train(cfg, tmp_path / "b")
    _same_run(tmp_path / "a", tmp_path / "b")
    train(cfg.replace(seed=1), tmp_path / "c")
    assert not Mask.load(tmp_path / "a" / "mask.safetensors").equal(Mask.load(tmp_path / "c" / "mask.safetensors"))


def test_imp_rounds_rewind_and_prune(tmp_path, data_root):
    cfg = tiny(algorithm="imp", epochs=2)
    r0 = run_round(cfg.replace(density=1.0), tmp_path / "r0", prev=None, next_density=0.8)
    assert r0.imp_round == 0
    nxt = Mask.load(tmp_path / "r0" / "next_mask.safetensors")
    dense = cfg.algorithm.dense_layers  # LeNet's output layer, as open_lth keeps it
    assert dense == ("fc3.weight",) and nxt.layers["fc3.weight"].all()
    assert nxt.kept(exclude=dense) == round(0.8 * nxt.size(exclude=dense))
    r1 = run_round(cfg, tmp_path / "r1", prev=tmp_path / "r0", next_density=None)
    assert r1.imp_round == 1 and r1.config["algorithm"]["density"] == 0.8
    init0 = load_weights(tmp_path / "r0" / "init.safetensors")
    init1 = load_weights(tmp_path / "r1" / "init.safetensors")
    assert all(torch.equal(init1[k], init0[k]) for k in init0)  # rewound to round 0's initial weights
    final1 = load_weights(tmp_path / "r1" / "final.safetensors")
    assert all((final1[n][~m] == 0).all() for n, m in nxt.layers.items())  # ...under the new mask
    assert not (tmp_path / "r1" / "next_mask.safetensors").exists()


def test_imp_rewind_to_an_epoch(tmp_path, data_root):
    cfg = tiny(algorithm="imp", epochs=2, rewind_epoch=1)
    run_round(cfg.replace(density=1.0), tmp_path / "r0", prev=None, next_density=0.8)
    run_round(cfg, tmp_path / "r1", prev=tmp_path / "r0", next_density=None)
    rewind = load_weights(tmp_path / "r0" / "rewind.safetensors")
    init1 = load_weights(tmp_path / "r1" / "init.safetensors")
    assert torch.equal(init1["fc1.weight"], rewind["fc1.weight"])
    assert not torch.equal(rewind["fc1.weight"], load_weights(tmp_path / "r0" / "init.safetensors")["fc1.weight"])


def test_imp_chain_reaches_the_target_density(tmp_path, data_root):
    record = run_chain(tiny(algorithm="imp", epochs=1, density=0.5, imp_rate=0.3), tmp_path / "chain")
    assert record.density == pytest.approx(0.5, abs=1e-5)
    assert sorted(p.name for p in (tmp_path / "chain" / "rounds").iterdir()) == ["r00", "r01", "r02"]
    assert json.loads((tmp_path / "chain" / "run.json").read_text())["imp_round"] == 2


def test_lr_schedules():
    hp = tiny(lr=0.1, epochs=10, warmup_epochs=2).train
    assert lr_at(hp, 0, 10) == pytest.approx(0.005)
    assert lr_at(hp, 20, 10) == pytest.approx(0.1)
    assert lr_at(hp, 99, 10) < 0.001
    step = tiny(lr=0.1, epochs=10, schedule="step", milestones=(5, 8), gamma=0.1).train
    assert [round(lr_at(step, s * 10, 10), 6) for s in (0, 5, 8)] == [0.1, 0.01, 0.001]


def test_rigl_pays_dense_weight_gradients_only_at_its_update_steps(tmp_path, data_root):
    """20 steps of 100 samples per epoch; rigl updates at batches 0, 7 and 14 until update_end, then never again."""
    cfg = tiny(algorithm="rigl", density=0.1, epochs=2, update_interval=7, update_end=0.5)
    train(cfg, tmp_path / "run")
    history = pd.read_parquet(tmp_path / "run" / "history.parquet")
    mask = Mask.load(tmp_path / "run" / "mask.safetensors")
    size = {n: m.numel() for n, m in mask.layers.items()}
    kept = {n: int(m.sum()) for n, m in mask.layers.items()}  # rigl keeps each layer's count
    dense_samples = 300  # batches 0, 7 and 14 of epoch 1; 21 > 0.5 * 40
    assert list(history["dense_gradients"]) == [True, False]
    assert history["weight_grad_macs"].iloc[0] == sum(dense_samples * size[n] + (2000 - dense_samples) * kept[n]
                                                      for n in size)
    assert history["weight_grad_macs"].iloc[1] == 2000 * sum(kept.values())


def test_gmp_pays_weight_gradients_for_the_weights_each_step_keeps(tmp_path, data_root):
    """gmp prunes during epoch 1: its work there lies between the final and the dense count, step by step."""
    cfg = tiny(algorithm="gmp", density=0.1, epochs=2, gmp_start=0.0, gmp_end=0.5, gmp_interval=2)
    train(cfg, tmp_path / "run")
    history = pd.read_parquet(tmp_path / "run" / "history.parquet")
    mask = Mask.load(tmp_path / "run" / "mask.safetensors")
    final, dense = mask.kept(), mask.size()
    assert 2000 * final < history["weight_grad_macs"].iloc[0] < 2000 * dense
    assert history["weight_grad_macs"].iloc[1] == 2000 * final and not history["dense_gradients"].any()
