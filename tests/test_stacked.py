"""Several seeds at once give each seed the result of training it alone."""
import pandas as pd
import pytest
import torch

from sparsenet import models
from sparsenet.checkpoint import load_weights
from sparsenet.cli import main
from sparsenet.config import ConfigError
from sparsenet.masks import Mask, layer_counts
from sparsenet.stacked import train_stacked
from sparsenet.train import train

from .conftest import tiny

SEEDS = [0, 1, 2]


def _masks():
    net = models.build("lenet300_100", (1, 28, 28), 10)
    weights = models.prunable(net)
    counts = layer_counts({n: w.shape for n, w in weights.items()}, 0.2, "erk")
    return [Mask.random(weights, counts, torch.Generator().manual_seed(s)) for s in SEEDS]


@pytest.mark.parametrize("algorithm", ["dense", "imp", "snfs", "dnw", "dnw_freeze"])
def test_each_stacked_seed_equals_training_it_alone(tmp_path, data_root, algorithm):
    density = 1.0 if algorithm == "dense" else 0.1
    cfg = tiny(algorithm=algorithm, density=density, epochs=2, freeze_epoch=1)
    masks = _masks() if algorithm == "imp" else None  # an imp round: a given mask per seed
    stacked = train_stacked(cfg, SEEDS, [tmp_path / "stacked" / f"s{s}" for s in SEEDS], masks=masks)
    for k, seed in enumerate(SEEDS):
        alone = train(cfg.replace(seed=seed), tmp_path / "alone" / f"s{seed}", mask=masks[k] if masks else None)
        a, b = tmp_path / "stacked" / f"s{seed}", tmp_path / "alone" / f"s{seed}"
        assert stacked[k]["config"] == alone["config"]
        assert Mask.load(a / "mask.safetensors").equal(Mask.load(b / "mask.safetensors"))
        wa, wb = load_weights(a / "final.safetensors"), load_weights(b / "final.safetensors")
        for name in wa:
            torch.testing.assert_close(wa[name], wb[name], atol=1e-4, rtol=1e-4)
        ha, hb = pd.read_parquet(a / "history.parquet"), pd.read_parquet(b / "history.parquet")
        assert (ha["test_acc"] - hb["test_acc"]).abs().max() <= 0.002
    # the seeds really are different runs
    finals = [load_weights(tmp_path / "stacked" / f"s{s}" / "final.safetensors")["fc1.weight"] for s in SEEDS]
    assert not torch.equal(finals[0], finals[1])


def test_stacked_seeds_resume_after_a_kill(tmp_path, data_root, monkeypatch):
    from sparsenet import train as train_mod

    cfg = tiny(algorithm="snfs", density=0.1, epochs=3)
    outs = [tmp_path / f"s{s}" for s in SEEDS]
    real = train_mod.save_checkpoint

    def die_after_epoch_2(path, state):
        real(path, state)
        if state["epoch"] == 2 and path.parent == outs[-1]:
            raise KeyboardInterrupt
    monkeypatch.setattr(train_mod, "save_checkpoint", die_after_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        train_stacked(cfg, SEEDS, outs)
    monkeypatch.setattr(train_mod, "save_checkpoint", real)
    records = train_stacked(cfg, SEEDS, outs)
    alone = train(cfg.replace(seed=2), tmp_path / "alone")
    assert [r["epochs_run"] for r in records] == [3, 3, 3]
    assert Mask.load(outs[2] / "mask.safetensors").equal(Mask.load(tmp_path / "alone" / "mask.safetensors"))
    assert abs(records[2]["test_acc"] - alone["test_acc"]) <= 0.002


def test_stacking_is_refused_for_models_with_batch_norm(tmp_path, data_root):
    cfg = tiny(model="resnet20", dataset="mnist", algorithm="dense", epochs=1)
    with pytest.raises(ConfigError, match="batch norm"):
        train_stacked(cfg, [0, 1], [tmp_path / "a", tmp_path / "b"])
    assert not (tmp_path / "a").exists()  # refused before anything was written


def test_cli_stacks_seeds_into_one_folder_each(tmp_path, data_root):
    assert main(["train", "--out", str(tmp_path / "s{seed}"), "--stack-seeds", "3,4", "--algorithm", "dnw",
                 "--density", "0.1", "--epochs", "1", "--train-subset", "1000", "--device", "cpu"]) == 0
    assert (tmp_path / "s3" / "run.json").exists() and (tmp_path / "s4" / "run.json").exists()
    assert main(["train", "--out", str(tmp_path / "x"), "--stack-seeds", "3,4"]) == 2


def test_stacked_seeds_train_in_bf16_when_asked(tmp_path, data_root):
    cfg = tiny(epochs=1)
    records = {}
    for precision in ("fp32", "bf16"):
        outs = [tmp_path / precision / f"s{s}" for s in (0, 1)]
        records[precision] = train_stacked(cfg.replace(precision=precision), [0, 1], outs)
    a, b = (load_weights(tmp_path / p / "s0" / "final.safetensors")["fc1.weight"] for p in ("fp32", "bf16"))
    assert not torch.equal(a, b)  # autocast ran
    for r32, r16 in zip(records["fp32"], records["bf16"]):
        assert abs(r32["test_acc"] - r16["test_acc"]) < 0.03
