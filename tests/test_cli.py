import json
import subprocess
import sys
from pathlib import Path

import pytest

from sparsenet.cli import main


def test_help_explains_every_command():
    out = subprocess.run([sys.executable, "-m", "sparsenet", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "train" in out.stdout and "imp-round" in out.stdout
    out = subprocess.run([sys.executable, "-m", "sparsenet", "train", "--help"], capture_output=True, text=True)
    assert "--density" in out.stdout and "--freeze-epoch" in out.stdout


def test_bad_setting_is_rejected_before_anything_is_written(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "run"), "--algorithm", "snfs", "--density", "1.5"]) == 2
    assert "density: must lie in (0, 1]" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_train_with_config_file_and_overrides(tmp_path, data_root, capsys):
    (tmp_path / "run.yaml").write_text("algorithm: dnw\ndensity: 0.2\nepochs: 1\ntrain_subset: 1000\n")
    assert main(["train", "--config", str(tmp_path / "run.yaml"), "--out", str(tmp_path / "run"),
                 "--density", "0.1", "--device", "cpu"]) == 0
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["config"]["algorithm"]["density"] == 0.1 and record["config"]["algorithm"]["algorithm"] == "dnw"
    assert "test_acc" in capsys.readouterr().out


def test_imp_round_commands_chain(tmp_path, data_root):
    common = ["--algorithm", "imp", "--epochs", "1", "--train-subset", "1000", "--device", "cpu"]
    assert main(["imp-round", "--out", str(tmp_path / "r0"), "--next-density", "0.8", *common]) == 0
    assert main(["imp-round", "--out", str(tmp_path / "r1"), "--prev", str(tmp_path / "r0"), *common]) == 0
    record = json.loads((tmp_path / "r1" / "run.json").read_text())
    assert record["imp_round"] == 1 and record["density"] == pytest.approx(0.8, abs=1e-5)


