import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsenet.masks import Mask, MaskFileError, apportion, layer_counts, load_snapshots, save_snapshots

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
    with pytest.raises(ValueError, match="dense_layers"):
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
    with pytest.raises(MaskFileError, match=str(path)):
        Mask.load(path)


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
