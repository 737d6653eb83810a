"""Each algorithm and variant as its reference code has it (issue 9); README's Fidelity table cites the sources."""
import math

import pytest
import torch
from scipy import stats
from torch import nn

from sparsenet import algorithms, models, reinit
from sparsenet import train as train_mod
from sparsenet.algorithms.snfs import SNFS, prune_counts, redistribute
from sparsenet.checkpoint import load_weights
from sparsenet.cli import main as cli_main
from sparsenet.config import AlgorithmHparams, ConfigError, RunConfig, presets
from sparsenet.emergence import emergence
from sparsenet.masks import Mask
from sparsenet.prune import sweep
from sparsenet.record import RunFolder
from sparsenet.rounds import run_chain, run_round
from sparsenet.step import lr_at
from sparsenet.train import train

from .conftest import tiny
from .test_algorithms import Harness

BUILT_IN = ("lenet300_100", "conv2", "conv4", "conv6", "vgg16", "resnet20", "resnet18")


# --- 1. per-layer densities ---------------------------------------------------------------------------------
def test_default_distribution_is_uniform():
    assert AlgorithmHparams().distribution == "uniform"
    for algorithm in ("snfs", "dnw", "dnw_freeze"):
        cfg = tiny(algorithm=algorithm, density=0.05)
        weights = models.prunable(models.build("lenet300_100", (1, 28, 28), 10))
        algo = algorithms.of(cfg.algorithm)(cfg.algorithm, weights, 3, generator=torch.Generator().manual_seed(0))
        densities = [row["density"] for row in algo.mask().per_layer()]
        assert densities == pytest.approx([0.05] * 3, abs=1e-3)


# --- 2. imp's output layer ----------------------------------------------------------------------------------
def test_output_layer_names_are_the_last_prunable_weight():
    for name in BUILT_IN:
        shape = (3, 32, 32) if name in ("vgg16", "resnet20", "resnet18") else (1, 28, 28)
        assert list(models.prunable(models.build(name, shape, 10)))[-1] == models.OUTPUT_LAYER[name]


def test_imp_treats_the_output_layer_as_its_reference():
    lenet = tiny(algorithm="imp", density=0.05).algorithm
    assert lenet.dense_layers == ("fc3.weight",) and lenet.imp_layer_rates == ()  # open_lth ignores fc.weight
    vgg = RunConfig.from_flat({"algorithm": "imp", "density": 0.5, "dataset": "cifar10", "model": "vgg16"})
    assert vgg.algorithm.dense_layers == ("fc.weight",)
    resnet = RunConfig.from_flat({"algorithm": "imp", "density": 0.5, "dataset": "cifar10", "model": "resnet20"})
    assert resnet.algorithm.dense_layers == () and resnet.algorithm.imp_layer_rates == ()  # open_lth prunes
    # cifar_resnet's output layer globally
    conv = RunConfig.from_flat({"algorithm": "imp", "density": 0.5, "model": "conv2"})
    assert conv.algorithm.imp_layer_rates == (("fc3.weight", 0.5),)  # Frankle & Carbin: half the rate
    assert tiny(algorithm="imp", density=0.05, imp_output="global").algorithm.dense_layers == ()
    assert tiny(algorithm="snfs", density=0.05).algorithm.dense_layers == ()
    again = RunConfig.from_nested(tiny(algorithm="imp", density=0.05).to_dict())
    assert again.algorithm.dense_layers == ("fc3.weight",)  # resolving is idempotent (run.json round trip)
    assert again.algorithm.imp_layer_rates == ()


def test_imp_output_of_a_users_own_model_must_be_named():
    own = {"algorithm": "imp", "density": 0.5, "model": "tests.custom_model:two_layer"}
    assert RunConfig.from_flat(own).algorithm.dense_layers == ()  # no reference: pruned globally
    with pytest.raises(ConfigError, match=r"^imp_output: the output layer of model tests.custom_model:two_layer is "
                                          r"not known by name; use 'global' and name it in dense_layers or "
                                          r"imp_layer_rates$"):
        RunConfig.from_flat({**own, "imp_output": "dense"})


