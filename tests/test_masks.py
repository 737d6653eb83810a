import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsenet.masks import (
    Mask,
    MaskFileError,
    apportion,
    layer_counts,
    load_snapshots,
    random_for_model,
    save_snapshots,
    topk_mask_near,
)

SHAPES = {"a.weight": torch.Size([30, 20]), "b.weight": torch.Size([8, 4, 3, 3]), "c.weight": torch.Size([5, 30])}


def weights(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {n: torch.randn(s, generator=g) for n, s in SHAPES.items()}


def test_layer_counts_hit_the_density_exactly():
    total = sum(math.prod(s) for s in SHAPES.values())
    for distribution in ("uniform", "erk"):
        counts = layer_counts(SHAPES, 0.1, distribution)
        assert sum(counts.values()) == round(0.1 * total)
        assert all(0 <= counts[n] <= math.prod(s) for n, s in SHAPES.items())


def test_erk_gives_small_layers_higher_density():
    counts = layer_counts(SHAPES, 0.1, "erk")
    dens = {n: counts[n] / math.prod(s) for n, s in SHAPES.items()}
    assert dens["c.weight"] > dens["a.weight"]  # (5+30)/150 > (30+20)/600


def test_erk_caps_layers_at_full_density():
    shapes = {"big": torch.Size([1000, 1000]), "tiny": torch.Size([2, 2])}
    counts = layer_counts(shapes, 0.5, "erk")
    assert counts["tiny"] == 4 and sum(counts.values()) == round(0.5 * 1_000_004)


def test_dense_layers_stay_whole_and_are_outside_the_budget():
    counts = layer_counts(SHAPES, 0.1, "uniform", dense_layers=["c.weight"])
    assert counts["c.weight"] == 150
    assert counts["a.weight"] + counts["b.weight"] == round(0.1 * (600 + 288))
    with pytest.raises(ValueError, match=r"^dense_layers: \['nope.weight'\] are not prunable weights; prunable: "
                                         "a.weight, b.weight, c.weight$"):
        layer_counts(SHAPES, 0.1, "uniform", dense_layers=["nope.weight"])


def test_from_magnitude_keeps_the_largest():
    w = weights()
    mask = Mask.from_magnitude(w, {"a.weight": 10, "b.weight": 5, "c.weight": 0})
    a = w["a.weight"].abs()
    assert mask.layers["a.weight"].sum() == 10
    assert a[mask.layers["a.weight"]].min() >= a[~mask.layers["a.weight"]].max()
    assert mask.layers["c.weight"].sum() == 0


def test_overlap_and_iou():
    ones = Mask.ones_like(weights())
    half = Mask({n: torch.arange(math.prod(s)).view(s) % 2 == 0 for n, s in SHAPES.items()})
    assert half.overlap(ones) == 1.0
    assert ones.overlap(half) == pytest.approx(half.kept() / ones.kept())
    assert half.iou(ones) == pytest.approx(half.density())
    other = Mask({n: ~m for n, m in half.layers.items()})
    assert half.overlap(other) == 0 and half.iou(other) == 0
    rows = half.per_layer_overlap(half)
    assert [r["iou"] for r in rows] == [1.0, 1.0, 1.0]
    empty = Mask({n: torch.zeros(s, dtype=torch.bool) for n, s in SHAPES.items()})
    assert empty.overlap(half) == 1.0 and empty.iou(empty) == 1.0  # nothing kept: nothing lost


def test_per_layer_rows_count_each_layer():
    mask = Mask({"a.weight": torch.tensor([[True, False, False], [True, True, False]]),
                 "b.weight": torch.zeros(2, 2, dtype=torch.bool)})
    assert mask.per_layer() == [
        {"layer": "a.weight", "shape": [2, 3], "size": 6, "kept": 3, "density": 0.5},
        {"layer": "b.weight", "shape": [2, 2], "size": 4, "kept": 0, "density": 0.0}]


def test_per_layer_overlap_is_each_layers_own_overlap_and_iou():
    g = torch.Generator().manual_seed(3)
    a, b = (Mask({n: torch.rand(s, generator=g) < p for n, s in SHAPES.items()}) for p in (0.3, 0.6))
    b.layers["c.weight"].zero_()  # a layer the other keeps nothing of
    rows = a.per_layer_overlap(b)
    assert [r["layer"] for r in rows] == list(SHAPES)
    for row in rows:
        x, y = a.layers[row["layer"]], b.layers[row["layer"]]
        assert row["overlap"] == (x & y).sum().item() / x.sum().item()
        assert row["iou"] == (x & y).sum().item() / (x | y).sum().item()
    none = Mask({n: torch.zeros(s, dtype=torch.bool) for n, s in SHAPES.items()})
    assert all(r["overlap"] == 1.0 and r["iou"] == 1.0 for r in none.per_layer_overlap(none))


@pytest.mark.parametrize("shapes", [dict(list(SHAPES.items())[:2]), dict(reversed(SHAPES.items())),
                                    {**SHAPES, "c.weight": torch.Size([30, 5])}], ids=["layers", "order", "shape"])
def test_masks_of_other_layers_or_shapes_are_not_compared(shapes):
    ones, other = Mask.ones_like(weights()), Mask({n: torch.ones(s, dtype=torch.bool) for n, s in shapes.items()})
    for compare in (ones.overlap, ones.iou, ones.per_layer_overlap):
        with pytest.raises(ValueError, match="^masks cover different layers or shapes$"):
            compare(other)


def test_shuffling_within_units_keeps_every_units_fan_in_and_moves_its_positions():
    g = torch.Generator().manual_seed(0)
    mask = Mask.random(weights(), layer_counts(SHAPES, 0.3, "uniform"), g)
    shuffled = mask.shuffled_within_units(torch.Generator().manual_seed(1))
    for name, m in mask.layers.items():
        rows, moved = m.reshape(m.shape[0], -1), shuffled.layers[name].reshape(m.shape[0], -1)
        assert shuffled.layers[name].shape == m.shape
        assert torch.equal(rows.sum(1), moved.sum(1))  # a linear row's, a conv output channel's fan-in
        assert not torch.equal(rows, moved)
    assert mask.shuffled_within_units(torch.Generator().manual_seed(1)).equal(shuffled)  # the generator's draw


def test_scaled_sparsities_keep_their_ratio_and_the_total():
    shapes = {"a.weight": torch.Size([100, 100]), "b.weight": torch.Size([100, 50])}
    counts = layer_counts(shapes, 0.2, "uniform", sparsity_scales=[("b.weight", 0.9)])
    assert sum(counts.values()) == round(0.2 * 15_000)
    sparsity = {n: 1 - counts[n] / math.prod(s) for n, s in shapes.items()}
    assert sparsity["b.weight"] == pytest.approx(0.9 * sparsity["a.weight"], abs=2e-4)  # within rounding
    with pytest.raises(ValueError, match="^sparsity_scales: \\['c.weight'\\] are not sparse layers of this model; "
                                         "sparse: a.weight, b.weight$"):
        layer_counts(shapes, 0.2, "uniform", sparsity_scales=[("c.weight", 0.9)])
    # every layer scaled below 1: the others' common sparsity is past 1 (1.6 here), each layer's own is not
    halves = layer_counts(shapes, 0.2, "uniform", sparsity_scales=[("a.weight", 0.5), ("b.weight", 0.5)])
    assert halves == {"a.weight": 2000, "b.weight": 1000}
    # a layer scaled above 1 empties before the total is reached: the unscaled one (scale 1) keeps all of it
    even = {"a.weight": torch.Size([100, 100]), "b.weight": torch.Size([100, 100])}
    assert layer_counts(even, 0.1, "uniform", sparsity_scales=[("a.weight", 1.5)]) == {"a.weight": 0,
                                                                                       "b.weight": 2000}


def test_a_random_mask_for_a_model_has_the_layer_counts_of_its_distribution():
    from sparsenet import models

    weights_of = models.prunable(models.build("lenet300_100", (1, 28, 28), 10))
    shapes = {n: w.shape for n, w in weights_of.items()}
    mask = random_for_model("lenet300_100", "mnist", 0.05, "erk", dense_layers=["fc3.weight"], seed=1)
    assert mask.shapes() == {n: list(s) for n, s in shapes.items()}
    assert {r["layer"]: r["kept"] for r in mask.per_layer()} == layer_counts(shapes, 0.05, "erk", ["fc3.weight"])
    assert mask.equal(random_for_model("lenet300_100", "mnist", 0.05, "erk", dense_layers=["fc3.weight"], seed=1))
    assert not mask.equal(random_for_model("lenet300_100", "mnist", 0.05, "erk", dense_layers=["fc3.weight"]))


def test_a_safetensors_file_of_other_tensors_is_not_taken_for_a_mask(tmp_path):
    from safetensors.torch import save_file

    save_file({"a.weight": torch.ones(3)}, tmp_path / "w.safetensors")  # no sparsenet metadata
    with pytest.raises(MaskFileError, match=r"is corrupt or not a sparsenet mask file \(not a sparsenet mask file\)"):
        load_snapshots(tmp_path / "w.safetensors")


def test_a_mask_moves_to_a_device():
    assert {m.device.type for m in Mask.ones_like(weights()).to("meta").layers.values()} == {"meta"}


def test_apply_zeroes_absent_weights():
    w = weights()
    mask = Mask.random(w, layer_counts(SHAPES, 0.3, "uniform"), torch.Generator().manual_seed(1))
    mask.apply(w)
    for n, m in mask.layers.items():
        assert (w[n][~m] == 0).all() and (w[n][m] != 0).all()


def test_save_load_round_trip_is_compact(tmp_path):
    mask = Mask.random(weights(), layer_counts(SHAPES, 0.3, "erk"), torch.Generator().manual_seed(2))
    mask.save(tmp_path / "m.safetensors")
    assert Mask.load(tmp_path / "m.safetensors").equal(mask)
    assert (tmp_path / "m.safetensors").stat().st_size < mask.size() / 8 + 1000


def test_snapshots_keep_order_and_labels(tmp_path):
    g = torch.Generator().manual_seed(3)
    masks = [Mask.random(weights(), layer_counts(SHAPES, d, "uniform"), g) for d in (0.5, 0.3, 0.1)]
    labels = [{"epoch": 0.0}, {"epoch": 0.5}, {"epoch": 1.0}]
    save_snapshots(tmp_path / "s.safetensors", masks, labels)
    loaded, loaded_labels = load_snapshots(tmp_path / "s.safetensors")
    assert loaded_labels == labels
    assert all(a.equal(b) for a, b in zip(loaded, masks))
    with pytest.raises(MaskFileError, match="expected one"):
        Mask.load(tmp_path / "s.safetensors")


@pytest.mark.parametrize("garble", ["truncate", "junk"])
def test_corrupt_mask_file_names_the_file(tmp_path, garble):
    path = tmp_path / "m.safetensors"
    Mask.ones_like(weights()).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if garble == "truncate" else b"not a mask" * 10)
    with pytest.raises(MaskFileError) as error:
        Mask.load(path)
    message = str(error.value)  # the file, what is wrong, what to do
    assert message.startswith(f"mask file {path} is corrupt or not a sparsenet mask file (")
    assert message.endswith("); rerun the job that wrote it")


