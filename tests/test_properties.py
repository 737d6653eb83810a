"""Properties that hold for any input (hypothesis): the mask budget, imp's schedule, top-k, packing, SGD."""
import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsenet.algorithms.imp import schedule
from sparsenet.masks import Mask, layer_counts, topk_mask
from sparsenet.optim import SGD

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


@settings(max_examples=60, deadline=None)
@given(shape=st.lists(st.integers(1, 9), min_size=1, max_size=4), p=st.floats(0, 1), seed=st.integers(0, 2**16))
def test_a_mask_packs_and_unpacks_to_itself_for_any_shape(shape, p, seed):
    bits = torch.rand(shape, generator=torch.Generator().manual_seed(seed)) < p
    mask = Mask({"w": bits})
    assert Mask.from_packed(mask.packed(), mask.shapes()).equal(mask)


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