def test_imp_rewinds_to_an_epoch_before_the_last():
    assert tiny(algorithm="imp", density=0.5, epochs=3, rewind_epoch=2).algorithm.rewind_epoch == 2
    with pytest.raises(ConfigError, match=r"^rewind_epoch: must be < epochs=3, got 3$"):
        tiny(algorithm="imp", density=0.5, epochs=3, rewind_epoch=3)


# --- 3. late rewinding --------------------------------------------------------------------------------------
def test_late_rewound_round_trains_the_remaining_epochs_on_the_continued_schedule(tmp_path, data_root):
    cfg = tiny(algorithm="imp", epochs=3, rewind_epoch=1, warmup_epochs=1)
    r0 = run_round(cfg.replace(density=1.0), tmp_path / "r0", prev=None, next_density=0.5)
    r1 = run_round(cfg, tmp_path / "r1", prev=tmp_path / "r0", next_density=None)
    assert r0.epochs_run == 3 and r1.epochs_run == 2 and r1.first_epoch == 1
    import pandas as pd

    h0, h1 = pd.read_parquet(tmp_path / "r0" / "history.parquet"), pd.read_parquet(tmp_path / "r1" / "history.parquet")
    assert list(h1["epoch"]) == [2, 3]
    assert list(h1["lr"]) == pytest.approx(list(h0["lr"][1:]))  # lr(step) continues from step k
    steps = 20  # 2000 samples, batch 100
    assert h1["lr"].iloc[0] == pytest.approx(lr_at(cfg.train, 2 * steps - 1, steps))


# --- 4. initialisation --------------------------------------------------------------------------------------
def test_init_is_kaiming_normal_with_uniform_batch_norm_scales():
    torch.manual_seed(0)
    net = models.build("lenet300_100", (1, 28, 28), 10)
    w = models.prunable(net)["fc1.weight"]
    assert w.std().item() == pytest.approx(math.sqrt(2 / 784), rel=0.05)
    assert _fits(w, stats.norm(scale=math.sqrt(2 / 784))) and not _fits(w, _kaiming_uniform(784))
    torch.manual_seed(0)
    default = models.prunable(models.build("lenet300_100", (1, 28, 28), 10, init="pytorch"))["fc1.weight"]
    assert default.std().item() == pytest.approx(1 / math.sqrt(3 * 784), rel=0.05)
    bn = [m for m in models.build("resnet20", (3, 32, 32), 10).modules() if isinstance(m, nn.BatchNorm2d)]
    scales = torch.cat([m.weight.detach() for m in bn])
    assert 0 <= scales.min() and scales.max() < 1 and scales.std() > 0.2
    assert all((m.bias == 0).all() for m in bn)
    assert tiny().model.init == "kaiming_normal"



def test_variance_scaling_is_tensorflows_default_with_zero_biases():
    """snip-public's 'vs' init: tf.variance_scaling_initializer() = truncated normal, std 1/sqrt(fan_in)."""
    torch.manual_seed(0)
    net = models.build("lenet300_100", (1, 28, 28), 10, init="variance_scaling")
    for name, fan_in in (("fc1", 784), ("fc2", 300)):
        w, b = getattr(net, name).weight, getattr(net, name).bias
        assert w.std().item() == pytest.approx(1 / math.sqrt(fan_in), rel=0.03)
        assert w.abs().max().item() <= 2 / math.sqrt(fan_in) / 0.87962566103423978  # truncated at 2 std
        assert b.eq(0).all()

def _kaiming_uniform(fan_in):
    bound = math.sqrt(6 / fan_in)  # the same std as Kaiming normal's, sqrt(2 / fan_in): only the shape differs
    return stats.uniform(loc=-bound, scale=2 * bound)


def _fits(w, distribution) -> bool:
    """Whether the weights pass a Kolmogorov-Smirnov test against the distribution (seeded draws: no flakes)."""
    return stats.kstest(w.detach().flatten().numpy(), distribution.cdf).pvalue > 0.01


