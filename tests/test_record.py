"""run.json through its one typed definition: written and read back whole, another version refused by name."""
import json

import pytest

from sparsenet.files import ResultFileError
from sparsenet.record import VERSION, RunFolder, RunRecord

from .conftest import tiny


def record(**changes) -> RunRecord:
    fields = dict(config=tiny().to_dict(), status="ok", test_acc=0.9, test_loss=0.3, val_acc=None, density=0.1,
                  epochs_run=3, steps_per_epoch=20, weight_grad_macs=1e9, wall_s=2.5,
                  finished="2026-12-05T14:00:00+00:00",
                  sparse_layers=["fc1.weight"], git_commit="abc", code_hash="def", versions={"torch": "2"},
                  device="cpu", host="h")
    return RunRecord(**{**fields, **changes})


def test_a_record_reads_back_equal_and_gives_its_settings(tmp_path):
    folder = RunFolder(tmp_path)
    written = record(imp_round=2, first_epoch=1)
    written.write(folder.record_path)
    assert folder.is_finished() and folder.record() == written and folder.config() == tiny()
    assert json.loads(folder.record_path.read_text())["version"] == VERSION


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("version"), "of version 1, this sparsenet reads version"),  # written before the field
    (lambda d: d.update(version=VERSION + 1), f"of version {VERSION + 1}"),
    (lambda d: d.update(extra_field=1), "unknown fields ['extra_field']"),
    (lambda d: d.pop("test_acc"), "missing ['test_acc']")])
def test_a_record_of_another_layout_is_refused_naming_the_file_and_why(tmp_path, change, message):
    folder = RunFolder(tmp_path)
    record().write(folder.record_path)
    data = json.loads(folder.record_path.read_text())
    change(data)
    folder.record_path.write_text(json.dumps(data))
    with pytest.raises(ResultFileError, match="run.json") as e:
        folder.record()
    assert message in str(e.value) and "rerun the job that wrote it" in str(e.value)


def test_a_trainer_asked_to_record_an_unknown_field_fails_before_training(tmp_path, data_root):
    from sparsenet.train import train

    with pytest.raises(ValueError, match="no fields \\['bogus'\\]"):
        train(tiny(epochs=1), tmp_path / "run", extra={"bogus": 1})
    assert not RunFolder(tmp_path / "run").checkpoint.exists()


def test_the_folder_names_every_file_of_a_finished_run(tmp_path):
    folder = RunFolder(tmp_path)
    named = {p.name for p in (folder.init, folder.final, folder.mask, folder.snapshots, folder.history,
                              folder.record_path)}
    assert named == set(RunFolder.FILES) and RunFolder.FILES[-1] == "run.json"  # written last: marks it finished