def test_a_missing_mask_file_is_named_missing(tmp_path):
    path = tmp_path / "mask.safetensors"
    with pytest.raises(MaskFileError) as error:
        Mask.load(path)
    assert str(error.value) == f"mask file {path} does not exist"


def test_apportion_sums_exactly():
    assert sum(apportion({"a": 1.4, "b": 1.4, "c": 1.2}, 4).values()) == 4


@settings(max_examples=40, deadline=None)
@given(rows=st.integers(1, 40), cols=st.integers(1, 40), density=st.floats(0.01, 1.0), seed=st.integers(0, 2**16))
def test_mask_properties(tmp_path_factory, rows, cols, density, seed):
    shapes = {"x.weight": torch.Size([rows, cols]), "y.weight": torch.Size([cols, 3])}
    w = {n: torch.randn(s) for n, s in shapes.items()}
    g = torch.Generator().manual_seed(seed)
    counts = layer_counts(shapes, density, "erk")
    a = Mask.random(w, counts, g)
    b = Mask.from_magnitude(w, counts)
    assert a.kept() == round(density * (rows * cols + cols * 3))
    assert 0 <= a.overlap(b) <= 1 and 0 <= a.iou(b) <= min(a.overlap(b), b.overlap(a)) + 1e-12
    shuffled = a.shuffled(g)
    assert [r["kept"] for r in shuffled.per_layer()] == [r["kept"] for r in a.per_layer()]
    path = tmp_path_factory.mktemp("m") / "m.safetensors"
    a.save(path)
    assert Mask.load(path).equal(a)


