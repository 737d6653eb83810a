"""E1 variants that reset weights or mask without training: what each keeps and what it destroys."""
import pandas as pd
import pytest
import torch

from sparsenet import reinit, rounds
from sparsenet.masks import Mask, layer_counts
from sparsenet.record import RunFolder
from sparsenet.train import train

from .conftest import tiny

SHAPES = {"fc1.weight": torch.Size([30, 40]), "conv.weight": torch.Size([8, 4, 3, 3])}


def _mask_and_weights(density=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    own = {n: torch.randn(s, generator=g) for n, s in SHAPES.items()}
    mask = Mask.random(own, layer_counts(SHAPES, density, "uniform"), g)
    return mask, {**own, "fc1.bias": torch.randn(30, generator=g)}


def test_reshuffle_keeps_the_mask_and_each_layers_kept_initial_values():
    mask, own = _mask_and_weights()
    weights, same = reinit.reset(tiny(), own, Mask({n: m.clone() for n, m in mask.layers.items()}), "reshuffle")
    assert same.equal(mask)
    for name, m in mask.layers.items():
        before, after = own[name][m].sort().values, weights[name][m].sort().values
        assert torch.equal(before, after)  # the same multiset of kept values...
        assert not torch.equal(own[name][m], weights[name][m])  # ...at other kept positions
        assert torch.equal(weights[name][~m], own[name][~m])
    assert torch.equal(weights["fc1.bias"], own["fc1.bias"])
    again, _ = reinit.reset(tiny(), own, mask, "reshuffle")
    assert all(torch.equal(weights[n], again[n]) for n in own)  # one draw per seed


def test_shuffle_fanin_keeps_every_units_fan_in_and_moves_its_wiring():
    mask, own = _mask_and_weights()
    weights, moved = reinit.reset(tiny(), own, mask, "shuffle_fanin")
    assert weights is own
    for name, m in mask.layers.items():
        fan_in = m.reshape(m.shape[0], -1).sum(1)
        assert torch.equal(moved.layers[name].reshape(m.shape[0], -1).sum(1), fan_in)
    assert moved.overlap(mask) < 0.6  # about the density (0.3) by chance, 1 if nothing moved


def test_shuffle_keeps_only_each_layers_count():
    mask, own = _mask_and_weights()
    _, moved = reinit.reset(tiny(), own, mask, "shuffle")
    m, s = mask.layers["fc1.weight"], moved.layers["fc1.weight"]
    assert int(s.sum()) == int(m.sum()) and not torch.equal(s.sum(1), m.sum(1))


def test_runs_and_variants_retrained_together_equal_each_retrained_alone(tmp_path, data_root, monkeypatch):
    """Two runs of one algorithm (another seed, another density), four variants each, retrained as one fused group
    of eight (snfs's mask changes, so its rewind trains too): each as it trains alone."""
    from sparsenet import fused
    from sparsenet.train import train

    from .test_fused import _assert_same_run

    runs = [tmp_path / "a", tmp_path / "b"]
    train(tiny(algorithm="snfs", density=0.1, epochs=2), runs[0])
    # (not seed 1: its reinit at density 0.2 is chaotic here, a change of 1e-7 to its starting weights moving its
    # final ones by 1%, so float rounding alone would)
    train(tiny(algorithm="snfs", density=0.2, epochs=2, seed=2), runs[1])
    variants = ["rewind", "reinit", "signed_constant", "shuffle"]
    outs = [[tmp_path / "fused" / run.name / v for v in variants] for run in runs]
    groups = []
    monkeypatch.setattr(fused, "train_fused", lambda cfgs, *a, f=fused.train_fused, **k: groups.append(len(cfgs))
                        or f(cfgs, *a, **k))
    together = reinit.retrain_variants(runs, variants, outs)
    assert groups == [8]
    for run, run_outs, records in zip(runs, outs, together):
        for variant, out, record in zip(variants, run_outs, records):
            alone = reinit.retrain(run, variant, tmp_path / "alone" / run.name / variant)
            assert record.variant == alone.variant == variant and record.config == alone.config
            assert record.source_run == str(run)
            _assert_same_run(out, tmp_path / "alone" / run.name / variant)


def test_a_late_rewound_imp_runs_retraining_starts_at_its_rewind_epoch(tmp_path, data_root):
    """imp rewinds its later rounds to epoch 1: a retraining of its run trains epochs 2 and 3 only, with that
    order of data and learning rates, as the run's last round did."""
    cfg = tiny(algorithm="imp", density=0.5, imp_rate=0.5, rewind_epoch=1, lr=0.1, milestones=(2,))
    rounds.run_chain(cfg, tmp_path / "imp")
    source = RunFolder(tmp_path / "imp")
    assert source.record().first_epoch == 1
    runs = [tmp_path / "imp", tmp_path / "imp" / "rounds" / "r00"]  # the first round started at epoch 0
    outs = [[tmp_path / "re" / f"{k}" / v for v in ("reinit", "shuffle")] for k in range(2)]
    late, early = reinit.retrain_variants(runs, ["reinit", "shuffle"], outs)
    for record in late:
        assert record.first_epoch == 1
    for out in outs[0]:
        history = pd.read_parquet(out / "history.parquet")
        assert history["epoch"].tolist() == [2, 3]
        assert history["lr"].tolist() == pd.read_parquet(source.path / "history.parquet")["lr"].tolist()
    assert pd.read_parquet(outs[1][0] / "history.parquet")["epoch"].tolist() == [1, 2, 3]
    assert [r.first_epoch for r in early] == [0, 0]


def test_reinit_draws_new_weights_from_a_seed_no_run_trains_and_keeps_the_mask():
    cfg = tiny(seed=3)
    mask, _ = _mask_and_weights()
    own = reinit.initial_weights(cfg, cfg.seed)  # what the run started from
    weights, kept = reinit.reset(cfg, own, mask, "reinit")
    again, _ = reinit.reset(cfg, own, mask, "reinit")
    assert kept is mask and set(weights) == set(own)
    assert all(torch.equal(weights[n], again[n]) for n in own)  # one draw per seed
    assert not torch.equal(weights["fc1.weight"], own["fc1.weight"])
    fresh = reinit.initial_weights(cfg, 3 + reinit.RESEED)  # the model built anew with the seed reserved for reinit
    assert all(torch.equal(weights[n], fresh[n]) for n in own)


def test_signed_constant_keeps_each_kept_weights_sign_at_its_layers_standard_deviation():
    mask, own = _mask_and_weights()
    weights, kept = reinit.reset(tiny(), own, mask, "signed_constant")
    assert kept is mask and torch.equal(weights["fc1.bias"], own["fc1.bias"])  # only the masked layers change
    for name in mask.layers:
        assert torch.equal(weights[name], torch.sign(own[name]) * own[name].std()), name


def test_rewind_keeps_the_runs_own_weights_and_mask_and_an_unknown_variant_is_named():
    mask, own = _mask_and_weights()
    assert reinit.reset(tiny(), own, mask, "rewind") == (own, mask)
    with pytest.raises(ValueError, match="variant: must be one of rewind, .*; got 'rewound'"):
        reinit.reset(tiny(), own, mask, "rewound")


def test_retraining_records_its_source_and_a_replayed_rewind_is_the_runs_files_byte_for_byte(tmp_path, data_root):
    """static never changes its mask, so its rewind is recorded, not trained: every file of the run under the
    fixed-mask retraining's record; the reinit variant trains. Either may go to a folder that does not exist yet."""
    run = tmp_path / "static"
    train(tiny(algorithm="static", epochs=1, density=0.1), run)
    outs = [tmp_path / "new" / "deeper" / variant for variant in ("rewind", "reinit")]
    [[rewind, reinitialised]] = reinit.retrain_variants([run], ["rewind", "reinit"], [outs])
    source = RunFolder(run).config()
    density = round(Mask.load(run / "mask.safetensors").density(exclude=source.algorithm.dense_layers), 6)
    for record, variant in ((rewind, "rewind"), (reinitialised, "reinit")):
        assert (record.variant, record.source_algorithm, record.source_run) == (variant, "static", str(run))
        cfg = record.run_config()
        assert (cfg.algorithm.algorithm, cfg.algorithm.density) == ("fixed", density)
    assert rewind.copy_of_source and not reinitialised.copy_of_source
    for name in RunFolder.FILES[:-1]:
        assert (outs[0] / name).read_bytes() == (run / name).read_bytes(), name
    assert RunFolder(outs[0]).record() == rewind and RunFolder(outs[1]).record() == reinitialised
    made = tmp_path / "made"  # a folder that exists already, as Snakemake makes its outputs' folders
    made.mkdir()
    assert reinit.retrain(run, "rewind", made) == rewind


def test_retraining_a_frozen_run_fixes_its_mask_from_the_start_and_names_the_frozen_run(tmp_path, data_root):
    run = tmp_path / "snfs_freeze"
    train(tiny(algorithm="snfs_freeze", epochs=2, density=0.1), run)
    record = reinit.retrain(run, "reinit", tmp_path / "reinit")
    assert record.source_algorithm == "snfs_freeze"
    assert (record.run_config().algorithm.algorithm, record.run_config().algorithm.freeze_epoch) == ("fixed", 0)


@pytest.mark.parametrize("rewind_epoch", [0, 1])
def test_signed_constant_of_a_late_rewound_imp_run_takes_its_signs_from_the_runs_initial_weights(rewind_epoch):
    """With rewind_epoch > 0 an imp run's `own` weights are those it rewinds to, after training began; the
    variant's signs and scales are those of the weights the run started from (its seed's), not of those."""
    cfg = tiny(algorithm="imp", density=0.2, seed=3, rewind_epoch=rewind_epoch)
    start = reinit.initial_weights(cfg, 3)
    g = torch.Generator().manual_seed(1)
    own = {n: torch.randn(v.shape, generator=g) for n, v in start.items()}  # the rewind weights
    masked = {n: own[n] for n in ("fc1.weight", "fc2.weight")}
    mask = Mask.random(masked, layer_counts({n: w.shape for n, w in masked.items()}, 0.2, "uniform"), g)
    weights, _ = reinit.reset(cfg, own, mask, "signed_constant")
    source = start if rewind_epoch else own
    for name in mask.layers:
        assert torch.equal(weights[name], torch.sign(source[name]) * source[name].std()), name
    assert torch.equal(weights["fc3.weight"], own["fc3.weight"])  # a layer outside the mask stays as it was


@pytest.mark.parametrize("algorithm,replays", [("dense", False), ("snfs", False), ("dnw", False), ("set", False),
                                               ("imp", True), ("static", True), ("snip", True), ("fixed", True)])
def test_only_a_run_whose_mask_never_changed_is_replayed_by_its_rewind(algorithm, replays):
    assert reinit.replays_its_run(algorithm) is replays
