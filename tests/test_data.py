import os

import numpy as np
import pytest
import torch

from sparsenet.config import DataHparams
from sparsenet.data import Batcher, DataError, _crop_flip, load


@pytest.mark.parametrize("dataset,counts", [
    ("mnist", [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]),
    ("fashion_mnist", [1000] * 10),
])
def test_mnist_likes_have_the_right_shapes_and_counts(data_root, dataset, counts):
    train, test, val = load(DataHparams(dataset=dataset), torch.device("cpu"))
    assert train.images.shape == (60000, 1, 28, 28) and train.images.dtype == torch.uint8
    assert test.images.shape == (10000, 1, 28, 28) and val is None
    assert torch.bincount(test.labels).tolist() == counts
    x, y = next(iter(Batcher(DataHparams(dataset=dataset), torch.device("cpu")).ordered(train, 1000)))
    assert x.dtype == torch.float32 and abs(float(x.mean())) < 0.1 and abs(float(x.std()) - 1) < 0.1


def test_cifar10_from_npz_with_on_device_augmentation(data_root):
    hp = DataHparams(dataset="cifar10", batch_size=256)
    train, test, _ = load(hp, torch.device("cpu"))
    assert train.images.shape == (50000, 3, 32, 32) and test.images.shape == (10000, 3, 32, 32)
    assert torch.bincount(train.labels).tolist() == [5000] * 10
    assert train.labels[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
    batcher = Batcher(hp, torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    x, y = next(batcher.epoch(train, g))
    assert x.shape == (256, 3, 32, 32) and y.shape == (256,)
    plain = batcher.normalise(train.images[:0])
    assert plain.shape == (0, 3, 32, 32)
    # augmentation is a crop of the zero-padded image, possibly flipped: every output pixel is an input pixel
    raw = train.images[:8]
    g = torch.Generator().manual_seed(1)
    aug = _crop_flip(raw, torch.randint(0, 9, (8,), generator=g), torch.randint(0, 9, (8,), generator=g),
                     torch.rand(8, generator=g) < 0.5)
    assert aug.shape == raw.shape and not torch.equal(aug, raw)
    for i in range(8):
        vals = set(raw[i].flatten().tolist()) | {0}
        assert set(aug[i].flatten().tolist()) <= vals


def test_crop_flip_offsets_mean_what_they_say():
    x = torch.arange(2 * 3 * 6 * 6, dtype=torch.uint8).view(2, 3, 6, 6)
    centre, no = torch.full((2,), 4), torch.zeros(2, dtype=torch.bool)
    assert torch.equal(_crop_flip(x, centre, centre, no), x)  # offset = pad: the original image
    assert torch.equal(_crop_flip(x, centre, centre, ~no), x.flip(-1))
    shifted = _crop_flip(x, centre + 1, centre - 2, no)  # one row down, two columns left, zeros come in
    assert torch.equal(shifted[:, :, :-1, 2:], x[:, :, 1:, :-2])
    assert shifted[:, :, -1].eq(0).all() and shifted[:, :, :, :2].eq(0).all()


def test_an_epoch_of_augmented_batches_is_reproducible_from_its_generator(data_root):
    hp = DataHparams(dataset="cifar10", batch_size=500, train_subset=1200)
    train, _, _ = load(hp, torch.device("cpu"))
    batcher = Batcher(hp, torch.device("cpu"))
    first = [x for x, _ in batcher.epoch(train, torch.Generator().manual_seed(3))]
    again = [x for x, _ in batcher.epoch(train, torch.Generator().manual_seed(3))]
    assert [len(x) for x in first] == [500, 500, 200]
    assert all(torch.equal(a, b) for a, b in zip(first, again))


def test_validation_split_is_held_out_and_fixed(data_root):
    hp = DataHparams(dataset="mnist", val_fraction=0.1)
    train, _, val = load(hp, torch.device("cpu"))
    assert len(train) == 54000 and len(val) == 6000
    _, _, val2 = load(hp, torch.device("cpu"))
    assert torch.equal(val.labels, val2.labels)


def test_batches_cover_the_split_once_and_depend_on_the_generator(data_root):
    hp = DataHparams(dataset="mnist", batch_size=1000, train_subset=3500)
    train, _, _ = load(hp, torch.device("cpu"))
    batcher = Batcher(hp, torch.device("cpu"))
    ys = torch.cat([y for _, y in batcher.epoch(train, torch.Generator().manual_seed(0))])
    assert len(ys) == 3500 and sorted(ys.tolist()) == sorted(train.labels.tolist())
    again = torch.cat([y for _, y in batcher.epoch(train, torch.Generator().manual_seed(0))])
    other = torch.cat([y for _, y in batcher.epoch(train, torch.Generator().manual_seed(1))])
    assert torch.equal(ys, again) and not torch.equal(ys, other)


def test_missing_data_names_the_folder_and_files(tmp_path, monkeypatch):
    monkeypatch.setattr("torchvision.datasets.utils.download_url",
                        lambda *a, **k: (_ for _ in ()).throw(OSError("network unreachable")))
    with pytest.raises(DataError) as err:
        load(DataHparams(dataset="mnist"), torch.device("cpu"), root=tmp_path)
    assert str(tmp_path) in str(err.value) and "train-images-idx3" in str(err.value)


def test_corrupt_npz_names_the_file(tmp_path):
    np.savez(tmp_path / "cifar10.npz", x_train=np.zeros((2, 32, 32, 3), np.uint8))
    with pytest.raises(DataError, match="cifar10.npz"):
        load(DataHparams(dataset="cifar10"), torch.device("cpu"), root=tmp_path)


def test_raw_mnist_is_read_without_torchvision_and_equals_torchvision(data_root, tmp_path):
    import subprocess
    import sys

    code = ("import sys, torch; from sparsenet.data import load; from sparsenet.config import DataHparams; "
            "tr, te, _ = load(DataHparams(dataset='fashion_mnist'), torch.device('cpu')); "
            "torch.save({'x': tr.images, 'y': tr.labels}, sys.argv[1]); print('torchvision' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "fm.pt")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"  # a training job's start-up skips torchvision's import
    from torchvision import datasets

    ref = datasets.FashionMNIST(str(data_root), train=True)
    ours = torch.load(tmp_path / "fm.pt")
    assert torch.equal(ours["x"][:, 0], ref.data) and torch.equal(ours["y"], ref.targets)


def test_truncated_raw_file_names_itself(tmp_path, data_root):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (raw / f).write_bytes((data_root / "MNIST" / "raw" / f).read_bytes()[:1000])
    with pytest.raises(DataError, match="train-images-idx3-ubyte is truncated"):
        load(DataHparams(dataset="mnist"), torch.device("cpu"), root=tmp_path)


def test_every_built_in_dataset_has_a_spec():
    from sparsenet import datasets
    from sparsenet.config import DATASETS

    assert tuple(datasets.BUILTIN) == DATASETS


def test_cifar10_npz_is_decompressed_once_per_process_and_read_again_when_replaced(tmp_path):
    from sparsenet import data

    def write(value):
        np.savez(tmp_path / "cifar10.npz", x_train=np.full((2, 32, 32, 3), value, np.uint8), y_train=np.zeros(2),
                 x_test=np.zeros((1, 32, 32, 3), np.uint8), y_test=np.zeros(1))
        os.utime(tmp_path / "cifar10.npz", ns=(value * 10**9, value * 10**9))

    write(1)
    x, _ = data._load_raw("cifar10", tmp_path, train=True)
    x[:] = 7  # a split's array is the caller's own: changing it leaves the cache as it was
    again, _ = data._load_raw("cifar10", tmp_path, train=True)
    assert x.shape == (2, 3, 32, 32) and (again == 1).all()
    write(2)
    assert (data._load_raw("cifar10", tmp_path, train=True)[0] == 2).all()
