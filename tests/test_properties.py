"""Properties that hold for any input (hypothesis): the mask budget, imp's schedule, top-k (per layer and global),
snfs's prune and regrowth counts, packing, SGD, the settings' validation and E5's chance values."""
import copy
import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsenet import algorithms, similarity
from sparsenet import config as c
from sparsenet.algorithms import imp
from sparsenet.algorithms._at_init import global_topk
from sparsenet.algorithms._rigl_scripts import RIGL_LAYER_RULES
from sparsenet.algorithms.imp import schedule
from sparsenet.algorithms.snfs import prune_counts, redistribute
from sparsenet.masks import Mask, _packbits, layer_counts, topk_mask, topk_mask_near
from sparsenet.optim import SGD
from sparsenet.settings import every

SHAPES = st.lists(st.tuples(st.integers(1, 30), st.integers(1, 30)), min_size=1, max_size=4)


@settings(max_examples=80, deadline=None)
@given(dims=SHAPES, density=st.floats(0.001, 1.0), distribution=st.sampled_from(["uniform", "erk"]),
       dense=st.integers(0, 3))
def test_layer_counts_spend_exactly_the_budget_of_the_sparse_layers(dims, density, distribution, dense):
    shapes = {f"l{i}.weight": torch.Size(d) for i, d in enumerate(dims)}
    dense_layers = list(shapes)[:dense] if dense < len(shapes) else []
    counts = layer_counts(shapes, density, distribution, dense_layers)
    sparse = [n for n in shapes if n not in dense_layers]
    assert sum(counts[n] for n in sparse) == round(density * sum(shapes[n].numel() for n in sparse))
    assert all(0 <= counts[n] <= shapes[n].numel() for n in shapes)  # ERK's caps: no layer beyond whole
    assert all(counts[n] == shapes[n].numel() for n in dense_layers)


@settings(max_examples=80, deadline=None)
@given(targets=st.lists(st.floats(0.001, 0.999), min_size=1, max_size=5), rate=st.floats(0.05, 0.95))
def test_imp_schedule_lands_on_every_target_never_pruning_more_than_the_rate(targets, rate):
    rounds = schedule(targets, rate)
    assert rounds[0] == 1.0 and all(b < a for a, b in zip(rounds, rounds[1:]))
    assert all(any(math.isclose(t, r, abs_tol=1e-12) for r in rounds) for t in targets)
    assert all(b >= a * (1 - rate) - 1e-12 for a, b in zip(rounds, rounds[1:]))
    assert math.isclose(rounds[-1], min(targets), abs_tol=1e-12)


@settings(max_examples=80, deadline=None)
@given(dims=SHAPES, data=st.data())
def test_global_topk_keeps_the_k_best_over_the_sparse_layers_and_never_empties_one(dims, data):
    weights = {f"l{i}.weight": torch.zeros(d) for i, d in enumerate(dims)}
    dense = data.draw(st.integers(0, len(dims) - 1))
    dense_layers, sparse = list(weights)[:dense], list(weights)[dense:]
    seed = data.draw(st.integers(0, 2**16))
    scores = {n: torch.randn(w.shape, generator=torch.Generator().manual_seed(seed + i))
              for i, (n, w) in enumerate(weights.items())}
    k = data.draw(st.integers(len(sparse), sum(weights[n].numel() for n in sparse)))
    mask = global_topk(scores, k, weights, dense_layers)
    assert sum(int(mask.layers[n].sum()) for n in sparse) == k
    assert all(mask.layers[n].all() for n in dense_layers) and all(mask.layers[n].any() for n in sparse)
    # against a sort: apart from each layer's guaranteed best, no dropped score beats a kept one
    best = {n: scores[n] == scores[n].max() for n in sparse}
    kept = torch.cat([scores[n][mask.layers[n] & ~best[n]] for n in sparse])
    dropped = torch.cat([scores[n][~mask.layers[n]] for n in sparse])
    if len(kept) and len(dropped):
        assert kept.min() >= dropped.max()


