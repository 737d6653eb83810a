"""Pruning at initialisation and static masks: each score equals a direct computation on a small model."""
import pytest
import torch
from torch import nn

from sparsenet import algorithms
from sparsenet.algorithms._at_init import global_topk
from sparsenet.algorithms.grasp import TEMPERATURE
from sparsenet.algorithms.synflow import Hparams as SynflowHparams
from sparsenet.config import AlgorithmHparams, ConfigError
from sparsenet.masks import Mask, layer_counts
from sparsenet.models import prunable


def tiny():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 7), nn.ReLU(), nn.Linear(7, 3))


BATCH = (torch.randn(16, 6, generator=torch.Generator().manual_seed(1)),
         torch.randint(0, 3, (16,), generator=torch.Generator().manual_seed(2)))
NAMES = ["0.weight", "2.weight", "4.weight"]


def algorithm(name, model, density=0.3, **hp):
    return algorithms.get(name)(algorithms.get(name).hparams(algorithm=name, density=density, **hp), prunable(model), 3,
                            generator=torch.Generator().manual_seed(0), model=model, batch=BATCH)


def flat_loss(model, flat, temperature=1.0, batch=BATCH):
    """The loss as a function of the three weight matrices, flattened into one vector (biases fixed)."""
    shapes = [model[i].weight.shape for i in (0, 2, 4)]
    parts, offset = [], 0
    for s in shapes:
        parts.append(flat[offset:offset + s.numel()].view(s))
        offset += s.numel()
    x = torch.relu(nn.functional.linear(batch[0], parts[0], model[0].bias))
    x = torch.relu(nn.functional.linear(x, parts[1], model[2].bias))
    return nn.functional.cross_entropy(nn.functional.linear(x, parts[2], model[4].bias) / temperature, batch[1])


def flat_weights(model):
    return torch.cat([model[i].weight.detach().flatten() for i in (0, 2, 4)])


def expected_mask(model, score, density):
    return global_topk(unflat(model, score), round(density * score.numel()), prunable(model))


def unflat(model, flat):
    out, offset = {}, 0
    for name, i in zip(NAMES, (0, 2, 4)):
        n = model[i].weight.numel()
        out[name] = flat[offset:offset + n].view(model[i].weight.shape)
        offset += n
    return out


def test_snip_keeps_the_largest_connection_sensitivity():
    model = tiny()
    w = flat_weights(model).requires_grad_()
    g = torch.autograd.grad(flat_loss(model, w), w)[0]
    mask = algorithm("snip", model).mask()
    assert mask.equal(expected_mask(model, (g * w).abs().detach(), 0.3))


def test_grasp_scores_redrawn_linear_weights_on_two_halves_and_removes_the_largest_minus_w_hg():
    """GraSP.py with reinit=True: Xavier-normal linear weights in the scoring copy; g and Hg summed over the two
    halves of the batch; the trained weights are the model's own."""
    model = tiny()
    own = flat_weights(model)
    g = torch.Generator().manual_seed(0)  # the generator `algorithm` gives the run
    drawn = torch.cat([(torch.randn(model[i].weight.shape, generator=g) *
                        (2 / sum(model[i].weight.shape)) ** 0.5).flatten() for i in (0, 2, 4)])
    halves = [tuple(t[:8] for t in BATCH), tuple(t[8:] for t in BATCH)]
    grad = sum(torch.autograd.functional.jacobian(lambda v, b=b: flat_loss(model, v, TEMPERATURE, b), drawn)
               for b in halves)
    hg = sum(torch.autograd.functional.hessian(lambda v, b=b: flat_loss(model, v, TEMPERATURE, b), drawn) @ grad
             for b in halves)
    mask = algorithm("grasp", model).mask()
    assert mask.equal(expected_mask(model, drawn * hg, 0.3))  # kept: the smallest -w*Hg
    assert torch.equal(flat_weights(model)[mask_flat(mask)], own[mask_flat(mask)])  # trained: its own weights


def mask_flat(mask):
    return torch.cat([m.flatten() for m in mask.layers.values()])


def test_grasp_scores_the_first_ten_samples_of_each_class_in_class_order():
    labels = torch.arange(100) % 4  # classes 0..3, 25 each, interleaved
    batches = [(torch.arange(100)[i:i + 16, None].float(), labels[i:i + 16]) for i in range(0, 100, 16)]
    x, y = algorithms.get("grasp").scoring_batch(batches, num_classes=4)
    assert y.tolist() == [c for c in range(4) for _ in range(10)]
    assert x[:, 0].tolist() == [float(c + 4 * k) for c in range(4) for k in range(10)]  # the first 10 of each


