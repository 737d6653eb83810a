"""Execution settings (precision, memory format, compile, determinism, evaluation batch), the study plan, and the
GPU check script's CPU smoke mode."""
import os
import platform
import subprocess
import sys

import pytest
import torch
import yaml
from snakemake.utils import validate as snakemake_validate

from sparsenet import execution, provenance, study
from sparsenet.checkpoint import load_weights
from sparsenet.config import ConfigError, ExecutionHparams
from sparsenet.masks import Mask, topk_mask
from sparsenet.train import Run, load_data, train

from .conftest import REPO, TINY, tiny


def _weights(run):
    return load_weights(run / "final.safetensors")


@pytest.mark.parametrize("key,value", [("precision", "fp16"), ("eval_batch_size", 0)])
def test_bad_execution_settings_name_the_key(key, value):
    with pytest.raises(ConfigError, match=key):
        tiny(**{key: value})


def test_bf16_trains_in_fp32_weights_close_to_fp32(tmp_path, data_root):
    fp32 = train(tiny(epochs=2), tmp_path / "fp32")
    bf16 = train(tiny(epochs=2, precision="bf16"), tmp_path / "bf16")
    w32, w16 = _weights(tmp_path / "fp32"), _weights(tmp_path / "bf16")
    assert all(w.dtype == torch.float32 for w in w16.values())
    assert any(not torch.equal(w32[k], w16[k]) for k in w32)  # autocast really ran in bf16
    assert abs(fp32.test_acc - bf16.test_acc) < 0.03


def test_channels_last_follows_the_default_layout_run(tmp_path, data_root):
    cfg = tiny(model="conv2", batch_size=32, algorithm="dnw", density=0.2)
    data = load_data(cfg, torch.device("cpu"), None)
    runs = [Run(cfg.replace(channels_last=cl), tmp_path / str(cl), torch.device("cpu"), data) for cl in (False, True)]
    for run in runs:
        study.time_steps(run, steps=4, warmup=0)
    assert runs[1].weights["conv1.weight"].is_contiguous(memory_format=torch.channels_last)
    for name, w in runs[0].weights.items():
        torch.testing.assert_close(w, runs[1].weights[name], atol=1e-5, rtol=1e-4)
    assert runs[0].algo.mask().equal(runs[1].algo.mask())


def test_masks_take_the_memory_format_of_their_weights():
    w = torch.randn(8, 4, 3, 3).to(memory_format=torch.channels_last)
    mask = Mask({"w": torch.rand(8, 4, 3, 3) < 0.3}).like({"w": w})
    assert mask.layers["w"].is_contiguous(memory_format=torch.channels_last)
    kept = topk_mask(w.abs(), 50)
    assert kept.is_contiguous(memory_format=torch.channels_last) and int(kept.sum()) == 50
    assert torch.equal(kept, topk_mask(w.abs().contiguous(), 50))


def test_compiled_forward_matches_eager(tmp_path, data_root):
    common = {"train_subset": 400, "epochs": 1, "algorithm": "snfs", "density": 0.1}
    train(tiny(**common), tmp_path / "eager")
    train(tiny(**common, compile=True), tmp_path / "compiled")
    a, b = _weights(tmp_path / "eager"), _weights(tmp_path / "compiled")
    assert list(a) == list(b)  # plain parameter names: the module itself is not the compiled wrapper
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


def test_evaluation_batch_size_changes_nothing_but_speed(tmp_path, data_root):
    a = train(tiny(epochs=1), tmp_path / "a")
    b = train(tiny(epochs=1, eval_batch_size=37), tmp_path / "b")
    assert a.test_acc == b.test_acc and a.test_loss == pytest.approx(b.test_loss, rel=1e-5)


@pytest.mark.parametrize("deterministic", [True, False])
def test_cuda_kernel_choices_follow_the_deterministic_setting(deterministic, monkeypatch):
    saved = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark,
             torch.are_deterministic_algorithms_enabled())
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", "")  # recorded, so that what configure sets is undone after
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG")
    try:
        execution.Platform(torch.device("cuda"), ExecutionHparams(deterministic=deterministic)).configure()
        assert (os.environ.get("CUBLAS_WORKSPACE_CONFIG") == ":4096:8") is deterministic
        assert torch.backends.cudnn.deterministic is deterministic
        assert torch.backends.cudnn.benchmark is not deterministic
        assert torch.are_deterministic_algorithms_enabled() is deterministic
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[:2]
        torch.use_deterministic_algorithms(saved[2])


@pytest.mark.parametrize("config", [TINY, REPO / "config" / "cifar10.yaml", REPO / "config.yaml"])
def test_the_library_reads_a_study_as_the_snakefile_does(config):
    """(That its job counts are Snakemake's: tests/test_workflow.py's dry runs.)"""
    raw = yaml.safe_load(config.read_text())
    snakemake_validate(raw, str(study.SCHEMA), set_default=True)  # the Snakefile's view of the same study
    assert study.load_study(config) == raw


@pytest.mark.parametrize("eval_samples,evaluated", [(0, 10000), (100, 100), (10**6, 10000)])
def test_a_measured_epoch_evaluates_the_test_splits_first_samples_where_asked(data_root, monkeypatch, eval_samples,
                                                                             evaluated):
    seen = []
    monkeypatch.setattr(Run, "evaluate", lambda self, split: seen.append(split.labels.tolist()))
    config = study.load_study(TINY)
    study.epoch_seconds(config, "lenet300_100", "dense", device="cpu", steps=1, warmup=0, eval_samples=eval_samples)
    test = load_data(study.settings(config, "lenet300_100", "dense"), torch.device("cpu"), None)[1]
    assert seen == [test.labels[:evaluated].tolist()]


def test_plan_command_estimates_device_hours(data_root):
    out = subprocess.run([sys.executable, "-m", "sparsenet", "plan", "--configfile", str(TINY), "--measure",
                          "--steps", "2", "--device", "cpu"], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert "imp_round" in out.stdout and "device hours on" in out.stdout.splitlines()[-1]


def test_gpu_check_smoke_runs_its_sections_on_the_cpu(tmp_path, data_root):
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--out", str(tmp_path),
                          "--smoke", "--device", "cpu", "--sections", "1,2,3,7"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    table = (tmp_path / "gpu_check.md").read_text()
    for row in ("resnet20 dnw_freeze bf16+cl+tuned", "dnw step / dense step", "trainer / reference",
                "device hours"):
        assert row in table
    assert "failed" not in table and (tmp_path / "gpu_check.parquet").exists()


def test_a_cpu_figure_names_the_cpu_model_and_falls_back_to_the_architecture(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Fake CPU 9000 @ 3.00GHz\n")
    assert provenance.cpu_name(cpuinfo) == "Fake CPU 9000 @ 3.00GHz"
    assert provenance.cpu_name(tmp_path / "absent") == (platform.processor() or platform.machine())
    assert provenance.device_name(torch.device("cpu")).endswith(f"({torch.get_num_threads()} threads)")