def test_runs_start_from_the_configured_init(tmp_path, data_root):
    train(tiny(epochs=1, init="kaiming_uniform"), tmp_path / "run")
    init = load_weights(tmp_path / "run" / "init.safetensors")
    assert init["fc1.weight"].std().item() == pytest.approx(math.sqrt(2 / 784), rel=0.05)
    assert _fits(init["fc1.weight"], _kaiming_uniform(784))
    assert not _fits(init["fc1.weight"], stats.norm(scale=math.sqrt(2 / 784)))
    again = reinit.initial_weights(RunFolder(tmp_path / "run").config(), 0)
    assert all(torch.equal(init[k], again[k]) for k in init)  # reinit rebuilds exactly what the trainer built


# --- 5. sparse momentum -------------------------------------------------------------------------------------
def test_snfs_pruned_and_regrown_weight_keeps_its_value():
    h = Harness("snfs", density=0.3, epochs=5)
    for _ in range(3):
        h.step()
    name = "2.weight"
    kept = h.algo.mask().layers[name].flatten().nonzero().flatten()
    pos = kept[0].item()
    with torch.no_grad():
        h.weights[name].view(-1)[pos] = 1e-6  # the smallest kept weight: pruned...
        h.opt.state[h.weights[name]]["momentum_buffer"].view(-1)[pos] = 1e3  # ...and the first to regrow
    h.algo.end_of_epoch(1, h.opt)
    assert h.algo.mask().layers[name].view(-1)[pos]
    assert h.weights[name].view(-1)[pos].item() == pytest.approx(1e-6)


def test_snfs_regrowth_is_capped_at_099_of_free_slots_and_spread_equally():
    assert redistribute(100, {"a": 0.9, "b": 0.1}, {"a": 10, "b": 1000}) == {"a": 9, "b": 91}
    assert redistribute(60, {"a": 0.8, "b": 0.1, "c": 0.1}, {"a": 20, "b": 500, "c": 500}) == \
        {"a": 19, "b": 21, "c": 20}  # a takes 19.8; its excess 28.2 goes a third to each layer, then a is capped
    # two layers over their cap in one pass: both excesses (35.1 each) are spread; c ends at 80.2 and takes the
    # rounding's first unit, the capped layers' remainders (0.9 each) go to a's last free slot
    assert redistribute(100, {"a": 0.45, "b": 0.45, "c": 0.1}, {"a": 10, "b": 10, "c": 1000}) == \
        {"a": 10, "b": 9, "c": 81}
    # rounding: the unit left over goes to the largest remainder (b's 4.8), not to the largest share
    assert redistribute(10, {"a": 0.52, "b": 0.48}, {"a": 100, "b": 100}) == {"a": 5, "b": 5}


def test_snfs_dense_and_growing_layer_prunes_at_most_its_sparsity():
    kept, size = {"a": 900, "b": 100}, {"a": 1000, "b": 1000}
    assert prune_counts(0.5, kept, size, {"a": 0.9, "b": 0.1}) == {"a": 90, "b": 50}  # a: at most 10%
    assert prune_counts(0.5, kept, size, {"a": 0.4, "b": 0.6}) == {"a": 450, "b": 50}  # a: not growing
    assert prune_counts(0.3, {"a": 7}, {"a": 100}, {"a": 1.0}) == {"a": 3}  # ceil, as magnitude_prune
    # sparsity exactly 0.2 is not below adjust_prune_rate's 0.2: the full rate
    assert prune_counts(0.5, {"a": 800, "b": 100}, size, {"a": 0.9, "b": 0.1}) == {"a": 400, "b": 50}


# --- 6. signed constant with late rewinding -----------------------------------------------------------------
def test_signed_constant_takes_sigma_and_signs_from_round_0s_initial_weights(tmp_path, data_root):
    cfg = tiny(algorithm="imp", epochs=2, rewind_epoch=1, density=0.5, imp_rate=0.5)
    run_chain(cfg, tmp_path / "chain")
    run = tmp_path / "chain"
    source = RunFolder(run).config()
    own = load_weights(run / "init.safetensors")  # the rewind weights (epoch 1)
    init0 = load_weights(run / "rounds" / "r00" / "init.safetensors")
    weights, _ = reinit.reset(source, own, Mask.load(run / "mask.safetensors"), "signed_constant")
    for n in ("fc1.weight", "fc2.weight", "fc3.weight"):
        assert torch.equal(weights[n], torch.sign(init0[n]) * init0[n].std())
    assert torch.equal(weights["fc1.bias"], own["fc1.bias"])


