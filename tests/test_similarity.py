"""E5: mask similarity against chance."""
import pytest
import torch

from sparsenet import similarity
from sparsenet.masks import Mask


def _random(shapes, counts, seed):
    weights = {n: torch.zeros(s) for n, s in shapes.items()}
    return Mask.random(weights, counts, torch.Generator().manual_seed(seed))


def test_chance_formulas_match_monte_carlo():
    shapes, counts_a, counts_b = {"a": (40, 50), "b": (10, 30)}, {"a": 200, "b": 90}, {"a": 600, "b": 30}
    sizes = {n: s[0] * s[1] for n, s in shapes.items()}
    overlap, iou = similarity.chance(counts_a, counts_b, sizes)
    draws = [similarity.compare(_random(shapes, counts_a, 2 * i), _random(shapes, counts_b, 2 * i + 1))[0]
             for i in range(300)]
    assert sum(d["overlap"] for d in draws) / len(draws) == pytest.approx(overlap, rel=0.02)
    assert sum(d["iou"] for d in draws) / len(draws) == pytest.approx(iou, rel=0.02)
    assert overlap == pytest.approx((200 * 600 / 2000 + 90 * 30 / 300) / 290)


def test_a_mask_with_itself_scores_one_and_with_a_random_one_about_zero():
    shapes, counts = {"a": (60, 80), "b": (20, 60)}, {"a": 300, "b": 100}
    mask = _random(shapes, counts, 0)
    same = similarity.compare(mask, mask)
    assert all(r["overlap_corrected"] == pytest.approx(1) and r["iou_corrected"] == pytest.approx(1) for r in same)
    other = similarity.compare(mask, _random(shapes, counts, 1))[0]
    assert abs(other["iou_corrected"]) < 0.05 and abs(other["overlap_corrected"]) < 0.05


def test_layers_kept_whole_are_left_out_of_the_whole_mask_row():
    shapes, counts = {"a": (60, 80), "out": (10, 60)}, {"a": 300, "out": 600}
    a, b = _random(shapes, counts, 0), _random(shapes, counts, 1)
    whole = similarity.compare(a, b)[0]
    pruned = similarity.compare(a, b, frozenset({"out"}))[0]
    only_a = similarity.compare(Mask({"a": a.layers["a"]}), Mask({"a": b.layers["a"]}))[0]
    assert pruned == {**only_a, "layer": "all"} and whole["overlap"] > pruned["overlap"]
