"""The invariants of the dynamic algorithms beyond the paper (rigl, set, gmp) and of freezing any of them."""
import copy
import math

import pytest
import torch
from torch import nn

from sparsenet.masks import Mask, layer_counts, topk_mask
from sparsenet.models import prunable
from tests.test_algorithms import Harness


def update_step(h):
    """Take steps until one ends in a mask update; return the mask before that step."""
    while True:
        due = h.algo.update_due()
        before = h.algo.mask().clone()
        h.step()
        if due:
            return before


@pytest.mark.parametrize("algorithm", ["rigl", "set"])
def test_drop_and_grow_the_same_number_per_layer_and_grown_weights_start_at_zero(algorithm):
    h = Harness(algorithm, density=0.2, update_interval=3)
    for _ in range(3):
        before = update_step(h)
        fraction = h.algo.drop_fraction(h.algo.last_update)  # the global step the update read
        for n, m in h.algo.mask().layers.items():
            old = before.layers[n]
            assert int(m.sum()) == int(old.sum())
            assert int((old & ~m).sum()) <= int(int(old.sum()) * fraction)
            new = m & ~old
            assert (h.weights[n][new] == 0).all()
            momentum = h.opt.state[h.weights[n]].get("momentum_buffer")  # none before rigl's first optimizer step
            assert momentum is None or (momentum[new] == 0).all()
        changed = sum(int((h.algo.mask().layers[n] & ~before.layers[n]).sum()) for n in before.layers)
        assert changed > 0


def test_rigl_grows_where_the_dense_gradient_is_largest():
    """The gradient is computed here, on a copy of the model and the update step's batch, not read from the
    algorithm: the grown weights have the largest |gradient| among the weights absent before and after."""
    h = Harness("rigl", density=0.2, update_interval=2)
    h.step()
    while not h.algo.update_due():
        h.step()
    state = h.data.get_state()  # the batch Harness.step draws next
    x, y = h.draw()
    h.data.set_state(state)
    model = copy.deepcopy(h.model)
    nn.functional.cross_entropy(model(x), y).backward()
    grad = {n: w.grad.abs() for n, w in prunable(model).items()}
    before = h.algo.mask().clone()
    h.step()
    grew = 0
    for n, m in h.algo.mask().layers.items():
        new, never = m & ~before.layers[n], ~m & ~before.layers[n]
        if new.any():
            grew += int(new.sum())
            assert grad[n][new].min() >= grad[n][never].max()
    assert grew > 0


def test_rigl_drops_each_layers_smallest_kept_weights_and_grows_as_many_absent_ones():
    """An update of a given mask, with a known grow score (absent weights only, so nothing dropped grows back) and
    no optimizer: per sparse layer, int(kept * fraction) of the smallest kept magnitudes go and as many absent
    weights come, at zero. In layer order: a dense layer (skipped), a layer that drops none, one that drops one."""
    h = Harness("rigl", density=0.2, dense_layers=("0.weight",), rigl_layers="all")
    algo, g = h.algo, torch.Generator().manual_seed(5)
    algo.optimizer = None
    kept = {"2.weight": 3, "4.weight": 100}
    before = {"0.weight": torch.ones_like(h.weights["0.weight"], dtype=torch.bool),
              **{n: topk_mask(torch.rand(h.weights[n].shape, generator=g), k) for n, k in kept.items()}}
    algo._grad = {n: (~before[n]).float() * torch.rand(before[n].shape, generator=g) for n in kept}
    with torch.no_grad():  # as the update runs in training, after the step
        for w in h.weights.values():  # distinct magnitudes (the initial mask zeroed most weights)
            w.copy_(torch.randn(w.shape, generator=g))
        algo._mask = Mask(dict(before))
        algo._mask.apply(h.weights)
        weights = {n: w.clone() for n, w in h.weights.items()}
        algo.update(0.015)
    drops = {"2.weight": 0, "4.weight": 1}  # int(3 * 0.015), int(100 * 0.015)
    assert algo.mask().layers["0.weight"].all()
    for n, m in ((n, algo.mask().layers[n]) for n in kept):
        old = before[n]
        dropped, grown = old & ~m, m & ~old
        assert int(dropped.sum()) == int(grown.sum()) == drops[n], n
        smallest = weights[n].abs().masked_fill(~old, torch.inf).flatten().argsort()[:drops[n]]
        assert set(dropped.flatten().nonzero().flatten().tolist()) == set(smallest.tolist()), n
        assert (h.weights[n][grown] == 0).all() and torch.equal(h.weights[n][m & old], weights[n][m & old])


@pytest.mark.parametrize("name", ["rigl", "set"])
def test_the_last_mask_update_may_fall_on_the_end_step_and_none_after_it(name):
    """is_mask_update_iter's range includes end_step (google-research/rigl, rigl/sparse_optimizers.py)."""
    algo = Harness(name, density=0.2, epochs=4, steps_per_epoch=5, update_interval=2, update_end=0.5).algo
    for g, due in ((algo.end_step, True), (algo.end_step + 1, False)):
        algo.global_step, algo.last_update = g - algo.step_first, g - 2
        assert algo.update_due() == due, g


