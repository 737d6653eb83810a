import pytest

from sparsenet.config import ConfigError, RunConfig, load_file


@pytest.mark.parametrize("settings,key", [
    ({"nope": 1}, "nope"),
    ({"density": 0}, "density"),
    ({"density": 1.5}, "density"),
    ({"density": -0.1}, "density"),
    ({"algorithm": "magic"}, "algorithm"),
    ({"model": "resnet9000"}, "model"),
    ({"dataset": "imagenet"}, "dataset"),
    ({"epochs": 0}, "epochs"),
    ({"algorithm": "dnw", "density": 0.1, "epochs": 5, "freeze_epoch": 5}, "freeze_epoch"),
    ({"algorithm": "snip", "density": 0.1, "epochs": 5, "freeze_epoch": 1}, "freeze_epoch"),  # cannot freeze
    ({"algorithm": "dnw_freeze", "density": 0.1}, "algorithm"),  # a label, not an algorithm
    ({"epochs": "ten"}, "epochs"),
    ({"nesterov": "maybe"}, "nesterov"),
    ({"lr": -1}, "lr"),
    ({"algorithm": "dense", "density": 0.5}, "density"),
    ({"batch_size": 0}, "batch_size"),
    ({"schedule": "linear"}, "schedule"),
    ({"snapshot_fractions": [0.5, 1.2]}, "snapshot_fractions"),
    ({"algorithm": "imp", "density": 0.5, "imp_rate": 1.0}, "imp_rate"),
    ({"algorithm": "dnw", "density": 0.5, "imp_rate": 0.5}, "imp_rate"),  # another algorithm's own setting
])
def test_bad_settings_name_the_key(settings, key):
    with pytest.raises(ConfigError, match=f"^{key}:"):
        RunConfig.from_flat(settings)


@pytest.mark.parametrize("settings,message", [
    ({"gmp_end": 0.0}, r"gmp_end: must lie in \(0, 1\], got 0.0"),  # its own range, before the order of the two
    ({"gmp_start": 1.0, "gmp_end": 1.0}, r"gmp_start: must lie in \[0, 1\), got 1.0"),
    ({"gmp_start": 0.3, "gmp_end": 0.3}, r"gmp_end: must be above gmp_start=0.3, got 0.3"),
])
def test_an_interval_setting_names_its_interval_and_its_bound(settings, message):
    with pytest.raises(ConfigError, match=f"^{message}$"):
        RunConfig.from_flat({"algorithm": "gmp", "density": 0.1, **settings})


@pytest.mark.parametrize("multiplier", [0.0, -1.0, 2.0, 3.0])  # with imp_rate 0.5: none, or a rate of 1 or more
def test_an_imp_layer_rate_must_keep_the_layers_rate_in_0_1(multiplier):
    with pytest.raises(ConfigError, match=rf"^imp_layer_rates: multiplier for 'fc2.weight' must make the rate lie in "
                                          rf"\(0, 1\), got {multiplier}$"):
        RunConfig.from_flat({"algorithm": "imp", "density": 0.5, "imp_rate": 0.5,
                             "imp_layer_rates": [("fc2.weight", multiplier)]})
    ok = RunConfig.from_flat({"algorithm": "imp", "density": 0.5, "imp_rate": 0.5,
                              "imp_layer_rates": [("fc2.weight", 1.99)]})
    assert ok.algorithm.imp_layer_rates == (("fc2.weight", 1.99),)


@pytest.mark.parametrize("settings", [
    {"algorithm": "rigl", "update_interval": 1, "update_end": 1.0, "drop_fraction": 1e-9},
    {"algorithm": "set", "update_interval": 1, "update_end": 1e-9},
    {"algorithm": "gmp", "gmp_start": 0.0, "gmp_end": 1.0, "gmp_interval": 1},
    {"algorithm": "imp", "imp_rate": 1e-9, "rewind_epoch": 0},
    {"algorithm": "synflow", "synflow_rounds": 1},
    {"algorithm": "snfs", "prune_rate": 0.0},
])
def test_the_edges_of_each_range_are_accepted(settings):
    hp = RunConfig.from_flat({"density": 0.1, **settings}).algorithm
    assert {k: getattr(hp, k) for k in settings if k != "algorithm"} == {k: v for k, v in settings.items()
                                                                         if k != "algorithm"}


def test_an_unquoted_yaml_off_is_explained():
    with pytest.raises(ConfigError, match="^sparse_kernels: expected str, got False .*quote the word"):
        RunConfig.from_flat({"sparse_kernels": False})  # what `sparse_kernels: off` reads as