LAYER_COUNTS = st.lists(st.tuples(st.integers(1, 500), st.integers(0, 500)), min_size=1, max_size=5)


@settings(max_examples=120, deadline=None)
@given(layers=LAYER_COUNTS, total=st.integers(0, 3000), data=st.data())
def test_snfs_regrowth_is_all_that_fits_and_never_above_a_layers_free_slots(layers, total, data):
    free = {f"l{i}": f for i, (_, f) in enumerate(layers)}
    raw = [data.draw(st.floats(0.0, 1.0)) for _ in free]
    share = {n: (r / sum(raw) if sum(raw) else 1 / len(free)) for n, r in zip(free, raw)}
    counts = redistribute(total, share, free)
    assert sum(counts.values()) == min(total, sum(free.values()))  # every freed weight regrows where it fits
    assert all(0 <= counts[n] <= free[n] for n in free)


@settings(max_examples=120, deadline=None)
@given(layers=LAYER_COUNTS, rate=st.floats(0.0, 0.99), data=st.data())
def test_snfs_prunes_ceil_rate_of_each_layer_or_less_where_a_dense_layer_still_grows(layers, rate, data):
    size = {f"l{i}": s + k for i, (s, k) in enumerate(layers)}
    kept = {f"l{i}": k for i, (_, k) in enumerate(layers)}
    raw = [data.draw(st.floats(0.01, 1.0)) for _ in kept]
    share = {n: r / sum(raw) for n, r in zip(kept, raw)}
    out = prune_counts(rate, kept, size, share)
    assert all(0 <= out[n] <= min(math.ceil(rate * kept[n]), kept[n]) for n in kept)
    assert all(out[n] == min(math.ceil(rate * kept[n]), kept[n]) for n in kept
               if not 1 - kept[n] / size[n] < 0.2 or share[n] <= 1 / len(kept))  # sparse_learning's adjust_prune_rate


@settings(max_examples=80, deadline=None)
@given(shape=st.tuples(st.integers(1, 6), st.integers(1, 6), st.integers(1, 4), st.integers(1, 4)),
       data=st.data(), channels_last=st.booleans())
def test_topk_mask_keeps_exactly_the_k_largest(shape, data, channels_last):
    score = torch.randn(shape, generator=torch.Generator().manual_seed(data.draw(st.integers(0, 2**16))))
    if channels_last:
        score = score.to(memory_format=torch.channels_last)
    k = data.draw(st.integers(0, score.numel()))
    mask = topk_mask(score, k)
    assert int(mask.sum()) == k and mask.shape == score.shape
    if channels_last:  # in the memory format of its score
        assert mask.is_contiguous(memory_format=torch.channels_last)
    if 0 < k < score.numel():
        assert score[mask].min() >= score[~mask].max()  # against a sort: no dropped entry beats a kept one
    assert torch.equal(mask, topk_mask(score.contiguous(), k))


@settings(max_examples=150, deadline=None)
@given(data=st.data(), n=st.integers(1, 60), levels=st.integers(1, 100), channels_last=st.booleans(),
       band=st.floats(0.0, 0.5), nan=st.booleans())
def test_topk_near_a_guess_is_topk_or_declines(data, n, levels, channels_last, band, nan):
    # magnitudes on `levels` values (few levels: many ties), perhaps a NaN; the guess the true k-th value or off it
    g = torch.Generator().manual_seed(data.draw(st.integers(0, 2**16)))
    score = torch.randint(0, levels, (n, 2, 2, 1), generator=g).float() / levels
    if nan:
        score.view(-1)[data.draw(st.integers(0, score.numel() - 1))] = float("nan")
    if channels_last:
        score = score.to(memory_format=torch.channels_last)
    k = data.draw(st.integers(1, score.numel()))
    ranked = score.flatten().sort(descending=True).values
    kth = float(ranked[k - 1])
    near = kth * data.draw(st.sampled_from([1.0, 0.9, 1.1, 0.5, 2.0]))
    found = topk_mask_near(score, k, near, band)
    unique = not nan and (k == score.numel() or ranked[k] < ranked[k - 1])
    if found is None:  # declined only where the top k is not unique, its k-th value lies outside the band, or
        # the score is not contiguous
        assert not (unique and near * (1 - band) <= kth <= near * (1 + band) and score.is_contiguous())
        return
    mask, value = found
    assert unique and torch.equal(mask, topk_mask(score, k)) and mask.stride() == topk_mask(score, k).stride()
    assert value == kth or (value == near and int((score > near * (1 + band)).sum()) == k)


