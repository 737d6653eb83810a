"""The invariants that define each algorithm, on a small MLP with random data."""
import pytest
import torch
from torch import nn

from sparsenet import algorithms
from sparsenet.algorithms.imp import Hparams as ImpHparams
from sparsenet.algorithms.imp import prune, schedule
from sparsenet.config import AlgorithmHparams, ConfigError, RunConfig
from sparsenet.masks import Mask, topk_mask
from sparsenet.models import prunable
from sparsenet.step import Trainer

from .conftest import own_settings


class Harness(Trainer):
    """A small MLP, random data and torch's SGD, driven by the trainer's step."""

    def __init__(self, algorithm, density=0.1, epochs=5, mask=None, steps_per_epoch=5, freeze_epoch=1, **hp):
        """`algorithm` is a label: <name>_freeze freezes <name>'s mask after `freeze_epoch` epochs."""
        torch.manual_seed(0)
        self.model = nn.Sequential(nn.Linear(20, 40), nn.ReLU(), nn.Linear(40, 30), nn.ReLU(), nn.Linear(30, 5))
        self.weights = prunable(self.model)
        settings = algorithms.from_label(algorithm, freeze_epoch)
        self.hp = algorithms.get(settings["algorithm"]).hparams(**settings, density=density,
                                                                 **own_settings(algorithm, hp))
        self.batch = (torch.randn(64, 20, generator=torch.Generator().manual_seed(2)),
                      torch.randint(0, 5, (64,), generator=torch.Generator().manual_seed(3)))
        self.algo = algorithms.of(self.hp)(self.hp, self.weights, epochs, mask=mask,
                                          generator=torch.Generator().manual_seed(0), steps_per_epoch=steps_per_epoch,
                                          model=self.model, batch=self.batch)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
        self.algo.optimizer = self.opt
        self.data = torch.Generator().manual_seed(1)
        self.epoch = 0

    def step(self, inspect=None):
        """One step of the trainer's (sparsenet.step.Trainer); `inspect()` runs right after the algorithm's
        after_backward hook."""
        x, y = self.draw()
        if inspect:
            hook = self.algo.after_backward
            self.algo.after_backward = lambda: (hook(), inspect())
        try:
            self.train_step(self.epoch, 0, (x, y))
        finally:
            vars(self.algo).pop("after_backward", None)

    def draw(self):
        """The next random batch of 32 from the harness's data generator."""
        return torch.randn(32, 20, generator=self.data), torch.randint(0, 5, (32,), generator=self.data)

    def before_step(self, epoch, i):
        self.opt.zero_grad()

    def forward_weights(self):
        return self.algo.forward_weights()

    def forward_backward(self, batch):
        x, y = batch
        output = self.model(x)
        loss = nn.functional.cross_entropy(output, y)
        loss.backward()
        return output, loss, y

    def stepped(self):
        return ((self.algo, self.opt),)

    def count_work(self, samples):
        pass  # the trainer's cost model: not the algorithm's

    def record(self, epoch, i, loss, output, y):
        pass

    def run_epoch(self, steps=5):
        for _ in range(steps):
            self.step()
        self.epoch += 1
        self.algo.end_of_epoch(self.epoch, self.opt)

    def counts(self):
        return {n: int(m.sum()) for n, m in self.algo.mask().layers.items()}


TOTAL = 20 * 40 + 40 * 30 + 30 * 5


@pytest.mark.parametrize("algorithm", ["snfs", "dnw", "dnw_freeze", "set", "rigl", "rigl_freeze", "set_freeze",
                                       "snfs_freeze", "static", "snip", "grasp", "synflow", "magnitude_init"])
def test_density_is_exact_after_every_update(algorithm):
    h = Harness(algorithm, density=0.1, freeze_epoch=2, update_interval=2)
    for _ in range(4):
        for _ in range(3):
            h.step()
            assert h.algo.mask().kept() == round(0.1 * TOTAL)
        h.epoch += 1
        h.algo.end_of_epoch(h.epoch, h.opt)
        assert h.algo.mask().kept() == round(0.1 * TOTAL)


