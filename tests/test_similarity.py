"""E5: mask similarity against chance."""
import pytest
import torch

from sparsenet import similarity
from sparsenet.masks import Mask

from .conftest import tiny


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


def _run(folder, mask, **settings):
    from sparsenet.record import RunFolder

    from .test_record import record

    run = RunFolder(folder)
    record(config=tiny(**settings).to_dict()).write(run.record_path)
    mask.save(run.mask)
    return folder


def test_pairs_compare_every_two_runs_of_a_model_and_density_once_in_a_fixed_order(tmp_path):
    shapes = {"fc1.weight": (300, 784), "fc2.weight": (100, 300), "fc3.weight": (10, 100)}
    sizes = {n: a * b for n, (a, b) in shapes.items()}

    def mask(density, seed):
        return _random(shapes, {n: int(density * s) for n, s in sizes.items()}, seed)

    snfs = [mask(0.1, s) for s in (0, 1)]
    runs = [_run(tmp_path / "b", snfs[1], algorithm="snfs", density=0.1, seed=1),  # listed out of order
            _run(tmp_path / "a", snfs[0], algorithm="snfs", density=0.1, seed=0),
            _run(tmp_path / "c", mask(0.1, 2), algorithm="dnw_freeze", freeze_epoch=2, density=0.1, seed=0),
            _run(tmp_path / "d", mask(0.2, 3), algorithm="imp", density=0.2, seed=0)]  # alone at its density
    frame = similarity.pairs(runs)
    assert set(frame["layer"]) == {"all", *shapes} and len(frame) == 3 * 4  # 3 pairs at 0.1, a row per layer
    keys = frame[frame["layer"] == "all"][["algorithm_a", "seed_a", "algorithm_b", "seed_b", "density"]]
    assert sorted(map(tuple, keys.values.tolist())) == [("dnw_freeze_f2", 0, "snfs", 0, 0.1),
                                                       ("dnw_freeze_f2", 0, "snfs", 1, 0.1),
                                                       ("snfs", 0, "snfs", 1, 0.1)]
    same = frame[(frame["algorithm_a"] == "snfs") & (frame["algorithm_b"] == "snfs")].set_index("layer")
    assert same["run_a"].iloc[0] == str(tmp_path / "a") and same["run_b"].iloc[0] == str(tmp_path / "b")
    assert (same["dataset"] == "mnist").all() and (same["model"] == "lenet300_100").all()
    for row in similarity.compare(snfs[0], snfs[1]):
        assert same.loc[row["layer"]].drop(["dataset", "model", "density", "algorithm_a", "seed_a", "algorithm_b",
                                            "seed_b", "run_a", "run_b"]).to_dict() == pytest.approx(
            {k: v for k, v in row.items() if k != "layer"})


def test_pairs_leave_a_layer_either_run_keeps_whole_out_of_the_whole_mask_row(tmp_path):
    shapes = {"fc1.weight": (300, 784), "fc2.weight": (100, 300), "fc3.weight": (10, 100)}
    masks = [_random(shapes, {"fc1.weight": 2000, "fc2.weight": 300, "fc3.weight": 1000}, s) for s in range(3)]
    runs = [_run(tmp_path / f"r{s}", masks[s], algorithm="snfs", density=0.1, seed=s,
                 dense_layers=("fc3.weight",) if s == 1 else ()) for s in range(3)]
    whole = similarity.pairs(runs).set_index(["seed_a", "seed_b", "layer"])
    for a, b in [(0, 1), (0, 2), (1, 2)]:
        kept_whole = frozenset({"fc3.weight"}) if 1 in (a, b) else frozenset()
        expected = similarity.compare(masks[a], masks[b], kept_whole)[0]
        assert whole.loc[(a, b, "all"), "overlap"] == pytest.approx(expected["overlap"]), (a, b)
