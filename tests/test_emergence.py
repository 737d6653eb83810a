"""E3's positional measures: Hamming distance, its chance value and Cohen's kappa, against direct computations."""
import pytest
import torch

from sparsenet.emergence import agreement, emergence
from sparsenet.masks import Mask

from .conftest import tiny


def masks(seed, counts, shapes):
    g = torch.Generator().manual_seed(seed)
    return Mask.random({n: torch.zeros(s) for n, s in shapes.items()}, counts, g)


SHAPES = {"a": (30, 40), "b": (10, 20)}


def test_hamming_and_kappa_equal_their_elementwise_definitions():
    a, b = masks(0, {"a": 60, "b": 50}, SHAPES), masks(1, {"a": 200, "b": 20}, SHAPES)
    x = torch.cat([m.flatten() for m in a.layers.values()]).float()
    y = torch.cat([m.flatten() for m in b.layers.values()]).float()
    got = agreement(a, b)
    assert got["hamming"] == pytest.approx(float((x != y).float().mean()))
    # chance: independent random masks with these per-layer densities
    expected = sum(a.layers[n].numel() * (da * (1 - db) + db * (1 - da)) for n in SHAPES
                   for da, db in [(a.layers[n].float().mean().item(), b.layers[n].float().mean().item())]) / a.size()
    assert got["hamming_chance"] == pytest.approx(expected)
    p_o, p_e = 1 - got["hamming"], 1 - expected
    assert got["kappa"] == pytest.approx((p_o - p_e) / (1 - p_e))


def test_chance_is_the_mean_distance_of_random_masks_and_kappa_is_zero_there():
    counts = {"a": 60, "b": 50}
    draws = [agreement(masks(2 * i, counts, SHAPES), masks(2 * i + 1, counts, SHAPES)) for i in range(300)]
    chance = draws[0]["hamming_chance"]
    assert sum(d["hamming"] for d in draws) / len(draws) == pytest.approx(chance, rel=0.02)
    assert abs(sum(d["kappa"] for d in draws) / len(draws)) < 0.01


def test_kappa_of_one_layer_is_the_chance_corrected_recall():
    """For masks of equal size in one layer: kappa = (recall - d) / (1 - d)."""
    shape = {"a": (50, 40)}
    a, b = masks(3, {"a": 100}, shape), masks(4, {"a": 100}, shape)
    b = Mask({"a": b.layers["a"] | a.layers["a"]})  # share some
    b = Mask({"a": torch.zeros_like(b.layers["a"]).flatten().scatter(
        0, torch.nonzero(b.layers["a"].flatten()).flatten()[:100], True).view(50, 40)})
    d, recall = 100 / 2000, b.overlap(a)
    assert agreement(a, b)["kappa"] == pytest.approx((recall - d) / (1 - d))
    assert agreement(a, a) == {"hamming": 0.0, "hamming_chance": pytest.approx(2 * d * (1 - d)), "kappa": 1.0}


def test_each_snapshot_gives_the_learning_rate_training_goes_on_with(tmp_path, data_root):
    from sparsenet.train import train

    cfg = tiny(algorithm="snfs", density=0.1, epochs=3, schedule="step", milestones=(2,), gamma=0.1)
    train(cfg, tmp_path / "run")
    whole = emergence(tmp_path / "run").query("layer == 'all'").set_index("epoch")["lr"]
    # 2000 samples in batches of 100: 20 steps an epoch; the drop at epoch 2 shows at the snapshot after it
    assert whole.loc[[0.0, 0.25, 0.5, 1.0]].tolist() == pytest.approx([0.1] * 4)
    assert whole.loc[[2.0, 3.0]].tolist() == pytest.approx([0.01, 0.01])


def test_every_row_is_its_snapshot_against_the_final_mask_and_the_snapshot_before(tmp_path, data_root):
    """Each measure of the table, recomputed here from the run's snapshots: the whole network without the layers
    kept whole, and each layer; the first snapshot has no previous one."""
    from sparsenet.masks import load_snapshots
    from sparsenet.train import train

    train(tiny(algorithm="snfs", density=0.1, epochs=2, dense_layers=("fc3.weight",)), tmp_path / "run")
    frame = emergence(tmp_path / "run")
    assert list(frame.columns) == ["epoch", "step", "layer", "density", "overlap_final", "iou_final",
                                   "hamming_final", "hamming_chance", "kappa_final", "overlap_prev", "iou_prev",
                                   "hamming_prev", "lr"]
    snapshots, labels = load_snapshots(tmp_path / "run" / "snapshots.safetensors")
    final = Mask.load(tmp_path / "run" / "mask.safetensors")
    assert len(frame) == len(snapshots) * 4 and frame["epoch"].tolist()[::4] == [x["epoch"] for x in labels]

    def flat(mask, layers):
        return torch.cat([mask.layers[n].flatten() for n in layers])

    for i, (snap, label) in enumerate(zip(snapshots, labels)):
        rows = frame[frame["step"] == label["step"]].set_index("layer")
        for layer in ["all", "fc1.weight", "fc2.weight", "fc3.weight"]:
            names = ["fc1.weight", "fc2.weight"] if layer == "all" else [layer]
            s, f = flat(snap, names), flat(final, names)
            row = rows.loc[layer]
            assert row["density"] == pytest.approx(float(s.float().mean()))
            assert row["overlap_final"] == pytest.approx(float((s & f).sum() / f.sum()))
            assert row["iou_final"] == pytest.approx(float((s & f).sum() / (s | f).sum()))
            assert row["hamming_final"] == pytest.approx(float((s ^ f).float().mean()))
            by_layer = agreement(Mask({n: snap.layers[n] for n in names}), Mask({n: final.layers[n] for n in names}))
            assert (row["hamming_chance"], row["kappa_final"]) == pytest.approx(
                (by_layer["hamming_chance"], by_layer["kappa"]))
            if i == 0:
                assert row[["overlap_prev", "iou_prev", "hamming_prev"]].isna().all()
            else:
                p = flat(snapshots[i - 1], names)
                assert row["overlap_prev"] == pytest.approx(float((s & p).sum() / p.sum()))
                assert row["iou_prev"] == pytest.approx(float((s & p).sum() / (s | p).sum()))
                assert row["hamming_prev"] == pytest.approx(float((s ^ p).float().mean()))
    assert (frame.query("layer == 'fc3.weight'")["density"] == 1.0).all()  # kept whole, and left out of "all"