@settings(max_examples=60, deadline=None)
@given(shape=st.lists(st.integers(1, 9), min_size=1, max_size=4), p=st.floats(0, 1), seed=st.integers(0, 2**16))
def test_a_mask_packs_and_unpacks_to_itself_for_any_shape(shape, p, seed):
    bits = torch.rand(shape, generator=torch.Generator().manual_seed(seed)) < p
    mask = Mask({"w": bits})
    assert Mask.from_packed(mask.packed(), mask.shapes()).equal(mask)
    packed = _packbits(bits)  # a GPU's packing, in torch
    assert packed.dtype == torch.uint8 and np.array_equal(packed.numpy(), np.packbits(bits.numpy().ravel()))


@settings(max_examples=60, deadline=None)
@given(lr=st.floats(1e-4, 1.0), momentum=st.sampled_from([0.0, 0.5, 0.9, 0.99]), nesterov=st.booleans(),
       decay=st.sampled_from([0.0, 1e-4, 5e-4, 0.1]), seed=st.integers(0, 2**16))
def test_sgd_equals_torchs_bitwise(lr, momentum, nesterov, decay, seed):
    g = torch.Generator().manual_seed(seed)
    ours = [torch.randn(5, 7, generator=g)]
    theirs = [ours[0].clone()]
    nesterov = nesterov and momentum > 0
    opt_ours = SGD(ours, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=decay)
    opt_theirs = torch.optim.SGD(theirs, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=decay)
    for _ in range(4):
        grad = torch.randn(5, 7, generator=g)
        ours[0].grad, theirs[0].grad = grad.clone(), grad.clone()
        opt_ours.step()
        opt_theirs.step()
        assert torch.equal(ours[0], theirs[0])


def _take(opt: SGD, params: list[torch.Tensor], grads: list[list[torch.Tensor]]) -> None:
    for step in grads:
        for p, grad in zip(params, step):
            p.grad = grad.clone()
        opt.step()


@settings(max_examples=20, deadline=None)
@given(momentum=st.sampled_from([0.0, 0.9]), nesterov=st.booleans(), seed=st.integers(0, 2**16))
def test_sgd_resumed_from_its_state_dict_steps_as_if_never_stopped(momentum, nesterov, seed):
    """A checkpoint's optimizer state: hyperparameters and momentum come back, each buffer to its own parameter,
    and the steps after it equal those of an optimizer never stopped, bitwise."""
    g = torch.Generator().manual_seed(seed)
    shapes = [(6, 4), (3,), (2, 5)]
    start = [torch.randn(s, generator=g) for s in shapes]
    grads = [[torch.randn(s, generator=g) for s in shapes] for _ in range(6)]
    hp = {"lr": 0.05, "momentum": momentum, "nesterov": nesterov and momentum > 0, "weight_decay": 1e-3}
    whole = [t.clone() for t in start]
    _take(SGD(whole, **hp), whole, grads)
    stopped = [t.clone() for t in start]
    first = SGD(stopped, **hp)
    _take(first, stopped, grads[:3])
    resumed = [t.clone() for t in stopped]
    second = SGD(resumed, lr=1.0)  # the state's own hyperparameters replace these
    second.load_state_dict(copy.deepcopy(first.state_dict()))
    assert second.param_groups[0] == {**hp, "params": resumed}
    _take(second, resumed, grads[3:])
    assert all(torch.equal(a, b) for a, b in zip(whole, resumed))