def test_flat_round_trip_and_types():
    cfg = RunConfig.from_flat({"algorithm": "snfs", "density": "0.05", "epochs": "3", "nesterov": "false",
                               "snapshot_fractions": "0.1,0.5", "dense_layers": ["fc3.weight"]})
    assert cfg.algorithm.density == 0.05 and cfg.train.epochs == 3 and cfg.train.nesterov is False
    assert cfg.train.snapshot_fractions == (0.1, 0.5) and cfg.algorithm.dense_layers == ("fc3.weight",)
    assert RunConfig.from_flat(cfg.flat()) == cfg
    assert RunConfig.from_nested(cfg.to_dict()) == cfg


def test_load_file_accepts_flat_yaml_and_run_json(tmp_path):
    (tmp_path / "a.yaml").write_text("algorithm: dnw\ndensity: 0.1\n")
    assert RunConfig.from_flat(load_file(tmp_path / "a.yaml")).algorithm.algorithm == "dnw"
    import json
    cfg = RunConfig.from_flat({"algorithm": "imp", "density": 0.2})
    (tmp_path / "run.json").write_text(json.dumps({"config": cfg.to_dict(), "status": "ok"}))
    assert RunConfig.from_flat(load_file(tmp_path / "run.json")) == cfg
    (tmp_path / "bad.yaml").write_text("- a list\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_file(tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match="missing.yaml"):
        load_file(tmp_path / "missing.yaml")


def test_name_float_lists_parse_from_command_line_text():
    cfg = RunConfig.from_flat({"algorithm": "imp", "density": 0.5, "imp_output": "global",
                               "imp_layer_rates": "fc3.weight:0.5,fc2.weight:0.25",
                               "sparsity_scales": "fc2.weight:0.9"})
    assert cfg.algorithm.imp_layer_rates == (("fc3.weight", 0.5), ("fc2.weight", 0.25))
    assert cfg.algorithm.sparsity_scales == (("fc2.weight", 0.9),)
    with pytest.raises(ConfigError, match="^imp_layer_rates: expected"):
        RunConfig.from_flat({"algorithm": "imp", "density": 0.5, "imp_layer_rates": "fc3.weight"})


def test_sparsity_scales_with_erk_are_rejected_when_the_config_is_read():
    with pytest.raises(ConfigError, match="^sparsity_scales: apply to distribution 'uniform' only"):
        RunConfig.from_flat({"algorithm": "snfs", "density": 0.1, "distribution": "erk",
                             "sparsity_scales": "fc2.weight:0.9"})


def test_an_algorithm_has_its_own_settings_and_refuses_another_s():
    snfs = RunConfig.from_flat({"algorithm": "snfs", "density": 0.1, "prune_rate": 0.3})
    assert snfs.algorithm.prune_rate == 0.3 and "prune_rate" in snfs.flat()
    dnw = RunConfig.from_flat({"algorithm": "dnw", "density": 0.1})
    assert "prune_rate" not in dnw.flat() and "prune_rate" not in dnw.to_dict()["algorithm"]
    with pytest.raises(ConfigError, match=r"^prune_rate: unknown key for algorithm 'dnw' \(its own keys: none;"):
        RunConfig.from_flat({"algorithm": "dnw", "density": 0.1, "prune_rate": 0.3})
    with pytest.raises(ConfigError, match=r"^gmp_start: unknown key for algorithm 'rigl' \(its own keys: rigl_layers, "
                                          "update_interval, update_end, drop_fraction;"):
        RunConfig.from_flat({"algorithm": "rigl", "density": 0.1, "gmp_start": 0.3})


def test_a_change_of_algorithm_leaves_the_old_algorithm_s_own_settings_behind():
    imp = RunConfig.from_flat({"algorithm": "imp", "density": 0.5, "imp_rate": 0.5, "epochs": 3, "lr": 0.05})
    fixed = imp.replace(algorithm="fixed")
    assert fixed.algorithm.algorithm == "fixed" and "imp_rate" not in fixed.flat()
    assert fixed.train == imp.train and fixed.algorithm.dense_layers == imp.algorithm.dense_layers  # imp's output layer
    assert imp.replace(lr=0.1).algorithm == imp.algorithm  # its own kept while the algorithm stays


def test_a_preset_gives_each_algorithm_its_own_settings(tmp_path):
    snfs = RunConfig.from_flat({"preset": "sparse_learning_mnist", "algorithm": "snfs", "density": 0.1})
    assert snfs.algorithm.prune_rate == 0.5 and snfs.train.weight_decay == 0.0005
    dnw = RunConfig.from_flat({"preset": "sparse_learning_mnist", "algorithm": "dnw", "density": 0.1})
    assert dnw.train == snfs.train and "prune_rate" not in dnw.flat()
    imp = RunConfig.from_flat({"preset": "open_lth_mnist_lenet_300_100", "algorithm": "imp", "density": 0.5,
                               "imp_rate": 0.3})  # the run's own keys override the preset's
    assert (imp.algorithm.imp_rate, imp.algorithm.imp_output) == (0.3, "dense")