@pytest.mark.parametrize("flags,message", [
    (["--dense-layers", "nosuch.weight", "--algorithm", "snfs", "--density", "0.1"],
     "dense_layers: ['nosuch.weight'] are not prunable weights"),
    (["--train-subset", "10000000"], "train_subset: mnist's training split has 60000 samples"),
])
def test_bad_input_found_by_a_new_user_gets_one_message(tmp_path, data_root, capsys, flags, message):
    assert main(["train", "--out", str(tmp_path / "run"), "--epochs", "1", "--device", "cpu", *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_threads_must_be_positive_and_version_is_printed(tmp_path):
    out = subprocess.run([sys.executable, "-m", "sparsenet", "train", "--out", str(tmp_path), "--threads", "0"],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "--threads: must be an integer >= 1" in out.stderr
    out = subprocess.run([sys.executable, "-m", "sparsenet", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("sparsenet ")


def test_every_setting_is_explained_once_and_readme_shows_the_table():
    from sparsenet.config import SETTINGS
    from sparsenet.settings import markdown

    assert all(f.metadata["help"] for f, _ in SETTINGS.values())  # each field declares its meaning
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert markdown() in readme  # regenerate with `sparsenet settings` when a setting changes
    out = subprocess.run([sys.executable, "-m", "sparsenet", "train", "--help"], capture_output=True, text=True)
    text = " ".join(out.stdout.split())
    assert "kept / prunable weights over the sparse layers, in (0, 1]; 1 for dense; default 1.0 (fraction)" in text
    assert "one of cosine, step, constant; default cosine" in text


def test_show_and_compare_read_runs_without_python(tmp_path, data_root):
    common = ["--epochs", "2", "--train-subset", "500", "--device", "cpu", "--density", "0.1"]
    assert main(["train", "--out", str(tmp_path / "a"), "--algorithm", "snfs", *common]) == 0
    assert main(["train", "--out", str(tmp_path / "b"), "--algorithm", "dnw", "--seed", "3", *common]) == 0
    out = subprocess.run([sys.executable, "-m", "sparsenet", "show", str(tmp_path / "a")], capture_output=True,
                         text=True)
    assert out.returncode == 0
    record = json.loads((tmp_path / "a" / "run.json").read_text())
    assert f"| test_acc   | {record['test_acc']}" in out.stdout
    assert "| fc1.weight |" in out.stdout and out.stdout.count("\n|       2 |") == 1  # two epochs of history
    out = subprocess.run([sys.executable, "-m", "sparsenet", "compare", str(tmp_path / "a"), str(tmp_path / "b")],
                         capture_output=True, text=True)
    differ = out.stdout.split("## settings that differ")[1].split("| result")[0]
    assert "| algorithm  | snfs | dnw |" in differ and "| seed       | 0    | 3   |" in differ
    assert "| prune_rate | 0.5  | -   |" in differ  # snfs's own setting: dnw has none
    assert "density" not in differ and "## masks: overlap" in out.stdout


def test_a_users_own_model_by_import_path(tmp_path, data_root, capsys):
    assert main(["train", "--out", str(tmp_path / "own"), "--model", "tests.custom_model:two_layer", "--algorithm",
                 "snfs", "--density", "0.2", "--epochs", "1", "--train-subset", "500", "--device", "cpu"]) == 0
    record = json.loads((tmp_path / "own" / "run.json").read_text())
    assert record["config"]["model"]["model"] == "tests.custom_model:two_layer"
    assert record["density"] == pytest.approx(0.2, abs=1e-3)
    assert main(["train", "--out", str(tmp_path / "bad"), "--model", "tests.custom_model:nothing"]) == 2
    assert "model: model 'tests.custom_model:nothing' cannot be imported" in capsys.readouterr().err


def test_layers_lists_every_models_prunable_weights_by_name(capsys):
    assert main(["layers", "lenet300_100"]) == 0
    out = capsys.readouterr().out
    assert "| fc1.weight | linear | 300x784 | 235,200 |" in out and "| fc3.weight | linear (output) | 10x100 |" in out
    assert main(["layers", "conv4", "--dataset", "cifar10"]) == 0
    names = [line.split(" | ")[0].strip("| ") for line in capsys.readouterr().out.splitlines()[2:]]
    assert names == ["conv1.weight", "conv2.weight", "conv3.weight", "conv4.weight", "fc1.weight", "fc2.weight",
                     "fc3.weight"]
    assert main(["layers", "nosuch"]) == 2
    assert "unknown model 'nosuch'" in capsys.readouterr().err


def test_a_users_own_dataset_by_import_path(tmp_path, capsys):
    own = "tests.custom_data:stripes"
    assert main(["layers", "lenet300_100", "--dataset", own]) == 0
    assert "| fc1.weight | linear | 300x144 |" in capsys.readouterr().out  # shape and classes from the arrays
    assert main(["train", "--out", str(tmp_path / "own"), "--dataset", own, "--algorithm", "dnw", "--density", "0.2",
                 "--epochs", "2", "--device", "cpu"]) == 0
    record = json.loads((tmp_path / "own" / "run.json").read_text())
    assert record["config"]["data"]["dataset"] == own and record["test_acc"] > 0.9  # chance is 0.1
    assert main(["train", "--out", str(tmp_path / "bad"), "--dataset", "tests.custom_data:no_test_split"]) == 2
    assert "must return a dict with x_train, y_train, x_test, y_test; missing x_test, y_test" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path / "bad"), "--dataset", "tests.custom_data:nothing"]) == 2
    assert "dataset: dataset 'tests.custom_data:nothing' cannot be imported" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_a_command_without_run_settings_starts_without_torch(tmp_path):
    """summary (like tables, figures and show) neither builds the run settings' help nor imports an error class
    from a module that needs torch, so it starts in a fraction of a training job's time; its errors still come
    in one line."""
    code = ("import sys\nfrom sparsenet.cli import main\n"
            f"code = main(['summary', '--tables', {str(tmp_path / 'none')!r}, '--out', {str(tmp_path / 's.md')!r}])\n"
            "print(code, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.stdout.split() == ["2", "False"], out.stderr
    assert out.stderr.count("\n") == 1 and "sparsenet summary: error:" in out.stderr


def test_analyse_writes_into_each_runs_folder_what_the_single_commands_write(tmp_path, data_root, capsys):
    """One process for a group's analyses (the workflow's analyse_<label>_<i> jobs), each table as its own command
    makes it; without --fractions and --emergence only the wiring table."""
    import pandas as pd

    from sparsenet.train import train

    from .conftest import tiny

    runs = [tmp_path / "snfs", tmp_path / "static"]
    train(tiny(algorithm="snfs", density=0.2, epochs=2), runs[0], data_root=data_root, device="cpu")
    train(tiny(algorithm="static", density=0.2, epochs=1), runs[1], data_root=data_root, device="cpu")
    sweep = ["--fractions", "0", "0.5", "--methods", "magnitude_global", "random", "--draws", "2"]
    assert main(["analyse", "--runs", *map(str, runs), *sweep, "--emergence", "--device", "cpu"]) == 0
    assert main(["analyse", "--runs", str(runs[1]), "--device", "cpu"]) == 0  # the wiring alone, again
    for run in runs:
        single = tmp_path / "single" / run.name
        single.mkdir(parents=True)
        assert main(["mask-stats", "--run", str(run), "--out", str(single / "layers.parquet")]) == 0
        assert main(["prune-sweep", "--run", str(run), "--out", str(single / "prune_sweep.parquet"), *sweep,
                     "--device", "cpu"]) == 0
        assert main(["emergence", "--run", str(run), "--out", str(single / "emergence.parquet")]) == 0
        for name in ("layers.parquet", "prune_sweep.parquet", "emergence.parquet"):
            pd.testing.assert_frame_equal(pd.read_parquet(run / name), pd.read_parquet(single / name))
    out = capsys.readouterr().out
    assert f"{runs[0]}: layers.parquet, prune_sweep.parquet, emergence.parquet" in out
    assert out.count(f"{runs[1]}: layers.parquet\n") == 1


def test_retrain_of_several_runs_writes_each_runs_variants_where_out_says(tmp_path, data_root, capsys):
    """The workflow's retrain_<label>_<i> jobs: the runs of one algorithm, their folders named by {run}; a
    replayed rewind (static) recorded beside the trained variant. Runs of two algorithms, or several runs or
    variants without their placeholder, are refused before anything is written."""
    from sparsenet.record import RunFolder
    from sparsenet.train import train

    from .conftest import tiny

    runs = [tmp_path / "a", tmp_path / "b", tmp_path / "snfs"]
    train(tiny(algorithm="static", density=0.2, epochs=1), runs[0], data_root=data_root, device="cpu")
    train(tiny(algorithm="static", density=0.1, epochs=1, seed=1), runs[1], data_root=data_root, device="cpu")
    train(tiny(algorithm="snfs", density=0.1, epochs=1), runs[2], data_root=data_root, device="cpu")
    refused = {("--run", *map(str, runs), "--variant", "reinit", "--out", "{run}/re/{variant}"):
               "--run: runs of one algorithm, frozen or not; got snfs, static",
               ("--run", *map(str, runs[:2]), "--variant", "reinit", "--out", str(tmp_path / "re")):
               "--out must contain {run} with several --run values",
               ("--run", str(runs[0]), "--variant", "rewind,reinit", "--out", str(tmp_path / "re")):
               "--out must contain {variant} with several --variant values",
               ("--run", str(runs[0]), "--variant", "reinit", "--out", "{run}/{seed}"):
               "--out {run}/{seed}: its placeholders may be {run} and {variant}"}
    for flags, message in refused.items():
        assert main(["retrain", *flags, "--device", "cpu"]) == 2
        assert message in capsys.readouterr().err
        assert not list(tmp_path.glob("*/re*")) and not (tmp_path / "re").exists()
    assert main(["retrain", "--run", *map(str, runs[:2]), "--variant", "rewind,reinit", "--out",
                 "{run}/reinit/{variant}", "--device", "cpu"]) == 0
    for run in runs[:2]:
        rewind, reinitialised = (RunFolder(run / "reinit" / v).record() for v in ("rewind", "reinit"))
        assert rewind.copy_of_source and not reinitialised.copy_of_source
        assert rewind.source_run == reinitialised.source_run == str(run)
        recorded = run / "reinit" / "rewind" / "final.safetensors"
        assert recorded.read_bytes() == (run / "final.safetensors").read_bytes()
    assert capsys.readouterr().out.count(" test_acc ") == 4