# --- 7. one definition of density ---------------------------------------------------------------------------
def test_reported_density_excludes_dense_layers_everywhere(tmp_path, data_root):
    cfg = tiny(algorithm="snfs", density=0.1, epochs=2, dense_layers=("fc3.weight",))
    record = train(cfg, tmp_path / "run")
    assert record.density == pytest.approx(0.1, abs=1e-5)
    import pandas as pd

    assert pd.read_parquet(tmp_path / "run" / "history.parquet")["density"].tolist() == pytest.approx([0.1, 0.1],
                                                                                                     abs=1e-5)
    sw = sweep(tmp_path / "run", [0.0, 0.5], methods=["magnitude_global", "random"], draws=1)
    assert sw["density"].tolist() == pytest.approx([0.1, 0.05, 0.1, 0.05], abs=1e-4)
    em = emergence(tmp_path / "run")
    assert em.loc[em["layer"] == "all", "density"].tolist() == pytest.approx([0.1] * 5, abs=1e-5)


# --- 8. snfs evaluates before its epoch-end update ----------------------------------------------------------
def test_evaluation_comes_before_the_epoch_end_update(tmp_path, data_root, monkeypatch):
    calls = []
    evaluate, update = train_mod.evaluate, SNFS.end_of_epoch
    monkeypatch.setattr(train_mod, "evaluate", lambda *a: calls.append("evaluate") or evaluate(*a))
    monkeypatch.setattr(SNFS, "end_of_epoch", lambda self, *a: calls.append("update") or update(self, *a))
    train(tiny(algorithm="snfs", density=0.1, epochs=2), tmp_path / "run")
    assert calls == ["evaluate", "update", "evaluate", "update"]  # the last update is a no-op


# --- 9. VGG-16 as open_lth's cifar_vgg_16 -------------------------------------------------------------------
def test_vgg16_is_open_lths_cifar_vgg_16():
    net = models.build("vgg16", (3, 32, 32), 10)
    plan = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [v for v in plan if v != "M"] and all(c.bias is not None for c in convs)
    assert sum(isinstance(m, nn.MaxPool2d) for m in net.modules()) == 4
    widths, c, expected = [v for v in plan if v != "M"], 3, 0
    for v in widths:
        expected += c * v * 9 + v + 2 * v  # conv weight and bias, batch-norm scale and shift
        c = v
    expected += 512 * 10 + 10
    assert sum(p.numel() for p in net.parameters()) == expected
    assert list(models.prunable(net))[-1] == "fc.weight"


# --- 10. imp's rewind variant is the trained run ------------------------------------------------------------
def test_imp_rewind_variant_records_the_trained_run_which_a_retraining_reproduces(tmp_path, data_root, monkeypatch):
    cfg = tiny(algorithm="imp", epochs=2, rewind_epoch=1, density=0.5, imp_rate=0.5)
    run = tmp_path / "chain"
    run_chain(cfg, run)
    with monkeypatch.context() as m:
        m.setattr(reinit, "train", lambda *a, **k: pytest.fail("imp's rewind variant must not train"))
        record = reinit.retrain(run, "rewind", tmp_path / "rewind")
    assert record.copy_of_source and record.variant == "rewind"
    source = load_weights(run / "final.safetensors")
    copy = load_weights(tmp_path / "rewind" / "final.safetensors")
    assert all(torch.equal(source[k], copy[k]) for k in source)
    # what a retraining would have done, done: it ends exactly where the trained run ended
    fixed = RunFolder(run).config().replace(algorithm="fixed")
    train(fixed, tmp_path / "real", init_weights=load_weights(run / "init.safetensors"),
          mask=Mask.load(run / "mask.safetensors"), first_epoch=1)
    real = load_weights(tmp_path / "real" / "final.safetensors")
    assert all(torch.equal(source[k], real[k]) for k in source)