def test_topk_near_finds_the_kth_value_on_the_bands_edges_and_takes_exactly_k_above_it_unranked():
    score = torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0])
    top = [torch.arange(5) < k for k in range(6)]
    mask, kth = topk_mask_near(score, 3, 6.0, 0.5)  # the k-th value 3 on the band's lower edge, 6 * (1 - 0.5)
    assert torch.equal(mask, top[3]) and kth == 3.0
    mask, kth = topk_mask_near(score, 2, 2.0, 1.0)  # the k-th value 4 on its upper edge, 2 * (1 + 1), ranked inside
    assert torch.equal(mask, top[2]) and kth == 4.0
    mask, kth = topk_mask_near(score, 2, 3.0, 0.1)  # exactly k entries above the band: those, and the guess back
    assert torch.equal(mask, top[2]) and kth == 3.0
    assert topk_mask_near(score, 1, 3.0, 0.1) is None  # more than k above: the k-th value is outside the band
    assert topk_mask_near(score, 4, 3.0, 0.1) is None  # too few inside: the k-th value is below the band


def test_snapshot_files_of_the_same_masks_are_the_same_bytes_and_an_empty_list_is_refused(tmp_path):
    g = torch.Generator().manual_seed(0)
    masks = [Mask.ones_like(weights()), Mask({n: torch.rand(w.shape, generator=g) < 0.5 for n, w in weights().items()})]
    save_snapshots(tmp_path / "a.safetensors", masks, [{"epoch": 0.5, "step": 3}, {"epoch": 1.0, "step": 6}])
    save_snapshots(tmp_path / "b.safetensors", masks, [{"step": 3, "epoch": 0.5}, {"step": 6, "epoch": 1.0}])
    # whatever the order of the labels' keys, a rerun that writes the same masks leaves the same file
    assert (tmp_path / "a.safetensors").read_bytes() == (tmp_path / "b.safetensors").read_bytes()
    with pytest.raises(ValueError, match="^no masks to save$"):
        save_snapshots(tmp_path / "c.safetensors", [], [])


@pytest.mark.parametrize("shape", [(300, 784), (7,), (4, 3, 5)])
def test_kept_only_is_torch_where_with_zero_elsewhere(shape):
    """numpy's multiply on the CPU, torch.where elsewhere and for strided or other tensors: the same values
    (== counts -0.0 as 0.0, which no sum or product tells apart)."""
    from sparsenet.masks import kept_only

    g = torch.Generator().manual_seed(3)
    weight, keep = torch.randn(shape, generator=g), torch.rand(shape, generator=g) < 0.3
    cases = [(weight, keep), (weight.double(), keep), (weight.clone().requires_grad_(), keep),
             (weight.bfloat16(), keep), (weight.mT, keep.mT) if weight.dim() > 1 else (weight, keep)]
    for w, k in cases:
        got = kept_only(w, k)
        assert got.dtype == w.dtype and got.shape == w.shape and not got.requires_grad
        assert torch.equal(got, torch.where(k, w.detach(), 0.0))
