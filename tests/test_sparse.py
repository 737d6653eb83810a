"""CSR kernels for fixed-mask training: the same numbers as dense masked compute, nothing at absent weights."""
from pathlib import Path

import pandas as pd
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sparsenet import models, sparse
from sparsenet import train as train_mod
from sparsenet.checkpoint import load_weights
from sparsenet.masks import Mask, layer_counts
from sparsenet.optim import SGD
from sparsenet.train import train

from .conftest import tiny


def _mask(density: float, seed: int = 0) -> Mask:
    weights = models.prunable(models.build("lenet300_100", (1, 28, 28), 10))
    counts = layer_counts({n: w.shape for n, w in weights.items()}, density, "uniform")
    return Mask.random(weights, counts, torch.Generator().manual_seed(seed))


@settings(deadline=None, max_examples=60)
@given(shape=st.tuples(st.integers(1, 40), st.integers(1, 40)), density=st.floats(0.0, 1.0),
       batch=st.integers(1, 9), bias=st.booleans(), seed=st.integers(0, 2**16))
@example(shape=(300, 784), density=0.05, batch=64, bias=True, seed=0)  # LeNet-300-100's layers
@example(shape=(100, 300), density=0.2, batch=7, bias=False, seed=0)
@example(shape=(10, 100), density=0.01, batch=1, bias=True, seed=0)
def test_csr_layer_equals_dense_masked(shape, density, batch, bias, seed):
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(shape, generator=g) < density
    mask[0] = False  # an output unit with no kept weight at all
    weight = torch.randn(shape, generator=g, requires_grad=True)
    b = torch.randn(shape[0], generator=g, requires_grad=True) if bias else None
    x = torch.randn(batch, shape[1], generator=g, requires_grad=True)
    dense = x @ (weight * mask).t() + (b if bias else 0)
    dense.sum().backward()
    gx, gw, gb = x.grad.clone(), weight.grad.clone(), b.grad.clone() if bias else None
    x.grad = weight.grad = None
    if bias:
        b.grad = None
    structure = sparse.Structure(mask)
    out = sparse.CSRLinear.apply(x, weight, b, structure)
    out.sum().backward()
    torch.testing.assert_close(out, dense, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(x.grad, gx, atol=1e-5, rtol=1e-5)
    if bias:
        torch.testing.assert_close(b.grad, gb, atol=1e-5, rtol=1e-5)
    # the weight's gradient exists at the kept positions only, in CSR order; no dense one is made
    assert weight.grad is None and structure.grad.shape == (int(mask.sum()),)
    torch.testing.assert_close(structure.grad, gw[mask], atol=1e-5, rtol=1e-5)


def test_a_layer_run_twice_in_one_graph_sums_its_gradients():
    g = torch.Generator().manual_seed(0)
    mask = torch.rand(20, 20, generator=g) < 0.3
    weight = torch.randn(20, 20, generator=g, requires_grad=True)
    x = torch.randn(5, 20, generator=g)
    dense = x @ (weight * mask).t()
    (dense @ (weight * mask).t()).sum().backward()  # a tied layer: the same weight applied twice
    structure = sparse.Structure(mask)
    out = sparse.CSRLinear.apply(sparse.CSRLinear.apply(x, weight, None, structure), weight, None, structure)
    out.sum().backward()
    torch.testing.assert_close(structure.grad, weight.grad[mask], atol=1e-4, rtol=1e-4)
    sgd = SGD([weight], lr=0.1)
    sgd.route(weight, structure)
    sgd.zero_grad()
    assert structure.grad is None  # zero_grad clears what the next backward passes sum into


def test_bf16_runs_stay_dense_on_the_cpu(tmp_path, data_root):
    record = train(tiny(algorithm="fixed", density=0.05, epochs=1, sparse_kernels="on", precision="bf16"),
                   tmp_path / "run", mask=_mask(0.05))
    assert record.sparse_layers == [] and record.status == "ok"  # MKL's CSR kernels have no bfloat16


def test_kept_values_are_gathered_again_once_the_weight_changes():
    mask = torch.rand(30, 20, generator=torch.Generator().manual_seed(0)) < 0.2
    weight = torch.randn(30, 20) * mask
    structure = sparse.Structure(mask)
    first = structure.values(weight)
    assert structure.values(weight) is first  # no gather while the weight is untouched
    with torch.no_grad():
        weight.mul_(2)  # anyone's in-place write (a checkpoint load, a mask) bumps the version counter
    torch.testing.assert_close(structure.values(weight), weight[mask])
    structure.write(weight, structure.values(weight) + 1)
    torch.testing.assert_close(weight[mask], 2 * first + 1)
    assert weight[~mask].eq(0).all()


@pytest.mark.parametrize("density", [0.2, 0.05, 0.01])
def test_fixed_mask_run_on_csr_kernels_equals_the_dense_masked_run(tmp_path, data_root, density):
    mask = _mask(density)
    cfg = tiny(algorithm="fixed", density=density, epochs=2)
    dense = train(cfg.replace(sparse_kernels="off"), tmp_path / "dense", mask=mask)
    csr = train(cfg.replace(sparse_kernels="on"), tmp_path / "csr", mask=mask)
    assert dense.sparse_layers == [] and csr.sparse_layers == list(mask.layers)
    a, b = (load_weights(tmp_path / run / "final.safetensors") for run in ("dense", "csr"))
    for name in a:  # equal up to float summation order, which drifts a little over 40 steps
        torch.testing.assert_close(a[name], b[name], atol=1e-4, rtol=1e-3)
    for name, m in mask.layers.items():
        assert b[name][~m].eq(0).all()  # absent weights stay exactly zero without being masked each step
    ha, hb = (pd.read_parquet(tmp_path / run / "history.parquet") for run in ("dense", "csr"))
    assert (ha["test_acc"] - hb["test_acc"]).abs().max() <= 0.002


def test_no_gradient_is_ever_materialised_at_absent_weights(tmp_path, data_root, monkeypatch):
    mask = _mask(0.05)
    seen = []
    real = train_mod.Run.count_work

    def check(run, samples):  # after the backward pass: no weight of a routed layer has a dense gradient at all
        assert run.sparse_layers == list(mask.layers)
        seen.extend(run.weights[name].grad is None for name in run.sparse_layers)
        real(run, samples)
    monkeypatch.setattr(train_mod.Run, "count_work", check)
    train(tiny(algorithm="fixed", density=0.05, epochs=1, sparse_kernels="on"), tmp_path / "run", mask=mask)
    assert len(seen) > 0 and all(seen)


def test_killed_sparse_run_resumes_to_the_same_result(tmp_path, data_root, monkeypatch):
    mask = _mask(0.05)
    cfg = tiny(algorithm="fixed", density=0.05, epochs=3, sparse_kernels="on")
    real = train_mod.save_checkpoint

    def die_after_epoch_2(path, state):
        real(path, state)
        if state["epoch"] == 2:
            raise KeyboardInterrupt
    monkeypatch.setattr(train_mod, "save_checkpoint", die_after_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "killed", mask=mask)
    monkeypatch.setattr(train_mod, "save_checkpoint", real)
    resumed = train(cfg, tmp_path / "killed", mask=mask)
    whole = train(cfg, tmp_path / "whole", mask=mask)
    assert resumed.sparse_layers == whole.sparse_layers != []
    a, b = (load_weights(tmp_path / run / "final.safetensors") for run in ("killed", "whole"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_dnw_freeze_moves_to_csr_kernels_at_the_freeze_and_matches_the_dense_path(tmp_path, data_root):
    cfg = tiny(algorithm="dnw_freeze", density=0.05, epochs=3, freeze_epoch=1)
    csr = train(cfg.replace(sparse_kernels="on"), tmp_path / "csr")
    dense = train(cfg.replace(sparse_kernels="off"), tmp_path / "dense")
    assert csr.sparse_layers == ["fc1.weight", "fc2.weight", "fc3.weight"] and dense.sparse_layers == []
    assert train(tiny(algorithm="dnw", density=0.05, epochs=1, sparse_kernels="on"),
                 tmp_path / "dnw").sparse_layers == []  # dense gradients: never sparse
    a, b = (load_weights(tmp_path / run / "final.safetensors") for run in ("dense", "csr"))
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-4, rtol=1e-3)
    mask = Mask.load(tmp_path / "csr" / "mask.safetensors")
    assert Mask.load(tmp_path / "dense" / "mask.safetensors").equal(mask)
    assert all(b[n][~m].eq(0).all() for n, m in mask.layers.items())


def test_automatic_choice():
    cpu = torch.device("cpu")
    big, small = torch.zeros(300, 784, dtype=torch.bool), torch.zeros(10, 100, dtype=torch.bool)
    big.view(-1)[: int(0.05 * big.numel())] = True
    small.view(-1)[:50] = True
    assert sparse.chosen("auto", big, cpu) and not sparse.chosen("off", big, cpu)
    assert not sparse.chosen("auto", torch.ones(300, 784, dtype=torch.bool), cpu)  # density 1: dense
    assert not sparse.chosen("auto", small, cpu) and sparse.chosen("on", small, cpu)  # too small to pay
    g = torch.Generator().manual_seed(0)
    assert sparse.chosen("auto", torch.rand(300, 784, generator=g) < 0.18, cpu)  # pays up to 0.2
    assert not sparse.chosen("auto", torch.rand(300, 784, generator=g) < 0.3, cpu)  # too dense to pay
    assert sparse.chosen("auto", torch.rand(100, 300, generator=g) < 0.18, cpu)  # imp's fc2 at 5% overall
    assert not sparse.chosen("auto", torch.rand(100, 300, generator=g) < 0.3, cpu)  # a smaller layer: up to 0.2
    assert not sparse.chosen("on", big, torch.device("meta"))  # GPUs (any non-CPU device) stay dense
    assert not sparse.chosen("on", big, cpu, "bf16")  # MKL's CSR kernels have no bfloat16


def test_evaluation_routes_fewer_layers_and_a_new_mask_undoes_an_old_routing():
    g = torch.Generator().manual_seed(0)
    cpu = torch.device("cpu")
    assert not sparse.chosen("auto", torch.rand(300, 784, generator=g) < 0.1, cpu, limits=sparse.EVAL_LIMITS)
    model = models.build("lenet300_100", (1, 28, 28), 10)
    x = torch.randn(32, 1, 28, 28, generator=g)
    masks = [Mask({n: torch.rand(w.shape, generator=g) < d for n, w in models.prunable(model).items()})
             for d in (0.02, 0.3)]
    routed = sparse.install(model, masks[0], "auto", limits=sparse.EVAL_LIMITS)
    assert set(routed) == {"fc1.weight", "fc2.weight"}
    assert set(sparse.install(model, masks[1], "auto", limits=sparse.EVAL_LIMITS)) == set()
    assert all("forward" not in m.__dict__ for m in model.modules())  # each layer's own forward again
    routed = sparse.install(model, masks[0], "on")
    with torch.no_grad():
        masks[0].apply(models.prunable(model))
        routed_out = model(x)
        sparse.install(model, masks[0], "off")
        torch.testing.assert_close(routed_out, model(x))


def test_a_routed_first_layer_gets_feature_major_batches_with_the_same_values(tmp_path, data_root):
    from sparsenet.data import Batcher
    from sparsenet.execution import Platform

    batcher = Batcher(tiny().data, torch.device("cpu"))
    images = torch.randint(0, 256, (37, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    mask = _mask(0.05)
    run = train_mod.Run(tiny(algorithm="fixed", density=0.05, sparse_kernels="on"), tmp_path / "a", torch.device("cpu"),
                        train_mod.load_data(tiny(), torch.device("cpu"), None), mask=mask)
    assert run.buffer is not None and next(iter(run.begin_epoch(0)))[0].flatten(1).t().is_contiguous()
    plain, by_feature = batcher.normalise(images), batcher.normalise(images, run.buffer)
    assert torch.equal(plain, by_feature) and plain.is_contiguous()
    assert by_feature.flatten(1).t().is_contiguous()  # the routed layer's x^T, without a copy
    assert Platform.batch_buffer(run.model, {}) is None  # nothing routed: batches as they come
    conv = models.build("conv2", (1, 28, 28), 10)
    weights = models.prunable(conv)
    counts = layer_counts({n: w.shape for n, w in weights.items()}, 0.05, "uniform")
    routed = sparse.install(conv, Mask.random(weights, counts, torch.Generator().manual_seed(0)), "on")
    assert list(routed) == ["fc1.weight", "fc2.weight", "fc3.weight"]
    assert not sparse.takes_the_input(conv, routed)  # a convolution comes first: plain batches


@pytest.mark.parametrize("settings", [{"momentum": 0.9, "nesterov": True, "weight_decay": 5e-4},
                                      {"momentum": 0.9, "weight_decay": 0.0}, {"momentum": 0.0, "weight_decay": 1e-4}])
def test_sgd_is_torch_sgd_bitwise_and_kept_entries_update_alone(settings):
    g = torch.Generator().manual_seed(0)
    mask = torch.rand(40, 30, generator=g) < 0.1
    shapes = [(40, 30), (30,), (7, 3, 3, 3)]
    start = [torch.randn(s, generator=g) for s in shapes]
    start[0] *= mask
    ref = [t.clone().requires_grad_() for t in start]
    ours = [t.clone().requires_grad_() for t in start]
    torch_sgd, sgd = torch.optim.SGD(ref, lr=0.1, **settings), SGD(ours, lr=0.1, **settings)
    routed = sparse.Structure(mask)
    for i in range(4):
        if i == 1:
            sgd.route(ours[0], routed)  # the first weight as if routed through CSR kernels from the second step on
        grads = [torch.randn(s, generator=g) for s in shapes]
        grads[0] *= mask
        for a, b, grad in zip(ref, ours, grads):
            a.grad, b.grad = grad.clone(), grad.clone()
        ours[0].grad = None if i >= 1 else ours[0].grad
        routed.grad = grads[0][mask]  # what its layer's backward hands over: the kept entries, in CSR order
        torch_sgd.step()
        sgd.step()
    for a, b in zip(ref, ours):
        assert torch.equal(a, b)
        if settings["momentum"]:
            assert torch.equal(torch_sgd.state[a]["momentum_buffer"], sgd.momentum(b))
    assert ours[0][~mask].eq(0).all()
    restored = SGD([t.clone() for t in ours], lr=1.0)
    restored.route(restored.param_groups[0]["params"][0], sparse.Structure(mask))  # as a resumed run routes again
    restored.load_state_dict(sgd.state_dict())
    assert restored.param_groups[0]["lr"] == 0.1
    assert len(restored.state_dict()["state"]) == (3 if settings["momentum"] else 0)
    if settings["momentum"]:
        for a, b in zip(sgd.param_groups[0]["params"], restored.param_groups[0]["params"]):
            assert torch.equal(sgd.momentum(a), restored.momentum(b))


def test_a_training_job_never_imports_dynamo(tmp_path, data_root):
    import subprocess
    import sys

    code = ("import sys; from sparsenet.cli import main; "
            f"main(['train', '--out', r'{tmp_path / 'run'}', '--epochs', '1', '--train-subset', '256']); "
            "print('torch._dynamo' in sys.modules, 'torchvision' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-2:] == ["False", "False"]  # 1.2 s and 1.4 s of start-up saved per job


def test_fixed_mask_speed_benchmark_prints_its_table(data_root, capsys):
    import importlib.util

    from sparsenet.bench import STUDY_MASKS

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "fixed_mask_speed.py"
    spec = importlib.util.spec_from_file_location("fixed_mask_speed", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.main(["--repeats", "1", "--epochs", "1", "--train-subset", "1280"])
    rows = [[cell.strip() for cell in line.split("|")[1:-1]] for line in capsys.readouterr().out.splitlines()
            if line.startswith(("| imp round", "| snfs mask"))]
    table = {(mask, variant): (float(rate.replace(",", "")), float(ratio.rstrip("x")))
             for mask, variant, rate, ratio in rows}
    assert len(rows) == 4 and {m for m, _ in table} == set(STUDY_MASKS)
    for mask in STUDY_MASKS:  # each ratio is the auto variant's rate over the row's, as printed
        auto, dense = table[mask, "sparse_kernels auto"], table[mask, "dense masked (same code)"]
        assert auto[1] == 1.0 and dense[0] > 0 and dense[1] == pytest.approx(auto[0] / dense[0], abs=0.01)