@pytest.mark.parametrize("algorithm", ["static", "snip"])
def test_a_mask_fixed_from_the_start_is_its_own_rewind(tmp_path, data_root, monkeypatch, algorithm):
    """static and pruning at initialisation train their final mask from their initial weights: rewind is the run."""
    cfg = tiny(algorithm=algorithm, epochs=2, density=0.1)
    train(cfg, tmp_path / "run")
    with monkeypatch.context() as m:
        m.setattr(reinit, "train", lambda *a, **k: pytest.fail(f"{algorithm}'s rewind variant must not train"))
        assert reinit.retrain(tmp_path / "run", "rewind", tmp_path / "rewind").copy_of_source
    run = tmp_path / "run"
    train(cfg.replace(algorithm="fixed"), tmp_path / "real", init_weights=load_weights(run / "init.safetensors"),
          mask=Mask.load(run / "mask.safetensors"))
    source, real = (load_weights(tmp_path / r / "final.safetensors") for r in ("run", "real"))
    assert all(torch.equal(source[k], real[k]) for k in source)
    assert not reinit.replays_its_run("rigl") and not reinit.replays_its_run("gmp")


# --- named recipes ------------------------------------------------------------------------------------------
def test_every_preset_names_its_source_and_builds_a_valid_run():
    names = presets()
    assert {"open_lth_mnist_lenet_300_100", "open_lth_cifar_vgg_16", "open_lth_cifar_resnet_20",
            "sparse_learning_mnist", "sparse_learning_cifar10"} <= set(names)
    from sparsenet.config import PRESET_DIR

    for name in names:
        head = (PRESET_DIR / f"{name}.yaml").read_text().splitlines()[0]
        assert head.startswith("# ") and ("open_lth" in head or "sparse_learning" in head)
        RunConfig.from_flat({"preset": name, "algorithm": "snfs", "density": 0.05})


def test_preset_values_and_overrides(tmp_path):
    cfg = RunConfig.from_flat({"preset": "open_lth_mnist_lenet_300_100", "epochs": 3})
    assert (cfg.train.epochs, cfg.train.momentum, cfg.train.schedule, cfg.data.batch_size) == (3, 0.0, "constant", 128)
    snfs = RunConfig.from_flat({"preset": "sparse_learning_mnist", "algorithm": "snfs", "density": 0.05})
    assert (snfs.train.epochs, snfs.data.batch_size, snfs.model.init, snfs.train.nesterov) == \
        (100, 100, "pytorch", True)
    with pytest.raises(ConfigError, match="^preset: must be one of"):
        RunConfig.from_flat({"preset": "no_such_recipe"})
    out = tmp_path / "run"
    code = cli_main(["train", "--preset", "open_lth_mnist_lenet_300_100", "--epochs", "1", "--train-subset", "500",
                     "--out", str(out), "--device", "cpu"])
    cfg = RunFolder(out).config()
    assert code == 0 and cfg.train.momentum == 0.0 and cfg.data.train_subset == 500


# --- beyond the paper: the layers and scoring of rigl's, GraSP's and SNIP's code (issue 25) ------------------
RIGL_FAMILY = ("rigl", "set", "gmp", "static", "rigl_freeze", "set_freeze")
FIRST_CONV = {"conv2": "conv1.weight", "conv4": "conv1.weight", "conv6": "conv1.weight",
              "vgg16": "layers.0.conv.weight", "resnet20": "conv.weight", "resnet18": "conv.weight"}


def initial_counts(cfg):
    spec = (3, 32, 32) if cfg.data.dataset == "cifar10" else (1, 28, 28)
    weights = models.prunable(models.build(cfg.model.model, spec, 10))
    algo = algorithms.of(cfg.algorithm)(cfg.algorithm, weights, 3, generator=torch.Generator().manual_seed(0))
    return weights, algo.counts(), algo.mask()


