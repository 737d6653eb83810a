"""E2: further pruning without retraining."""
import pytest
import torch

from sparsenet.config import ConfigError
from sparsenet.masks import Mask, layer_counts
from sparsenet.prune import METHODS, prune_one_layer, random_prune, sweep
from sparsenet.train import train

from .conftest import tiny

SHAPES = {"fc1.weight": torch.Size([30, 40]), "fc2.weight": torch.Size([10, 30])}


@pytest.mark.parametrize("q", [0.0, 0.3, 0.9])
def test_pruning_one_layer_removes_its_smallest_kept_weights_and_leaves_the_others(q):
    g = torch.Generator().manual_seed(0)
    weights = {n: torch.randn(s, generator=g) for n, s in SHAPES.items()}
    mask = Mask.random(weights, layer_counts(SHAPES, 0.4, "uniform"), g)
    pruned = prune_one_layer(mask, weights, "fc1.weight", q)
    assert torch.equal(pruned.layers["fc2.weight"], mask.layers["fc2.weight"])
    before, after = mask.layers["fc1.weight"], pruned.layers["fc1.weight"]
    kept = int(before.sum())
    assert int(after.sum()) == kept - round(q * kept) and not (after & ~before).any()
    removed = weights["fc1.weight"][before & ~after].abs()
    if len(removed):
        assert removed.max() <= weights["fc1.weight"][after].abs().min()


def test_sweep_prunes_each_sparse_layer_alone(tmp_path, data_root):
    train(tiny(algorithm="snfs", density=0.2, epochs=1), tmp_path / "run", data_root=data_root, device="cpu")
    frame = sweep(tmp_path / "run", [0.0, 0.5], methods=["magnitude_global", "magnitude_per_layer"],
                  data_root=data_root, device="cpu")
    assert sorted(set(frame["layer"])) == ["all", "fc1.weight", "fc2.weight", "fc3.weight"]
    alone = frame[frame["method"] == "magnitude_per_layer"].set_index(["layer", "q"])
    assert len(alone) == 6 and alone.xs(0.0, level="q")["density"].to_numpy() == pytest.approx(0.2, abs=1e-3)
    fc1 = alone.loc[("fc1.weight", 0.5), "density"]  # fc1 holds 235200 of 266200 weights: half of its kept go
    assert fc1 == pytest.approx(0.2 * (1 - 0.5 * 235200 / 266200), abs=2e-3)


@pytest.mark.parametrize("q", [0.0, 0.3, 0.9])
def test_random_prune_removes_a_fraction_of_each_sparse_layers_kept_weights_and_draws_again_by_seed(q):
    g = torch.Generator().manual_seed(0)
    weights = {n: torch.randn(s, generator=g) for n, s in SHAPES.items()}
    mask = Mask.random(weights, layer_counts(SHAPES, 0.4, "uniform"), g)
    dense = {"fc1.weight"}  # kept whole: left as it is, and the layers after it still pruned
    draws = [random_prune(mask, q, dense, torch.Generator().manual_seed(s)) for s in (1, 1, 2)]
    pruned = draws[0]
    assert set(pruned.layers) == set(mask.layers)
    assert torch.equal(pruned.layers["fc1.weight"], mask.layers["fc1.weight"])
    before, after = mask.layers["fc2.weight"], pruned.layers["fc2.weight"]
    kept = int(before.sum())
    assert int(after.sum()) == kept - round(q * kept) and not (after & ~before).any()
    assert draws[0].equal(draws[1])  # a draw is its generator's
    assert draws[0].equal(draws[2]) == (q == 0.0)


@pytest.mark.parametrize("fractions,methods,message", [
    ([0.5, 1.0], METHODS, "prune_sweep.fractions: each must lie in [0, 1), got 1.0"),
    ([-0.1], METHODS, "prune_sweep.fractions: each must lie in [0, 1), got -0.1"),
    ([0.5], ["magnitude_global", "largest"],
     f"prune_sweep.methods: ['largest'] unknown; allowed: {', '.join(METHODS)}")])
def test_a_sweep_refuses_a_fraction_or_method_it_cannot_run_before_reading_the_run(tmp_path, fractions, methods,
                                                                                   message):
    with pytest.raises(ConfigError) as e:
        sweep(tmp_path / "no run", fractions, methods=methods)
    assert str(e.value) == message


def test_batch_norm_is_re_estimated_as_the_average_of_the_first_twenty_training_batches():
    """From a clean start (whatever the statistics and their count held), in train mode, then evaluation mode."""
    from torch import nn

    from sparsenet.prune import recompute_batch_norm

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)).eval()
    norm = model[1]
    norm.running_mean.fill_(5.0), norm.running_var.fill_(7.0), norm.num_batches_tracked.fill_(10)
    g = torch.Generator().manual_seed(1)
    batches = [torch.randn(4, 1, 6, 6, generator=g) for _ in range(25)]
    read = []

    class Batches:  # the batcher's interface: an epoch of (inputs, labels)
        def epoch(self, split, generator):
            for x in batches:
                read.append(x)
                yield x, None

    recompute_batch_norm(model, Batches(), None)
    with torch.no_grad():
        conv = [model[0](x) for x in batches[:20]]
    assert torch.allclose(norm.running_mean, torch.stack([c.mean((0, 2, 3)) for c in conv]).mean(0), atol=1e-6)
    assert torch.allclose(norm.running_var, torch.stack([c.var((0, 2, 3)) for c in conv]).mean(0), atol=1e-6)
    assert int(norm.num_batches_tracked) == 20 and norm.momentum is None and not model.training
    assert len(read) == 21  # the 21st batch drawn ends the loop, unused


def test_a_sweep_at_q_0_is_the_run_itself_and_each_method_removes_its_fraction_of_the_sparse_layers(tmp_path,
                                                                                                   data_root,
                                                                                                   monkeypatch):
    """A layer kept whole stays whole: the density reached counts the sparse layers only. The data come from the
    data_root given, with no other folder to fall back on."""
    from sparsenet.record import RunFolder

    run = tmp_path / "run"
    train(tiny(algorithm="snfs", density=0.2, epochs=1, dense_layers=("fc3.weight",)), run, data_root=data_root,
          device="cpu")
    monkeypatch.delenv("SPARSENET_DATA", raising=False)
    monkeypatch.chdir(tmp_path)  # no ./data here
    monkeypatch.setattr("torchvision.datasets.utils.download_url",
                        lambda *a, **k: (_ for _ in ()).throw(OSError("network unreachable")))
    frame = sweep(run, [0.0, 0.5], methods=list(METHODS), draws=2, data_root=data_root, device="cpu")
    record = RunFolder(run).record()
    assert len(frame) == 2 * (1 + 1 + 2 + 2) and not frame["bn_recomputed"].any()
    assert sorted(set(frame["layer"])) == ["all", "fc1.weight", "fc2.weight"]  # fc3 is kept whole, not swept
    assert sorted(frame.loc[frame["method"] == "random", "draw"]) == [0, 0, 1, 1]
    whole = frame[frame["q"] == 0.0]
    assert whole["test_acc"].tolist() == [record.test_acc] * len(whole)
    assert whole["test_loss"].to_numpy() == pytest.approx(record.test_loss, rel=1e-6)
    assert whole["density"].to_numpy() == pytest.approx(record.density, abs=1e-6)
    half = frame[(frame["q"] == 0.5) & (frame["layer"] == "all")]
    assert half["density"].to_numpy() == pytest.approx(record.density / 2, abs=1e-4)
    assert half["test_loss"].nunique() == len(half) == 4  # four masks, four evaluations