def test_an_sgd_routed_before_its_state_is_loaded_keeps_the_kept_entries_of_the_momentum():
    """A routed weight's momentum buffer holds its kept entries only, also when the state is loaded after routing
    (the dense buffer of a checkpoint is narrowed to them)."""
    from sparsenet.sparse import Structure

    g = torch.Generator().manual_seed(0)
    w = torch.randn(4, 6, generator=g)
    dense = SGD([w], lr=0.1, momentum=0.9)
    _take(dense, [w], [[torch.randn(4, 6, generator=g)]])
    mask = torch.rand(4, 6, generator=g) < 0.4
    routed = SGD([w.clone()], lr=0.1, momentum=0.9)
    structure = Structure(mask)
    routed.route(routed.param_groups[0]["params"][0], structure)
    routed.load_state_dict(dense.state_dict())
    p = routed.param_groups[0]["params"][0]
    assert routed.state[p]["momentum_buffer"].shape == (int(mask.sum()),)
    assert torch.equal(routed.momentum(p), torch.where(mask, dense.momentum(w), 0.0))


def test_sgd_clears_gradients_and_checkpoints_each_momentum_dense():
    """zero_grad drops the gradients, or zeroes them in place; a momentum is None before the first step, and a
    checkpoint holds it dense, a routed weight's too (zero at its absent entries)."""
    from sparsenet.sparse import Structure

    g = torch.Generator().manual_seed(1)
    w, b = torch.randn(4, 6, generator=g), torch.randn(4, generator=g)
    opt = SGD([w, b], lr=0.1, momentum=0.9)
    assert opt.momentum(w) is None and opt.state_dict()["state"] == {}
    w.grad = torch.ones(4, 6)
    opt.zero_grad(set_to_none=False)
    assert torch.equal(w.grad, torch.zeros(4, 6)) and b.grad is None
    opt.zero_grad()
    assert w.grad is None
    _take(opt, [w, b], [[torch.randn(4, 6, generator=g), torch.randn(4, generator=g)]])
    before = opt.momentum(w).clone()
    mask = torch.rand(4, 6, generator=g) < 0.5
    opt.route(w, Structure(mask))
    saved = opt.state_dict()["state"][0]["momentum_buffer"]
    assert saved.shape == w.shape and torch.equal(saved, torch.where(mask, before, 0.0))


def _outside(low: float, high: float, *, low_open: bool, high_open: bool):
    """Floats outside the interval from `low` to `high` (each end in or out as the check has it)."""
    below = st.floats(max_value=low, exclude_max=not low_open, allow_nan=False, allow_infinity=False)
    above = st.floats(min_value=high, exclude_min=not high_open, allow_nan=False, allow_infinity=False)
    return st.one_of(below, above)


def _not_one_of(choices):
    return st.text(min_size=1, max_size=12).filter(lambda s: s not in choices)