@pytest.mark.parametrize("algorithm", RIGL_FAMILY)
def test_rigl_family_on_lenet_keeps_the_output_dense_and_fc2_at_nine_tenths_of_fc1s_sparsity(algorithm):
    """rigl/mnist/mnist_train_eval.py: custom_sparsities layer2 0.9 s, layer3 0; the total over fc1 and fc2 exact."""
    cfg = tiny(algorithm=algorithm, density=0.05, freeze_epoch=1)
    assert cfg.algorithm.dense_layers == ("fc3.weight",)
    assert cfg.algorithm.sparsity_scales == (("fc2.weight", 0.9),)
    weights, counts, mask = initial_counts(cfg)
    assert counts["fc3.weight"] == 1000
    assert counts["fc1.weight"] + counts["fc2.weight"] == round(0.05 * (235200 + 30000))
    s1, s2 = 1 - counts["fc1.weight"] / 235200, 1 - counts["fc2.weight"] / 30000
    assert s2 == pytest.approx(0.9 * s1, abs=1 / 30000)
    if algorithm != "gmp":  # gmp starts dense
        assert {n: int(m.sum()) for n, m in mask.layers.items()} == counts
    assert RunConfig.from_nested(cfg.to_dict()) == cfg  # resolving is idempotent (run.json round trip)


@pytest.mark.parametrize("model", list(FIRST_CONV))
def test_rigl_family_on_conv_nets_keeps_the_first_conv_dense_and_prunes_the_output(model):
    cifar = model in ("vgg16", "resnet20", "resnet18")
    cfg = RunConfig.from_flat({"algorithm": "static", "density": 0.1, "model": model,
                               "dataset": "cifar10" if cifar else "mnist"})
    assert cfg.algorithm.dense_layers == (FIRST_CONV[model],) and cfg.algorithm.sparsity_scales == ()
    weights, counts, _ = initial_counts(cfg)
    assert counts[FIRST_CONV[model]] == weights[FIRST_CONV[model]].numel()
    out = models.OUTPUT_LAYER[model]
    assert counts[out] < weights[out].numel()
    sparse = [n for n in weights if n != FIRST_CONV[model]]
    assert sum(counts[n] for n in sparse) == round(0.1 * sum(weights[n].numel() for n in sparse))


@pytest.mark.parametrize("algorithm", ["snfs", "dnw", "snip", "grasp", "synflow", "imp"])
def test_other_algorithms_keep_their_own_references_layers(algorithm):
    expected = ("fc3.weight",) if algorithm == "imp" else ()  # imp: open_lth's output layer
    cfg = tiny(algorithm=algorithm, density=0.05)
    assert cfg.algorithm.dense_layers == expected and cfg.algorithm.sparsity_scales == ()


def test_rigl_layers_all_and_erk_and_a_users_model():
    assert tiny(algorithm="rigl", density=0.05, rigl_layers="all").algorithm.dense_layers == ()
    erk = tiny(algorithm="rigl", density=0.05, distribution="erk").algorithm
    assert erk.dense_layers == ("fc3.weight",) and erk.sparsity_scales == ()  # ERK sets every ratio itself
    own = RunConfig.from_flat({"algorithm": "set", "density": 0.5, "model": "tests.custom_model:two_layer"})
    assert own.algorithm.dense_layers == ()  # no reference for a user's model: every layer sparse
    with pytest.raises(ConfigError, match="^rigl_layers: must be one of reference, all"):
        tiny(algorithm="rigl", density=0.05, rigl_layers="first")
    with pytest.raises(ConfigError, match="^sparsity_scales: the scale of 'fc1.weight' must be > 0"):
        tiny(algorithm="snfs", density=0.05, sparsity_scales=(("fc1.weight", 0.0),))


def test_gmp_on_cifar10_presets_follows_rigls_cifar_schedule():
    """rigl/cifar_resnet/resnet_train_eval.py: sparsity_begin_step 20000, end 75000 of 97656, every 1000 steps."""
    for preset in ("open_lth_cifar_vgg_16", "open_lth_cifar_resnet_20", "sparse_learning_cifar10"):
        hp = RunConfig.from_flat({"preset": preset, "algorithm": "gmp", "density": 0.1}).algorithm
        assert (hp.gmp_start, hp.gmp_end, hp.gmp_interval) == (pytest.approx(20000 / 97656, abs=1e-4),
                                                               pytest.approx(75000 / 97656, abs=1e-4), 1000)
    mnist = RunConfig.from_flat({"preset": "sparse_learning_mnist", "algorithm": "gmp", "density": 0.1}).algorithm
    assert (mnist.gmp_start, mnist.gmp_end, mnist.gmp_interval) == (0.0167, 0.25, 500)  # the MNIST script's