@pytest.mark.parametrize("algorithm", ["snfs", "imp", "dnw_freeze", "set", "rigl", "gmp", "static", "snip", "grasp",
                                       "synflow", "magnitude_init", "rigl_freeze", "snfs_freeze"])
def test_absent_weights_stay_exactly_zero(algorithm):
    mask = None
    if algorithm == "imp":
        w = prunable(Harness("dense", density=1.0).model)
        mask = Mask.random(w, {n: t.numel() // 4 for n, t in w.items()}, torch.Generator().manual_seed(5))
    h = Harness(algorithm, density=0.1, freeze_epoch=1, mask=mask, update_interval=2, gmp_interval=2)
    for _ in range(3):
        h.run_epoch()
        for n, m in h.algo.mask().layers.items():
            assert (h.weights[n][~m] == 0).all()


def test_snfs_keeps_the_count_but_moves_weights_between_layers():
    h = Harness("snfs", density=0.1, distribution="uniform")
    before_mask, before = h.algo.mask().clone(), h.counts()
    h.run_epoch()
    after = h.counts()
    assert sum(after.values()) == sum(before.values())
    assert after != before  # redistribution by momentum moved weights across layers
    assert not h.algo.mask().equal(before_mask)


def test_snfs_regrows_where_absent_momentum_is_largest():
    h = Harness("snfs", density=0.1)
    for _ in range(5):
        h.step()
    old = h.algo.mask().clone()
    momentum = {n: h.opt.state[w]["momentum_buffer"].abs().clone() for n, w in h.weights.items()}
    h.algo.end_of_epoch(1, h.opt)
    grew = 0
    for n, m in h.algo.mask().layers.items():
        grown = m & ~old.layers[n]
        if grown.any():
            grew += int(grown.sum())
            never = ~m & ~old.layers[n]
            assert momentum[n][grown].min() >= momentum[n][never].max()
            assert (h.weights[n][grown] == 0).all()  # regrown weights start at zero
    assert grew > 0


def test_snfs_ends_an_epoch_without_momentum_at_its_density():
    """momentum 0 is a valid setting: torch's SGD then keeps no momentum buffer, which snfs reads as zero."""
    h = Harness("snfs", density=0.1)
    h.opt = h.algo.optimizer = torch.optim.SGD(h.model.parameters(), lr=0.1)
    kept = h.algo.mask().kept()
    h.run_epoch()
    assert h.algo.mask().kept() == kept and all(torch.isfinite(w).all() for w in h.weights.values())


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before")  # the reference's own use
def test_snfs_prune_rate_follows_the_reference_cosine_decay():
    # sparse_learning's CosineDecay(0.5, steps * epochs, eta_min=0.005), read at each epoch end
    steps, epochs = 7, 3
    sgd = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.5)
    decay = torch.optim.lr_scheduler.CosineAnnealingLR(sgd, steps * epochs, eta_min=0.005)
    reference = []
    for _ in range(epochs - 1):
        for _ in range(steps):
            decay.step()
        reference.append(sgd.param_groups[0]["lr"])
    h = Harness("snfs", density=0.1, epochs=epochs)
    assert [h.algo.prune_rate_at(e) for e in (1, 2)] == pytest.approx(reference)
    assert reference == pytest.approx([0.37625, 0.12875])


def test_snfs_makes_no_update_after_the_last_epoch():
    h = Harness("snfs", density=0.1, epochs=2)
    h.run_epoch()
    h.step()
    before = h.algo.mask().clone()
    h.algo.end_of_epoch(2, h.opt)
    assert h.algo.mask().equal(before)


def test_dnw_gradients_reach_pruned_weights_and_they_can_reenter():
    h = Harness("dnw", density=0.1)
    mask0 = h.algo.mask()

    def check():
        for n, m in mask0.layers.items():
            assert h.weights[n].grad[~m].abs().sum() > 0
            assert (h.weights[n][~m] != 0).any()  # dense weights are restored before the step
    h.step(inspect=check)
    for _ in range(20):
        h.step()
    assert not h.algo.mask().equal(mask0)


def test_dnw_forward_uses_only_the_top_k():
    h = Harness("dnw", density=0.1)
    x = torch.randn(4, 20)
    with h.algo.forward_weights():
        masked_out = h.model(x)
    manual = {n: w.detach() * h.algo.mask().layers[n] for n, w in h.weights.items()}
    ref = nn.functional.linear(x, manual["0.weight"], h.model[0].bias).relu()
    ref = nn.functional.linear(ref, manual["2.weight"], h.model[2].bias).relu()
    ref = nn.functional.linear(ref, manual["4.weight"], h.model[4].bias)
    assert torch.allclose(masked_out, ref, atol=1e-6)


def _near_calls(monkeypatch) -> list:
    """What each call of dnw's masks.topk_mask_near returned (None: it declined, and topk_mask ranked all)."""
    from sparsenet.algorithms import dnw

    found, near = [], dnw.topk_mask_near
    monkeypatch.setattr(dnw, "topk_mask_near", lambda *a: found.append(near(*a)) or found[-1])
    return found


@pytest.mark.parametrize("density", [0.1, 0.001])  # 0.001: layers keep 1, 1 and 0 weights
def test_dnw_ranks_near_the_last_k_th_magnitude_and_keeps_the_top_k(monkeypatch, density):
    found = _near_calls(monkeypatch)
    h = Harness("dnw", density=density)
    counts = h.algo.kept_counts()
    if density == 0.001:
        assert sorted(counts.values()) == [0, 1, 1]
    for _ in range(30):
        expected = {n: topk_mask(w.detach().abs(), counts[n]) for n, w in h.weights.items()}
        assert all(torch.equal(m, expected[n]) for n, m in h.algo.forward_mask().layers.items())
        h.step()
    rankings = 2 * 30 * sum(0 < k for k in counts.values())  # the test's forward masks and the steps'
    assert sum(f is not None for f in found) > 0.8 * rankings  # most rank only the weights near the last k-th


def test_dnw_widens_its_band_until_it_holds_the_moving_k_th_magnitude(monkeypatch):
    found = _near_calls(monkeypatch)
    h = Harness("dnw", density=0.1)
    score = h.weights["0.weight"].detach().abs()
    for i in range(20):  # the k-th magnitude moves 3% a call, three times the first band
        assert torch.equal(h.algo._top("0.weight", score * 1.03**i), topk_mask(score, h.algo.kept_counts()["0.weight"]))
    assert sum(f is not None for f in found) >= 15  # a few calls rank every weight, then the band holds it


def test_dnw_narrows_its_band_again_once_the_k_th_magnitude_settles(monkeypatch):
    from sparsenet.algorithms.dnw import BAND

    h = Harness("dnw", density=0.1)
    score, k = h.weights["0.weight"].detach().abs(), h.algo.kept_counts()["0.weight"]
    for i in range(10):  # moving 3% a call: the band widens to hold it
        h.algo._top("0.weight", score * 1.03**i)
    widened = h.algo._near["0.weight"][1]
    for _ in range(10):  # then still: it narrows back to the first band
        assert torch.equal(h.algo._top("0.weight", score * 1.03**9), topk_mask(score, k))
    assert widened >= 4 * BAND and h.algo._near["0.weight"][1] == BAND


def test_dnw_freeze_gives_no_gradient_to_absent_weights_after_the_freeze():
    h = Harness("dnw_freeze", density=0.1, freeze_epoch=1)
    assert h.algo.dense_gradients
    h.run_epoch()
    assert not h.algo.dense_gradients
    frozen = h.algo.mask().clone()

    def check():
        for n, m in frozen.layers.items():
            assert (h.weights[n].grad[~m] == 0).all()
    for _ in range(5):
        h.step(inspect=check)
    h.run_epoch()
    assert h.algo.mask().equal(frozen)


def test_dense_layers_option_keeps_named_layers_whole():
    for algorithm in ("snfs", "dnw"):
        h = Harness(algorithm, density=0.1, dense_layers=("4.weight",))
        h.run_epoch()
        assert h.algo.mask().layers["4.weight"].all()
        assert "4.weight" not in (h.algo.forward_mask() or Mask({})).layers  # dnw ranks only what it prunes
        assert h.algo.mask().kept(exclude=["4.weight"]) == round(0.1 * (20 * 40 + 40 * 30))


def test_imp_prunes_exactly_the_requested_fraction_of_the_remaining():
    h = Harness("dense", density=1.0)
    mask = Mask.ones_like(h.weights)
    for scope in ("global", "layerwise"):
        hp = ImpHparams(algorithm="imp", density=0.5, imp_scope=scope)
        m1 = prune(h.weights, mask, 0.8, hp)
        assert m1.kept() == round(0.8 * TOTAL)
        m2 = prune(h.weights, m1, 0.64, hp)
        assert m2.kept() == round(0.64 * TOTAL)
        assert all((m2.layers[n] <= m1.layers[n]).all() for n in m1.layers)  # only removes
        if scope == "layerwise":
            assert all(abs(int(m1.layers[n].sum()) - 0.8 * w.numel()) <= 1 for n, w in h.weights.items())
    # global pruning removes the smallest magnitudes across all layers
    m = prune(h.weights, mask, 0.5, ImpHparams(algorithm="imp", density=0.5))
    kept_mag = torch.cat([h.weights[n].detach().abs()[m.layers[n]] for n in m.layers])
    gone_mag = torch.cat([h.weights[n].detach().abs()[~m.layers[n]] for n in m.layers])
    assert kept_mag.min() >= gone_mag.max()


def test_imp_cannot_prune_to_a_density_above_the_masks():
    h = Harness("dense", density=1.0)
    hp = ImpHparams(algorithm="imp", density=0.5)
    half = prune(h.weights, Mask.ones_like(h.weights), 0.5, hp)
    with pytest.raises(ValueError, match=f"^density 0.6 is above the current mask's {half.kept()} kept weights$"):
        prune(h.weights, half, 0.6, hp)


def test_imp_layer_rates_prune_a_layer_at_a_multiple_of_the_rate():
    h = Harness("dense", density=1.0)
    hp = ImpHparams(algorithm="imp", density=0.5, imp_layer_rates=(("4.weight", 0.5),))
    m = prune(h.weights, Mask.ones_like(h.weights), 0.8, hp)
    assert int(m.layers["4.weight"].sum()) == 150 - round(0.2 * 0.5 * 150)
    assert m.kept() == round(0.8 * TOTAL)


def test_imp_schedule_lands_on_every_target():
    s = schedule([0.05, 0.2], 0.2)
    assert s[0] == 1.0 and 0.2 in s and s[-1] == 0.05
    assert all(0.8 * a - 1e-12 <= b < a for a, b in zip(s, s[1:]))


def test_every_algorithm_is_the_module_of_its_name_and_registers_itself():
    from sparsenet.algorithms._base import Algorithm

    assert {"dense", "fixed", "imp", "snfs", "dnw"} <= set(algorithms.NAMES)
    for name in algorithms.NAMES:
        cls = algorithms.get(name)
        assert issubclass(cls, Algorithm) and cls.name == name and cls.__module__ == f"sparsenet.algorithms.{name}"
    frozen = algorithms.freezable()
    assert frozen and all(algorithms.get(n).mask_changes for n in frozen)  # a fixed mask has nothing to freeze
    for name in frozen:
        cls = algorithms.of(AlgorithmHparams(algorithm=name, freeze_epoch=1))
        assert issubclass(cls, algorithms.get(name)) and algorithms.get(name) is algorithms.of(
            AlgorithmHparams(algorithm=name))
    assert algorithms.labels() == [*algorithms.NAMES, *(n + algorithms.FREEZE for n in frozen)]


def test_an_unknown_or_unfreezable_algorithm_is_refused_naming_the_key():
    for name, words in (("magic", "unknown algorithm 'magic'"), ("dnw_freeze", "unknown algorithm 'dnw_freeze'"),
                        ("tests.custom_model:two_layer", "not a subclass"), ("nowhere:Thing", "cannot be imported")):
        with pytest.raises(ConfigError, match=f"^algorithm: .*{words}"):
            algorithms.get(name)
    with pytest.raises(ConfigError) as unknown:
        algorithms.get("magic")
    assert f"; known: {', '.join(algorithms.NAMES)} (`sparsenet algorithms`);" in str(unknown.value)  # each name
    with pytest.raises(ConfigError) as unfreezable:
        RunConfig.from_flat({"algorithm": "imp", "density": 0.5, "freeze_epoch": 1})
    assert str(unfreezable.value) == ("freeze_epoch: imp cannot freeze its mask; those that can: "
                                      f"{', '.join(algorithms.freezable())}")


def test_labels_name_frozen_runs_and_modules_name_the_code_a_run_imports():
    assert algorithms.label("dnw", 2) == "dnw_freeze" and algorithms.label("dnw", 0) == "dnw"
    assert algorithms.split("dnw_freeze") == ("dnw", True) and algorithms.split("dnw") == ("dnw", False)
    assert algorithms.from_label("set_freeze", 3) == {"algorithm": "set", "freeze_epoch": 3}
    assert algorithms.from_label("dnw_freeze") == {"algorithm": "dnw", "freeze_epoch": 1}  # frozen after epoch 1
    assert algorithms.from_label("set", 3) == {"algorithm": "set", "freeze_epoch": 0}
    assert algorithms.modules("imp") == ["sparsenet.algorithms.imp"]
    assert algorithms.modules("dnw", frozen=True) == ["sparsenet.algorithms.dnw", "sparsenet.algorithms._freeze"]
    assert algorithms.modules("tests.custom_algorithm:Redraw") == []  # the user's file: provenance.own_files


def test_register_names_a_class_after_its_module(monkeypatch):
    """The registry's name is the last part of the module's path (registration runs at import, before a test
    could watch it: here it is called directly)."""
    from sparsenet.algorithms._base import Algorithm

    monkeypatch.setattr(algorithms, "_REGISTERED", {})
    cls = type("Mine", (Algorithm,), {"__module__": "lab.sparse.mine"})
    assert algorithms.register(cls) is cls and cls.name == "mine"
    assert algorithms._REGISTERED == {"lab.sparse.mine": cls}


def test_readme_shows_the_registry_as_sparsenet_algorithms_prints_it(capsys):
    from sparsenet.cli import main
    from tests.conftest import REPO

    assert main(["algorithms"]) in (0, None)
    printed = capsys.readouterr().out
    assert printed == algorithms.markdown() and printed in (REPO / "README.md").read_text()
    assert all(f"| `{name}` |" in printed for name in algorithms.NAMES)


def test_masking_skips_the_layers_the_optimizer_routes_and_those_that_keep_every_weight():
    """A routed weight (CSR) gets no gradient or momentum at absent entries, and a full layer has none: masking
    them again would be work for nothing."""
    from sparsenet.optim import SGD
    from sparsenet.sparse import Structure

    h = Harness("static", density=0.2, dense_layers=("4.weight",))
    h.algo.optimizer = opt = SGD(list(h.model.parameters()), lr=0.1, momentum=0.9)
    assert set(h.algo._to_mask()) == {"0.weight", "2.weight"}
    opt.route(h.weights["0.weight"], Structure(h.algo.mask().layers["0.weight"]))
    assert set(h.algo._to_mask()) == {"2.weight"}


@pytest.mark.parametrize("algorithm", ["static", "dnw_freeze"])
def test_a_settled_fixed_mask_leaves_the_weights_alone_after_a_step(algorithm):
    """Nothing revives an absent weight under a fixed mask with masked gradients, so no pass over the weights
    masks them again (gmp, whose last pruning leaves momentum at pruned weights, keeps masking: see above)."""
    h = Harness(algorithm, density=0.1, freeze_epoch=1)
    h.run_epoch()  # dnw_freeze: frozen from here
    versions = {n: w._version for n, w in h.weights.items()}
    h.algo.after_step()
    assert {n: w._version for n, w in h.weights.items()} == versions
    gmp = Harness("gmp", density=0.1, gmp_interval=2)
    for _ in range(5):
        gmp.run_epoch()
    assert gmp.algo.mask_fixed and not gmp.algo.settled_when_fixed
    versions = {n: w._version for n, w in gmp.weights.items()}
    gmp.algo.after_step()
    assert {n: w._version for n, w in gmp.weights.items()} != versions