def test_snip_scores_with_batch_norm_running_statistics():
    """snip-public scores with is_train=False: batch norm uses its running statistics (0 and 1 at init)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    with torch.no_grad():
        model[1].weight.uniform_()
    own = prunable(model)
    w1, w2 = (t.detach().clone().requires_grad_() for t in own.values())
    bn = model[1]
    h = (nn.functional.linear(BATCH[0], w1, model[0].bias) - 0) / (1 + bn.eps) ** 0.5 * bn.weight + bn.bias
    loss = nn.functional.cross_entropy(nn.functional.linear(torch.relu(h), w2, model[3].bias), BATCH[1] % 3)
    g1, g2 = torch.autograd.grad(loss, [w1, w2])
    batch = (BATCH[0], BATCH[1] % 3)
    algo = algorithms.get("snip")(AlgorithmHparams(algorithm="snip", density=0.3), own, 3,
                              generator=torch.Generator().manual_seed(0), model=model, batch=batch)
    expected = global_topk({n: (g * w).abs().detach() for n, g, w in zip(own, (g1, g2), (w1, w2))},
                           round(0.3 * (48 + 24)), own)
    assert algo.mask().equal(expected)
    assert model.training and bn.num_batches_tracked == 0  # the run's model and statistics are untouched


def test_magnitude_init_keeps_the_largest_initial_weights_globally():
    model = tiny()
    assert algorithm("magnitude_init", model).mask().equal(expected_mask(model, flat_weights(model).abs(), 0.3))


def synflow_scores(model, mask):
    """|dR/dw * w| with R = 1' |W3| relu(|W2| relu(|W1| 1 + |b1|) + |b2|) + |b3|, written out by hand."""
    w = [(model[i].weight.detach().double().abs() * mask.layers[n]).requires_grad_() for n, i in zip(NAMES, (0, 2, 4))]
    b = [model[i].bias.detach().double().abs() for i in (0, 2, 4)]
    h = torch.relu(w[0] @ torch.ones(6, dtype=torch.float64) + b[0])
    h = torch.relu(w[1] @ h + b[1])
    (w[2] @ h + b[2]).sum().backward()
    return {n: (t.grad * t).abs() for n, t in zip(NAMES, w)}


def test_synflow_iterates_its_exponential_schedule_on_synaptic_flow():
    model, rounds, density = tiny(), 4, 0.2
    mask = Mask.ones_like(prunable(model))
    for r in range(1, rounds + 1):
        d = density ** (r / rounds)
        mask = global_topk(synflow_scores(model, mask), round(d * mask.size()), prunable(model))
    assert algorithm("synflow", model, density=density, synflow_rounds=rounds).mask().equal(mask)


def test_synflow_never_disconnects_a_layer():
    model = nn.Sequential(nn.Linear(100, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(), nn.Linear(100, 10))
    mask = algorithms.get("synflow")(SynflowHparams(algorithm="synflow", density=0.002, synflow_rounds=100),
                                 prunable(model), 1, model=model, batch=(torch.zeros(1, 100), None)).mask()
    assert all(int(m.sum()) > 0 for m in mask.layers.values())
    assert mask.kept() == round(0.002 * mask.size())


def test_global_ranking_keeps_one_weight_in_a_layer_it_would_empty():
    weights = {"a": torch.zeros(4, 5), "b": torch.zeros(3, 3)}
    scores = {"a": torch.arange(20.0).view(4, 5) + 100, "b": torch.arange(9.0).view(3, 3)}
    mask = global_topk(scores, 5, weights)
    assert int(mask.layers["b"].sum()) == 1 and mask.layers["b"][2, 2]
    assert int(mask.layers["a"].sum()) == 4 and mask.layers["a"].flatten()[16:].all()
    assert global_topk(scores, 5, weights, dense_layers=("b",)).layers["b"].all()


@pytest.mark.parametrize("distribution", ["uniform", "erk"])
def test_static_draws_a_random_mask_with_the_distribution_counts(distribution):
    model = tiny()
    mask = algorithm("static", model, distribution=distribution).mask()
    shapes = {n: w.shape for n, w in prunable(model).items()}
    assert {n: int(m.sum()) for n, m in mask.layers.items()} == layer_counts(shapes, 0.3, distribution)


@pytest.mark.parametrize("name", ["snip", "grasp", "synflow"])
def test_scoring_leaves_the_model_untouched_but_for_the_mask(name):
    model = tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    mask = algorithm(name, model).mask().layers
    assert all(p.grad is None for p in model.parameters())
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k] * mask[k] if k in mask else before[k]), k


def test_synflow_takes_one_round_or_more_and_names_the_key_below():
    from sparsenet.config import ConfigError, RunConfig

    settings = {"algorithm": "synflow", "density": 0.1}
    assert RunConfig.from_flat({**settings, "synflow_rounds": 1}).algorithm.synflow_rounds == 1
    with pytest.raises(ConfigError, match=r"^synflow_rounds: must be >= 1, got 0$"):
        RunConfig.from_flat({**settings, "synflow_rounds": 0})


@pytest.mark.parametrize("name", ["snip", "grasp", "synflow", "magnitude_init"])
def test_at_density_one_every_weight_is_kept_without_scoring(name):
    """No model and no batch needed: nothing is removed, so nothing is scored."""
    model = tiny()
    cls = algorithms.get(name)
    mask = cls(cls.hparams(algorithm=name, density=1.0), prunable(model), 3, generator=torch.Generator()).mask()
    assert mask.kept() == sum(w.numel() for w in prunable(model).values())


@pytest.mark.parametrize("model,batch", [(False, True), (True, False)])
def test_scoring_without_the_model_or_a_batch_is_refused_naming_the_algorithm(model, batch):
    net, cls = tiny(), algorithms.get("snip")
    with pytest.raises(ConfigError, match="^algorithm: snip scores weights at initialisation and needs the model and "
                                          "a training batch$"):
        cls(cls.hparams(algorithm="snip", density=0.3), prunable(net), 3, generator=torch.Generator(),
            model=net if model else None, batch=BATCH if batch else None)


@pytest.mark.parametrize("name", ["snip", "grasp", "synflow", "magnitude_init"])
def test_a_dense_layer_is_kept_whole_and_the_density_holds_over_the_sparse_ones(name):
    model = tiny()
    mask = algorithm(name, model, dense_layers=("2.weight",)).mask()
    sizes = {n: w.numel() for n, w in prunable(model).items()}
    assert mask.layers["2.weight"].all()
    assert mask.kept() - sizes["2.weight"] == round(0.3 * (sizes["0.weight"] + sizes["4.weight"]))
