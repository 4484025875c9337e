"""CIFAR10DataModule on tiny synthetic batches written in the official python-batch format."""
import pickle
import urllib.error

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from lightning_sig import CIFAR10DataModule
from lightning_sig.lightning.data_files import BASE_FOLDER, TRAIN_FILES


def _raw(folder, names):
    parts = [pickle.load(open(folder / BASE_FOLDER / n, "rb"), encoding="latin1") for n in names]
    data = np.concatenate([p["data"] for p in parts]).reshape(-1, 3, 32, 32)
    return data, np.concatenate([p["labels"] for p in parts])


def test_batches_are_indexed_uint8_scaled_to_unit_interval(fake_cifar):
    dm = CIFAR10DataModule(str(fake_cifar), batch_size=7)
    dm.prepare_data()
    dm.setup("fit")
    data, labels = _raw(fake_cifar, TRAIN_FILES)
    assert dm.train_set.images.dtype == torch.uint8 and dm.train_set.images.shape == (100, 3, 32, 32)
    x, y = next(iter(dm.val_dataloader()))  # val = official test split, unshuffled
    test_data, test_labels = _raw(fake_cifar, ["test_batch"])
    assert x.shape == (7, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    np.testing.assert_array_equal(x.numpy(), test_data[:7].astype(np.float32) / 255)
    np.testing.assert_array_equal(y.numpy(), test_labels[:7])
    seen = torch.cat([b[1] for b in dm.train_dataloader()])
    assert sorted(seen.tolist()) == sorted(labels.tolist()) and len(seen) == 100
    assert len(dm.train_dataloader()) == 15  # ceil(100 / 7)


def test_val_split_holds_out_seeded_disjoint_images(fake_cifar):
    dm = CIFAR10DataModule(str(fake_cifar), batch_size=10, val_split=30, split_seed=3)
    dm.setup()
    assert len(dm.train_set) == 70 and len(dm.val_set) == 30 and len(dm.test_set) == 20
    data, _ = _raw(fake_cifar, TRAIN_FILES)
    keys = lambda imgs: {bytes(i.numpy().tobytes()) for i in imgs}  # noqa: E731
    train_keys, val_keys = keys(dm.train_set.images), keys(dm.val_set.images)
    assert not train_keys & val_keys
    assert train_keys | val_keys == {bytes(i.tobytes()) for i in data}
    again = CIFAR10DataModule(str(fake_cifar), val_split=30, split_seed=3)
    again.setup()
    assert torch.equal(again.val_set.images, dm.val_set.images)


def test_normalize_uses_training_channel_statistics(fake_cifar):
    dm = CIFAR10DataModule(str(fake_cifar), batch_size=100, normalize=True)
    dm.setup()
    x, _ = next(iter(dm.train_dataloader()))
    mean, std = x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3))
    torch.testing.assert_close(mean, torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(std, torch.ones(3), atol=1e-4, rtol=0)


def test_shuffle_deterministic_under_seed_everything(fake_cifar):
    dm = CIFAR10DataModule(str(fake_cifar), batch_size=100)
    dm.setup()
    orders = []
    for seed in (5, 5, 6):
        pl.seed_everything(seed)
        torch.rand(3)  # consuming the global RNG must not change the order
        orders.append(next(iter(dm.train_dataloader()))[1])
    assert torch.equal(orders[0], orders[1]) and not torch.equal(orders[0], orders[2])


def test_epoch_order_is_function_of_seed_and_epoch(fake_cifar):
    from lightning_sig.lightning.data import EpochSeededSampler
    from lightning_sig.seeds import derived_seed
    sampler = EpochSeededSampler(100, seed=7)
    sampler.set_epoch(3)
    seed = derived_seed(7, "data_order", 3)
    expected = torch.randperm(100, generator=torch.Generator().manual_seed(seed)).tolist()
    assert list(sampler) == expected and sorted(expected) == list(range(100))
    dm = CIFAR10DataModule(str(fake_cifar), batch_size=100, shuffle_seed=7)
    dm.setup()
    loader = dm.train_dataloader()
    loader.sampler.set_epoch(3)
    torch.testing.assert_close(next(iter(loader))[1], dm.train_set.labels[expected])


@pytest.mark.parametrize("kwargs,match", [
    ({"batch_size": 0}, "batch_size must be an integer >= 1, got 0"),
    ({"val_split": -1}, "val_split must be an integer >= 0, got -1"),
    ({"num_workers": -2}, "num_workers must be an integer >= 0, got -2"),
])
def test_bad_arguments(kwargs, match, fake_cifar):
    with pytest.raises(ValueError, match=match):
        CIFAR10DataModule(str(fake_cifar), **kwargs)


def test_val_split_larger_than_training_set(fake_cifar):
    dm = CIFAR10DataModule(str(fake_cifar), val_split=100)
    with pytest.raises(ValueError, match=r"val_split=100 must be smaller than the training set \(100 images\)"):
        dm.setup()


def test_missing_directory_says_where_and_how(tmp_path):
    dm = CIFAR10DataModule(str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError) as info:
        dm.prepare_data()
    msg = str(info.value)
    assert "nowhere" in msg and "does not exist" in msg and "cifar-10-batches-py" in msg
    assert "--data.download true" in msg and "cifar-10-python.tar.gz" in msg
    assert not (tmp_path / "nowhere").exists()  # nothing written


def test_pointing_at_batches_folder_itself(fake_cifar):
    dm = CIFAR10DataModule(str(fake_cifar / BASE_FOLDER))
    with pytest.raises(FileNotFoundError, match="points at the cifar-10-batches-py folder itself; pass its parent"):
        dm.prepare_data()


def test_truncated_batch_file_is_named(fake_cifar):
    path = fake_cifar / BASE_FOLDER / "data_batch_3"
    path.write_bytes(path.read_bytes()[:500])
    before = path.read_bytes()
    with pytest.raises(ValueError, match="data_batch_3 is truncated or unreadable"):
        CIFAR10DataModule(str(fake_cifar)).setup()
    assert path.read_bytes() == before


def test_wrong_shape_batch_file(fake_cifar):
    path = fake_cifar / BASE_FOLDER / "test_batch"
    with open(path, "wb") as f:
        pickle.dump({"data": np.zeros((4, 1000), np.uint8), "labels": [0, 1, 2, 3]}, f)
    with pytest.raises(ValueError, match=r"test_batch has data of shape \(4, 1000\)"):
        CIFAR10DataModule(str(fake_cifar)).setup()


def test_download_offline_explains_manual_setup(tmp_path, monkeypatch):
    import torchvision.datasets.utils as tvu

    def offline(*args, **kwargs):
        raise urllib.error.URLError("network unreachable")

    monkeypatch.setattr(tvu, "download_and_extract_archive", offline)
    dm = CIFAR10DataModule(str(tmp_path / "d"), download=True)
    with pytest.raises(RuntimeError, match="Downloading CIFAR-10 into .* failed .*URLError.*extract it into <data_dir>"):
        dm.prepare_data()


def test_download_called_only_when_batches_missing(fake_cifar, monkeypatch):
    import torchvision.datasets.utils as tvu
    calls = []
    monkeypatch.setattr(tvu, "download_and_extract_archive", lambda *a, **k: calls.append(a))
    CIFAR10DataModule(str(fake_cifar), download=True).prepare_data()
    assert calls == []