def test_the_drop_fraction_anneals_to_zero_at_an_end_step_of_one():
    """cosine_decay over [0, end_step] with end_step 1: the full fraction at step 0, none from step 1 on."""
    algo = Harness("rigl", density=0.2, epochs=1, steps_per_epoch=4, update_end=0.25).algo
    assert algo.end_step == 1
    assert [algo.drop_fraction(t) for t in (0, 1, 2)] == pytest.approx([0.3, 0.0, 0.0], abs=1e-12)


def test_rigl_needs_dense_gradients_only_at_update_steps_until_update_end():
    h = Harness("rigl", density=0.2, epochs=4, steps_per_epoch=5, update_interval=3, update_end=0.5)
    flags = []
    for _ in range(20):
        flags.append(h.algo.dense_gradients)
        h.step()
    # batches 0..19; an update batch takes no optimizer step, so the global step reaches 3, 6, 9 at batches 4, 8,
    # 12; the first batch updates (last_mask_update_step starts at -frequency), none after global step 0.5 * 20
    assert [i for i, f in enumerate(flags) if f] == [0, 4, 8, 12]


@pytest.mark.parametrize("algorithm, batches, read_at", [("rigl", [0, 101, 202], [0, 100, 200]),
                                                         ("set", [0, 100, 200], [1, 101, 201])])
def test_update_batches_and_drop_fraction_follow_the_global_step(algorithm, batches, read_at):
    """rigl's update replaces its batch's optimizer step, so the global step skips it; set's follows the step."""
    h = Harness(algorithm, density=0.2, epochs=1, steps_per_epoch=1000, update_interval=100)
    seen, update, batch = [], h.algo.update, [0]
    h.algo.update = lambda fraction: (seen.append((batch[0], fraction)), update(fraction))
    for batch[0] in range(250):
        h.step()
    assert [b for b, _ in seen] == batches
    assert [f for _, f in seen] == pytest.approx([h.algo.drop_fraction(g) for g in read_at])
    assert len(set(f for _, f in seen)) == 3  # the cosine decays between updates


@pytest.mark.parametrize("algorithm", ["rigl", "set"])
def test_rigl_updates_instead_of_the_optimizer_step_set_after_it(algorithm):
    h = Harness(algorithm, density=0.2, update_interval=4)
    h.step()  # batch 0 updates
    for _ in range(3 if algorithm == "set" else 4):
        h.step()
    assert h.algo.update_due()  # batch 4 (set) or 5 (rigl: batch 0 took no optimizer step)
    weights = {n: w.detach().clone() for n, w in h.weights.items()}
    before = h.algo.mask().clone()
    h.step()
    for n, m in h.algo.mask().layers.items():
        stayed = m & before.layers[n]
        assert torch.equal(h.weights[n][stayed], weights[n][stayed]) == (algorithm == "rigl")


def test_rigl_drop_fraction_decays_by_cosine_to_zero_at_update_end():
    h = Harness("rigl", density=0.2, epochs=4, steps_per_epoch=25, drop_fraction=0.3, update_end=0.5)
    assert h.algo.drop_fraction(0) == pytest.approx(0.3)
    assert h.algo.drop_fraction(25) == pytest.approx(0.15)
    assert h.algo.drop_fraction(50) == pytest.approx(0.0)


def test_gmp_follows_the_cubic_schedule_step_by_step_and_reaches_the_target():
    epochs, spe, target = 4, 10, 0.1
    h = Harness("gmp", density=target, epochs=epochs, steps_per_epoch=spe, gmp_start=0.1, gmp_end=0.6, gmp_interval=3)
    start, end = 4, 24  # 0.1 and 0.6 of 40 steps
    shapes = {n: w.shape for n, w in h.weights.items()}
    expected = {n: w.numel() for n, w in h.weights.items()}
    for t in range(1, epochs * spe + 1):
        h.step()
        if start <= t <= end and ((t - start) % 3 == 0 or t == end):
            d = target + (1 - target) * (1 - (t - start) / (end - start)) ** 3
            expected = layer_counts(shapes, d, "uniform")
        assert {n: int(m.sum()) for n, m in h.algo.mask().layers.items()} == expected, t
    assert h.algo.mask().kept() == round(target * sum(math.prod(s) for s in shapes.values()))
    assert h.algo.mask_fixed


@pytest.mark.parametrize("spe,gmp_start,gmp_end", [(1, 0.0167, 0.25), (2, 0.4, 0.6)])
def test_gmp_reaches_the_target_in_a_run_too_short_for_its_schedule(spe, gmp_start, gmp_end):
    """One step in all (the end rounds to step 0, and is step 1), or a start and end that round to the same step:
    the only pruning step prunes to the target, and the schedule holds it there after the end."""
    h = Harness("gmp", density=0.1, epochs=1, steps_per_epoch=spe, gmp_start=gmp_start, gmp_end=gmp_end)
    h.run_epoch(steps=spe)
    shapes = {n: w.shape for n, w in h.weights.items()}
    assert {n: int(m.sum()) for n, m in h.algo.mask().layers.items()} == layer_counts(shapes, 0.1, "uniform")
    assert h.algo.mask_fixed and h.algo.density_at(spe + 5) == pytest.approx(0.1)