FRACTION = {"low_open": True, "high_open": True}
# every validated setting with values it must refuse (the other settings at their defaults: 30 epochs; an
# algorithm's own setting for the first algorithm that has it, any other for snfs)
INVALID = {
    "batch_size": st.integers(max_value=0), "val_fraction": _outside(0, 1, low_open=False, high_open=True),
    "train_subset": st.integers(max_value=-1), "init": _not_one_of(c.INITS), "bn_init": _not_one_of(c.BN_INITS),
    "epochs": st.integers(max_value=0), "lr": st.floats(max_value=0, allow_nan=False),
    "momentum": _outside(0, 1, low_open=False, high_open=True), "weight_decay": st.floats(max_value=-1e-12),
    "schedule": _not_one_of(c.SCHEDULES), "warmup_epochs": st.one_of(st.integers(max_value=-1), st.integers(30)),
    "milestones": st.lists(st.one_of(st.integers(max_value=0), st.integers(30)), min_size=1, max_size=3),
    "gamma": _outside(0, 1, low_open=True, high_open=False),
    "label_smoothing": _outside(0, 1, low_open=False, high_open=True),
    "snapshot_fractions": st.lists(_outside(0, 1, **FRACTION), min_size=1, max_size=3),
    "density": _outside(0, 1, low_open=True, high_open=False), "distribution": _not_one_of(c.DISTRIBUTIONS),
    "rigl_layers": _not_one_of(RIGL_LAYER_RULES), "prune_rate": _outside(0, 1, low_open=False, high_open=True),
    "freeze_epoch": st.integers(max_value=-1), "update_interval": st.integers(max_value=0),
    "update_end": _outside(0, 1, low_open=True, high_open=False), "drop_fraction": _outside(0, 1, **FRACTION),
    "gmp_start": _outside(0, 1, low_open=False, high_open=True),
    "gmp_end": st.one_of(_outside(0, 1, low_open=True, high_open=False), st.floats(0.001, 0.0167)),
    "gmp_interval": st.integers(max_value=0), "synflow_rounds": st.integers(max_value=0),
    "imp_rate": _outside(0, 1, **FRACTION), "imp_scope": _not_one_of(imp.SCOPES),
    "imp_output": _not_one_of(imp.OUTPUTS), "rewind_epoch": st.integers(max_value=-1),
    "seed": st.integers(max_value=-1), "algorithm": _not_one_of(algorithms.NAMES),
    "precision": _not_one_of(c.PRECISIONS), "sparse_kernels": _not_one_of(c.SPARSE_KERNELS),
    "eval_batch_size": st.integers(max_value=0),
}


@settings(max_examples=25, deadline=None)
@given(data=st.data())
@pytest.mark.parametrize("key", sorted(INVALID))
def test_every_invalid_setting_is_refused_naming_its_key(key, data):
    value = data.draw(INVALID[key])
    where = every()[key][2]
    algorithm = where.removeprefix("algorithm: ").split(",")[0] if where.startswith("algorithm: ") else "snfs"
    with pytest.raises(c.ConfigError, match=f"^{key}: ") as refused:
        c.RunConfig.from_flat({"algorithm": algorithm, "density": 0.1, key: value})
    # and names what it refused: the value, or for a list the refused entry
    shown = [value] if not isinstance(value, list) else value
    assert any(repr(v) in str(refused.value) for v in shown), (str(refused.value), value)


def test_the_invalid_values_cover_every_validated_setting():
    own = {"dataset", "model", "nesterov", "augment", "dense_layers", "sparsity_scales", "imp_layer_rates",
           "channels_last", "compile", "deterministic"}  # import paths, flags, and name lists tested on their own
    assert set(INVALID) | own == set(every())


@settings(max_examples=40, deadline=None)
@given(layers=st.lists(st.integers(1, 5).flatmap(
    lambda n: st.tuples(st.just(n), st.integers(1, n), st.integers(1, n))), min_size=1, max_size=2))
def test_e5s_chance_overlap_is_the_exact_mean_over_every_pair_of_random_masks(layers):
    """Enumerate every mask with each layer's kept count, for both runs: the mean overlap is chance's, exactly."""
    sizes = {f"l{i}": n for i, (n, _, _) in enumerate(layers)}
    counts_a = {f"l{i}": a for i, (_, a, _) in enumerate(layers)}
    counts_b = {f"l{i}": b for i, (_, _, b) in enumerate(layers)}

    def masks(counts):  # every combination of kept positions, layer by layer
        per_layer = [list(itertools.combinations(range(sizes[n]), counts[n])) for n in sizes]
        return list(itertools.product(*per_layer))

    shared = [sum(len(set(x) & set(y)) for x, y in zip(ma, mb)) for ma in masks(counts_a) for mb in masks(counts_b)]
    mean_overlap = Fraction(sum(shared), len(shared)) / sum(counts_a.values())
    assert similarity.chance(counts_a, counts_b, sizes)[0] == pytest.approx(float(mean_overlap), rel=1e-12)