@pytest.mark.parametrize("algorithm", ["dnw_freeze", "snfs_freeze", "set_freeze", "rigl_freeze"])
def test_frozen_variants_stop_changing_the_mask_and_give_absent_weights_no_gradient(algorithm):
    h = Harness(algorithm, density=0.1, freeze_epoch=1, update_interval=2)
    assert not h.algo.mask_fixed
    h.run_epoch()
    assert h.algo.mask_fixed and not h.algo.dense_gradients
    frozen = h.algo.mask().clone()
    for n, m in frozen.layers.items():  # absent weights and their momentum are zero from the freeze on
        assert (h.weights[n][~m] == 0).all() and (h.opt.state[h.weights[n]]["momentum_buffer"][~m] == 0).all()

    def check():
        for n, m in frozen.layers.items():
            assert (h.weights[n].grad[~m] == 0).all()
    for _ in range(3):
        for _ in range(5):
            h.step(inspect=check)
        h.epoch += 1
        h.algo.end_of_epoch(h.epoch, h.opt)
        assert h.algo.mask().equal(frozen)


@pytest.mark.parametrize("algorithm", ["rigl", "set", "gmp", "rigl_freeze", "set_freeze", "snfs_freeze",
                                       "dnw_freeze"])
@pytest.mark.parametrize("resume_at", [3, 8])  # steps: before the freeze at the end of epoch 1, and after it
def test_state_round_trips_through_a_checkpoint(algorithm, resume_at):
    """A resumed run continues as the uninterrupted one (4 epochs of 5 steps): step counters, masks, random growth
    and the freeze are saved; weights, momentum and masks are compared at the end."""
    def harness():
        return Harness(algorithm, density=0.2, epochs=4, update_interval=2, gmp_interval=2, freeze_epoch=1)

    def run(h, start, stop):
        for t in range(start, stop):
            h.step()
            if (t + 1) % 5 == 0:
                h.epoch += 1
                h.algo.end_of_epoch(h.epoch, h.opt)

    a, b = harness(), harness()
    run(a, 0, resume_at)
    b.model.load_state_dict(a.model.state_dict())
    b.opt.load_state_dict(copy.deepcopy(a.opt.state_dict()))  # torch's would share a's buffers
    b.algo.load_state_dict(copy.deepcopy(a.algo.state_dict()))
    b.data.set_state(a.data.get_state())
    b.epoch = a.epoch
    run(a, resume_at, 20)
    run(b, resume_at, 20)
    assert a.algo.mask().equal(b.algo.mask()) and a.algo.mask_fixed == b.algo.mask_fixed
    for n, w in a.weights.items():
        assert torch.equal(w, b.weights[n])
        assert torch.equal(a.opt.state[w]["momentum_buffer"], b.opt.state[b.weights[n]]["momentum_buffer"])


@pytest.mark.parametrize("name", ["dnw", "snfs", "set", "rigl"])
def test_a_freezing_run_is_its_algorithm_until_the_freeze(name):
    """Up to the end of epoch `freeze_epoch`, <name>_freeze trains as <name> does: the same mask, forward mask and
    weights at every step."""
    a, b = Harness(name, density=0.2, update_interval=2), Harness(f"{name}_freeze", density=0.2, update_interval=2,
                                                                  freeze_epoch=2)
    for _ in range(2):
        for _ in range(5):
            a.step()
            b.step()
            assert a.algo.mask().equal(b.algo.mask())
            fa, fb = a.algo.forward_mask(), b.algo.forward_mask()
            assert (fa is None and fb is None) or fa.equal(fb)
            assert all(torch.equal(w, b.weights[n]) for n, w in a.weights.items())
        for h in (a, b):
            h.epoch += 1
            h.algo.end_of_epoch(h.epoch, h.opt)
    assert b.algo.mask().equal(a.algo.mask()) and b.algo.mask_fixed and not a.algo.mask_fixed


def test_set_draws_its_mask_and_growth_from_the_runs_generator_and_not_from_torchs():
    """SET's random initial mask and growth come from the run's generator (growth from a generator of its own,
    seeded from the run's; seed 0 without one), so the same run starts from and grows the same weights whatever
    else drew from torch's global generator before it."""
    from sparsenet import algorithms

    h = Harness("set", density=0.2)

    def start(seed, drawn_before):
        torch.manual_seed(drawn_before)  # the global generator in another state
        generator = None if seed is None else torch.Generator().manual_seed(seed)
        algo = algorithms.of(h.hp)(h.hp, h.weights, 5, generator=generator, steps_per_epoch=5)
        return algo.mask().layers["0.weight"], algo.grow_score("0.weight")

    for a, b in zip(start(3, 0), start(3, 1)):
        assert torch.equal(a, b)
    assert torch.equal(start(None, 0)[1], start(None, 1)[1])
    for a, b in (*zip(start(3, 0), start(4, 0)), (start(3, 0)[1], start(None, 0)[1])):
        assert not torch.equal(a, b)
